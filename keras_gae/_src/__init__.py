"""keras_gae internals shared across its packages; not a public API."""

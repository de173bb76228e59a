"""Keras 3 for keras_gae, Keras 2 inside tensorflow-probability and tf-agents.

keras_gae builds everything Keras on `import keras` (Keras 3, TensorFlow
backend). tensorflow-probability 0.23 and tf-agents 0.19 still reach for
Keras 2 (the tf-keras package) when they are imported, which TensorFlow
2.21 only hands them while `TF_USE_LEGACY_KERAS=1` is set. `keras2_inside`
sets it for the duration of their import and restores the user's value
afterwards; `tf.keras` is resolved first, so a user's `tf.keras` stays what
it would have been without keras_gae (Keras 3 unless they asked otherwise).
See docs/design.md, "Keras version".
"""

from __future__ import annotations

import contextlib
import os
from typing import Any
from typing import Iterator

from keras_gae._src import backend_check

_LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


# Before Keras is imported: another backend may not even import here.
backend_check.check_backend_name(os.environ.get("KERAS_BACKEND", "tensorflow"))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def check_backend() -> None:
    """Raises ImportError unless Keras runs on the TensorFlow backend.

    Covers a backend chosen in `~/.keras/keras.json` or a Keras imported
    before keras_gae; the environment variable is checked on import.
    """
    backend_check.check_backend_name(keras.backend.backend())


# A backend chosen in keras.json, or by a Keras imported before keras_gae.
check_backend()


@contextlib.contextmanager
def keras2_inside() -> Iterator[None]:
    """Lets tensorflow-probability and tf-agents import their Keras 2."""
    # Resolve TensorFlow's lazy `tf.keras` under the user's setting before
    # the variable changes, so that it does not become Keras 2 by accident.
    getattr(tf.keras, "layers", None)
    previous = os.environ.get(_LEGACY_KERAS)
    os.environ[_LEGACY_KERAS] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[_LEGACY_KERAS]
        else:
            os.environ[_LEGACY_KERAS] = previous


with keras2_inside():
    import tensorflow_probability as tfp  # noqa: E402

distributions = tfp.distributions
bijectors = tfp.bijectors
util = tfp.util


def is_keras2_object(value: Any) -> bool:
    """Whether `value` is a tf-keras (Keras 2) layer, model or optimizer."""
    return any(
        cls.__module__.split(".")[0] == "tf_keras"
        for cls in type(value).__mro__
    )


def check_layer(value: Any, name: str) -> Any:
    """`value` if it is a Keras 3 layer or model, else a TypeError.

    A Keras 2 (tf-keras) network gets its own message: keras_gae builds on
    Keras 3, and the two versions' layers cannot be mixed in one model.
    """
    if isinstance(value, keras.layers.Layer):
        return value
    if is_keras2_object(value):
        raise TypeError(
            f"`{name}` is a Keras 2 (tf-keras / legacy tf.keras) object; "
            "keras_gae runs on Keras 3. Build it with `import keras` "
            "(keras.Sequential, keras.layers.Dense, ...), not with tf_keras "
            "or tf.keras under TF_USE_LEGACY_KERAS=1. "
            f"Received: {name}={value!r}"
        )
    raise TypeError(
        f"`{name}` must be a Keras layer or model. Received: {name}={value!r}"
    )

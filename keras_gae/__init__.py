"""keras_gae: advantage-based policy training for Keras 3 on TensorFlow.

Everything Keras in keras_gae is built on `import keras` (Keras 3) with the
TensorFlow backend, and the import order does not matter: `tensorflow`,
`keras` or `keras_gae` may come first. tensorflow-probability and tf-agents,
which still need Keras 2 inside, are imported by keras_gae with what they
need (docs/design.md, "Keras version").

`import keras_gae` itself imports no TensorFlow: each subpackage loads on
first use (`keras_gae.layers`, `from keras_gae import models`, ...), so
`keras_gae.presets` (plain Python) is there before TensorFlow is, and a
command-line program can check its flags first. `keras_gae.agents`
(tf-agents glue) and `keras_gae.lm` (language models) load the same way.
"""

import importlib as _importlib
import os as _os

# Checked before Keras is imported anywhere: another backend may not even
# import here. A backend chosen in keras.json is checked when the first
# subpackage loads (`keras_gae._src.dependencies`).
if _os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    from keras_gae._src import backend_check as _backend_check

    _backend_check.check_backend_name(_os.environ["KERAS_BACKEND"])

__version__ = "0.2.0"

_SUBPACKAGES = (
    "agents",
    "distributed",
    "export",
    "layers",
    "lm",
    "losses",
    "models",
    "ops",
    "optimizers",
    "presets",
)

__all__ = [
    "export",
    "layers",
    "losses",
    "models",
    "ops",
    "optimizers",
    "presets",
    "__version__",
]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"keras_gae.{name}")
    raise AttributeError(f"module 'keras_gae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBPACKAGES))

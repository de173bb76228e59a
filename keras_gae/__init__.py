"""keras_gae: advantage-based policy training for TensorFlow/Keras.

tf-agents 0.19 and tensorflow-probability 0.23 run only with Keras 2, which
TensorFlow 2.21 serves as `tf.keras` when `TF_USE_LEGACY_KERAS=1` is set
before TensorFlow is first imported. Importing keras_gae first sets it; if
TensorFlow was imported earlier with Keras 3 behind `tf.keras`, the import
fails with instructions instead of mixing two Keras versions.
"""

import os
import sys

if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402


def _check_keras_version() -> None:
    # tf.keras is a lazy module whose __name__ depends on how it was reached;
    # the module defining its Layer class tells Keras 2 (tf_keras) apart.
    layer_module = tf.keras.layers.Layer.__module__
    if not layer_module.startswith("tf_keras"):
        version = getattr(tf.keras, "__version__", "3")
        raise ImportError(
            "keras_gae needs Keras 2 (the tf-keras package) behind tf.keras, "
            f"but tf.keras is Keras {version}. Set the environment variable "
            "TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported (for "
            "example `export TF_USE_LEGACY_KERAS=1`, or import keras_gae "
            "before tensorflow), and install tf-keras matching TensorFlow: "
            "pip install 'tf-keras==2.21.*'."
        )


_check_keras_version()

from keras_gae import export  # noqa: E402
from keras_gae import layers  # noqa: E402
from keras_gae import losses  # noqa: E402
from keras_gae import models  # noqa: E402
from keras_gae import ops  # noqa: E402

__version__ = "0.1.0"

# `keras_gae.agents` (tf-agents glue) and `keras_gae.lm` (language models) are
# imported on demand: `import keras_gae.agents`.
__all__ = ["export", "layers", "losses", "models", "ops", "__version__"]

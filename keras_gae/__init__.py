"""keras_gae: advantage-based policy training for Keras 3 on TensorFlow.

Everything Keras in keras_gae is built on `import keras` (Keras 3) with the
TensorFlow backend, and the import order does not matter: `tensorflow`,
`keras` or `keras_gae` may come first. tensorflow-probability and tf-agents,
which still need Keras 2 inside, are imported by keras_gae with what they
need (docs/design.md, "Keras version").
"""

from keras_gae._src import dependencies as _dependencies

_dependencies.check_backend()

from keras_gae import export  # noqa: E402
from keras_gae import layers  # noqa: E402
from keras_gae import losses  # noqa: E402
from keras_gae import models  # noqa: E402
from keras_gae import ops  # noqa: E402
from keras_gae import optimizers  # noqa: E402

__version__ = "0.2.0"

# `keras_gae.agents` (tf-agents glue) and `keras_gae.lm` (language models) are
# imported on demand: `import keras_gae.agents`.
__all__ = [
    "export",
    "layers",
    "losses",
    "models",
    "ops",
    "optimizers",
    "__version__",
]

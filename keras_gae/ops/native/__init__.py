"""A native CPU kernel for GAE, compiled on first use.

`available()` builds `gae_op.cc` with the system C++ compiler the first time
it is called in a process (cached on disk afterwards, see `loader`) and says
whether the op loaded; `gae_time_major(...)` runs it. The op has no XLA
kernel: check `in_xla_context()` before creating it.
"""

from keras_gae.ops._xla_context import in_xla_context
from keras_gae.ops.native.gae_kernel import gae_time_major
from keras_gae.ops.native.loader import available

__all__ = [
    "available",
    "gae_time_major",
    "in_xla_context",
]

r"""The interchangeable GAE kernels and the rule "auto" chooses by.

Each kernel takes checked time-major `[T, B]` tensors (as
`_steps.prepare_steps` leaves them) and returns `(advantages, returns)`:

* "scan": the reference, a reverse `tf.scan` run by the TensorFlow executor;
* "xla": the same function under `tf.function(jit_compile=True)`;
* "native": a one-pass C++ CPU op (`keras_gae.ops.native`), compiled with
  the system compiler on first use and therefore never chosen by "auto".

`resolve("auto")` is "scan" where the caller is itself being compiled by XLA
(a `tf.function(jit_compile=True)` or a Keras `compile(jit_compile=True)`
step: XLA fuses the scan with everything around it, and a nested compiled
function would only add a call), and "xla" everywhere else (eager,
`tf.function`, a Keras step without XLA); it looks at neither the shape nor
the device. The rule comes from timing both on CPU at shapes from 1 x 1 to
2048 x 4096, called eagerly, once per `tf.function` call, chained inside one
`tf.function` and chained inside one XLA-compiled function:

    .venv/bin/python benchmarks/gae_benchmark.py \
        --shapes=1x1,32x64,128x8,512x64,128x2048,2048x4096 --repeats=11

which prints the tables (docs/benchmarks.md, "GAE", holds the figures): outside
XLA, xla wins at every shape, the more the longer T; inside XLA both are one
compiled program. XLA compiles once per new input shape.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import _steps
from keras_gae.ops import _xla_context
from keras_gae.ops import native

IMPLEMENTATIONS = ("auto", "scan", "xla", "native")


def scan(
    rewards: tf.Tensor,
    values: tf.Tensor,
    bootstrap_value: tf.Tensor,
    terminated: Optional[tf.Tensor],
    truncated: Optional[tf.Tensor],
    truncation_values: Optional[tf.Tensor],
    mask: Optional[tf.Tensor],
    gamma: tf.Tensor,
    lambda_: tf.Tensor,
) -> tuple:
    """GAE by reverse `tf.scan` on checked `[T, B]` tensors.

    See `keras_gae.ops.generalized_advantage_estimation` for the formula;
    `native.gae_time_major` repeats it operation for operation.
    """
    next_values = _steps.next_values(
        values, bootstrap_value, terminated, truncated, truncation_values
    )
    continues = _steps.continuing(terminated, truncated, rewards)
    deltas = rewards + gamma * next_values - values
    decays = gamma * lambda_ * continues + tf.zeros_like(deltas)
    if mask is not None:
        zeros = tf.zeros_like(deltas)
        deltas = tf.where(mask, deltas, zeros)
        decays = tf.where(mask, decays, zeros)
    # The decays are 0 at episode ends and masked steps: nothing crosses
    # them, NaN included (`reverse_linear_recurrence`).
    advantages = _steps.reverse_linear_recurrence(
        deltas, decays, tf.zeros_like(bootstrap_value)
    )
    return advantages, advantages + values


xla = tf.function(
    scan, jit_compile=True, reduce_retracing=True, autograph=False
)

KERNELS = {"scan": scan, "xla": xla, "native": native.gae_time_major}


def resolve(implementation: str) -> str:
    """The kernel to run here for the user's `implementation`.

    "auto" follows the rule in the module docstring and never builds or
    loads the native op. "native" is checked here: it cannot run inside an
    XLA-compiled function, and it is built (or loaded from the cache) now.

    Raises:
      ValueError: an unknown implementation, or "native" where it cannot run.
    """
    _checks.check_option(implementation, "implementation", IMPLEMENTATIONS)
    if implementation == "auto":
        return "scan" if _xla_context.in_xla_context() else "xla"
    if implementation == "native":
        if _xla_context.in_xla_context():
            raise ValueError(
                "`implementation='native'` cannot run inside an XLA-compiled "
                "function (jit_compile=True); use 'auto' there. "
                f"Received: implementation={implementation!r}"
            )
        if not native.available():
            raise ValueError(
                "`implementation='native'` needs the native GAE op, which "
                "could not be built here (see the logged warning); use "
                f"'auto'. Received: implementation={implementation!r}"
            )
    return implementation

"""GAE through the native CPU op (not inside XLA: see `_xla_context`).

Letters used in shapes: `T` is the number of time steps, `B` the batch size.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from keras_gae.ops.native import loader


def gae_time_major(
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
    r"""GAE advantages and returns in one native pass over `[T, B]` inputs.

    Computes, backwards over t (Schulman et al. 2015, arXiv:1506.02438,
    eq. 16, with the trace cut at episode ends as in docs/design.md):

        V_{t+1} = truncation_values[t] if truncated[t] (and given)
                  else values[t + 1]  (bootstrap_value at t = T - 1)
        delta_t = r_t + gamma_t * (1 - terminated_t) * V_{t+1} - values[t]
        A_t = delta_t + gamma_t * lambda_t * (1 - end_t) * A_{t+1},  A_T = 0
        end_t = terminated_t or truncated_t;  A_t = 0 where mask[t] is false
        returns = A + values

    the same math in the same operation order as
    `keras_gae.ops._gae_implementations.scan` (equal to the bit in the
    tests), in one pass on the CPU with the batch split over TensorFlow's
    intra-op threads. Inputs are expected checked (as
    `_steps.prepare_steps` leaves them); the op still verifies shapes and
    raises `InvalidArgumentError` on a mismatch. Flags are applied with
    selects, so a non-finite V_{t+1} behind a terminated step, or A_{t+1}
    behind an episode end or a masked row, does not leak in as
    0 * inf = NaN (nor does it in the tf.scan path, whose trace uses
    `multiply_no_nan`). No gradient
    flows through the op. Call `available()` first; do not call it where
    `in_xla_context()` is True (it has no XLA kernel).

    Args:
      rewards: `[T, B]` float32 or float64 rewards.
      values: `[T, B]` values V(s_t), same dtype.
      bootstrap_value: `[B]` V(s_T), same dtype.
      terminated: optional `[T, B]` bool flags, or None.
      truncated: optional `[T, B]` bool flags, or None.
      truncation_values: optional `[T, B]` V(s_{t+1}) for truncated steps,
        or None; ignored when `truncated` is None.
      mask: optional `[T, B]` bool validity of each row, or None.
      gamma: discount, a scalar or a rank-2 tensor of shape
        `[1 or T, 1 or B]` (cast to the rewards' dtype).
      lambda_: GAE lambda, shaped like `gamma`.

    Returns:
      `(advantages, returns)`, both `[T, B]` in the rewards' dtype.

    Raises:
      RuntimeError: the native op is not available.
    """
    library = loader.get_library()
    if library is None:
        raise RuntimeError(
            "keras_gae's native GAE op is not available (see the warning "
            "logged when it was built); check `available()` first."
        )
    dtype = rewards.dtype
    absent_flags = tf.zeros([], tf.bool)
    absent_values = tf.zeros([], dtype)

    def flags(tensor):
        return absent_flags if tensor is None else tensor

    has_truncation_values = truncation_values is not None and (
        truncated is not None
    )
    return library.keras_gae_generalized_advantage_estimation(
        rewards=rewards,
        values=values,
        bootstrap_value=bootstrap_value,
        terminated=flags(terminated),
        truncated=flags(truncated),
        truncation_values=(
            truncation_values if has_truncation_values else absent_values
        ),
        mask=flags(mask),
        gamma=tf.cast(gamma, dtype),
        lambda_=tf.cast(lambda_, dtype),
        has_terminated=terminated is not None,
        has_truncated=truncated is not None,
        has_truncation_values=has_truncation_values,
        has_mask=mask is not None,
    )

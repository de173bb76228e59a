"""Generalized Advantage Estimation (GAE) as a reverse `tf.scan`.

Reference: Schulman, Moritz, Levine, Jordan, Abbeel (2015), "High-Dimensional
Continuous Control Using Generalized Advantage Estimation", arXiv:1506.02438.

Letters used in shapes: `T` is the number of time steps, `B` the batch size
(environments or generated sequences). The math is time-major, `[T, B]`; pass
`time_major=False` for batch-major `[B, T]` inputs and outputs.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import _gae_implementations
from keras_gae.ops import _steps

IMPLEMENTATIONS = _gae_implementations.IMPLEMENTATIONS


class GAEOutputs(NamedTuple):
    """What `generalized_advantage_estimation` returns.

    Attributes:
      advantages: `[T, B]` (or `[B, T]`) GAE advantages; 0 on masked rows.
      returns: `advantages + values`, the critic's regression targets
        (equal to the TD(lambda) returns); `values` on masked rows.
    """

    advantages: tf.Tensor
    returns: tf.Tensor


def generalized_advantage_estimation(
    rewards: Any,
    values: Any,
    bootstrap_value: Any,
    *,
    gamma: Any = 0.99,
    lambda_: Any = 0.95,
    terminated: Any = None,
    truncated: Any = None,
    truncation_values: Any = None,
    mask: Any = None,
    time_major: bool = True,
    implementation: str = "auto",
    check_numerics: bool = False,
    name: Optional[str] = None,
) -> GAEOutputs:
    r"""Generalized Advantage Estimation with exact episode boundaries.

    Step t is the transition s_t --a_t--> (r_t, s_{t+1}). With
    V_{t+1} = V(s_{t+1}),

        delta_t = r_t + gamma_t * (1 - terminated_t) * V_{t+1} - V(s_t)
        A_t = delta_t + gamma_t * lambda_t * (1 - end_t) * A_{t+1},
        end_t = terminated_t or truncated_t,   A_T = 0,

    (Schulman et al. 2015, arXiv:1506.02438, eq. 16, with the trace cut at
    episode ends) and `returns = advantages + values`.

    Episode boundaries:
      * `terminated[t]`: s_{t+1} is terminal, its value counts as 0.
      * `truncated[t]`: the episode was cut after step t but s_{t+1} is not
        terminal: bootstrap from V(s_{t+1}), which is `truncation_values[t]`
        where given, else the next row of `values` (else `bootstrap_value` on
        the last step). Use `truncation_values` when the next row already
        belongs to a new episode.
      * `mask[t]` false: padding, or a row whose transition does not exist
        (the LAST -> FIRST row of tf-agents trajectories). Its advantage is 0,
        its return is `values[t]`, and the trace stops there. The row
        before it, t - 1, still bootstraps from this row's `values[t]`
        (V(s_t)) unless it is terminated or takes `truncation_values[t - 1]`.

    Letters: `T` steps, `B` batch. Shapes below are time-major; with
    `time_major=False` every `[T, B]` is `[B, T]`.

    Args:
      rewards: `[T, B]` float rewards r_t.
      values: `[T, B]` float critic values V(s_t).
      bootstrap_value: `[B]` float V(s_T), the value after the last step.
      gamma: discount in [0, 1]: a float, or a float tensor of rank 2
        broadcastable to `[T, B]` (per-step discounts).
      lambda_: GAE lambda in [0, 1], a float or a rank-2 tensor like `gamma`.
      terminated: optional `[T, B]` bool-like flags.
      truncated: optional `[T, B]` bool-like flags.
      truncation_values: optional `[T, B]` float V(s_{t+1}) for truncated
        steps (read only where `truncated` is set).
      mask: optional `[T, B]` bool-like validity of each row.
      time_major: whether the inputs and outputs are `[T, B]` (True) or
        `[B, T]` (False).
      implementation: "auto" (the default: "xla", or "scan" inside a
        function XLA already compiles; chosen by measurement, see
        `keras_gae.ops._gae_implementations`; never runs a compiler),
        "scan" (the reference: `tf.scan` run by the TensorFlow executor),
        "xla" (the same scan compiled with XLA) or "native" (opt-in: a
        one-pass C++ CPU op that g++ builds on first use,
        `keras_gae.ops.native`; not inside XLA-compiled functions). All give
        the same result to float rounding.
      check_numerics: if True, NaN or Inf in any float input, masked rows
        included, raises an InvalidArgumentError that names the input
        (inside an XLA-compiled function XLA drops the check, and a
        warning says so). If
        False (the default, no extra pass over the inputs), a NaN or Inf
        makes non-finite exactly the advantages whose formula reads it,
        never a finite number: a reward or value of a valid step t makes
        A_t non-finite, and so does the V_{t+1} step t bootstraps from,
        including `values[t + 1]` on a masked row (it is V(s_{t+1}) there:
        the LAST row of a tf-agents episode holds the value of the final
        observation) unless step t is terminated or takes
        `truncation_values[t]`. From A_t it spreads through the trace to
        the earlier steps of the same episode; the trace itself carries
        nothing across an episode end or a masked step (selects, never
        0 * NaN), and a masked step's advantage is 0 whatever it holds
        (its return is its `values[t]`). The training models never apply
        such a step: its loss is not finite (`NonFiniteLossError`).
      name: optional name scope.

    Returns:
      `GAEOutputs(advantages, returns)`, both `[T, B]` (or `[B, T]`), in
      float64 if any float input is float64 and float32 otherwise (float16 and
      bfloat16 inputs are accumulated and returned in float32). Gradients are
      stopped: both are targets, not functions of the critic.

    Raises:
      ValueError: wrong rank, mismatched shapes, T = 0, gamma or lambda_
        outside [0, 1], unknown `implementation`.
      TypeError: non-float rewards/values, non-bool-like flags.
    """
    implementation = _gae_implementations.resolve(implementation)
    _checks.check_required(values, "values", "GAE needs the critic's V(s_t)")
    _checks.check_required(
        bootstrap_value,
        "bootstrap_value",
        "pass V(s_T) for the state after the last step (zeros if every row "
        "ends terminated)",
    )
    with _steps.prepared(
        dict(locals()), "generalized_advantage_estimation"
    ) as steps:
        if implementation != "native":
            # Outside the XLA function too: a tape must not record it (its
            # forward pass would export scan TensorLists out of XLA).
            steps = steps._replace(
                rewards=tf.stop_gradient(steps.rewards),
                values=tf.stop_gradient(steps.values),
                bootstrap_value=tf.stop_gradient(steps.bootstrap_value),
                truncation_values=None
                if steps.truncation_values is None
                else tf.stop_gradient(steps.truncation_values),
            )
        kernel = _gae_implementations.KERNELS[implementation]
        advantages, returns = kernel(*steps)
        return GAEOutputs(
            advantages=_steps.to_layout(advantages, time_major),
            returns=_steps.to_layout(returns, time_major),
        )

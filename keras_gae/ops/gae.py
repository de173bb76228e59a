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
from keras_gae.ops import native

IMPLEMENTATIONS = ("auto", "scan", "xla", "native")


class GAEOutputs(NamedTuple):
    """What `generalized_advantage_estimation` returns.

    Attributes:
      advantages: `[T, B]` (or `[B, T]`) GAE advantages; 0 on masked rows.
      returns: `advantages + values`, the critic's regression targets
        (equal to the TD(lambda) returns); `values` on masked rows.
    """

    advantages: tf.Tensor
    returns: tf.Tensor


class Steps(NamedTuple):
    """Checked, time-major inputs in the computation dtype (internal)."""

    rewards: tf.Tensor
    values: Optional[tf.Tensor]
    bootstrap_value: Optional[tf.Tensor]
    terminated: Optional[tf.Tensor]
    truncated: Optional[tf.Tensor]
    truncation_values: Optional[tf.Tensor]
    mask: Optional[tf.Tensor]
    gamma: tf.Tensor
    lambda_: Optional[tf.Tensor]


def prepare_steps(
    rewards: Any,
    values: Any,
    bootstrap_value: Any,
    *,
    gamma: Any,
    lambda_: Any,
    terminated: Any,
    truncated: Any,
    truncation_values: Any,
    mask: Any,
    time_major: bool,
    check_numerics: bool,
) -> Steps:
    """Checks the arguments of every estimator and makes them time-major.

    Raises ValueError/TypeError naming the argument for wrong ranks, shapes,
    dtypes and ranges. `values`, `bootstrap_value` and `lambda_` may be None
    for estimators that do not use them.
    """
    if not isinstance(time_major, bool):
        raise TypeError(
            f"`time_major` must be a bool. Received: time_major={time_major!r}"
        )
    layout = "[T, B]" if time_major else "[B, T]"
    rewards = _checks.convert_float(rewards, "rewards")
    _checks.check_rank(rewards, 2, "rewards", layout)
    time_axis = 0 if time_major else 1
    num_steps = rewards.shape[time_axis] if rewards.shape.rank else None
    if num_steps == 0:
        raise ValueError(
            "`rewards` must hold at least one time step (T >= 1), got T=0. "
            f"Received: rewards={_checks.describe(rewards)}"
        )
    assertions = []
    if num_steps is None:
        assertions.append(
            tf.debugging.assert_positive(
                tf.shape(rewards)[time_axis],
                message="`rewards` must hold at least one time step (T >= 1).",
            )
        )

    def per_step(value, name, convert):
        if value is None:
            return None
        tensor = convert(value, name)
        _checks.check_rank(tensor, 2, name, layout)
        assertions.extend(
            _checks.check_same_shape(tensor, rewards, name, "rewards")
        )
        return tensor

    values = per_step(values, "values", _checks.convert_float)
    truncation_values = per_step(
        truncation_values, "truncation_values", _checks.convert_float
    )
    terminated = per_step(terminated, "terminated", _checks.convert_flag)
    truncated = per_step(truncated, "truncated", _checks.convert_flag)
    mask = per_step(mask, "mask", _checks.convert_flag)

    if bootstrap_value is not None:
        bootstrap_value, checks = _checks.convert_batch_vector(
            bootstrap_value,
            "bootstrap_value",
            rewards,
            1 - time_axis,
            "rewards",
        )
        assertions.extend(checks)

    dtype = _checks.compute_dtype(
        rewards, values, bootstrap_value, truncation_values
    )

    def coefficient(value, name):
        if value is None:
            return None
        tensor, checks = _checks.check_unit_interval(value, name, dtype)
        if tensor.shape.rank == 1:
            raise ValueError(
                f"`{name}` must be a scalar or a rank-2 tensor broadcastable "
                f"to the rewards' shape {tuple(rewards.shape)} ({layout}); a "
                "rank-1 tensor is ambiguous between per-step and per-batch. "
                f"Received: {name}={_checks.describe(tensor)}"
            )
        _checks.check_broadcastable(tensor, rewards.shape, name)
        assertions.extend(checks)
        if tensor.shape.rank == 2 and not time_major:
            tensor = tf.transpose(tensor)
        return tensor

    gamma = coefficient(gamma, "gamma")
    lambda_ = coefficient(lambda_, "lambda_")

    def cast(tensor):
        return None if tensor is None else tf.cast(tensor, dtype)

    rewards, values, bootstrap_value, truncation_values = map(
        cast, (rewards, values, bootstrap_value, truncation_values)
    )
    if check_numerics:
        named = {
            "rewards": rewards,
            "values": values,
            "bootstrap_value": bootstrap_value,
            "truncation_values": truncation_values,
        }
        checked = {
            name: None if t is None else _checks.check_numerics(t, name)
            for name, t in named.items()
        }
        rewards = checked["rewards"]
        values = checked["values"]
        bootstrap_value = checked["bootstrap_value"]
        truncation_values = checked["truncation_values"]

    if assertions:
        with tf.control_dependencies(assertions):
            rewards = tf.identity(rewards)
    if not time_major:
        with tf.name_scope("to_time_major"):
            rewards, values, truncation_values, terminated, truncated, mask = (
                None if t is None else tf.transpose(t)
                for t in (
                    rewards,
                    values,
                    truncation_values,
                    terminated,
                    truncated,
                    mask,
                )
            )
    return Steps(
        rewards=rewards,
        values=values,
        bootstrap_value=bootstrap_value,
        terminated=terminated,
        truncated=truncated,
        truncation_values=truncation_values,
        mask=mask,
        gamma=gamma,
        lambda_=lambda_,
    )


def next_state_values(
    values: tf.Tensor,
    bootstrap_value: tf.Tensor,
    truncated: Optional[tf.Tensor],
    truncation_values: Optional[tf.Tensor],
) -> tf.Tensor:
    """V(s_{t+1}) for every step, `[T, B]`.

    The next row of `values` holds V(s_{t+1}) inside an episode; the last step
    uses `bootstrap_value`; a truncated step uses `truncation_values` when
    given, because the next row then belongs to a new episode.
    """
    next_values = tf.concat([values[1:], bootstrap_value[tf.newaxis]], axis=0)
    if truncation_values is not None and truncated is not None:
        next_values = tf.where(truncated, truncation_values, next_values)
    return next_values


def float_flag(flag: Optional[tf.Tensor], like: tf.Tensor) -> tf.Tensor:
    """1.0 where `flag` is set, 0.0 elsewhere (a scalar 0 when None)."""
    if flag is None:
        return tf.zeros([], like.dtype)
    return tf.cast(flag, like.dtype)


def episode_ends(steps: Steps, like: tf.Tensor) -> tf.Tensor:
    """1.0 where the trace is cut: terminated or truncated."""
    return tf.maximum(
        float_flag(steps.terminated, like), float_flag(steps.truncated, like)
    )


def reverse_linear_recurrence(
    inputs: tf.Tensor, decays: tf.Tensor, final: tf.Tensor
) -> tf.Tensor:
    """y_t = inputs_t + decays_t * y_{t+1} with y_T = final, by reverse scan.

    Args:
      inputs: `[T, B]`.
      decays: `[T, B]`.
      final: `[B]`, the value after the last step.

    Returns:
      `[T, B]` tensor y.
    """

    def step(following, elements):
        current_input, decay = elements
        result = current_input + decay * following
        # Keeps the loop-carried shape static when T or B are dynamic.
        result.set_shape(following.shape.merge_with(result.shape))
        return result

    return tf.scan(
        step, (inputs, decays), initializer=final, reverse=True, name="scan"
    )


def _gae_time_major(
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
    """The GAE math on checked time-major tensors; see the public function."""
    next_values = next_state_values(
        values, bootstrap_value, truncated, truncation_values
    )
    not_terminated = 1.0 - float_flag(terminated, rewards)
    ends = tf.maximum(
        float_flag(terminated, rewards), float_flag(truncated, rewards)
    )
    deltas = rewards + gamma * not_terminated * next_values - values
    decays = gamma * lambda_ * (1.0 - ends) + tf.zeros_like(deltas)
    if mask is not None:
        zeros = tf.zeros_like(deltas)
        deltas = tf.where(mask, deltas, zeros)
        decays = tf.where(mask, decays, zeros)
    advantages = reverse_linear_recurrence(
        deltas, decays, tf.zeros_like(bootstrap_value)
    )
    return advantages, advantages + values


# The compiled path: the same function, fused and run by XLA. Measured in
# benchmarks/gae_benchmark.py; see `_resolve` for what "auto" selects.
_gae_time_major_xla = tf.function(
    _gae_time_major, jit_compile=True, reduce_retracing=True, autograph=False
)


def _resolve(implementation: str) -> str:
    """The implementation to run here, from the user's choice.

    "auto" picks by measurement (README, "Speed"): the native CPU op where it
    can run (it built, no GPU is visible, and the caller is not being
    compiled by XLA, which cannot run a custom op), else the XLA-compiled
    scan, which wins over the interpreted tf.scan at every measured shape.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {IMPLEMENTATIONS}. "
            f"Received: implementation={implementation!r}"
        )
    if implementation == "native":
        if native.in_xla_context():
            raise ValueError(
                "`implementation='native'` cannot run inside an XLA-compiled "
                "function (jit_compile=True); use 'xla' or 'auto' there. "
                f"Received: implementation={implementation!r}"
            )
        if not native.available():
            raise ValueError(
                "`implementation='native'` needs the native GAE op, which "
                "could not be built here (see the logged warning); use "
                f"'auto'. Received: implementation={implementation!r}"
            )
    if implementation == "auto":
        if (
            not native.in_xla_context()
            and not tf.config.list_logical_devices("GPU")
            and native.available()
        ):
            return "native"
        return "xla"
    return implementation


_COMPUTE = {
    "scan": _gae_time_major,
    "xla": _gae_time_major_xla,
    "native": native.gae_time_major,
}


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
        its return is `values[t]`, and the trace stops there. The row before
        it still bootstraps from `values[t + 1]` unless it is terminated.

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
      implementation: "scan" (the reference: `tf.scan` run by the TensorFlow
        executor), "xla" (the same scan compiled with XLA), "native" (a
        one-pass C++ CPU op built on first use, `keras_gae.ops.native`) or
        "auto" (the fastest that can run here, by measurement: "native" on
        CPU outside XLA-compiled functions, else "xla"). All give the same
        result to float rounding.
      check_numerics: if True, NaN or Inf in any float input raises an
        InvalidArgumentError that names the input.
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
    implementation = _resolve(implementation)
    with tf.name_scope(name or "generalized_advantage_estimation"):
        if values is None:
            raise TypeError(
                "`values` is required: GAE needs the critic's V(s_t). "
                "Received: values=None"
            )
        if bootstrap_value is None:
            raise TypeError(
                "`bootstrap_value` is required: pass V(s_T) for the state "
                "after the last step (zeros if every row ends terminated). "
                "Received: bootstrap_value=None"
            )
        steps = prepare_steps(
            rewards,
            values,
            bootstrap_value,
            gamma=gamma,
            lambda_=lambda_,
            terminated=terminated,
            truncated=truncated,
            truncation_values=truncation_values,
            mask=mask,
            time_major=time_major,
            check_numerics=check_numerics,
        )
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
        advantages, returns = _COMPUTE[implementation](
            steps.rewards,
            steps.values,
            steps.bootstrap_value,
            steps.terminated,
            steps.truncated,
            steps.truncation_values,
            steps.mask,
            steps.gamma,
            steps.lambda_,
        )
        if not time_major:
            with tf.name_scope("to_batch_major"):
                advantages = tf.transpose(advantages)
                returns = tf.transpose(returns)
        return GAEOutputs(advantages=advantages, returns=returns)

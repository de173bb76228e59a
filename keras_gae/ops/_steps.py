"""Checked, time-major inputs and the reverse recurrence the estimators share.

`prepare_steps` is the one entry check of GAE and of the return estimators
in `returns.py`: ranks, shapes, dtypes, ranges, then the `[T, B]` layout.
Letters: `T` steps, `B` batch. The boundary semantics are in
docs/design.md, "Episode boundaries".
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_gae.ops import _checks


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
    function: str,
) -> Steps:
    """Checks the arguments of every estimator and makes them time-major.

    Raises ValueError/TypeError naming the argument for wrong ranks, shapes,
    dtypes and ranges. `values`, `bootstrap_value` and `lambda_` may be None
    for estimators that do not use them. `function` is the estimator's
    name, for the warning `check_numerics` gives inside XLA.
    """
    _checks.check_bool(time_major, "time_major")
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
    if _checks.numerics_checked(check_numerics, function):
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


def episode_ends(
    terminated: Optional[tf.Tensor],
    truncated: Optional[tf.Tensor],
    like: tf.Tensor,
) -> tf.Tensor:
    """1.0 where the trace is cut: terminated or truncated."""
    return tf.maximum(float_flag(terminated, like), float_flag(truncated, like))


def without_terminal_values(
    next_values: tf.Tensor, terminated: Optional[tf.Tensor]
) -> tf.Tensor:
    """`next_values` with 0 where `terminated`: a terminal state's value.

    A select, not a product: the next row may hold anything (padding, or a
    new episode's NaN), and 0 * NaN would leak it into the terminal step.
    """
    if terminated is None:
        return next_values
    return tf.where(terminated, tf.zeros_like(next_values), next_values)


def reverse_linear_recurrence(
    inputs: tf.Tensor, decays: tf.Tensor, final: tf.Tensor
) -> tf.Tensor:
    """y_t = inputs_t + decays_t * y_{t+1} with y_T = final, by reverse scan.

    Where `decays_t` is 0 (an episode end, a masked step), y_t = inputs_t:
    nothing is carried over from the steps after, not even a NaN or Inf
    there (`multiply_no_nan`; a plain product would give 0 * NaN = NaN).

    Args:
      inputs: `[T, B]`.
      decays: `[T, B]`.
      final: `[B]`, the value after the last step.

    Returns:
      `[T, B]` tensor y.
    """

    def step(following, elements):
        current_input, decay = elements
        result = current_input + tf.math.multiply_no_nan(following, decay)
        # Keeps the loop-carried shape static when T or B are dynamic.
        result.set_shape(following.shape.merge_with(result.shape))
        return result

    return tf.scan(
        step, (inputs, decays), initializer=final, reverse=True, name="scan"
    )

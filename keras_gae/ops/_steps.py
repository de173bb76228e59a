"""The one preparation that GAE and every return estimator share.

`prepared` opens an estimator's name scope and checks its arguments once
(`prepare_steps`: ranks, shapes, dtypes, ranges), leaving time-major
`Steps`. The `Steps` methods are the episode-boundary rules the formulas
read (V(s_{t+1}) across ends and truncations, the trace cut, masked rows);
`reverse_linear_recurrence` is their reverse scan and `to_layout` hands a
result back in the caller's layout. Letters: `T` steps, `B` batch. The
boundary semantics are in docs/design.md, "Episode boundaries".
"""

from __future__ import annotations

import contextlib
from typing import Any
from typing import Iterator
from typing import Mapping
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_gae.ops import _checks


class Steps(NamedTuple):
    """Checked, time-major inputs in the computation dtype (internal).

    The fields are in the order of the GAE kernels' arguments, so a kernel
    runs as `kernel(*steps)`.
    """

    rewards: tf.Tensor
    values: Optional[tf.Tensor]
    bootstrap_value: Optional[tf.Tensor]
    terminated: Optional[tf.Tensor]
    truncated: Optional[tf.Tensor]
    truncation_values: Optional[tf.Tensor]
    mask: Optional[tf.Tensor]
    gamma: tf.Tensor
    lambda_: Optional[tf.Tensor]

    def following(
        self, x: tf.Tensor, at_truncation: Optional[tf.Tensor]
    ) -> tf.Tensor:
        """`x` one step later across episode boundaries (`next_values`)."""
        return next_values(
            x,
            self.bootstrap_value,
            self.terminated,
            self.truncated,
            at_truncation,
        )

    def next_state_values(self) -> tf.Tensor:
        """V(s_{t+1}) of every step, `[T, B]`; 0 where terminated.

        Without `values` (Monte Carlo returns) only the truncated steps'
        are known, from `truncation_values`.
        """
        if self.values is None:
            return without_terminal_values(
                self.truncation_values, self.terminated
            )
        return self.following(self.values, self.truncation_values)

    def continues(self) -> tf.Tensor:
        """1.0 where the trace goes on to the next step, 0.0 at an end."""
        return continuing(self.terminated, self.truncated, self.rewards)

    def reverse_sum(self, inputs: tf.Tensor, decays: tf.Tensor) -> tf.Tensor:
        """y_t = inputs_t + decays_t * y_{t+1}, y_T = `bootstrap_value`.

        `decays` broadcasts to `[T, B]`. A masked row is y_t = V(s_t) (0
        without `values`) and cuts the sum: nothing crosses it.
        """
        decays = decays + tf.zeros_like(inputs)
        return reverse_linear_recurrence(
            self.where_valid(inputs, self.values),
            self.where_valid(decays),
            self.bootstrap_value,
        )

    def where_valid(
        self, x: tf.Tensor, fill: Optional[tf.Tensor] = None
    ) -> tf.Tensor:
        """`x` on valid rows, `fill` (zeros when None) on masked ones."""
        if self.mask is None:
            return x
        return tf.where(
            self.mask, x, tf.zeros_like(x) if fill is None else fill
        )


@contextlib.contextmanager
def prepared(arguments: Mapping[str, Any], function: str) -> Iterator[Steps]:
    """The estimator's name scope, with its arguments checked as `Steps`.

    `arguments` are the estimator's own, by name: its `dict(locals())` on
    entry (tensorflow-probability's idiom for a distribution's
    `parameters`), so that each estimator hands this one preparation all it
    was given without restating its signature. `function` is its name.
    """
    with tf.name_scope(arguments.get("name") or function):
        yield prepare_steps(arguments, function)


def to_layout(tensor: tf.Tensor, time_major: bool) -> tf.Tensor:
    """A `[T, B]` result in the caller's layout."""
    if time_major:
        return tensor
    with tf.name_scope("to_batch_major"):
        return tf.transpose(tensor)


def prepare_steps(arguments: Mapping[str, Any], function: str) -> Steps:
    """Checks an estimator's arguments and makes them time-major.

    `arguments` maps argument names to what the estimator was given:
    "rewards", "bootstrap_value", "gamma", "terminated", "truncated",
    "truncation_values", "mask", "time_major", "check_numerics", and
    "values" and "lambda_" where the estimator takes them (None or absent
    otherwise). Raises ValueError/TypeError naming the argument for wrong
    ranks, shapes, dtypes and ranges. `function` is the estimator's name,
    for the warning `check_numerics` gives inside XLA.
    """
    time_major = _checks.check_bool(arguments["time_major"], "time_major")
    layout = "[T, B]" if time_major else "[B, T]"
    rewards = _checks.convert_float(arguments["rewards"], "rewards")
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

    def per_step(name, convert):
        value = arguments.get(name)
        if value is None:
            return None
        tensor = convert(value, name)
        _checks.check_rank(tensor, 2, name, layout)
        assertions.extend(
            _checks.check_same_shape(tensor, rewards, name, "rewards")
        )
        return tensor

    values, truncation_values = (
        per_step(name, _checks.convert_float)
        for name in ("values", "truncation_values")
    )
    terminated, truncated, mask = (
        per_step(name, _checks.convert_flag)
        for name in ("terminated", "truncated", "mask")
    )
    bootstrap_value = arguments["bootstrap_value"]
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

    def coefficient(name):
        value = arguments.get(name)
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

    gamma = coefficient("gamma")
    lambda_ = coefficient("lambda_")

    floats = ("rewards", "values", "bootstrap_value", "truncation_values")
    check_numerics = _checks.numerics_checked(
        arguments["check_numerics"], function
    )

    def cast(tensor, name):
        if tensor is None:
            return None
        tensor = tf.cast(tensor, dtype)
        return (
            _checks.check_numerics(tensor, name) if check_numerics else tensor
        )

    rewards, values, bootstrap_value, truncation_values = map(
        cast, (rewards, values, bootstrap_value, truncation_values), floats
    )
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


def next_values(
    x: tf.Tensor,
    final: tf.Tensor,
    terminated: Optional[tf.Tensor],
    truncated: Optional[tf.Tensor],
    at_truncation: Optional[tf.Tensor],
) -> tf.Tensor:
    """x_{t+1} for every step, `[T, B]`, across episode boundaries.

    The next row of `x` inside an episode; `final` after the last step;
    `at_truncation` where truncated (when given), because the next row then
    belongs to a new episode; 0 where terminated (a terminal state's value).
    """
    following = tf.concat([x[1:], final[tf.newaxis]], axis=0)
    if at_truncation is not None and truncated is not None:
        following = tf.where(truncated, at_truncation, following)
    return without_terminal_values(following, terminated)


def without_terminal_values(
    following: tf.Tensor, terminated: Optional[tf.Tensor]
) -> tf.Tensor:
    """`following` with 0 where `terminated`.

    A select, not a product: the next row may hold anything (padding, or a
    new episode's NaN), and 0 * NaN would leak it into the terminal step.
    """
    if terminated is None:
        return following
    return tf.where(terminated, tf.zeros_like(following), following)


def continuing(
    terminated: Optional[tf.Tensor],
    truncated: Optional[tf.Tensor],
    like: tf.Tensor,
) -> tf.Tensor:
    """1.0 where the trace goes on, 0.0 where either flag cuts it."""

    def as_float(flag):
        if flag is None:
            return tf.zeros([], like.dtype)
        return tf.cast(flag, like.dtype)

    return 1.0 - tf.maximum(as_float(terminated), as_float(truncated))


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

"""Return estimators that go with GAE, with the same boundary semantics.

All functions take time-major `[T, B]` tensors (`time_major=False` for
`[B, T]`), where `T` is the number of steps and `B` the batch size, and follow
the episode-boundary rules of `generalized_advantage_estimation`:
`terminated[t]` means V(s_{t+1}) = 0, `truncated[t]` means bootstrap from
V(s_{t+1}) (`truncation_values[t]` where given), either cuts the sum, and a
masked row returns `values[t]` (0 where the estimator has no values) and stops
the sum. The row before a masked row reads that row's `values[t]` as its
V(s_{t+1}) unless it is terminated or takes `truncation_values`, so a NaN or
Inf value there reaches it, as it does in GAE (see
`generalized_advantage_estimation`, `check_numerics`); nothing else crosses a
masked row or an episode end. Results are float32 (float64 if any float input
is float64) with gradients stopped.

References: Sutton and Barto (2018), "Reinforcement Learning: An
Introduction", 2nd ed., chapters 7 (n-step returns) and 12 (lambda-returns).
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import _steps


def _to_layout(tensor: tf.Tensor, time_major: bool) -> tf.Tensor:
    return tensor if time_major else tf.transpose(tensor)


def _masked(steps: _steps.Steps, result: tf.Tensor, fill: tf.Tensor):
    if steps.mask is None:
        return result
    return tf.where(steps.mask, result, fill)


def temporal_difference_errors(
    rewards: Any,
    values: Any,
    bootstrap_value: Any,
    *,
    gamma: Any = 0.99,
    terminated: Any = None,
    truncated: Any = None,
    truncation_values: Any = None,
    mask: Any = None,
    time_major: bool = True,
    check_numerics: bool = False,
    name: Optional[str] = None,
) -> tf.Tensor:
    """One-step TD errors, GAE with lambda_ = 0.

        delta_t = r_t + gamma_t * (1 - terminated_t) * V(s_{t+1}) - V(s_t)

    Args:
      rewards: `[T, B]` float rewards.
      values: `[T, B]` float V(s_t).
      bootstrap_value: `[B]` float V(s_T).
      gamma: discount in [0, 1], float or rank-2 tensor broadcastable to
        `[T, B]`.
      terminated, truncated, mask: optional `[T, B]` bool-like flags.
      truncation_values: optional `[T, B]` V(s_{t+1}) for truncated steps.
      time_major: `[T, B]` (True) or `[B, T]` (False) layout.
      check_numerics: raise on NaN/Inf float inputs, naming them (a
        warning inside XLA, which drops the check).
      name: optional name scope.

    Returns:
      `[T, B]` TD errors, 0 on masked rows.
    """
    _checks.check_required(values, "values", "TD errors need V(s_t)")
    _checks.check_required(bootstrap_value, "bootstrap_value", "pass V(s_T)")
    with tf.name_scope(name or "temporal_difference_errors"):
        steps = _steps.prepare_steps(
            rewards,
            values,
            bootstrap_value,
            gamma=gamma,
            lambda_=None,
            terminated=terminated,
            truncated=truncated,
            truncation_values=truncation_values,
            mask=mask,
            time_major=time_major,
            check_numerics=check_numerics,
            function="temporal_difference_errors",
        )
        next_values = _steps.next_state_values(
            steps.values,
            steps.bootstrap_value,
            steps.truncated,
            steps.truncation_values,
        )
        next_values = _steps.without_terminal_values(
            next_values, steps.terminated
        )
        deltas = (steps.rewards + steps.gamma * next_values) - steps.values
        deltas = _masked(steps, deltas, tf.zeros_like(deltas))
        return tf.stop_gradient(_to_layout(deltas, time_major))


def td_lambda_returns(
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
    check_numerics: bool = False,
    name: Optional[str] = None,
) -> tf.Tensor:
    """TD(lambda) returns by their own recursion (Sutton and Barto, eq. 12.18).

        G_t = r_t + gamma_t * (1 - terminated_t) * ((1 - lambda_t) V(s_{t+1})
              + lambda_t * (V(s_{t+1}) if end_t else G_{t+1})),  G_T = V(s_T)

    They equal `generalized_advantage_estimation(...).returns`; this separate
    recursion is kept as an independent estimator and cross-check.

    Args:
      rewards: `[T, B]` float rewards.
      values: `[T, B]` float V(s_t).
      bootstrap_value: `[B]` float V(s_T).
      gamma: discount in [0, 1], float or rank-2 tensor.
      lambda_: lambda in [0, 1], float or rank-2 tensor.
      terminated, truncated, mask: optional `[T, B]` bool-like flags.
      truncation_values: optional `[T, B]` V(s_{t+1}) for truncated steps.
      time_major: `[T, B]` (True) or `[B, T]` (False) layout.
      check_numerics: raise on NaN/Inf float inputs, naming them (a
        warning inside XLA, which drops the check).
      name: optional name scope.

    Returns:
      `[T, B]` lambda-returns, `values` on masked rows.
    """
    _checks.check_required(values, "values", "lambda-returns need V(s_t)")
    _checks.check_required(bootstrap_value, "bootstrap_value", "pass V(s_T)")
    with tf.name_scope(name or "td_lambda_returns"):
        steps = _steps.prepare_steps(
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
            function="td_lambda_returns",
        )
        next_values = _steps.next_state_values(
            steps.values,
            steps.bootstrap_value,
            steps.truncated,
            steps.truncation_values,
        )
        next_values = _steps.without_terminal_values(
            next_values, steps.terminated
        )
        continues = 1.0 - _steps.episode_ends(
            steps.terminated, steps.truncated, steps.rewards
        )
        trace = steps.lambda_ * continues
        inputs = steps.rewards + steps.gamma * (next_values * (1.0 - trace))
        decays = steps.gamma * trace + tf.zeros_like(inputs)
        inputs = _masked(steps, inputs, steps.values)
        decays = _masked(steps, decays, tf.zeros_like(decays))
        returns = _steps.reverse_linear_recurrence(
            inputs, decays, steps.bootstrap_value
        )
        return tf.stop_gradient(_to_layout(returns, time_major))


def discounted_returns(
    rewards: Any,
    bootstrap_value: Any,
    *,
    gamma: Any = 0.99,
    terminated: Any = None,
    truncated: Any = None,
    truncation_values: Any = None,
    values: Any = None,
    mask: Any = None,
    time_major: bool = True,
    check_numerics: bool = False,
    name: Optional[str] = None,
) -> tf.Tensor:
    """Monte Carlo discounted returns, bootstrapped only where cut short.

        G_t = r_t + gamma_t * (1 - terminated_t) *
              (V(s_{t+1}) if truncated_t else G_{t+1}),  G_T = bootstrap_value

    Pass zeros as `bootstrap_value` for pure Monte Carlo returns of episodes
    that all end inside the rollout. With `values` given, these equal
    `generalized_advantage_estimation(..., lambda_=1.0).returns`.

    Args:
      rewards: `[T, B]` float rewards.
      bootstrap_value: `[B]` float V(s_T).
      gamma: discount in [0, 1], float or rank-2 tensor.
      terminated, truncated, mask: optional `[T, B]` bool-like flags.
      truncation_values: optional `[T, B]` V(s_{t+1}) for truncated steps.
      values: optional `[T, B]` V(s_t); a truncation before the last step
        bootstraps from the next row of `values` unless `truncation_values`
        is given, so one of the two is needed with `truncated`.
      time_major: `[T, B]` (True) or `[B, T]` (False) layout.
      check_numerics: raise on NaN/Inf float inputs, naming them (a
        warning inside XLA, which drops the check).
      name: optional name scope.

    Returns:
      `[T, B]` returns; on masked rows `values` (0 without `values`).
    """
    _checks.check_required(
        bootstrap_value, "bootstrap_value", "pass V(s_T) (or zeros)"
    )
    if truncated is not None and values is None and truncation_values is None:
        raise ValueError(
            "`truncated` needs `values` or `truncation_values`: a truncated "
            "episode bootstraps from V(s_{t+1}). Received: values=None, "
            "truncation_values=None"
        )
    with tf.name_scope(name or "discounted_returns"):
        steps = _steps.prepare_steps(
            rewards,
            values,
            bootstrap_value,
            gamma=gamma,
            lambda_=None,
            terminated=terminated,
            truncated=truncated,
            truncation_values=truncation_values,
            mask=mask,
            time_major=time_major,
            check_numerics=check_numerics,
            function="discounted_returns",
        )
        inputs = steps.rewards
        if steps.truncated is not None:
            if steps.values is not None:
                bootstraps = _steps.next_state_values(
                    steps.values,
                    steps.bootstrap_value,
                    steps.truncated,
                    steps.truncation_values,
                )
            else:
                bootstraps = steps.truncation_values
            bootstrapped = steps.truncated
            if steps.terminated is not None:
                bootstrapped = tf.logical_and(
                    bootstrapped, tf.logical_not(steps.terminated)
                )
            # Selects: values behind other steps never reach them (0 * NaN
            # would).
            inputs = inputs + tf.where(
                bootstrapped,
                steps.gamma * bootstraps,
                tf.zeros_like(inputs),
            )
        continues = 1.0 - _steps.episode_ends(
            steps.terminated, steps.truncated, steps.rewards
        )
        decays = steps.gamma * continues + tf.zeros_like(inputs)
        fill = tf.zeros_like(inputs) if steps.values is None else steps.values
        inputs = _masked(steps, inputs, fill)
        decays = _masked(steps, decays, tf.zeros_like(decays))
        returns = _steps.reverse_linear_recurrence(
            inputs, decays, steps.bootstrap_value
        )
        return tf.stop_gradient(_to_layout(returns, time_major))


def n_step_returns(
    rewards: Any,
    values: Any,
    bootstrap_value: Any,
    *,
    n: int,
    gamma: Any = 0.99,
    terminated: Any = None,
    truncated: Any = None,
    truncation_values: Any = None,
    mask: Any = None,
    time_major: bool = True,
    check_numerics: bool = False,
    name: Optional[str] = None,
) -> tf.Tensor:
    """n-step bootstrapped returns (Sutton and Barto, eq. 7.1).

        G_t^(n) = r_t + gamma_t * (1 - terminated_t) *
                  (V(s_{t+1}) if truncated_t else G_{t+1}^(n-1)),
        G_t^(0) = V(s_t),  G_T^(k) = V(s_T) = bootstrap_value

    so each return sums at most n rewards, stops at episode ends and at the
    rollout end, and bootstraps from the value reached. n = 1 gives the TD(0)
    target; n >= T gives `discounted_returns`.

    Args:
      rewards: `[T, B]` float rewards.
      values: `[T, B]` float V(s_t).
      bootstrap_value: `[B]` float V(s_T).
      n: number of steps, a Python int >= 1.
      gamma: discount in [0, 1], float or rank-2 tensor.
      terminated, truncated, mask: optional `[T, B]` bool-like flags.
      truncation_values: optional `[T, B]` V(s_{t+1}) for truncated steps.
      time_major: `[T, B]` (True) or `[B, T]` (False) layout.
      check_numerics: raise on NaN/Inf float inputs, naming them (a
        warning inside XLA, which drops the check).
      name: optional name scope.

    Returns:
      `[T, B]` n-step returns, `values` on masked rows.
    """
    n = _checks.check_int(n, "n", minimum=1)
    _checks.check_required(
        values, "values", "n-step returns bootstrap from V(s_{t+n})"
    )
    _checks.check_required(bootstrap_value, "bootstrap_value", "pass V(s_T)")
    with tf.name_scope(name or "n_step_returns"):
        steps = _steps.prepare_steps(
            rewards,
            values,
            bootstrap_value,
            gamma=gamma,
            lambda_=None,
            terminated=terminated,
            truncated=truncated,
            truncation_values=truncation_values,
            mask=mask,
            time_major=time_major,
            check_numerics=check_numerics,
            function="n_step_returns",
        )
        next_values = _steps.next_state_values(
            steps.values,
            steps.bootstrap_value,
            steps.truncated,
            steps.truncation_values,
        )
        discounts = steps.gamma * (
            1.0 - _steps.float_flag(steps.terminated, steps.rewards)
        )
        truncated = (
            None
            if steps.truncated is None
            else tf.broadcast_to(steps.truncated, tf.shape(steps.rewards))
        )
        returns = steps.values
        for _ in range(n):
            following = tf.concat(
                [returns[1:], steps.bootstrap_value[tf.newaxis]], axis=0
            )
            if truncated is not None:
                following = tf.where(truncated, next_values, following)
            following = _steps.without_terminal_values(
                following, steps.terminated
            )
            returns = steps.rewards + discounts * following
            returns = _masked(steps, returns, steps.values)
        return tf.stop_gradient(_to_layout(returns, time_major))

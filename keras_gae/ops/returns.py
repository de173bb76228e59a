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
    with _steps.prepared(dict(locals()), "temporal_difference_errors") as steps:
        next_values = steps.next_state_values()
        deltas = (steps.rewards + steps.gamma * next_values) - steps.values
        return tf.stop_gradient(
            _steps.to_layout(steps.where_valid(deltas), time_major)
        )


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
    with _steps.prepared(dict(locals()), "td_lambda_returns") as steps:
        trace = steps.lambda_ * steps.continues()
        next_values = steps.next_state_values()
        inputs = steps.rewards + steps.gamma * (next_values * (1.0 - trace))
        returns = steps.reverse_sum(inputs, decays=steps.gamma * trace)
        return tf.stop_gradient(_steps.to_layout(returns, time_major))


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
    with _steps.prepared(dict(locals()), "discounted_returns") as steps:
        inputs = steps.rewards
        if steps.truncated is not None:
            # A select: values behind other steps never reach them (0 * NaN
            # would).
            inputs = inputs + tf.where(
                steps.truncated,
                steps.gamma * steps.next_state_values(),
                tf.zeros_like(inputs),
            )
        decays = steps.gamma * steps.continues()
        returns = steps.reverse_sum(inputs, decays)
        return tf.stop_gradient(_steps.to_layout(returns, time_major))


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
    with _steps.prepared(dict(locals()), "n_step_returns") as steps:
        next_values = steps.next_state_values()
        returns = steps.values
        for _ in range(n):
            following = steps.following(returns, at_truncation=next_values)
            returns = steps.rewards + steps.gamma * following
            returns = steps.where_valid(returns, steps.values)
        return tf.stop_gradient(_steps.to_layout(returns, time_major))

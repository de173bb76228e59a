"""Slow float64 NumPy references for the estimators, written step by step.

Each loops over time backwards for every batch column with explicit episode
logic (no vectorised tricks), so that it reads like the definitions in
docs/design.md rather than like the implementation under test. Inputs are
time-major [T, B].
"""

import numpy as np


def _defaults(rewards, terminated, truncated, mask, gamma, lambda_=0.0):
    shape = np.shape(rewards)
    terminated = (
        np.zeros(shape, bool) if terminated is None else terminated != 0
    )
    truncated = np.zeros(shape, bool) if truncated is None else truncated != 0
    mask = np.ones(shape, bool) if mask is None else mask != 0
    gamma = np.broadcast_to(np.asarray(gamma, np.float64), shape)
    lambda_ = np.broadcast_to(np.asarray(lambda_, np.float64), shape)
    return terminated, truncated, mask, gamma, lambda_


def _next_value(t, b, values, bootstrap_value, truncated, truncation_values):
    """V(s_{t+1}) as docs/design.md defines it."""
    if truncated[t, b] and truncation_values is not None:
        return float(truncation_values[t, b])
    if t + 1 < values.shape[0]:
        return float(values[t + 1, b])
    return float(bootstrap_value[b])


def gae(
    rewards,
    values,
    bootstrap_value,
    *,
    gamma=0.99,
    lambda_=0.95,
    terminated=None,
    truncated=None,
    truncation_values=None,
    mask=None,
):
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    bootstrap_value = np.asarray(bootstrap_value, np.float64)
    terminated, truncated, mask, gamma, lambda_ = _defaults(
        rewards, terminated, truncated, mask, gamma, lambda_
    )
    num_steps, batch = rewards.shape
    advantages = np.zeros_like(rewards)
    for b in range(batch):
        following = 0.0
        for t in reversed(range(num_steps)):
            if not mask[t, b]:
                advantages[t, b] = 0.0
                following = 0.0
                continue
            next_value = _next_value(
                t, b, values, bootstrap_value, truncated, truncation_values
            )
            if terminated[t, b]:
                next_value = 0.0
            delta = rewards[t, b] + gamma[t, b] * next_value - values[t, b]
            if terminated[t, b] or truncated[t, b]:
                following = 0.0
            advantages[t, b] = delta + gamma[t, b] * lambda_[t, b] * following
            following = advantages[t, b]
    return advantages, advantages + values


def monte_carlo(
    rewards,
    bootstrap_value,
    *,
    gamma=0.99,
    terminated=None,
    truncated=None,
    truncation_values=None,
    values=None,
    mask=None,
):
    rewards = np.asarray(rewards, np.float64)
    bootstrap_value = np.asarray(bootstrap_value, np.float64)
    terminated, truncated, mask, gamma, _ = _defaults(
        rewards, terminated, truncated, mask, gamma
    )
    num_steps, batch = rewards.shape
    returns = np.zeros_like(rewards)
    for b in range(batch):
        following = float(bootstrap_value[b])
        for t in reversed(range(num_steps)):
            if not mask[t, b]:
                returns[t, b] = 0.0 if values is None else values[t, b]
                following = returns[t, b]
                continue
            if terminated[t, b]:
                future = 0.0
            elif truncated[t, b]:
                if truncation_values is not None:
                    future = float(truncation_values[t, b])
                elif t + 1 < num_steps:
                    future = float(values[t + 1, b])
                else:
                    future = float(bootstrap_value[b])
            else:
                future = following
            returns[t, b] = rewards[t, b] + gamma[t, b] * future
            following = returns[t, b]
    return returns


def n_step(
    rewards,
    values,
    bootstrap_value,
    *,
    n,
    gamma=0.99,
    terminated=None,
    truncated=None,
    truncation_values=None,
    mask=None,
):
    """Forward-looking sums: at most n rewards, then bootstrap."""
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    bootstrap_value = np.asarray(bootstrap_value, np.float64)
    terminated, truncated, mask, gamma, _ = _defaults(
        rewards, terminated, truncated, mask, gamma
    )
    num_steps, batch = rewards.shape
    returns = np.zeros_like(rewards)
    for b in range(batch):
        for t in range(num_steps):
            if not mask[t, b]:
                returns[t, b] = values[t, b]
                continue
            total, discount, k = 0.0, 1.0, t
            while True:
                total += discount * rewards[k, b]
                if terminated[k, b]:
                    break
                discount *= gamma[k, b]
                if truncated[k, b]:
                    total += discount * _next_value(
                        k,
                        b,
                        values,
                        bootstrap_value,
                        truncated,
                        truncation_values,
                    )
                    break
                if k + 1 == num_steps:
                    total += discount * bootstrap_value[b]
                    break
                if k + 1 - t == n or not mask[k + 1, b]:
                    total += discount * values[k + 1, b]
                    break
                k += 1
            returns[t, b] = total
    return returns


def lambda_returns_forward(
    rewards, values, bootstrap_value, *, gamma, lambda_, terminated=None
):
    """TD(lambda) return as the lambda-weighted mix of n-step returns.

    G^lambda_t = (1 - lambda) sum_{n>=1} lambda^{n-1} G^(n)_t, with all
    weight beyond the episode or rollout end on the full return. Scalar
    gamma and lambda_, no truncation, no mask: the textbook definition.
    """
    rewards = np.asarray(rewards, np.float64)
    num_steps = rewards.shape[0]
    n_step_returns = [
        n_step(
            rewards,
            values,
            bootstrap_value,
            n=n,
            gamma=gamma,
            terminated=terminated,
        )
        for n in range(1, num_steps + 1)
    ]
    result = np.zeros_like(rewards)
    for n, returns in enumerate(n_step_returns, start=1):
        weight = (1 - lambda_) * lambda_ ** (n - 1)
        result += weight * returns
    # Weight lambda^{T-1}... beyond the longest n goes to the longest return.
    result += lambda_**num_steps * n_step_returns[-1]
    return result

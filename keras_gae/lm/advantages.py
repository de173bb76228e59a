"""Critic-free advantage estimators for sequences, next to token-level GAE.

One signature: per-token rewards `[B, L]` and a validity mask `[B, L]`
(e.g. the "reward" and "mask" of `keras_gae.lm.sequence_rollout_batch`:
the score on each row's last valid token plus any per-token KL penalty),
or grouped `[G, n, L]` tensors. Grouped estimators read rows b * n ... b *
n + n - 1 as the n samples of prompt b (the layout of
`keras_gae.lm.generate(..., num_samples=n)`). Each returns advantages of
the input's shape, the same value on every valid token of a row for the
outcome estimators, 0 on invalid tokens. Token-level GAE with a critic is
`keras_gae.lm.sequence_advantages`.

Letters: `B = G * n` rows, `G` prompts, `n` samples per prompt, `L` token
positions, R_i = sum_t mask_it * r_it the return of row i.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.ops import _checks
from keras_gae.ops import masked

ESTIMATORS = ("gae", "grpo", "dr_grpo", "rloo", "reinforce_pp")
CRITIC_FREE = ESTIMATORS[1:]
# What GRPO divides the centred returns by (TRL's `scale_rewards`).
REWARD_SCALES = ("group", "batch", "none")


def _prepare(rewards: Any, mask: Any, group_size: Any) -> tuple:
    """`(rewards [B, L], mask [B, L] bool, n, shape)` checked and flattened."""
    rewards = _checks.convert_float(rewards, "rewards")
    mask = _checks.convert_flag(mask, "mask")
    assertions = _checks.check_same_shape(mask, rewards, "mask", "rewards")
    shape = tf.shape(rewards)
    if rewards.shape.rank == 3:
        if group_size is not None and group_size != rewards.shape[1]:
            raise ValueError(
                "`group_size` must match axis 1 of grouped [G, n, L] "
                f"rewards {tuple(rewards.shape)}. "
                f"Received: group_size={group_size!r}"
            )
        group_size = rewards.shape[1]
        rewards = tf.reshape(rewards, [-1, shape[-1]])
        mask = tf.reshape(mask, [-1, shape[-1]])
    else:
        _checks.check_rank(rewards, 2, "rewards", "[B, L] or [G, n, L]")
    if group_size is not None:
        group_size = _checks.check_positive_int(group_size, "group_size")
        rows = rewards.shape[0]
        if rows is not None and rows % group_size:
            raise ValueError(
                f"The number of rows {rows} must be a multiple of "
                f"`group_size`. Received: group_size={group_size!r}"
            )
    with tf.control_dependencies(assertions):
        rewards = tf.where(mask, rewards, tf.zeros_like(rewards))
    rewards = _input_checks.check_finite(rewards, "rewards", "at valid tokens")
    return rewards, mask, group_size, shape


def _group_returns(rewards: tf.Tensor, mask: tf.Tensor, n: int) -> tf.Tensor:
    """`[G, n]` returns R of each group's rows."""
    del mask  # rewards are already 0 on invalid tokens.
    return tf.reshape(tf.reduce_sum(rewards, axis=1), [-1, n])


def _broadcast(row_advantages: tf.Tensor, mask: tf.Tensor, shape) -> tf.Tensor:
    """`[G, n]` per-row advantages on each row's valid tokens."""
    per_row = tf.reshape(row_advantages, [-1, 1])
    out = tf.where(mask, per_row + tf.zeros_like(mask, per_row.dtype), 0.0)
    return tf.reshape(out, shape)


def grpo_advantages(
    rewards: Any,
    mask: Any,
    *,
    group_size: Any = None,
    scale_rewards: str = "group",
    epsilon: float = 1e-6,
) -> tf.Tensor:
    r"""GRPO's group-centred outcome advantages, scaled three ways.

        A_i = (R_i - mean_g(R)) / (std_g(R) + epsilon)    "group" (GRPO)
        A_i = (R_i - mean_g(R)) / (std(R) + epsilon)      "batch"
        A_i = R_i - mean_g(R)                             "none" (Dr. GRPO)

    over the n rows of row i's group g; std_g is the sample standard
    deviation (ddof 1, as torch.std in TRL and verl) of the group's
    returns, std that of all B returns of the batch (TRL's
    `scale_rewards="batch"`, after Liu et al. 2025, "Part I: Tricks or
    Traps? A Deep Dive into RL for LLM Reasoning"); on
    every valid token of row i (Shao et al. 2024, "DeepSeekMath",
    arXiv:2402.03300, Sec. 4.1.2; Liu et al. 2025, "Understanding
    R1-Zero-Like Training: A Critical Perspective", arXiv:2503.20783,
    which drops the std division and the per-response length
    normalization: pair "none" with `loss_aggregation="dr_grpo"`). A group
    whose rewards are all equal gets advantage 0.

    Args:
      rewards: `[B, L]` or `[G, n, L]` float per-token rewards.
      mask: bool-like validity of the same shape.
      group_size: n >= 2 (taken from axis 1 of grouped input).
      scale_rewards: "group", "batch" or "none".
      epsilon: float > 0 added to the std.

    Returns:
      Advantages of `rewards`' shape, float.
    """
    scale_rewards = _checks.check_option(
        scale_rewards, "scale_rewards", REWARD_SCALES
    )
    epsilon = _checks.check_float(
        epsilon, "epsilon", minimum=0.0, inclusive=False
    )
    with tf.name_scope("grpo_advantages"):
        rewards, mask, n, shape = _prepare(rewards, mask, group_size)
        _check_group(n, 2)
        returns = _group_returns(rewards, mask, n)
        centred = returns - tf.reduce_mean(returns, axis=1, keepdims=True)
        if scale_rewards == "group":
            variance = tf.reduce_sum(
                tf.square(centred), axis=1, keepdims=True
            ) / (n - 1)
            centred = centred / (tf.sqrt(variance) + epsilon)
        elif scale_rewards == "batch":
            count = tf.cast(tf.size(returns), returns.dtype)
            deviations = returns - tf.reduce_mean(returns)
            variance = tf.reduce_sum(tf.square(deviations)) / (count - 1)
            centred = centred / (tf.sqrt(variance) + epsilon)
        return _broadcast(centred, mask, shape)


def rloo_advantages(
    rewards: Any, mask: Any, *, group_size: Any = None
) -> tf.Tensor:
    r"""REINFORCE leave-one-out advantages.

        A_i = R_i - (1 / (n - 1)) * sum_{j in g, j != i} R_j
            = n / (n - 1) * (R_i - mean_g(R)),

    on every valid token of row i (Kool et al. 2019, "Buy 4 REINFORCE
    Samples, Get a Baseline for Free!"; Ahmadian et al. 2024, "Back to
    Basics: Revisiting REINFORCE Style Optimization for Learning from
    Human Feedback in LLMs", arXiv:2402.14740).

    Args:
      rewards: `[B, L]` or `[G, n, L]` float per-token rewards.
      mask: bool-like validity of the same shape.
      group_size: n >= 2 (taken from axis 1 of grouped input).

    Returns:
      Advantages of `rewards`' shape, float.
    """
    with tf.name_scope("rloo_advantages"):
        rewards, mask, n, shape = _prepare(rewards, mask, group_size)
        _check_group(n, 2)
        returns = _group_returns(rewards, mask, n)
        total = tf.reduce_sum(returns, axis=1, keepdims=True)
        baseline = (total - returns) / (n - 1)
        return _broadcast(returns - baseline, mask, shape)


def reward_to_go(rewards: Any, mask: Any, *, gamma: float = 1.0) -> tf.Tensor:
    r"""G_t = sum_{s >= t} gamma^(s - t) * mask_s * r_s per row, 0 where
    invalid (the Monte Carlo return of each token, no critic)."""
    gamma = _checks.check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
    rewards, mask, _, shape = _prepare(rewards, mask, None)
    return tf.reshape(_returns_to_go(rewards, mask, gamma), shape)


def _returns_to_go(
    rewards: tf.Tensor, mask: tf.Tensor, gamma: float
) -> tf.Tensor:
    """`[B, L]` G_t of prepared rewards, 0 where invalid."""
    if gamma == 1.0:
        returns = tf.cumsum(rewards, axis=1, reverse=True)
    else:
        returns = tf.transpose(
            tf.scan(
                lambda carry, r: r + gamma * carry,
                tf.transpose(rewards),
                initializer=tf.zeros_like(rewards[:, 0]),
                reverse=True,
            )
        )
    return tf.where(mask, returns, 0.0)


def reinforce_pp_advantages(
    rewards: Any,
    mask: Any,
    *,
    group_size: Any = None,
    gamma: float = 1.0,
    epsilon: float = 1e-8,
) -> tf.Tensor:
    r"""REINFORCE++ advantages: batch-whitened token returns-to-go.

        G_t = sum_{s >= t} gamma^(s - t) r_s,
        A_t = (G_t - mean(G)) / sqrt(var(G) + epsilon),

    mean and (population) variance over every valid token of the batch
    (across replicas under a tf.distribute strategy), with r_t the
    per-token rewards (a KL penalty on each token and the score at the
    end) (Hu 2025, "REINFORCE++: A Simple and Efficient Approach for
    Aligning Large Language Models", arXiv:2501.03262). No groups:
    `group_size` is accepted for the shared signature, checked as the
    group estimators check it, and unused.

    Args:
      rewards: `[B, L]` or `[G, n, L]` float per-token rewards.
      mask: bool-like validity of the same shape.
      group_size: optional n (the rows a multiple of it), unused.
      gamma: discount in [0, 1].
      epsilon: float > 0 added to the variance.

    Returns:
      Advantages of `rewards`' shape, float.
    """
    gamma = _checks.check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
    with tf.name_scope("reinforce_pp_advantages"):
        # group_size is checked all the same: a wrong one is a wrong layout.
        rewards, mask, _, shape = _prepare(rewards, mask, group_size)
        whitened = masked.masked_whiten(
            _returns_to_go(rewards, mask, gamma),
            mask,
            epsilon=epsilon,
            across_replicas=True,
        )
        return tf.reshape(whitened, shape)


def _check_group(n: Any, minimum: int) -> None:
    if n is None or n < minimum:
        raise ValueError(
            f"Group estimators need `group_size` >= {minimum} samples per "
            "prompt (generate with num_samples=n). "
            f"Received: group_size={n!r}"
        )


def critic_free_advantages(
    rewards: Any,
    mask: Any,
    *,
    estimator: str,
    group_size: Any = None,
    gamma: float = 1.0,
    scale_rewards: str = "group",
) -> tf.Tensor:
    """Dispatches to "grpo" (with `scale_rewards`), "dr_grpo" (GRPO with
    `scale_rewards="none"`), "rloo" or "reinforce_pp"."""
    estimator = _checks.check_option(estimator, "estimator", CRITIC_FREE)
    if estimator == "grpo":
        return grpo_advantages(
            rewards, mask, group_size=group_size, scale_rewards=scale_rewards
        )
    if estimator == "dr_grpo":
        return grpo_advantages(
            rewards, mask, group_size=group_size, scale_rewards="none"
        )
    if estimator == "rloo":
        return rloo_advantages(rewards, mask, group_size=group_size)
    return reinforce_pp_advantages(rewards, mask, gamma=gamma)

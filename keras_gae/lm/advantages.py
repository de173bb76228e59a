"""Critic-free advantage estimators for sequences, next to token-level GAE.

One signature: per-token rewards `[B, L]` and a validity mask `[B, L]`
(e.g. the "reward" and "mask" of `keras_gae.lm.sequence_rollout_batch`:
the score on each row's last valid token plus any per-token KL penalty),
or grouped `[G, n, L]` tensors. Grouped estimators read rows b * n ... b *
n + n - 1 as the n samples of prompt b (the layout of
`keras_gae.lm.generate(..., num_samples=n)`). Each returns advantages of
the input's shape, the same value on every valid token of a row for the
outcome estimators, 0 on invalid tokens. Token-level GAE with a critic is
`keras_gae.lm.sequence_advantages`; `whiten_advantages` rescales either
over the valid tokens.

Letters: `B = G * n` rows, `G` prompts, `n` samples per prompt, `L` token
positions, R_i = sum_t mask_it * r_it the return of row i.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae import estimator_names
from keras_gae.lm import _input_checks
from keras_gae.ops import _checks
from keras_gae.ops import masked
from keras_gae.ops import returns as returns_lib

ESTIMATORS = estimator_names.LM_ESTIMATORS
CRITIC_FREE = estimator_names.CRITIC_FREE
REWARD_SCALES = estimator_names.REWARD_SCALES


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


def _group_returns(rewards: tf.Tensor, n: int) -> tf.Tensor:
    """`[G, n]` returns R of each group's rows (rewards 0 where invalid)."""
    return tf.reshape(tf.reduce_sum(rewards, axis=1), [-1, n])


def _broadcast(row_advantages: tf.Tensor, mask: tf.Tensor, shape) -> tf.Tensor:
    """`[G, n]` per-row advantages on each row's valid tokens."""
    per_row = tf.reshape(row_advantages, [-1, 1])
    out = tf.where(mask, per_row + tf.zeros_like(mask, per_row.dtype), 0.0)
    return tf.reshape(out, shape)


_GRPO_EPSILON = 1e-6
_REINFORCE_PP_EPSILON = 1e-8


def grpo_advantages(
    rewards: Any,
    mask: Any,
    *,
    group_size: Any = None,
    scale_rewards: str = "group",
    epsilon: float = _GRPO_EPSILON,
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
        return _grpo(rewards, mask, n, shape, scale_rewards, epsilon)


def _grpo(rewards, mask, n, shape, scale_rewards, epsilon) -> tf.Tensor:
    """`grpo_advantages` of `_prepare`d rewards and mask."""
    returns = _group_returns(rewards, n)
    centred = returns - tf.reduce_mean(returns, axis=1, keepdims=True)
    if scale_rewards == "group":
        variance = tf.reduce_sum(tf.square(centred), axis=1, keepdims=True) / (
            n - 1
        )
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
        return _rloo(rewards, mask, n, shape)


def _rloo(rewards, mask, n, shape) -> tf.Tensor:
    """`rloo_advantages` of `_prepare`d rewards and mask."""
    returns = _group_returns(rewards, n)
    total = tf.reduce_sum(returns, axis=1, keepdims=True)
    baseline = (total - returns) / (n - 1)
    return _broadcast(returns - baseline, mask, shape)


def reward_to_go(rewards: Any, mask: Any, *, gamma: float = 1.0) -> tf.Tensor:
    r"""G_t = sum_{s >= t} gamma^(s - t) * mask_s * r_s per row, 0 where
    invalid (the Monte Carlo return of each token, no critic).

    `keras_gae.ops.discounted_returns` of the rewards zeroed where invalid
    (an invalid token inside a row adds nothing and cuts nothing), with
    gradients stopped.
    """
    gamma = _checks.check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
    with tf.name_scope("reward_to_go"):
        rewards, mask, _, shape = _prepare(rewards, mask, None)
        return tf.reshape(_returns_to_go(rewards, mask, gamma), shape)


def _returns_to_go(
    rewards: tf.Tensor, mask: tf.Tensor, gamma: float
) -> tf.Tensor:
    """`[B, L]` G_t of `_prepare`d rewards (0 where invalid), 0 where
    invalid."""
    returns = returns_lib.discounted_returns(
        rewards, tf.zeros_like(rewards[:, 0]), gamma=gamma, time_major=False
    )
    return tf.where(mask, returns, 0.0)


def reinforce_pp_advantages(
    rewards: Any,
    mask: Any,
    *,
    group_size: Any = None,
    gamma: float = 1.0,
    epsilon: float = _REINFORCE_PP_EPSILON,
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
        returns = _returns_to_go(rewards, mask, gamma)
        return tf.reshape(_reinforce_pp(returns, mask, epsilon), shape)


def _reinforce_pp(returns: tf.Tensor, mask: tf.Tensor, epsilon) -> tf.Tensor:
    """`reinforce_pp_advantages` of `[B, L]` returns-to-go."""
    return masked.masked_whiten(
        returns, mask, epsilon=epsilon, across_replicas=True
    )


def _check_group(n: Any, minimum: int) -> None:
    if n is None or n < minimum:
        raise ValueError(
            f"Group estimators need `group_size` >= {minimum} samples per "
            "prompt (generate with num_samples=n). "
            f"Received: group_size={n!r}"
        )


def critic_free_targets(
    rewards: Any,
    mask: Any,
    *,
    estimator: str,
    group_size: Any = None,
    gamma: float = 1.0,
    scale_rewards: str = "group",
) -> tuple:
    """`(advantages, returns)` of a critic-free estimator, one preparation.

    The advantages of "grpo" (with `scale_rewards`), "dr_grpo" (GRPO with
    `scale_rewards="none"`), "rloo" or "reinforce_pp" (with `gamma`), and
    `reward_to_go` (with `gamma`), the batch's critic target, from one
    check of `rewards` and `mask`: what `CausalLMPPOModel.collect` adds to
    its batch. Arguments as the estimators take them; "reinforce_pp"
    reads `group_size` only to check the layout.
    """
    estimator = _checks.check_option(estimator, "estimator", CRITIC_FREE)
    gamma = _checks.check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
    scale_rewards = _checks.check_option(
        scale_rewards, "scale_rewards", REWARD_SCALES
    )
    with tf.name_scope(f"{estimator}_targets"):
        rewards, mask, n, shape = _prepare(rewards, mask, group_size)
        returns = _returns_to_go(rewards, mask, gamma)
        if estimator == "reinforce_pp":
            advantages = _reinforce_pp(returns, mask, _REINFORCE_PP_EPSILON)
        else:
            _check_group(n, 2)
            if estimator == "rloo":
                advantages = _rloo(rewards, mask, n, shape)
            else:
                scale = "none" if estimator == "dr_grpo" else scale_rewards
                advantages = _grpo(
                    rewards, mask, n, shape, scale, _GRPO_EPSILON
                )
        return tf.reshape(advantages, shape), tf.reshape(returns, shape)


def whiten_advantages(
    advantages: Any,
    mask: Any,
    *,
    shift_mean: bool = True,
    epsilon: float = 1e-8,
) -> tf.Tensor:
    """Whitens over valid tokens: (x - mean) / sqrt(var + epsilon).

    mean and var (population) are taken over the valid elements only;
    invalid elements come out as 0 and never enter the statistics, NaN or
    Inf included (at a valid element they are refused). With
    `shift_mean=False` the mean is added back (only the scale changes).

    This is `keras_gae.ops.masked_whiten(..., across_replicas=True)`: under
    a tf.distribute strategy (a replica context with more than one replica)
    the statistics cover the global batch, two passes (the mean, then the
    centred squares) of one `all_reduce(SUM)` each. Statistics are formed in
    float32 (or float64 for float64 input), also for half-precision input.

    Args:
      advantages: `[B, L]` (any shape) float tensor.
      mask: bool-like tensor of the same shape.
      shift_mean: whether the output has mean 0 (True) or keeps the mean.
      epsilon: float > 0 added to the variance.

    Returns:
      The whitened tensor, advantages' shape, in the statistics' dtype.

    Raises:
      TypeError: non-float advantages, non-bool-like mask, non-bool
        shift_mean.
      ValueError: mismatched shapes, epsilon <= 0, NaN or Inf at a valid
        element.
    """
    shift_mean = _checks.check_bool(shift_mean, "shift_mean")
    epsilon = _checks.check_float(
        epsilon, "epsilon", minimum=0.0, inclusive=False
    )
    with tf.name_scope("whiten_advantages"):
        advantages = _checks.convert_float(advantages, "advantages")
        mask = _checks.convert_flag(mask, "mask")
        assertions = _checks.check_same_shape(
            mask, advantages, "mask", "advantages"
        )
        with tf.control_dependencies(assertions):
            x = tf.cast(advantages, _checks.compute_dtype(advantages))
        return whiten_valid(x, mask, shift_mean=shift_mean, epsilon=epsilon)


def whiten_valid(
    x: tf.Tensor, mask: tf.Tensor, *, shift_mean: bool, epsilon: float
) -> tf.Tensor:
    """`whiten_advantages` of a checked float `x` and a bool `mask`
    (package-internal: `assemble_batch` whitens its rewards with it)."""
    x = _input_checks.check_finite(
        x, "advantages", "at valid positions", mask=mask
    )
    return masked.masked_whiten(
        x,
        mask,
        shift_mean=shift_mean,
        epsilon=epsilon,
        across_replicas=True,
    )

"""Per-token rewards of generated sequences: a KL penalty and a final score.

Letters used in shapes: `B` sequences, `L` token positions per row. Arrays
are aligned with the token rows as `keras_gae.lm.rollouts` describes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_gae.lm import _tokens
from keras_gae.ops import _checks
from keras_gae.ops import policy_losses


def token_rewards(
    scores: Any,
    log_probs: Any,
    ref_log_probs: Any,
    mask: Any,
    *,
    kl_coef: Any,
    estimator: str = "k1",
) -> tuple:
    """Per-token rewards: a KL penalty at every token, the score at the end.

    With k_t the per-token estimate of KL(pi || pi_ref) (see
    `keras_gae.ops.kl_divergence_estimate`) and t_b the last valid position
    of row b,

        r_t = -kl_coef * k_t + [t == t_b] * score_b

    (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
    Preferences", arXiv:1909.08593; Ouyang et al. 2022, arXiv:2203.02155).

    Args:
      scores: `[B]` float sequence scores from the scorer.
      log_probs: `[B, L]` float log pi(a_t | s_t) of the sampling policy.
      ref_log_probs: `[B, L]` float log pi_ref(a_t | s_t).
      mask: `[B, L]` bool-like validity (e.g. `response_mask`).
      kl_coef: float >= 0 or a scalar tensor (e.g. a KL controller's
        `value`).
      estimator: "k1", "k2" or "k3".

    Returns:
      `(rewards, kl)`, both `[B, L]`, 0 on invalid positions (whatever the
      inputs hold there). A row without valid positions gets no score.

    Raises:
      ValueError: mismatched shapes, unknown estimator, negative kl_coef.
      TypeError: non-float inputs, non-bool-like mask.
    """
    with tf.name_scope("token_rewards"):
        if isinstance(kl_coef, (bool, np.bool_, int, float, np.number)):
            kl_coef = _checks.check_float(kl_coef, "kl_coef", minimum=0.0)
        mask = _checks.convert_flag(mask, "mask")
        _checks.check_rank(mask, 2, "mask", "[B, L]")
        kl = policy_losses.kl_divergence_estimate(
            log_probs, ref_log_probs, estimator=estimator, mask=mask
        )
        scores = _checks.convert_float(scores, "scores")
        _checks.check_rank(scores, 1, "scores", "[B]")
        if not scores.shape.is_compatible_with(mask.shape[:1]):
            raise ValueError(
                "`scores` must have shape [B] matching `mask` "
                f"{tuple(mask.shape)}. "
                f"Received: scores={_checks.describe(scores)}"
            )
        dtype = _checks.compute_dtype(kl, scores)
        kl = tf.cast(kl, dtype)
        scores = tf.cast(scores, dtype)
        kl_coef = tf.cast(kl_coef, dtype)
        at_end = _tokens.last_valid(mask)
        final = tf.where(at_end, scores[:, tf.newaxis], tf.zeros_like(kl))
        rewards = tf.where(mask, -kl_coef * kl + final, tf.zeros_like(kl))
        return rewards, kl


def sequence_kl(kl: Any, mask: Any) -> tf.Tensor:
    """Mean over sequences of the summed per-token KL: the measured KL.

        KL = (1 / B) * sum_b sum_t mask_bt * k_bt

    This is the quantity an `AdaptiveKLController` tracks (Ziegler et al.
    2019), fed with `n_steps = B`.

    Args:
      kl: `[B, L]` float per-token KL estimates (from `token_rewards`).
      mask: `[B, L]` bool-like validity.

    Returns:
      A scalar of kl's dtype.
    """
    with tf.name_scope("sequence_kl"):
        kl = _checks.convert_float(kl, "kl")
        mask = _checks.convert_flag(mask, "mask")
        safe = tf.where(mask, kl, tf.zeros_like(kl))
        return tf.reduce_mean(tf.reduce_sum(safe, axis=1))

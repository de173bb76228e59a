"""Per-token rewards of generated sequences: a KL penalty and a final score.

Letters used in shapes: `B` sequences, `L` token positions per row. Arrays
are aligned with the token rows as `keras_gae.lm.rollouts` describes.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.ops import _checks
from keras_gae.ops import kl as kl_lib


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
      ValueError: mismatched shapes, unknown estimator, a kl_coef that is
        negative, not finite or not a scalar, NaN or Inf log-probs at a
        valid position or score of a row with valid positions.
      TypeError: non-float inputs, non-bool-like mask, a kl_coef that is
        neither a float nor a scalar tensor.
    """
    with tf.name_scope("token_rewards"):
        mask = _checks.convert_flag(mask, "mask")
        _checks.check_rank(mask, 2, "mask", "[B, L]")
        kl = kl_lib.kl_divergence_estimate(
            log_probs, ref_log_probs, estimator=estimator, mask=mask
        )
        for name, value in (
            ("log_probs", log_probs),
            ("ref_log_probs", ref_log_probs),
        ):
            _input_checks.check_finite(
                _checks.convert_float(value, name),
                name,
                "at valid positions",
                mask=mask,
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
        kl_coef = _kl_coefficient(kl_coef, dtype)
        # A NaN score would be a NaN reward, advantage and loss: refused
        # where it enters (rows without response tokens never read theirs).
        scores = _input_checks.check_finite(
            scores,
            "scores",
            "scores of rows with response tokens",
            mask=tf.reduce_any(mask, axis=1),
        )
        kl = tf.cast(kl, dtype)
        rewards = shaped_rewards(tf.cast(scores, dtype), kl, mask, kl_coef)
        return rewards, kl


def token_kl(
    log_probs: tf.Tensor,
    ref_log_probs: tf.Tensor,
    mask: tf.Tensor,
    estimator: str,
) -> tf.Tensor:
    """`kl_divergence_estimate` of checked inputs, 0 where `mask` is False.

    Package-internal: `CausalLMPPOModel.collect` passes `generate`'s
    outputs (float `[B, L]` log-probs, a bool mask, a checked estimator),
    so nothing is converted or checked again.
    """
    log_ratio = tf.where(mask, tf.stop_gradient(ref_log_probs) - log_probs, 0.0)
    return kl_lib.estimate_from_log_ratio(log_ratio, estimator)


def shaped_rewards(
    scores: tf.Tensor, kl: tf.Tensor, mask: tf.Tensor, kl_coef: tf.Tensor
) -> tf.Tensor:
    """`token_rewards`' r_t of checked inputs: `scores [B]` and `kl [B, L]`
    of one float dtype, a bool `mask [B, L]`, a scalar `kl_coef` >= 0.

    Package-internal (`token_rewards` checks; `collect` passes what it
    checked once).
    """
    at_end = _tokens.last_valid(mask)
    final = tf.where(at_end, scores[:, tf.newaxis], tf.zeros_like(kl))
    return tf.where(mask, -kl_coef * kl + final, tf.zeros_like(kl))


def _kl_coefficient(kl_coef: Any, dtype: tf.DType) -> tf.Tensor:
    """`kl_coef` (a float or a scalar tensor, a controller's variable) as
    a finite scalar `dtype` tensor >= 0."""
    kl_coef, assertions = _checks.convert_scalar_parameter(
        kl_coef, "kl_coef", dtype, minimum=0.0
    )
    finite = tf.math.is_finite(kl_coef)
    if tf.executing_eagerly():
        if not bool(finite):
            raise ValueError(
                "`kl_coef` must be finite. "
                f"Received: kl_coef={kl_coef.numpy()!r}"
            )
    else:
        assertions.append(
            tf.debugging.Assert(finite, ["`kl_coef` must be finite."])
        )
    with tf.control_dependencies(assertions):
        return tf.identity(kl_coef)


def sequence_kl(kl: Any, mask: Any) -> tf.Tensor:
    """Mean over sequences of the summed per-token KL: the measured KL.

        KL = (1 / B) * sum_b sum_t mask_bt * k_bt

    This is the quantity an `AdaptiveKLController` tracks (Ziegler et al.
    2019), fed with `n_steps = B`.

    Args:
      kl: `[B, L]` float per-token KL estimates (from `token_rewards`).
      mask: `[B, L]` bool-like validity, kl's shape.

    Returns:
      A scalar of kl's dtype.

    Raises:
      ValueError: shapes other than `[B, L]` alike, NaN or Inf at a valid
        position (an adaptive controller would lose the measurement).
    """
    with tf.name_scope("sequence_kl"):
        kl = _checks.convert_float(kl, "kl")
        _checks.check_rank(kl, 2, "kl", "[B, L]")
        mask = _checks.convert_flag(mask, "mask")
        assertions = _checks.check_same_shape(mask, kl, "mask", "kl")
        with tf.control_dependencies(assertions):
            return mean_sequence_kl(kl, mask)


def mean_sequence_kl(kl: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """`sequence_kl` of a float `kl [B, L]` and a bool `mask` of its shape.

    Package-internal: the shapes and dtypes are trusted; NaN or Inf at a
    valid position (a k3 estimate past the float range) is still refused,
    naming `kl`.
    """
    kl = _input_checks.check_finite(kl, "kl", "at valid positions", mask=mask)
    safe = tf.where(mask, kl, tf.zeros_like(kl))
    return tf.reduce_mean(tf.reduce_sum(safe, axis=1))

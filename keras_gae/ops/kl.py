"""KL estimates between the current policy and a reference, and a penalty.

Inputs follow the conventions of `keras_gae.ops.policy_losses`: per-step
tensors of one shape, an optional bool-like `mask`, masked means, float32
results (float64 for float64 inputs), stop_gradient'ed reference log-probs.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import _loss_inputs
from keras_gae.ops import masked

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_divergence_estimate(
    log_probs: Any,
    ref_log_probs: Any,
    *,
    estimator: str = "k1",
    mask: Any = None,
    check_numerics: bool = False,
) -> tf.Tensor:
    """Per-step Monte Carlo estimates of KL(p || q) from actions drawn from p.

    p is the current policy (which sampled the actions, `log_probs`), q the
    reference policy (`ref_log_probs`). With log r = log q - log p
    (Schulman 2020, "Approximating KL Divergence",
    http://joschu.net/blog/kl-approx.html):

        "k1": -log r = log p - log q         (unbiased, high variance, any sign)
        "k2": 0.5 * (log r)^2                (biased, low variance, >= 0)
        "k3": (r - 1) - log r                (unbiased, low variance, >= 0)

    Their gradients with respect to `log_probs` differ from the gradient of
    the true KL; choose the estimator with that in mind when the estimate is
    used as a loss.

    A NaN or Inf log-prob (log 0 = -Inf included) at a valid step makes
    that step's estimate NaN or Inf under every estimator. "k3" exceeds the
    float range, and is +Inf, where log r does (above about 88.7 in
    float32).

    Args:
      log_probs: per-step float log p(a_t | s_t), any shape.
      ref_log_probs: log q(a_t | s_t), same shape. Gradient stopped.
      estimator: "k1", "k2" or "k3".
      mask: optional bool-like validity of each step, same shape.
      check_numerics: if True, NaN or Inf in an input at a valid step
        raises an InvalidArgumentError naming the input.

    Returns:
      The per-step estimates, same shape as `log_probs`; 0 on masked steps.

    Raises:
      ValueError: mismatched shapes (naming both arguments), unknown
        `estimator`.
      TypeError: non-float inputs, a non-bool-like mask, a non-bool
        `check_numerics`.
    """
    estimates, _ = _estimates_and_mask(
        log_probs, ref_log_probs, estimator, mask, check_numerics
    )
    return estimates


def _estimates_and_mask(
    log_probs: Any,
    ref_log_probs: Any,
    estimator: str,
    mask: Any,
    check_numerics: bool,
) -> tuple:
    """`kl_divergence_estimate`, and the bool mask it checked (or None)."""
    _checks.check_option(estimator, "estimator", KL_ESTIMATORS)
    with tf.name_scope("kl_divergence_estimate"):
        (log_probs, ref_log_probs), mask = _loss_inputs.per_step_inputs(
            [("log_probs", log_probs), ("ref_log_probs", ref_log_probs)],
            mask,
            check_numerics,
            "kl_divergence_estimate",
        )
        log_ratio = tf.stop_gradient(ref_log_probs) - log_probs
        return estimate_from_log_ratio(log_ratio, estimator), mask


def estimate_from_log_ratio(log_ratio: tf.Tensor, estimator: str) -> tf.Tensor:
    """The estimators of `kl_divergence_estimate` on log r = log q - log p.

    The one definition of k1, k2 and k3, for callers that already hold the
    log-ratio (PPO's `approx_kl` is k3 of log pi - log pi_old). Inputs are
    trusted: a checked tensor and one of `KL_ESTIMATORS`.
    """
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * tf.square(log_ratio)
    return tf.math.expm1(log_ratio) - log_ratio


def kl_penalty_loss(
    log_probs: Any,
    ref_log_probs: Any,
    *,
    estimator: str = "k3",
    mask: Any = None,
    check_numerics: bool = False,
) -> tf.Tensor:
    """Masked mean of `kl_divergence_estimate`: a KL(pi || pi_ref) penalty.

        loss = mean_t k(log_probs_t, ref_log_probs_t)

    over valid steps, with k the chosen estimator (see
    `kl_divergence_estimate`; "k3" by default, the unbiased non-negative
    one). Scale it with a coefficient, e.g. from `AdaptiveKLController`.
    A NaN or Inf log-prob at a valid step makes the loss NaN or Inf.

    Args:
      log_probs: per-step float log pi(a_t | s_t), actions drawn from pi,
        any shape.
      ref_log_probs: log pi_ref(a_t | s_t), same shape. Gradient stopped.
      estimator: "k1", "k2" or "k3".
      mask: optional bool-like validity of each step, same shape.
      check_numerics: if True, NaN or Inf in an input at a valid step
        raises an InvalidArgumentError naming the input, and a loss that
        overflows (a "k3" or "k2" term beyond the float range) one naming
        `kl_penalty_loss`.

    Returns:
      The scalar loss.

    Raises:
      ValueError: mismatched shapes (naming both arguments), unknown
        `estimator`.
      TypeError: non-float inputs, a non-bool-like mask, a non-bool
        `check_numerics`.
    """
    with tf.name_scope("kl_penalty_loss"):
        # The mask comes back checked: the mean does not convert it again.
        estimates, mask = _estimates_and_mask(
            log_probs, ref_log_probs, estimator, mask, check_numerics
        )
        return _loss_inputs.checked_loss(
            masked.masked_mean(estimates, mask),
            check_numerics,
            "kl_penalty_loss",
            f"a {estimator} term of log_probs - ref_log_probs beyond the "
            "float range",
        )

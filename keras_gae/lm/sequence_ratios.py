"""Sequence-level importance ratios (GSPO) for the PPO clipped objective.

Letters used in shapes: `B` rows, `L` token positions, n_b the number of
valid tokens of row b.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

# TRL's `importance_sampling_level`.
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")


def sequence_log_ratios(
    log_probs: tf.Tensor,
    old_log_probs: tf.Tensor,
    mask: Optional[tf.Tensor],
) -> tf.Tensor:
    r"""Each row's mean log-ratio, on every position of the row:

        out[b, t] = (1 / max(n_b, 1)) sum_s m_bs (log_probs[b, s]
                                                  - old_log_probs[b, s]),

    so that exp(out[b, t]) = s_b, the length-normalized sequence ratio
    (pi(y_b | x_b) / pi_old(y_b | x_b))^(1 / n_b) of GSPO (Zheng et al.
    2025, "Group Sequence Policy Optimization", arXiv:2507.18071; TRL's
    `importance_sampling_level="sequence"`). Fed to the PPO clipped loss as
    the log-probs against old log-probs of 0, every token of row b gets the
    ratio s_b, clipped per sequence; the gradient reaches every valid
    token's log-prob through the mean. Invalid positions (anything there,
    NaN included) are read by nothing.

    Args:
      log_probs: `[B, L]` float32 log pi(a_t | s_t).
      old_log_probs: `[B, L]` float32 log pi_old(a_t | s_t).
      mask: None (every position valid) or `[B, L]` bool.

    Returns:
      `[B, L]` float32.
    """
    log_ratios = log_probs - tf.stop_gradient(old_log_probs)
    if mask is None:
        mean = tf.reduce_mean(log_ratios, axis=1, keepdims=True)
    else:
        m = tf.cast(mask, log_ratios.dtype)
        total = tf.reduce_sum(
            tf.where(mask, log_ratios, tf.zeros_like(log_ratios)),
            axis=1,
            keepdims=True,
        )
        mean = total / tf.maximum(tf.reduce_sum(m, axis=1, keepdims=True), 1.0)
    return mean + tf.zeros_like(log_ratios)

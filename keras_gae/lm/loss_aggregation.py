"""How per-token policy losses of a batch of sequences become one number.

Letters used in shapes: `B` rows, `L` token positions, n_b the number of
valid tokens of row b, B' the number of rows with n_b > 0.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.ops import _checks

AGGREGATIONS = ("token_mean", "sequence_sum", "sequence_mean", "dr_grpo")


def token_weights(
    mask: Any, mode: str, max_completion_length: Any = None
) -> tf.Tensor:
    r"""`[B, L]` float32 w with loss = sum_bt w_bt * l_bt:

        "token_mean":    w_bt = m_bt / sum_b n_b
        "sequence_sum":  w_bt = m_bt / B'       (sequence-mean of token-sums)
        "sequence_mean": w_bt = m_bt / (B' n_b) (sequence-mean of token-means)
        "dr_grpo":       w_bt = m_bt / (B L_max)

    "token_mean" weighs every token alike (long responses count more; PPO
    for RLHF, DAPO); "sequence_mean" weighs every response alike (GRPO as
    published); "sequence_sum" and "dr_grpo" have no length normalization:
    "dr_grpo" is Dr. GRPO's loss exactly (Liu et al. 2025,
    arXiv:2503.20783; TRL's `loss_type="dr_grpo"`), the token sum divided
    by a constant, the B rows of the batch (masked ones included) times
    `max_completion_length` L_max.

    The weights are computed over the rows at hand: in `CausalLMPPOModel`
    under a tf.distribute strategy each replica normalizes by its own rows
    and tokens (B', n_b), so "sequence_sum" and "sequence_mean" equal one
    device on the global batch only when the replicas hold equally many
    valid rows and tokens; "token_mean" is exact there (the training step
    divides by the global number of valid tokens).
    """
    mode = _checks.check_option(mode, "loss_aggregation", AGGREGATIONS)
    mask = _checks.convert_flag(mask, "mask")
    _checks.check_rank(mask, 2, "mask", "[B, L]")
    m = tf.cast(mask, tf.float32)
    if mode == "dr_grpo":
        length = _checks.check_positive_int(
            max_completion_length, "max_completion_length"
        )
        return m / (tf.cast(tf.shape(m)[0], tf.float32) * float(length))
    lengths = tf.reduce_sum(m, axis=1, keepdims=True)
    rows = tf.reduce_sum(tf.cast(lengths > 0, tf.float32))
    if mode == "token_mean":
        return tf.math.divide_no_nan(m, tf.reduce_sum(lengths))
    if mode == "sequence_sum":
        return tf.math.divide_no_nan(m, rows)
    return tf.math.divide_no_nan(m, rows * lengths)


def aggregate(
    per_token: Any, mask: Any, mode: str, max_completion_length: Any = None
) -> tf.Tensor:
    """The scalar loss sum_bt w_bt * l_bt of `token_weights`; `per_token`
    must be finite on valid tokens (anything elsewhere)."""
    per_token = _checks.convert_float(per_token, "per_token")
    weights = token_weights(mask, mode, max_completion_length)
    assertions = _checks.check_same_shape(
        weights, per_token, "mask", "per_token"
    )
    with tf.control_dependencies(assertions):
        per_token = _input_checks.check_finite(
            per_token, "per_token", "losses at valid tokens", mask=weights > 0
        )
    safe = tf.where(weights > 0, tf.cast(per_token, tf.float32), 0.0)
    return tf.reduce_sum(weights * safe)


def advantage_scale(
    mask: Any, mode: str, max_completion_length: Any = None
) -> tf.Tensor:
    """`[B, L]` s with token_mean(s * l) = aggregate(l, mode).

    A positive per-token factor on the advantages scales the PPO clipped
    objective min(r A, clip(r) A) by the same factor and leaves which
    branch is clipped unchanged, so any aggregation runs through the
    token-mean PPO loss with rescaled advantages.
    """
    weights = token_weights(mask, mode, max_completion_length)
    count = tf.reduce_sum(
        tf.cast(_checks.convert_flag(mask, "mask"), tf.float32)
    )
    return weights * count

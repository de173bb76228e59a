"""Leaving completions cut at the length limit out of the loss.

Letters used in shapes: `B` rows, `L` token positions.
"""

from __future__ import annotations

import tensorflow as tf

from keras_gae._src import rollout_batch as rb


def mask_truncated_completions(batch: dict) -> dict:
    """`batch` with every row that hit the length limit masked out.

    A row is truncated when it ends without a stop token (its last valid
    position has "truncated" set, as `keras_gae.lm.sequence_rollout_batch`
    marks it). Its "mask" becomes False everywhere, so it enters neither
    the loss, nor the advantage normalization, nor the metrics (TRL's
    `mask_truncated_completions`; DAPO, Yu et al. 2025, arXiv:2503.14476,
    "overlong filtering"). Everything else is kept: advantages already
    computed from the whole batch, as the group estimators compute them
    at collection, keep the truncated rows' rewards in their group
    statistics.

    Args:
      batch: a rollout batch with "mask" and "truncated" `[B, L]`.

    Returns:
      A new dict; the other entries are the same tensors.
    """
    truncated = tf.reduce_any(
        tf.cast(batch[rb.TRUNCATED], tf.bool), axis=1, keepdims=True
    )
    out = dict(batch)
    out[rb.MASK] = tf.logical_and(
        tf.cast(batch[rb.MASK], tf.bool), tf.logical_not(truncated)
    )
    return out

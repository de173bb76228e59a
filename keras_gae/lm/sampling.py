"""Drawing the next token from a step's logits: temperature, top-k, top-p.

Letters used in shapes: `B` rows, `V` vocabulary size.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


def filter_logits(
    logits: tf.Tensor, top_k: Optional[int], top_p: Optional[float]
) -> tf.Tensor:
    """`[B, V]` logits with the tokens outside the top-k / top-p set at -inf.

    top-k keeps the k largest logits. top-p (nucleus sampling, Holtzman et
    al. 2020, arXiv:1904.09751) then keeps the smallest set of the most
    likely tokens whose probability reaches p: a token is kept when the
    probability mass of the tokens ranked above it is < p (the most likely
    token is always kept). Ties at the cut are kept.
    """
    minus_inf = tf.constant(-np.inf, logits.dtype)
    if top_k is not None:
        kth = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth, minus_inf, logits)
    if top_p is not None and top_p < 1.0:
        ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
        probs = tf.nn.softmax(ordered, axis=-1)
        mass_above = tf.cumsum(probs, axis=-1, exclusive=True)
        kept = tf.cast(mass_above < top_p, tf.int32)
        # The smallest kept logit: the cut; everything below it goes.
        count = tf.maximum(tf.reduce_sum(kept, axis=-1, keepdims=True), 1)
        cut = tf.gather(ordered, count - 1, batch_dims=1)
        logits = tf.where(logits < cut, minus_inf, logits)
    return logits


def sample_step(
    logits: tf.Tensor,
    seed: tf.Tensor,
    *,
    temperature: float,
    top_k: Optional[int],
    top_p: Optional[float],
) -> tuple:
    """`(token [B] int64, log_prob [B] float32)` drawn from `[B, V]` logits.

    The token is drawn (stateless, from `seed`) from the filtered
    softmax(logits / temperature); its log-prob is read from the unfiltered
    log_softmax(logits / temperature): the policy a trainer recomputes from
    the same logits.
    """
    scaled = tf.cast(logits, tf.float32) / temperature
    log_distribution = tf.nn.log_softmax(scaled)
    filtered = filter_logits(scaled, top_k, top_p)
    token = tf.random.stateless_categorical(filtered, 1, seed, dtype=tf.int64)[
        :, 0
    ]
    log_prob = tf.gather(log_distribution, token, batch_dims=1)
    return token, log_prob

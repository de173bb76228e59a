"""Drawing the next token from a step's logits: temperature, repetition
penalty, top-k, top-p, min-p.

Letters used in shapes: `B` rows, `V` vocabulary size.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae.ops import _checks


def penalize_repetitions(
    logits: tf.Tensor, seen: tf.Tensor, penalty: float
) -> tf.Tensor:
    """`[B, V]` logits with those of the `seen [B, V]` tokens penalized.

    CTRL's repetition penalty (Keskar et al. 2019, arXiv:1909.05858) as
    Hugging Face applies it: a seen token's logit x becomes x / penalty if
    x > 0, else x * penalty (penalty > 1 discourages repeats, < 1 favours
    them).
    """
    penalty = tf.cast(penalty, logits.dtype)
    penalized = tf.where(logits > 0, logits / penalty, logits * penalty)
    return tf.where(seen, penalized, logits)


def filter_logits(
    logits: tf.Tensor,
    top_k: Optional[int],
    top_p: Optional[float],
    min_p: Optional[float] = None,
) -> tf.Tensor:
    """`[B, V]` logits with the tokens outside the top-k / top-p / min-p
    set at -inf.

    top-k keeps the k largest logits. top-p (nucleus sampling, Holtzman et
    al. 2020, arXiv:1904.09751) then keeps the smallest set of the most
    likely tokens whose probability reaches p: a token is kept when the
    probability mass of the tokens ranked above it is < p (the most likely
    token is always kept). Equal logits rank by token id, the lower id
    first, so a tie at the cut keeps only the lower ids: two top tokens of
    probability 0.5 each and p = 0.5 keep the lower id alone. (top-k keeps
    every token tied with the k-th largest logit.) min-p (Nguyen et al.
    2024, arXiv:2407.01082) then keeps the tokens whose probability is at
    least `min_p` times the largest one: logit >= max logit + log(min_p).
    """
    minus_inf = tf.constant(-np.inf, logits.dtype)
    if top_k is not None:
        kth = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth, minus_inf, logits)
    if top_p is not None and top_p < 1.0:
        # A stable descending sort ranks equal logits by token id.
        order = tf.argsort(logits, axis=-1, direction="DESCENDING", stable=True)
        ordered = tf.gather(logits, order, batch_dims=1)
        probs = tf.nn.softmax(ordered, axis=-1)
        mass_above = tf.cumsum(probs, axis=-1, exclusive=True)
        first = tf.range(tf.shape(probs)[-1]) == 0
        kept = tf.logical_or(mass_above < top_p, first)
        # Each token's rank: back from the sorted order to token ids.
        rank = tf.argsort(order, axis=-1, stable=True)
        kept = tf.gather(kept, rank, batch_dims=1)
        logits = tf.where(kept, logits, minus_inf)
    if min_p is not None:
        floor = tf.reduce_max(logits, axis=-1, keepdims=True) + tf.math.log(
            tf.cast(min_p, logits.dtype)
        )
        logits = tf.where(logits < floor, minus_inf, logits)
    return logits


def sample_step(
    logits: tf.Tensor,
    seed: tf.Tensor,
    *,
    temperature: float,
    top_k: Optional[int],
    top_p: Optional[float],
    min_p: Optional[float] = None,
    repetition_penalty: Optional[float] = None,
    seen: Optional[tf.Tensor] = None,
) -> tuple:
    """`(token [B] int64, log_prob [B] float32)` drawn from `[B, V]` logits.

    The token is drawn (stateless, from `seed`) from softmax(logits /
    temperature) after the repetition penalty on the `seen [B, V]` tokens
    and the top-k / top-p / min-p filters (Hugging Face's order); its
    log-prob is read from the plain log_softmax(logits / temperature): the
    policy a trainer recomputes from the same logits.

    Logits without a distribution (a NaN or +Inf, or -Inf everywhere)
    give token 0 and log-prob NaN, for the caller to report: the draw
    there returns the out-of-vocabulary id V.
    """
    scaled = tf.cast(logits, tf.float32) / temperature
    log_distribution = tf.nn.log_softmax(scaled)
    shaped = scaled
    if repetition_penalty is not None:
        shaped = penalize_repetitions(scaled, seen, repetition_penalty)
    filtered = filter_logits(shaped, top_k, top_p, min_p)
    token = tf.random.stateless_categorical(filtered, 1, seed, dtype=tf.int64)[
        :, 0
    ]
    drawn = token < tf.cast(tf.shape(logits)[-1], token.dtype)
    token = tf.where(drawn, token, tf.zeros_like(token))
    log_prob = tf.gather(log_distribution, token, batch_dims=1)
    return token, tf.where(drawn, log_prob, np.nan)


def check_options(
    temperature: float,
    top_k: Optional[int],
    top_p: Optional[float],
    min_p: Optional[float],
    repetition_penalty: Optional[float],
) -> tuple:
    """`(temperature, top_k, top_p, min_p, repetition_penalty)` checked:
    temperature > 0 (also in float32), top_k >= 1, top_p and min_p in
    (0, 1], repetition_penalty > 0; None leaves an option off. Raises a
    ValueError or TypeError naming the argument."""
    temperature = _checks.check_float(
        temperature, "temperature", minimum=0.0, inclusive=False
    )
    if np.float32(temperature) == 0.0:
        raise ValueError(
            "`temperature` must be > 0 in float32, where logits are "
            "divided by it (use top_k=1 for greedy decoding). "
            f"Received: temperature={temperature!r}"
        )
    if top_k is not None:
        top_k = _checks.check_positive_int(top_k, "top_k")
    if top_p is not None:
        top_p = _checks.check_float(
            top_p, "top_p", minimum=0.0, maximum=1.0, inclusive=False
        )
    if min_p is not None:
        min_p = _checks.check_float(
            min_p, "min_p", minimum=0.0, maximum=1.0, inclusive=False
        )
    if repetition_penalty is not None:
        repetition_penalty = _checks.check_float(
            repetition_penalty,
            "repetition_penalty",
            minimum=0.0,
            inclusive=False,
        )
    return temperature, top_k, top_p, min_p, repetition_penalty

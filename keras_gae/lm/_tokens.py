"""Token-row helpers shared by the `keras_gae.lm` modules.

Letters used in shapes: `B` rows, `L` token positions per row.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.ops import _checks


def convert_tokens(
    tokens: Any, name: str = "tokens", layout: str = "[B, L]"
) -> tf.Tensor:
    """Rank-2 integer token ids, or a TypeError / ValueError naming `name`."""
    tokens = tf.convert_to_tensor(tokens)
    if not tokens.dtype.is_integer:
        raise TypeError(
            f"`{name}` must be an integer tensor of token ids, got dtype "
            f"{tokens.dtype.name}. Received: {name}={_checks.describe(tokens)}"
        )
    _checks.check_rank(tokens, 2, name, layout)
    return tokens


def prompt_lengths(prompt_length: Any, tokens: tf.Tensor) -> tf.Tensor:
    """`[B, 1]` int32 start of the response in each row."""
    length = tf.convert_to_tensor(prompt_length)
    if not length.dtype.is_integer:
        raise TypeError(
            "`prompt_length` must be an int or an integer tensor of shape "
            f"[B]. Received: prompt_length={_checks.describe(prompt_length)}"
        )
    if length.shape.rank is not None and length.shape.rank > 1:
        raise ValueError(
            "`prompt_length` must be a scalar or have shape [B]. "
            f"Received: prompt_length={_checks.describe(prompt_length)}"
        )
    if length.shape.rank == 1 and not length.shape.is_compatible_with(
        tokens.shape[:1]
    ):
        raise ValueError(
            "`prompt_length` must have shape [B] matching `tokens` "
            f"{tuple(tokens.shape)}. "
            f"Received: prompt_length={_checks.describe(prompt_length)}"
        )
    static = tf.get_static_value(length)
    if static is not None and (static < 0).any():
        raise ValueError(
            "`prompt_length` must be >= 0. "
            f"Received: prompt_length={_checks.describe(prompt_length)}"
        )
    width = tokens.shape[1]
    if static is not None and width is not None and (static > width).any():
        raise ValueError(
            f"`prompt_length` must be at most the rows' length L={width} "
            "of `tokens` (a longer prompt leaves no response to score). "
            f"Received: prompt_length={np.asarray(static).tolist()}"
        )
    length = tf.cast(length, tf.int32)
    if static is None or width is None:
        assertion = tf.debugging.assert_less_equal(
            length,
            tf.shape(tokens)[1],
            message="`prompt_length` must be at most the rows' length L.",
        )
        with tf.control_dependencies([assertion]):
            length = tf.identity(length)
    return tf.broadcast_to(
        tf.reshape(length, [-1, 1]), [tf.shape(tokens)[0], 1]
    )


def last_valid(mask: tf.Tensor) -> tf.Tensor:
    """`[B, L]` bool: True at the last True of each row (none if all False)."""
    length = tf.shape(mask)[1]
    reversed_index = tf.argmax(
        tf.reverse(tf.cast(mask, tf.int32), axis=[1]),
        axis=1,
        output_type=tf.int32,
    )
    last = tf.one_hot(length - 1 - reversed_index, length, dtype=tf.int32)
    any_valid = tf.reduce_any(mask, axis=1, keepdims=True)
    return tf.logical_and(tf.cast(last, tf.bool), any_valid)


def spread_response(x: tf.Tensor, prompt_length: tf.Tensor, width) -> tf.Tensor:
    """`[B, W]` with `out[b, p_b + j] = x[b, j]` for j < N, else 0.

    From the per-new-token layout of `keras_gae.lm.generate` (`[B, N]`) to
    the per-position layout of packed token rows (`[B, W]`).
    """
    n = tf.shape(x)[1]
    offset = tf.range(width)[tf.newaxis, :] - tf.reshape(
        tf.cast(prompt_length, tf.int32), [-1, 1]
    )
    inside = (offset >= 0) & (offset < n)
    gathered = tf.gather(x, tf.clip_by_value(offset, 0, n - 1), batch_dims=1)
    return tf.where(inside, gathered, tf.zeros_like(gathered))


def check_vocabulary(
    vocab_size: int,
    eos_id: Optional[int],
    stop_ids: tuple,
    pad_id: Optional[int],
    top_k: Optional[int],
) -> None:
    """The ids and top_k of a generation against the model's vocabulary
    of `vocab_size` tokens; a ValueError naming the argument."""
    if eos_id is not None:
        _checks.check_index(eos_id, "eos_id", size=vocab_size)
    _input_checks.stop_ids(stop_ids, vocab_size)
    if pad_id is not None:
        _checks.check_index(pad_id, "pad_id", size=vocab_size)
    if top_k is not None and top_k > vocab_size:
        raise ValueError(
            f"`top_k` must be <= the vocabulary size {vocab_size} of "
            f"the model's logits. Received: top_k={top_k!r}"
        )

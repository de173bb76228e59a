"""Prompt rows for `keras_gae.lm.generate`: which columns are prompt
tokens, their packing to column 0, the buffer's prompt width bucket and
its fit in the model's positions.

Letters used in shapes: `B` rows, `P` prompt width, `N` new tokens.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.ops import _checks


def pack_prompts(
    prompt_tokens: tf.Tensor, prompt_mask: tf.Tensor, fill_id: int
) -> tuple:
    """`(packed [B, P], lengths [B] int32)`: each row's valid tokens first,
    in order (left or right padding removed), then `fill_id` (padding ids
    are never read)."""
    order = tf.argsort(
        tf.cast(tf.logical_not(prompt_mask), tf.int32), axis=1, stable=True
    )
    packed = tf.gather(prompt_tokens, order, batch_dims=1)
    lengths = tf.reduce_sum(tf.cast(prompt_mask, tf.int32), axis=1)
    inside = tf.range(tf.shape(packed)[1])[tf.newaxis, :] < lengths[:, None]
    fill = tf.fill(tf.shape(packed), tf.cast(fill_id, packed.dtype))
    return tf.where(inside, packed, fill), lengths


def prompt_bucket(width: int, n: int, max_positions: Optional[int]) -> int:
    """The buffer's prompt width for prompts `width` wide: 16, 32, 64, ...
    (the first >= width), at most `max_positions - n` and at least
    `width`."""
    bucket = 16
    while bucket < width:
        bucket *= 2
    if max_positions is not None:
        bucket = min(bucket, max_positions - n)
    return max(bucket, width)


def check_positions(prompt: tf.Tensor, n: int, max_positions: int) -> tf.Tensor:
    """`prompt [B, P]` if the buffer's P + N columns fit the positions."""
    limit = (
        f"the model's {max_positions} positions (its maximum sequence length)"
    )
    width = prompt.shape[1]
    if width is None:
        fits = tf.shape(prompt)[1] + n <= max_positions
        message = f"The prompt width plus `max_new_tokens` must be <= {limit}."
        with tf.control_dependencies([tf.debugging.Assert(fits, [message])]):
            return tf.identity(prompt)
    if width > max_positions:
        raise ValueError(
            f"`prompt_tokens` is {width} tokens wide, more than {limit}. "
            f"Received: prompt_tokens={_checks.describe(prompt)}"
        )
    if width + n > max_positions:
        raise ValueError(
            f"The prompt width {width} plus `max_new_tokens` must be <= "
            f"{limit}: at most {max_positions - width} new tokens. "
            f"Received: max_new_tokens={n}"
        )
    return prompt


def convert_prompt_mask(
    prompt: tf.Tensor, prompt_mask: Any, pad_id: Optional[int]
) -> tf.Tensor:
    """`[B, P]` bool, True at prompt tokens, one run per row."""
    if prompt_mask is not None:
        prompt_mask = _checks.convert_flag(prompt_mask, "prompt_mask")
        assertions = _checks.check_same_shape(
            prompt_mask, prompt, "prompt_mask", "prompt_tokens"
        )
        with tf.control_dependencies(assertions):
            prompt_mask = tf.identity(prompt_mask)

        def message(rows):
            return (
                "`prompt_mask` must mark one run of prompt tokens per row "
                "(padding on the left or right only). "
                "Received: prompt_mask with gaps"
                + (f" in rows {rows}" if rows else "")
            )

    elif pad_id is not None:
        # Left padding only (TRL's and Hugging Face's side for generation):
        # the pad ids before a row's first other id. A pad id after it is a
        # prompt token (GPT-2's pad id is its end-of-text id).
        real = tf.cast(
            tf.not_equal(prompt, tf.cast(pad_id, prompt.dtype)), tf.int32
        )
        return tf.cumsum(real, axis=1) > 0
    else:
        return tf.ones_like(prompt, tf.bool)
    return _input_checks.check_prompt_mask_runs(prompt_mask, message)

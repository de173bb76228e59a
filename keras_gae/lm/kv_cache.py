"""keras_gae's own key/value-cached decoding of keras-hub causal LMs.

keras-hub's `CausalLM.call_with_cache` keeps one `[B, layers, 2, W, H, D]`
tensor: every step slices each layer's part out, updates one column,
stacks the layers back (a copy of the whole cache) and attends over all W
columns, so a new token costs O(W) however few columns are filled. Here
each layer keeps its own key and value tensors `[B, H, W, D]`; a step
writes its column in place (`slice_update`: a dynamic-update-slice on the
loop-carried buffer, which XLA performs without a copy) and attends over
the filled columns only, block by block in a loop whose trip count
follows the step's column (`attend_filled`): one program for every
buffer width, no branch per width, no copy of a cache prefix. The
prefill runs over the prompt columns only.

The layer arithmetic is the backbone's own (`_keras_hub_decoders`: its
embedding, norms, dense and rotary layers), so LoRA adapters, dtype
policies and the trained weights are what the full pass uses. Only the
attention (the part that reads the cache) is written here, with each
family's scaling. `decoder_family` returns None for a backbone whose
block attributes are not all there, and the caller then decodes through
keras-hub's own `call_with_cache` instead. The equality tests against an
uncached full pass fail loudly if keras-hub changes the math.

Letters used in shapes: `B` rows, `l` new columns in one call, `W` cache
width, `A` attended columns, `H` key/value heads, `G` query heads per
key/value head, `D` head size.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae.lm import _keras_hub_decoders


def attend(
    query: tf.Tensor,
    keys: tf.Tensor,
    values: tf.Tensor,
    start: Any,
    soft_cap: Optional[float] = None,
) -> tf.Tensor:
    """`[B, l, H * G, D]` causal attention of already scaled queries.

    `query [B, l, H * G, D]` holds the columns `start ... start + l - 1`;
    `keys`, `values [B, H, A, D]` the columns `0 ... A - 1`, of which
    column c is visible to query column q when c <= q (later or unfilled
    columns get weight exactly 0). Query head h * G + g reads key/value
    head h (grouped-query attention, keras-hub's repeat order).
    """
    batch, length, query_heads, size = keras.ops.shape(query)
    kv_heads = keys.shape[1]
    grouped = tf.reshape(
        query, [batch, length, kv_heads, query_heads // kv_heads, size]
    )
    # Heads before columns: batched matrix products without transposes.
    grouped = tf.reshape(
        tf.transpose(grouped, [0, 2, 3, 1, 4]),
        [batch, kv_heads, -1, size],
    )
    scores = tf.matmul(grouped, keys, transpose_b=True)
    scores = tf.cast(scores, tf.float32)
    if soft_cap is not None:
        scores = tf.tanh(scores / soft_cap) * soft_cap
    # Rows of `scores` are (g, query column) pairs, g major.
    columns = tf.range(tf.shape(keys)[2])
    rows = start + tf.tile(tf.range(length), [query_heads // kv_heads])
    visible = columns[tf.newaxis, :] <= rows[:, tf.newaxis]
    scores = tf.where(visible, scores, tf.constant(-math.inf, scores.dtype))
    weights = tf.cast(tf.nn.softmax(scores, axis=-1), values.dtype)
    out = tf.matmul(weights, values)
    out = tf.reshape(
        out, [batch, kv_heads, query_heads // kv_heads, length, size]
    )
    out = tf.transpose(out, [0, 3, 1, 2, 4])
    return tf.reshape(out, [batch, length, query_heads, size])


FAMILIES = _keras_hub_decoders.FAMILIES


def decoder_family(causal_lm: Any) -> Optional[Any]:
    """keras_gae's decoder for `causal_lm`'s backbone, or None."""
    backbone = getattr(causal_lm, "backbone", None)
    for family in FAMILIES:
        if backbone is not None and family.matches(backbone):
            return family(backbone)
    return None


# Columns per block of the cached step's attention: its cost follows the
# filled length rounded up to a block (see `attend_filled`).
BLOCK = 64


def empty_cache(family: Any, batch: Any, width: int, dtype: Any) -> tuple:
    """Per layer `(keys, values)`, each `[B, H, W', D]` zeros, W' = the
    `width` rounded up to whole `BLOCK`s (the extra columns stay
    unread)."""
    width = -(-width // BLOCK) * BLOCK
    shape = [batch, family.num_kv_heads, width, family.head_dim]
    return tuple(
        (tf.zeros(shape, dtype), tf.zeros(shape, dtype))
        for _ in family.backbone.transformer_layers
    )


def attend_filled(
    query: tf.Tensor,
    keys: tf.Tensor,
    values: tf.Tensor,
    start: Any,
    soft_cap: Optional[float] = None,
) -> tuple:
    """`(attended [B, 1, H * G, D], keys, values)`: `attend` for one
    query column `start`, over the cache's columns 0 ... start only, block
    by block.

    A `tf.while_loop` visits blocks of `BLOCK` columns, `start // BLOCK +
    1` of them (W must be whole blocks), and keeps the softmax online
    (Milakov and Gimelshein 2018, arXiv:1805.02867): with m the running
    maximum score, s = sum exp(score - m) and o = sum exp(score - m) *
    value, a block with maximum m' rescales s and o by exp(m - m') before
    adding its own terms; the result is o / s. A step reads the filled
    blocks only: O(start) memory traffic, not O(W), from one program
    whatever the width.

    Blocks are read with `tf.gather` of their column indices: a
    `tf.slice` at the loop's dynamic offset was compiled by XLA (CPU,
    TensorFlow 2.21) into a padded copy of the whole cache every step.
    The cache also goes through the loop's state and back out unchanged,
    so that the written cache the caller keeps is the loop's own buffer.
    """
    batch = tf.shape(query)[0]
    query_heads, size = query.shape[2], query.shape[3]
    kv_heads = keys.shape[1]
    # [B, H, G, 1, D]: query head h * G + g reads key/value head h.
    grouped = tf.reshape(
        query, [batch, kv_heads, query_heads // kv_heads, 1, size]
    )
    dtype = tf.float32

    def body(block, peak, total, weighted, keys, values):
        at = block * BLOCK
        columns = at + tf.range(BLOCK)
        block_keys = tf.gather(keys, columns, axis=2)
        block_values = tf.gather(values, columns, axis=2)
        # [B, H, G, BLOCK]
        scores = tf.cast(
            tf.reduce_sum(grouped * block_keys[:, :, tf.newaxis], axis=-1),
            dtype,
        )
        if soft_cap is not None:
            scores = tf.tanh(scores / soft_cap) * soft_cap
        visible = columns <= start
        scores = tf.where(visible, scores, tf.constant(-math.inf, dtype))
        new_peak = tf.maximum(peak, tf.reduce_max(scores, axis=-1))
        rescale = tf.exp(peak - new_peak)
        weights = tf.exp(scores - new_peak[..., tf.newaxis])
        total = total * rescale + tf.reduce_sum(weights, axis=-1)
        # [B, H, G, D]
        block_out = tf.reduce_sum(
            tf.cast(weights, values.dtype)[..., tf.newaxis]
            * block_values[:, :, tf.newaxis],
            axis=-2,
        )
        weighted = weighted * rescale[..., tf.newaxis] + tf.cast(
            block_out, dtype
        )
        return block + 1, new_peak, total, weighted, keys, values

    heads = [batch, kv_heads, query_heads // kv_heads]
    _, _, total, weighted, keys, values = tf.while_loop(
        lambda block, *_: block <= start // BLOCK,
        body,
        (
            tf.constant(0),
            tf.fill(heads, tf.constant(-math.inf, dtype)),
            tf.zeros(heads, dtype),
            tf.zeros(heads + [size], dtype),
            keys,
            values,
        ),
    )
    out = tf.cast(weighted / total[..., tf.newaxis], values.dtype)
    return tf.reshape(out, [batch, 1, query_heads, size]), keys, values


def run(
    family: Any,
    token_ids: tf.Tensor,
    cache: tuple,
    start: Any,
) -> tuple:
    """`(hidden_states [B, l, hidden], cache)` for the columns `start ...
    start + l - 1` of `token_ids [B, l]`.

    Each layer writes those columns of its keys and values, then attends
    over the columns up to each query's own: one column (a decoding
    step) by `attend_filled` when the cache holds several blocks; a
    prefill from column 0 over its l columns; any other call (a one-block
    cache: no loop to run) over the whole cache.
    """
    x = family.embed(token_ids, start)
    length = token_ids.shape[1]
    prefill = isinstance(start, int) and start == 0
    updated = []
    for layer, (keys, values) in zip(family.backbone.transformer_layers, cache):
        written = []

        def attend_fn(
            query,
            new_keys,
            new_values,
            keys=keys,
            values=values,
            written=written,
        ):
            at = [0, 0, start, 0]
            keys = keras.ops.slice_update(
                keys,
                at,
                tf.cast(tf.transpose(new_keys, [0, 2, 1, 3]), keys.dtype),
            )
            values = keras.ops.slice_update(
                values,
                at,
                tf.cast(tf.transpose(new_values, [0, 2, 1, 3]), values.dtype),
            )
            several_blocks = keys.shape[2] is None or keys.shape[2] > BLOCK
            if length == 1 and several_blocks:
                out, keys, values = attend_filled(
                    query, keys, values, start, family.soft_cap
                )
                written.append((keys, values))
                return out
            written.append((keys, values))
            if prefill:
                keys, values = keys[:, :, :length], values[:, :, :length]
            return attend(query, keys, values, start, family.soft_cap)

        x = family.block(layer, x, start, attend_fn)
        updated.append(written[0])
    return family.backbone.layer_norm(x), tuple(updated)

"""keras_gae's own key/value-cached decoding of keras-hub causal LMs.

keras-hub's `CausalLM.call_with_cache` keeps one `[B, layers, 2, W, H, D]`
tensor: every step slices each layer's part out, updates one column,
stacks the layers back (a copy of the whole cache) and attends over all W
columns, so a new token costs O(W) however few columns are filled. Here
each layer keeps its keys and its values as a tuple of blocks `[B, H,
BLOCK + 1, D]` (`empty_cache`): a step writes its column in place
(`write_columns`: dynamic-update-slices on the loop-carried blocks, which
XLA performs without a copy) and attends over the filled blocks only
(`attend_blocks`: one `tf.cond` per block, each reading its block's own
tensor), so its cost follows the filled length, not W. The prefill runs
over the prompt columns only.

Why blocks as separate tensors (XLA on CPU, seen in its optimized HLO):
a matrix product reading a dynamic slice of the cache gets the slice
copied first (with scalar loads, in the generated code); `tf.cond`s
reading slices of one whole-cache tensor made the loop copy the whole
cache every step; a `tf.cond` choosing the block to write copied the
block. Whole block tensors, read by products and each written by one
dynamic-update-slice, are neither copied nor sliced.
The program grows with the number of blocks (W / BLOCK), so a wider
buffer takes longer to compile.

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


# Columns per block of the cache: a decoding step reads the filled blocks
# (see `attend_blocks`).
BLOCK = 64


def empty_cache(family: Any, batch: Any, width: Any, dtype: Any) -> tuple:
    """Per layer `(key_blocks, value_blocks)`: each a tuple of zero blocks
    `[B, H, BLOCK + 1, D]`, enough for `width` columns. Column c of the
    cache is column c % BLOCK of block c // BLOCK; every block's last
    column is scratch that a step writes when the step's column is in
    another block (see `write_columns`), and no attention reads it.

    A traced `width` (a prompt of unknown width, as in an exported
    signature) gets one block of `width + 1` columns: its steps attend
    over the whole buffer, O(W) a step.
    """
    if isinstance(width, int):
        sizes = [BLOCK] * -(-width // BLOCK)
    else:
        sizes = [width]

    def blocks():
        return tuple(
            tf.zeros(
                [batch, family.num_kv_heads, size + 1, family.head_dim], dtype
            )
            for size in sizes
        )

    return tuple(
        (blocks(), blocks()) for _ in family.backbone.transformer_layers
    )


def write_columns(blocks: tuple, columns: tf.Tensor, start: Any) -> tuple:
    """`blocks` with `columns [B, H, l, D]` written at the cache columns
    `start ... start + l - 1`.

    A static `start` writes the blocks it covers. One column at a traced
    `start` is written into every block: at its place in its own block,
    at the scratch column of the others. So each write is a
    dynamic-update-slice at a computed column, which XLA performs in place
    on the decoding loop's buffers (a `tf.cond` choosing the block would
    copy it). Any other call joins the blocks, writes and splits them
    again (copies; no decoding step takes this way).
    """
    if len(blocks) == 1:  # Every column is the one block's.
        return (keras.ops.slice_update(blocks[0], [0, 0, start, 0], columns),)
    length = columns.shape[2]
    if isinstance(start, int):
        written = []
        for i, block in enumerate(blocks):
            low = max(start, i * BLOCK)
            high = min(start + length, (i + 1) * BLOCK)
            if low < high:
                block = keras.ops.slice_update(
                    block,
                    [0, 0, low - i * BLOCK, 0],
                    columns[:, :, low - start : high - start],
                )
            written.append(block)
        return tuple(written)
    if length == 1:
        return tuple(
            keras.ops.slice_update(
                block,
                [0, 0, tf.where(start // BLOCK == i, start % BLOCK, BLOCK), 0],
                columns,
            )
            for i, block in enumerate(blocks)
        )
    whole = keras.ops.slice_update(
        filled_columns(blocks), [0, 0, start, 0], columns
    )
    scratch = [block[:, :, BLOCK:] for block in blocks]
    return tuple(
        tf.concat([part, rest], axis=2)
        for part, rest in zip(tf.split(whole, len(blocks), axis=2), scratch)
    )


def filled_columns(blocks: tuple) -> tf.Tensor:
    """`[B, H, W, D]`: the cache columns of `blocks`, scratch left out."""
    return tf.concat([block[:, :, :-1] for block in blocks], axis=2)


def attend_blocks(
    query: tf.Tensor,
    key_blocks: tuple,
    value_blocks: tuple,
    start: Any,
    soft_cap: Optional[float] = None,
) -> tf.Tensor:
    """`[B, 1, H * G, D]`: `attend` for one query column `start`, over the
    cache's columns 0 ... start only, block by block.

    Block i is read only when it holds a filled column (i * BLOCK <=
    start; a `tf.cond` when `start` is traced), with two batched matrix
    products on the block's own tensor: no slice, gather or copy of the
    cache (see the module docstring). The scratch column and the columns
    after `start` get weight exactly 0. The softmax is kept online
    (Milakov and Gimelshein 2018, arXiv:1805.02867): with m the running
    maximum score, s = sum exp(score - m) and o = sum exp(score - m) *
    value, a block with maximum m' rescales s and o by exp(m - m') before
    adding its own terms; the result is o / s. A step reads the filled
    blocks only: O(start) memory traffic, not O(W).
    """
    batch = tf.shape(query)[0]
    query_heads, size = query.shape[2], query.shape[3]
    kv_heads = key_blocks[0].shape[1]
    # [B, H, G, D]: query head h * G + g reads key/value head h.
    grouped = tf.reshape(
        query, [batch, kv_heads, query_heads // kv_heads, size]
    )
    dtype = tf.float32

    def add_block(state, index, keys, values):
        peak, total, weighted = state
        # [B, H, G, the block's columns]
        scores = tf.cast(tf.einsum("bhgd,bhcd->bhgc", grouped, keys), dtype)
        if soft_cap is not None:
            scores = tf.tanh(scores / soft_cap) * soft_cap
        offsets = tf.range(tf.shape(keys)[2])
        scratch = tf.shape(keys)[2] - 1
        visible = (offsets < scratch) & (index * BLOCK + offsets <= start)
        scores = tf.where(visible, scores, tf.constant(-math.inf, dtype))
        new_peak = tf.maximum(peak, tf.reduce_max(scores, axis=-1))
        rescale = tf.exp(peak - new_peak)
        weights = tf.exp(scores - new_peak[..., tf.newaxis])
        total = total * rescale + tf.reduce_sum(weights, axis=-1)
        # [B, H, G, D]
        block_out = tf.einsum(
            "bhgc,bhcd->bhgd", tf.cast(weights, values.dtype), values
        )
        weighted = weighted * rescale[..., tf.newaxis] + tf.cast(
            block_out, dtype
        )
        return new_peak, total, weighted

    heads = [batch, kv_heads, query_heads // kv_heads]
    state = (
        tf.fill(heads, tf.constant(-math.inf, dtype)),
        tf.zeros(heads, dtype),
        tf.zeros(heads + [size], dtype),
    )
    for index, (keys, values) in enumerate(zip(key_blocks, value_blocks)):
        # Column 0 is always filled; a static `start` skips blocks here.
        if index == 0 or isinstance(start, int):
            if index == 0 or index * BLOCK <= start:
                state = add_block(state, index, keys, values)
            continue
        state = tf.cond(
            index * BLOCK <= start,
            lambda state=state, index=index, keys=keys, values=values: (
                add_block(state, index, keys, values)
            ),
            lambda state=state: state,
        )
    _, total, weighted = state
    out = tf.cast(weighted / total[..., tf.newaxis], value_blocks[0].dtype)
    return tf.reshape(out, [batch, 1, query_heads, size])


def run(
    family: Any,
    token_ids: tf.Tensor,
    cache: tuple,
    start: Any,
) -> tuple:
    """`(hidden_states [B, l, hidden], cache)` for the columns `start ...
    start + l - 1` of `token_ids [B, l]`.

    Each layer writes those columns of its keys and values, then attends
    over the columns up to each query's own: one column (a decoding step)
    by `attend_blocks`; a prefill from column 0 over its own l columns;
    any other call over the whole cache.
    """
    x = family.embed(token_ids, start)
    length = token_ids.shape[1]
    prefill = isinstance(start, int) and start == 0
    updated = []
    for layer, (key_blocks, value_blocks) in zip(
        family.backbone.transformer_layers, cache
    ):
        written = []

        def attend_fn(
            query,
            new_keys,
            new_values,
            key_blocks=key_blocks,
            value_blocks=value_blocks,
            written=written,
        ):
            # [B, H, l, D]
            new_keys = tf.cast(
                tf.transpose(new_keys, [0, 2, 1, 3]), key_blocks[0].dtype
            )
            new_values = tf.cast(
                tf.transpose(new_values, [0, 2, 1, 3]), value_blocks[0].dtype
            )
            key_blocks = write_columns(key_blocks, new_keys, start)
            value_blocks = write_columns(value_blocks, new_values, start)
            written.append((key_blocks, value_blocks))
            if length == 1 and not prefill:
                return attend_blocks(
                    query, key_blocks, value_blocks, start, family.soft_cap
                )
            if prefill:
                keys, values = new_keys, new_values
            else:
                keys = filled_columns(key_blocks)
                values = filled_columns(value_blocks)
            return attend(query, keys, values, start, family.soft_cap)

        x = family.block(layer, x, start, attend_fn)
        updated.append(written[0])
    return family.backbone.layer_norm(x), tuple(updated)

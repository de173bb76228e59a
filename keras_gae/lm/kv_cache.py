"""keras_gae's own key/value-cached decoding of keras-hub causal LMs.

keras-hub's `CausalLM.call_with_cache` keeps one `[B, layers, 2, W, H, D]`
tensor: every step slices each layer's part out, updates one column,
stacks the layers back (a copy of the whole cache) and attends over all W
columns, so a new token costs O(W) however few columns are filled. Here
each layer keeps its own key and value tensors `[B, H, W, D]`; a step
writes its column in place (`slice_update`, a dynamic-update-slice that
XLA performs on the loop's buffer) and attends over the first `attend`
columns only: the first of a few static widths that covers the filled
columns (see `_decoding.attention_widths`), one branch per width. The
prefill runs over the prompt columns only.

The layer arithmetic is the backbone's own: its embedding, norms, dense
and rotary layers are called, so LoRA adapters, dtype policies and the
trained weights are what the full pass uses. Only the attention (the part
that reads the cache) is written here, with each family's scaling.
Reading a decoder block's sublayers needs the attribute names keras-hub
gives them (most are not public); `decoder_family` checks every name it
needs and returns None when one is missing, and the caller then decodes
through keras-hub's own `call_with_cache` instead. The equality tests
against an uncached full pass fail loudly if keras-hub changes the math.

Letters used in shapes: `B` rows, `l` new columns in one call, `W` cache
width, `A` attended columns, `H` key/value heads, `G` query heads per
key/value head, `D` head size.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable
from typing import Optional
from typing import Sequence

import keras
import tensorflow as tf

from keras_gae.lm import _rotary_decoders


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


class _GPT2Family:
    """GPT-2: learned positions, pre-norm `TransformerDecoder` blocks."""

    names = (
        "_self_attention_layer_norm",
        "_self_attention_layer",
        "_feedforward_layer_norm",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
    )
    soft_cap = None

    def __init__(self, backbone: Any):
        self.backbone = backbone
        attention = backbone.transformer_layers[0]._self_attention_layer
        self.num_kv_heads = int(backbone.num_heads)
        self.head_dim = int(attention.key_dim)

    @classmethod
    def matches(cls, backbone: Any) -> bool:
        blocks = getattr(backbone, "transformer_layers", None)
        return (
            type(backbone).__name__ == "GPT2Backbone"
            and bool(blocks)
            and all(hasattr(b, n) for b in blocks for n in cls.names)
            and all(getattr(b, "normalize_first", False) for b in blocks)
            and hasattr(backbone, "position_embedding")
        )

    def embed(self, token_ids: tf.Tensor, start: Any) -> tf.Tensor:
        tokens = self.backbone.token_embedding(token_ids)
        positions = self.backbone.position_embedding(tokens, start_index=start)
        return self.backbone.embeddings_add((tokens, positions))

    def block(
        self, layer: Any, x: tf.Tensor, start: Any, attend_fn: Callable
    ) -> tf.Tensor:
        del start  # the positions were added to the embeddings
        attention = layer._self_attention_layer
        h = layer._self_attention_layer_norm(x)
        # Keras' MultiHeadAttention scales the query before the dot.
        scale = 1.0 / math.sqrt(float(attention.key_dim))
        query = attention.query_dense(h) * tf.cast(scale, h.dtype)
        attended = attend_fn(
            query, attention.key_dense(h), attention.value_dense(h)
        )
        x = x + attention.output_dense(attended)
        h = layer._feedforward_layer_norm(x)
        h = layer._feedforward_intermediate_dense(h)
        return x + layer._feedforward_output_dense(h)


FAMILIES = (
    _GPT2Family,
    _rotary_decoders.LlamaFamily,
    _rotary_decoders.GemmaFamily,
)


def decoder_family(causal_lm: Any) -> Optional[Any]:
    """keras_gae's decoder for `causal_lm`'s backbone, or None."""
    backbone = getattr(causal_lm, "backbone", None)
    for family in FAMILIES:
        if backbone is not None and family.matches(backbone):
            return family(backbone)
    return None


def empty_cache(family: Any, batch: Any, width: int, dtype: Any) -> tuple:
    """Per layer `(keys, values)`, each `[B, H, W, D]` zeros."""
    shape = [batch, family.num_kv_heads, width, family.head_dim]
    return tuple(
        (tf.zeros(shape, dtype), tf.zeros(shape, dtype))
        for _ in family.backbone.transformer_layers
    )


def _attend_in_blocks(
    query: tf.Tensor,
    keys: tf.Tensor,
    values: tf.Tensor,
    start: Any,
    soft_cap: Optional[float],
    widths: Optional[Sequence[int]],
) -> tf.Tensor:
    """`attend` over the first of `widths` that covers the queries (all
    columns when None): one branch per width, each reading a static
    slice of the cache, so the work follows the filled length."""
    if not widths or len(widths) == 1:
        return attend(query, keys, values, start, soft_cap)
    last = start + tf.shape(query)[1] - 1
    block = tf.reduce_sum(tf.cast(last >= tf.constant(widths[:-1]), tf.int32))

    def branch(width):
        return lambda: attend(
            query, keys[:, :, :width], values[:, :, :width], start, soft_cap
        )

    return tf.switch_case(block, [branch(width) for width in widths])


def run(
    family: Any,
    token_ids: tf.Tensor,
    cache: tuple,
    start: Any,
    attend_widths: Optional[Sequence[int]] = None,
) -> tuple:
    """`(hidden_states [B, l, hidden], cache)` for the columns `start ...
    start + l - 1` of `token_ids [B, l]`.

    Each layer writes those columns of its keys and values, then attends
    over the first of the increasing `attend_widths` that covers `start +
    l` columns (the last must be the cache's width W; None: all W).
    """
    x = family.embed(token_ids, start)
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
            written.append((keys, values))
            return _attend_in_blocks(
                query, keys, values, start, family.soft_cap, attend_widths
            )

        x = family.block(layer, x, start, attend_fn)
        updated.append(written[0])
    return family.backbone.layer_norm(x), tuple(updated)

"""keras-hub decoder blocks, one token column at a time: GPT-2, Llama, Gemma.

The one module that reads keras-hub's sublayers by attribute name. Why:
a cached step writes one key/value column per layer and attends over the
filled columns (`keras_gae.lm.kv_cache`), so it must run a block's
pieces (norms, query/key/value/output projections, rotary embedding,
feedforward) around its own attention. keras-hub's public API offers the
whole block only (`TransformerDecoder.__call__`, `call_with_cache` on the
full `[B, layers, 2, W, H, D]` cache, which copies and reads all W columns
every step), and the pieces as attributes, most of them private
(`_self_attention_layer_norm`, `_query_dense`, ...), as of keras-hub 0.32.

Each family lists every attribute it reads in `names` (on each block) and
`attention_names` (on each block's attention layer); `missing_attributes`
reports any that a backbone lacks, `kv_cache.decoder_family` then falls
back to keras-hub's `call_with_cache` (slower, still exact), and
tests/lm/test_keras_hub_decoders.py fails naming the attribute, so a
keras-hub rename is seen at once rather than as a silent slowdown.

The arithmetic is the backbone's own layers (LoRA adapters, dtype
policies and trained weights as in the full pass); each family only
scales the query its way and hands `attend_fn(query [B, l, H * G, D],
keys [B, l, H, D], values [B, l, H, D])` the new columns.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable

import keras
import tensorflow as tf


class _Family:
    """What every family provides; see the module docstring."""

    backbone_type = ""
    names = ()
    attention_names = ()
    soft_cap = None

    @staticmethod
    def attention_of(block: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def missing_attributes(cls, backbone: Any) -> list:
        """`["block 0: _query_dense", ...]`: the attributes this family
        reads that `backbone`'s blocks lack (empty: it decodes them)."""
        blocks = getattr(backbone, "transformer_layers", None)
        if not blocks:
            return ["transformer_layers"]
        missing = []
        for index, block in enumerate(blocks):
            missing += [
                f"block {index}: {name}"
                for name in cls.names
                if not hasattr(block, name)
            ]
            try:
                attention = cls.attention_of(block)
            except AttributeError:
                continue  # reported above
            missing += [
                f"block {index} attention: {name}"
                for name in cls.attention_names
                if not hasattr(attention, name)
            ]
        return missing

    @classmethod
    def matches(cls, backbone: Any) -> bool:
        return (
            type(backbone).__name__ == cls.backbone_type
            and not cls.missing_attributes(backbone)
            and cls.supports(backbone)
        )

    @classmethod
    def supports(cls, backbone: Any) -> bool:
        """Settings the family decodes (attributes already checked)."""
        del backbone
        return True


class GPT2Family(_Family):
    """GPT-2: learned positions, pre-norm `TransformerDecoder` blocks with
    Keras' `MultiHeadAttention` (whose projections are public)."""

    backbone_type = "GPT2Backbone"
    names = (
        "_self_attention_layer_norm",
        "_self_attention_layer",
        "_feedforward_layer_norm",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
        "normalize_first",
    )
    attention_names = (
        "query_dense",
        "key_dense",
        "value_dense",
        "output_dense",
        "key_dim",
    )

    def __init__(self, backbone: Any):
        self.backbone = backbone
        attention = backbone.transformer_layers[0]._self_attention_layer
        self.num_kv_heads = int(backbone.num_heads)
        self.head_dim = int(attention.key_dim)

    @staticmethod
    def attention_of(block: Any) -> Any:
        return block._self_attention_layer

    @classmethod
    def supports(cls, backbone: Any) -> bool:
        return hasattr(backbone, "position_embedding") and all(
            block.normalize_first for block in backbone.transformer_layers
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


class LlamaFamily(_Family):
    """Llama: rotary positions, RMS norms, gated feedforward."""

    backbone_type = "LlamaBackbone"
    names = (
        "_self_attention_layernorm",
        "_self_attention_layer",
        "_feedforward_layernorm",
        "_feedforward_gate_dense",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
        "activation",
    )
    attention_names = (
        "_query_dense",
        "_key_dense",
        "_value_dense",
        "_output_dense",
        "rotary_embedding_layer",
    )

    def __init__(self, backbone: Any):
        self.backbone = backbone
        self.num_kv_heads = int(backbone.num_key_value_heads)
        self.head_dim = int(backbone.hidden_dim) // int(
            backbone.num_query_heads
        )

    @staticmethod
    def attention_of(block: Any) -> Any:
        return block._self_attention_layer

    def embed(self, token_ids: tf.Tensor, start: Any) -> tf.Tensor:
        del start  # positions enter through the rotary embedding
        return self.backbone.token_embedding(token_ids)

    def block(
        self, layer: Any, x: tf.Tensor, start: Any, attend_fn: Callable
    ) -> tf.Tensor:
        attention = layer._self_attention_layer
        h = layer._self_attention_layernorm(x)
        rotary = attention.rotary_embedding_layer
        query = rotary(attention._query_dense(h), start_index=start)
        keys = rotary(attention._key_dense(h), start_index=start)
        scale = 1.0 / math.sqrt(float(self.head_dim))
        attended = attend_fn(
            query * tf.cast(scale, query.dtype),
            keys,
            attention._value_dense(h),
        )
        x = x + attention._output_dense(attended)
        h = layer._feedforward_layernorm(x)
        gate = layer._feedforward_gate_dense(h)
        gate = keras.ops.cast(
            layer.activation(keras.ops.cast(gate, "float32")), h.dtype
        )
        h = layer._feedforward_intermediate_dense(h) * gate
        return x + layer._feedforward_output_dense(h)


class GemmaFamily(_Family):
    """Gemma (1 and 2 without sliding windows): rotary positions in
    Gemma's layout, scaled embeddings, optional attention soft cap."""

    backbone_type = "GemmaBackbone"
    names = (
        "pre_attention_norm",
        "attention",
        "pre_ffw_norm",
        "gating_ffw",
        "gating_ffw_2",
        "ffw_linear",
        "use_post_attention_norm",
        "use_post_ffw_norm",
    )
    attention_names = (
        "query_dense",
        "key_dense",
        "value_dense",
        "output_dense",
        "rope_layer",
        "head_dim",
        "hidden_dim",
        "num_query_heads",
        "query_head_dim_normalize",
        "logit_soft_cap",
        "use_sliding_window_attention",
    )

    def __init__(self, backbone: Any):
        self.backbone = backbone
        first = backbone.transformer_layers[0].attention
        self.num_kv_heads = int(backbone.num_key_value_heads)
        self.head_dim = int(first.head_dim)
        self.soft_cap = first.logit_soft_cap

    @staticmethod
    def attention_of(block: Any) -> Any:
        return block.attention

    @classmethod
    def supports(cls, backbone: Any) -> bool:
        attentions = [b.attention for b in backbone.transformer_layers]
        # Sliding windows and per-layer caps: keras-hub's own path.
        return not any(a.use_sliding_window_attention for a in attentions) and (
            len({a.logit_soft_cap for a in attentions}) == 1
        )

    def embed(self, token_ids: tf.Tensor, start: Any) -> tf.Tensor:
        del start
        x = self.backbone.token_embedding(token_ids)
        return x * keras.ops.cast(
            keras.ops.sqrt(self.backbone.hidden_dim), x.dtype
        )

    def _rope(self, attention: Any, x: tf.Tensor, start: Any) -> tf.Tensor:
        x = attention.rope_layer(x, start_index=start)
        # Gemma interleaves the two rotated halves (its checkpoints' layout).
        halves = keras.ops.split(x, 2, axis=-1)
        return keras.ops.reshape(
            keras.ops.stack(halves, axis=-1), keras.ops.shape(x)
        )

    def block(
        self, layer: Any, x: tf.Tensor, start: Any, attend_fn: Callable
    ) -> tf.Tensor:
        attention = layer.attention
        h = layer.pre_attention_norm(x)
        if attention.query_head_dim_normalize:
            scale = 1.0 / math.sqrt(float(attention.head_dim))
        else:
            per_head = attention.hidden_dim // attention.num_query_heads
            scale = 1.0 / math.sqrt(float(per_head))
        query = self._rope(attention, attention.query_dense(h), start)
        attended = attend_fn(
            query * tf.cast(scale, query.dtype),
            self._rope(attention, attention.key_dense(h), start),
            attention.value_dense(h),
        )
        attended = attention.output_dense(attended)
        if layer.use_post_attention_norm:
            attended = layer.post_attention_norm(attended)
        x = x + attended
        h = layer.pre_ffw_norm(x)
        gated = keras.activations.gelu(layer.gating_ffw(h), approximate=True)
        h = layer.ffw_linear(gated * layer.gating_ffw_2(h))
        if layer.use_post_ffw_norm:
            h = layer.post_ffw_norm(h)
        return x + h


FAMILIES = (GPT2Family, LlamaFamily, GemmaFamily)

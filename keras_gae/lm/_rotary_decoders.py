"""Llama and Gemma decoder blocks for `keras_gae.lm.kv_cache`.

Each family calls the backbone's own layers (norms, dense layers, rotary
embedding) and hands its scaled query and new keys/values to the cache's
`attend_fn`, which writes the cache and attends. The attribute names are
keras-hub 0.32's; `matches` checks them all, so a backbone that names
them otherwise decodes through keras-hub's `call_with_cache` instead.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable

import keras
import tensorflow as tf


def _has_all(blocks: Any, names: tuple) -> bool:
    return bool(blocks) and all(
        hasattr(block, name) for block in blocks for name in names
    )


class LlamaFamily:
    """Llama: rotary positions, RMS norms, gated feedforward."""

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
    soft_cap = None

    def __init__(self, backbone: Any):
        self.backbone = backbone
        self.num_kv_heads = int(backbone.num_key_value_heads)
        self.head_dim = int(backbone.hidden_dim) // int(
            backbone.num_query_heads
        )

    @classmethod
    def matches(cls, backbone: Any) -> bool:
        blocks = getattr(backbone, "transformer_layers", None)
        return (
            type(backbone).__name__ == "LlamaBackbone"
            and _has_all(blocks, cls.names)
            and _has_all(
                [b._self_attention_layer for b in blocks], cls.attention_names
            )
        )

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


class GemmaFamily:
    """Gemma (1 and 2 without sliding windows): rotary positions in
    Gemma's layout, scaled embeddings, optional attention soft cap."""

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

    @classmethod
    def matches(cls, backbone: Any) -> bool:
        blocks = getattr(backbone, "transformer_layers", None)
        if type(backbone).__name__ != "GemmaBackbone" or not _has_all(
            blocks, cls.names
        ):
            return False
        attentions = [b.attention for b in blocks]
        # Sliding windows and per-layer caps: keras-hub's own path.
        return (
            _has_all(attentions, cls.attention_names)
            and not any(a.use_sliding_window_attention for a in attentions)
            and len({a.logit_soft_cap for a in attentions}) == 1
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

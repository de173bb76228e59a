"""A keras-hub causal LM as a policy with a value function and a KV cache.

Letters used in shapes: `B` rows, `L` token positions, `V` vocabulary size.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src import dependencies
from keras_gae.lm import _input_checks
from keras_gae.lm import kv_cache
from keras_gae.lm import lora_adapters
from keras_gae.models import network_layout as networks_lib
from keras_gae.ops import _checks

VALUE_HEADS = ("shared", None)


def is_keras_hub_causal_lm(model: Any) -> bool:
    """Whether `model` is a keras-hub CausalLM with the token-only cache."""
    return (
        isinstance(model, keras.Model)
        and hasattr(model, "call_with_cache")
        and hasattr(getattr(model, "backbone", None), "transformer_layers")
    )


def _keras_hub_cache_shape(backbone: Any) -> Optional[tuple]:
    """`(layers, 2, H, D)` of keras-hub's stacked cache from the backbone's
    config attributes (key/value heads, head size), or None."""
    heads = getattr(backbone, "num_key_value_heads", None) or getattr(
        backbone, "num_heads", None
    )
    query_heads = getattr(backbone, "num_query_heads", None) or heads
    head_dim = getattr(backbone, "head_dim", None)
    hidden_dim = getattr(backbone, "hidden_dim", None)
    if head_dim is None and hidden_dim and query_heads:
        head_dim = int(hidden_dim) // int(query_heads)
    if not heads or not head_dim:
        return None
    return (len(backbone.transformer_layers), 2, int(heads), int(head_dim))


def _named_inputs(model: Any) -> list:
    """The input names of a model built on a dict (or several) of inputs;
    [] for one tensor input or a model that cannot tell (subclassed)."""
    try:
        structure = model.input
    except (AttributeError, ValueError):
        return []
    if isinstance(structure, dict):
        return sorted(structure)
    leaves = keras.tree.flatten(structure)
    return [leaf.name for leaf in leaves] if len(leaves) > 1 else []


def as_token_network(
    network: keras.layers.Layer, name: str, *, value_head: Optional[str]
) -> keras.layers.Layer:
    """`network` as a tokens `[B, L]` -> outputs layer.

    A keras-hub CausalLM (which takes a dict of "token_ids" and
    "padding_mask") becomes `CausalLMPolicy(network, value_head=...)`; a
    model built on several or named inputs is refused with a TypeError
    naming `name` and `CausalLMPolicy`; anything else is returned as is.
    """
    if is_keras_hub_causal_lm(network):
        return CausalLMPolicy(network, value_head=value_head)
    inputs = _named_inputs(network)
    if inputs:
        raise TypeError(
            f"`{name}` takes several inputs {inputs}, but it is called "
            "on token rows `[B, L]` alone. Pass a keras-hub CausalLM (it is "
            "wrapped in `keras_gae.lm.CausalLMPolicy`), a "
            "`keras_gae.lm.CausalLMPolicy`, or a Keras model mapping token "
            "ids `[B, L]` to logits `[B, L, V]` or (logits, values). "
            f"Received: {name}={network!r}"
        )
    return network


def has_cache_protocol(model: Any) -> bool:
    """Whether `generate` can decode `model` with its own cache."""
    return all(
        hasattr(model, name)
        for name in ("seed_cache", "call_with_cache", "has_values")
    )


@keras.saving.register_keras_serializable(package="keras_gae")
class CausalLMPolicy(keras.Model):
    r"""A keras-hub `CausalLM` as tokens -> (logits, values), with a cache.

    The value function is either

    * `value_head="shared"`: a `Dense(1)` head on the backbone's final
      hidden states (shared trunk: one pass gives logits and values, also
      in the cached decoding loop; the policy and value losses both train
      the trunk), or
    * `critic`: a separate Keras model, tokens `[B, L]` -> values `[B, L]`
      or `[B, L, 1]` (its own trunk: no interference between the losses,
      twice the memory; in `generate` it runs once after decoding), or
    * neither (`value_head=None`): values are zeros, for the critic-free
      estimators (GRPO, RLOO, REINFORCE++).

    A full pass (training, the reference) runs the backbone on
    `{"token_ids", "padding_mask"}` and the tied or untied output
    embedding, as the CausalLM's own call does (differentiable); decoding
    runs keras_gae's cached step (`keras_gae.lm.kv_cache`: GPT-2, Llama
    and Gemma backbones; the prefill over the prompt only, then one cache
    column per layer and token, attention over the filled columns), or
    keras-hub's `call_with_cache` for other backbones. The tests hold the
    cached and full passes equal. Rows are packed (prompt at
    column 0; see `keras_gae.lm.generate`): causal attention needs no
    padding mask.

    LoRA: `lora_rank` calls keras-hub's
    `causal_lm.backbone.enable_lora(lora_rank, target_layer_names)` and
    freezes every other backbone weight (biases and norms included), so
    only the rank-r adapters (and a value head) train; each adapted layer
    adds `(lora_alpha / lora_rank) * lora_kernel_a @ lora_kernel_b` to its
    kernel (Keras' LoRA layers: Dense, EinsumDense, Embedding).
    `reference_logits` then runs the same network with the adapters off,
    the frozen pretrained model, without a second copy
    (`keras_gae.lm.lora_adapters`).

    Args:
      causal_lm: a keras-hub CausalLM whose `call_with_cache(token_ids,
        cache, cache_update_index)` returns `(logits, hidden_states,
        cache)` (GPT2, Gemma, Llama, Mistral, ...), built with
        `preprocessor=None` or not.
      value_head: "shared" or None.
      critic: optional Keras model for the values (excludes
        `value_head="shared"`).
      lora_rank: optional int >= 1.
      lora_alpha: optional float > 0, the adapters' scale numerator
        (None: `lora_rank`, a scale of 1, Keras' default; PEFT's
        `lora_alpha`). Only with `lora_rank`.
      lora_target_names: optional list of layer names to adapt (None:
        the backbone's `default_lora_layer_names()`, the attention query
        and value projections); a name matching no layer with weights is
        refused. Only with `lora_rank`.
      **kwargs: Model arguments.

    Call arguments:
      tokens: `[B, L]` integer ids.

    Returns:
      `(logits [B, L, V] float32, values [B, L] float32)`.

    Example:

    ```python
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=16, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=64)
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    policy = keras_gae.lm.CausalLMPolicy(causal_lm, value_head="shared")
    out = keras_gae.lm.generate(policy, prompts, max_new_tokens=8)
    ```
    """

    def __init__(
        self,
        causal_lm: keras.Model,
        *,
        value_head: Optional[str] = "shared",
        critic: Optional[keras.layers.Layer] = None,
        lora_rank: Optional[int] = None,
        lora_alpha: Optional[float] = None,
        lora_target_names: Optional[list] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_keras_hub_causal_lm(causal_lm):
            raise TypeError(
                "`causal_lm` must be a keras-hub CausalLM with "
                "`call_with_cache` and a backbone with `transformer_layers`. "
                f"Received: causal_lm={causal_lm!r}"
            )
        self._family = kv_cache.decoder_family(causal_lm)
        self._cache_shape = _keras_hub_cache_shape(causal_lm.backbone)
        if self._family is None and self._cache_shape is None:
            raise TypeError(
                "`causal_lm`'s backbone must give its key/value heads and "
                "head size (`num_key_value_heads` or `num_heads`, and "
                "`head_dim` or `hidden_dim`) to size the decoding cache. "
                f"Received: causal_lm={causal_lm!r}"
            )
        value_head = _checks.check_option(value_head, "value_head", VALUE_HEADS)
        if critic is not None:
            dependencies.check_layer(critic, "critic")
            if value_head == "shared":
                raise ValueError(
                    "Pass either `value_head='shared'` or a `critic`, not "
                    f"both. Received: value_head={value_head!r}, "
                    f"critic={critic!r}"
                )
        if lora_rank is not None:
            lora_rank = _checks.check_positive_int(lora_rank, "lora_rank")
            lora_alpha, lora_target_names = lora_adapters.check_lora_settings(
                causal_lm.backbone, lora_rank, lora_alpha, lora_target_names
            )
            lora_adapters.enable_adapters(
                causal_lm.backbone, lora_rank, lora_alpha, lora_target_names
            )
        elif lora_alpha is not None or lora_target_names is not None:
            raise ValueError(
                "`lora_alpha` and `lora_target_names` need `lora_rank`. "
                f"Received: lora_alpha={lora_alpha!r}, "
                f"lora_target_names={lora_target_names!r}, lora_rank=None"
            )
        self.causal_lm = causal_lm
        self.value_head = value_head
        self.critic = critic
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_target_names = lora_target_names
        self.vocab_size = int(causal_lm.backbone.vocabulary_size)
        self.max_sequence_length = getattr(
            causal_lm.backbone, "max_sequence_length", None
        )
        self.value_dense = None
        if value_head == "shared":
            self.value_dense = keras.layers.Dense(
                1, dtype="float32", name="value_head"
            )
            # Built here: a tf.function (the decoding loop) may not create
            # variables on a later call.
            self.value_dense.build((None, int(causal_lm.backbone.hidden_dim)))
        # Every variable exists now (the causal LM's, its LoRA adapters',
        # the value head's) unless a critic has still to build its own.
        self.built = causal_lm.built and (critic is None or critic.built)

    @property
    def has_values(self) -> bool:
        """Whether the cached loop itself yields values."""
        return self.value_head == "shared"

    def _values(self, hidden_states: tf.Tensor) -> Optional[tf.Tensor]:
        if self.value_dense is None:
            return None
        values = self.value_dense(tf.cast(hidden_states, tf.float32))
        return tf.squeeze(values, axis=-1)

    def seed_cache(self, prompt: Any, width: int) -> Any:
        """The cache of a `width`-column buffer after a pass over the
        prompt columns `prompt [B, P]` only (P <= width)."""
        prompt = tf.convert_to_tensor(prompt)
        batch = tf.shape(prompt)[0]
        dtype = self.causal_lm.compute_dtype
        if self._family is not None:
            cache = kv_cache.empty_cache(self._family, batch, width, dtype)
            _, cache = kv_cache.run(self._family, prompt, cache, 0)
            return cache
        layers, two, heads, head_dim = self._cache_shape
        empty = tf.zeros([batch, layers, two, width, heads, head_dim], dtype)
        _, _, cache = self.causal_lm.call_with_cache(prompt, empty, 0)
        return cache

    def _logits(self, hidden_states: tf.Tensor) -> tf.Tensor:
        logits = self.causal_lm.backbone.token_embedding(
            hidden_states, reverse=True
        )
        cap = getattr(self.causal_lm.backbone, "final_logit_soft_cap", None)
        if cap:
            logits = tf.tanh(logits / cap) * cap
        return tf.cast(logits, tf.float32)

    def _full_pass(self, tokens: Any) -> tuple:
        # keras-hub's embedding fails on an id past the vocabulary on CPU
        # and reads zeros on GPU: refused here, naming it.
        tokens = _input_checks.check_token_ids(
            tf.convert_to_tensor(tokens), self.vocab_size, "tokens"
        )
        hidden_states = self.causal_lm.backbone(
            {"token_ids": tokens, "padding_mask": tf.ones_like(tokens)}
        )
        return self._logits(hidden_states), self._values(hidden_states)

    def call_with_cache(
        self,
        tokens: Any,
        cache: Any,
        index: Any,
    ) -> tuple:
        """`(logits [B, l, V], values [B, l] or None, cache)` for `l` new
        columns starting at `index` (see `keras_gae.lm.kv_cache.run`)."""
        if self._family is not None:
            hidden_states, cache = kv_cache.run(
                self._family, tokens, cache, index
            )
            logits = self._logits(hidden_states)
        else:
            # keras-hub's own step attends over every column.
            logits, hidden_states, cache = self.causal_lm.call_with_cache(
                tokens, cache, index
            )
        return tf.cast(logits, tf.float32), self._values(hidden_states), cache

    def post_hoc_value_function(self) -> Any:
        """The critic, run once on decoded rows (None for a shared head)."""
        return self.critic

    def call(self, tokens: Any, training: Any = None) -> tuple:
        del training  # RL passes run without dropout, as decoding does.
        logits, values = self._full_pass(tokens)
        tokens = tf.convert_to_tensor(tokens)
        if self.critic is not None:
            values = tf.cast(self.critic(tokens), tf.float32)
            if values.shape.rank == 3:
                values = tf.squeeze(values, axis=-1)
        elif values is None:
            values = tf.zeros(tf.shape(tokens), tf.float32)
        return logits, values

    def reference_logits(self, tokens: Any) -> tf.Tensor:
        """`[B, L, V]` logits of the network with LoRA adapters off."""
        with lora_adapters.lora_disabled(self.causal_lm):
            logits, _ = self._full_pass(tokens)
        return tf.stop_gradient(logits)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "causal_lm": networks_lib.serialize(self.causal_lm),
                "value_head": self.value_head,
                "critic": networks_lib.serialize(self.critic),
                "lora_rank": self.lora_rank,
                "lora_alpha": self.lora_alpha,
                "lora_target_names": self.lora_target_names,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> Any:
        config = dict(config)
        for key in ("causal_lm", "critic"):
            config[key] = networks_lib.deserialize(
                config.get(key), custom_objects
            )
        return cls(**config)

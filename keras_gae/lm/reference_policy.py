"""The frozen reference policy of `CausalLMPPOModel`: its log-probs and the
KL coefficient of the reward.

Letters used in shapes: `B` sequences, `L` token positions per row.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.lm import causal_outputs
from keras_gae.lm import lora_adapters


class ReferencePolicy:
    """Mixin of `CausalLMPPOModel`: the reference it measures the KL to.

    The model supplies `reference_network` (None or a frozen network),
    `lora_reference` (the network with its LoRA adapters off is the
    reference), `shared`, `temperature`, `vocab_size`, `reward_kl_coef`
    and `_reference_function` (None until the first call).
    """

    @property
    def has_reference(self) -> bool:
        """Whether there is a reference policy (a network or LoRA off)."""
        return self.reference_network is not None or self.lora_reference

    def _reference_logits(self, tokens: tf.Tensor) -> tf.Tensor:
        if self.reference_network is not None:
            outputs = self.reference_network(tokens, training=False)
            logits, _ = causal_outputs.split_outputs(outputs)
            return logits
        return self.shared.reference_logits(tokens)

    def reference_log_probs(self, tokens: Any) -> tf.Tensor:
        """`[B, L]` log pi_ref(tokens[t] | tokens[:t]), without gradients.

        One compiled pass of the frozen reference network, or of the
        network with its LoRA adapters off, at the model's temperature; 0
        at t = 0. Ids outside [0, vocab_size) are refused (ValueError
        naming `tokens`).
        """
        if not self.has_reference:
            raise ValueError(
                "The model has no `reference_network` (nor LoRA adapters to "
                "turn off). Received: reference_network=None"
            )
        tokens = _input_checks.check_token_ids(
            _tokens.convert_tokens(tokens), self.vocab_size, "tokens"
        )
        return self._reference_log_probs(tokens)

    def _reference_log_probs(self, tokens: tf.Tensor) -> tf.Tensor:
        """`reference_log_probs` of checked token ids (`collect` passes
        `generate`'s rows)."""
        if self._reference_function is None:
            self._reference_function = tf.function(
                lambda tokens: causal_outputs.causal_log_probs(
                    self._reference_logits(tokens),
                    tokens,
                    temperature=self.temperature,
                ),
                reduce_retracing=True,
            )
        if self.lora_reference:
            # Traced with the adapters off; later calls reuse the graph.
            with lora_adapters.lora_disabled(self.shared.causal_lm):
                log_probs = self._reference_function(tokens)
        else:
            log_probs = self._reference_function(tokens)
        return tf.stop_gradient(log_probs)

    def reward_kl_value(self) -> tf.Tensor:
        """The KL reward coefficient beta now: a float32 scalar, 0 without
        `reward_kl_coef`, the controller's current value with one."""
        if self.reward_kl_coef is None:
            return tf.zeros([])
        if isinstance(self.reward_kl_coef, float):
            return tf.constant(self.reward_kl_coef, tf.float32)
        return tf.cast(self.reward_kl_coef.value, tf.float32)

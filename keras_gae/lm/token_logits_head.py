"""The policy head of a language model: its logits at a temperature."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_gae._src.dependencies import tfp
from keras_gae.layers import PolicyHead
from keras_gae.ops import _checks

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_gae")
class TokenLogitsHead(PolicyHead):
    r"""A policy head over a vocabulary whose params are the LM's logits.

        params = logits / temperature,   pi(token | prefix) = softmax(params).

    No weights: the language model's own output layer produces the logits.
    `CausalLMPPOModel` builds one from its `vocab_size` and `temperature`.

    Args:
      vocab_size: V >= 1.
      temperature: tau > 0, the sampling temperature the policy is trained
        at (the one `keras_gae.lm.generate` samples with).
      **kwargs: base Layer arguments.

    Call arguments:
      logits: `[..., V]` float logits.

    Returns:
      float32 params `[..., V]`.

    Example:

    >>> head = TokenLogitsHead(vocab_size=3, temperature=2.0)
    >>> params = head(tf.constant([[2.0, 0.0, -2.0]]))
    >>> params.numpy().tolist()
    [[1.0, 0.0, -1.0]]
    >>> int(head.greedy_action(params)[0])
    0
    """

    def __init__(self, vocab_size: int, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = _checks.check_positive_int(vocab_size, "vocab_size")
        self.temperature = _checks.check_float(
            temperature, "temperature", minimum=0.0, inclusive=False
        )
        # No weights: built as made, so that a model holding it counts as
        # built before its first call (`FitHooks` then builds the
        # optimizer outside the traced train step).
        self.built = True

    @property
    def params_size(self) -> int:
        return self.vocab_size

    def call(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.cast(logits, tf.float32) / self.temperature

    def distribution(self, params: tf.Tensor) -> tfd.Categorical:
        return tfd.Categorical(logits=params, dtype=tf.int32)

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        return tf.argmax(params, axis=-1, output_type=tf.int32)

    def invalid_actions(self, actions: tf.Tensor) -> tf.Tensor:
        """Where token `actions` lie outside [0, vocab_size)."""
        actions = tf.convert_to_tensor(actions)
        return tf.logical_or(actions < 0, actions >= self.vocab_size)

    @property
    def valid_action_range(self) -> str:
        return f"token ids in [0, {self.vocab_size}) (vocab_size)"

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"vocab_size": self.vocab_size, "temperature": self.temperature}
        )
        return config

"""The base of the discrete heads: logits from one Dense layer."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_gae.layers import policy_head

ACTION_DTYPES = ("int32", "int64")


class LogitsPolicyHead(policy_head.PolicyHead):
    """A head whose params are `features @ W + b` and actions integers.

    `CategoricalPolicyHead`, `MultiCategoricalPolicyHead` and
    `BernoulliPolicyHead` share it; each checks its own arguments, passes
    the number of logits (`params_size`) here, builds its distribution
    from them and says its `action_maximum`: actions are integers from 0
    to `action_maximum` in each entry, which `invalid_actions` (what the
    training step counts) and `keras_gae.agents.KerasPolicy` (the
    environment's action spec must span the same) both read.

    Args:
      params_size: the number of logits.
      kernel_initializer: of W; default `Orthogonal(gain=0.01)`, a
        near-uniform start.
      bias_initializer: of b.
      action_dtype: "int32" or "int64", the dtype of the actions.
      **kwargs: base Layer arguments.
    """

    def __init__(
        self,
        params_size: int,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        action_dtype: str = "int32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if action_dtype not in ACTION_DTYPES + (tf.int32, tf.int64):
            raise ValueError(
                '`action_dtype` must be "int32" or "int64". '
                f"Received: action_dtype={action_dtype!r}"
            )
        self.action_dtype = tf.as_dtype(action_dtype).name
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or policy_head.default_kernel_initializer()
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self._params_size = params_size
        self.logits_layer = keras.layers.Dense(
            params_size,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="logits",
        )

    @property
    def params_size(self) -> int:
        return self._params_size

    @property
    def action_maximum(self) -> np.ndarray:
        """The largest action of each entry, int64 shaped like one action."""
        raise NotImplementedError

    def invalid_actions(self, actions: tf.Tensor) -> tf.Tensor:
        """Where `actions` are not integers in [0, action_maximum]."""
        actions = tf.convert_to_tensor(actions)
        maximum = tf.constant(self.action_maximum, actions.dtype)
        outside = tf.logical_or(actions < 0, actions > maximum)
        if actions.dtype.is_integer:
            return outside
        return tf.logical_or(outside, tf.not_equal(actions, tf.round(actions)))

    def build(self, input_shape: Any) -> None:
        self.logits_layer.build(input_shape)
        super().build(input_shape)

    def call(self, features: tf.Tensor) -> tf.Tensor:
        return policy_head.float32_params(self.logits_layer(features))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "action_dtype": self.action_dtype,
            }
        )
        return config

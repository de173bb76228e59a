"""The base of the discrete heads: logits from one Dense layer."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_gae.layers import policy_head

ACTION_DTYPES = ("int32", "int64")


class LogitsPolicyHead(policy_head.PolicyHead):
    """A head whose params are `features @ W + b` and actions integers.

    `CategoricalPolicyHead`, `MultiCategoricalPolicyHead` and
    `BernoulliPolicyHead` share it; each checks its own arguments, passes
    the number of logits (`params_size`) here and builds its distribution
    from them.

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

"""MultiBinary actions: one Bernoulli per action bit."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_gae.layers import policy_head
from keras_gae.layers.logits_policy_head import LogitsPolicyHead
from keras_gae.ops import _checks

tfd = policy_head.tfd


@keras.saving.register_keras_serializable(package="keras_gae")
class BernoulliPolicyHead(LogitsPolicyHead):
    r"""`num_bits` independent binary actions (gymnasium `MultiBinary(n)`).

        params = logits = features @ W + b,  p_i = sigmoid(logits_i),
        log pi(a | s) = sum_i [a_i log p_i + (1 - a_i) log(1 - p_i)],
        H = sum_i H(Bernoulli(p_i)).

    `distribution(params)` is `Independent(Bernoulli(logits), 1)`, batch
    shape `params.shape[:-1]`, event shape `[num_bits]`; actions are 0/1
    integers `[..., num_bits]`; `greedy_action` is `logits > 0`.

    Args:
      num_bits: number of binary actions, >= 1.
      kernel_initializer: of W; default `Orthogonal(gain=0.01)`.
      bias_initializer: of b.
      action_dtype: "int32" or "int64".
      **kwargs: base Layer arguments.

    Example:

    ```python
    import keras
    import numpy as np
    import keras_gae

    head = keras_gae.layers.BernoulliPolicyHead(3)
    actor = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), head]
    )
    logits = actor(np.zeros((2, 8), "float32"))  # [2, 3]
    action = head.distribution(logits).sample()  # [2, 3] of 0/1
    head.distribution(logits).log_prob(action)  # [2]
    ```
    """

    def __init__(
        self,
        num_bits: int,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        action_dtype: str = "int32",
        **kwargs,
    ):
        num_bits = _checks.check_positive_int(num_bits, "num_bits")
        super().__init__(
            num_bits,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            action_dtype=action_dtype,
            **kwargs,
        )
        self.num_bits = num_bits

    @property
    def action_maximum(self) -> np.ndarray:
        """The largest action of each bit, 1: actions are 0 or 1."""
        return np.ones([self.num_bits], np.int64)

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        params = policy_head.check_params(params, self.params_size)
        return tfd.Independent(
            tfd.Bernoulli(logits=params, dtype=self.action_dtype),
            reinterpreted_batch_ndims=1,
        )

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        params = policy_head.check_params(params, self.params_size)
        return tf.cast(params > 0, self.action_dtype)

    @property
    def valid_action_range(self) -> str:
        return f"0 or 1 in each of the {self.num_bits} bits (num_bits)"

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"num_bits": self.num_bits})
        return config

"""Discrete actions: logits and a Categorical distribution."""

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
class CategoricalPolicyHead(LogitsPolicyHead):
    r"""Discrete actions: a Dense layer to logits, a Categorical distribution.

        params = logits = features @ W + b,   pi(a | s) = softmax(logits)_a.

    Args:
      num_actions: number of discrete actions, >= 1.
      kernel_initializer: initializer of W; default
        `Orthogonal(gain=0.01)` (near-uniform initial policy).
      bias_initializer: initializer of b.
      action_dtype: integer dtype of actions, "int32" or "int64" (gymnasium
        `Discrete` spaces use int64).
      **kwargs: base Layer arguments.

    Call arguments:
      features: `[..., F]` float features.

    Returns:
      logits `[..., num_actions]`. `distribution(params)` is
      `tfd.Categorical(logits=params)` with batch shape `[...]` and event
      shape `[]`; `greedy_action(params)` the argmax. Actions are
      integers 0 .. `action_maximum` (= num_actions - 1).

    Raises:
      ValueError: num_actions < 1, unknown action_dtype.
      TypeError: non-int num_actions.

    Example:

    ```python
    import keras
    import numpy as np
    import keras_gae

    head = keras_gae.layers.CategoricalPolicyHead(4)
    actor = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), head]
    )
    logits = actor(np.zeros((2, 8), "float32"))  # [2, 4]
    action = head.distribution(logits).sample()  # [2] int32
    greedy = head.greedy_action(logits)  # [2] int32
    ```
    """

    def __init__(
        self,
        num_actions: int,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        action_dtype: str = "int32",
        **kwargs,
    ):
        num_actions = _checks.check_positive_int(num_actions, "num_actions")
        super().__init__(
            num_actions,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            action_dtype=action_dtype,
            **kwargs,
        )
        self.num_actions = num_actions

    @property
    def action_maximum(self) -> np.ndarray:
        """The largest action, num_actions - 1 (a scalar: one action)."""
        return np.asarray(self.num_actions - 1, np.int64)

    def distribution(self, params: tf.Tensor) -> tfd.Categorical:
        params = policy_head.check_params(params, self.params_size)
        return tfd.Categorical(logits=params, dtype=self.action_dtype)

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        params = policy_head.check_params(params, self.params_size)
        return tf.argmax(params, axis=-1, output_type=self.action_dtype)

    @property
    def valid_action_range(self) -> str:
        return f"integers in [0, {self.num_actions}) (num_actions)"

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"num_actions": self.num_actions})
        return config

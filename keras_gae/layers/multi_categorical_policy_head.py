"""MultiDiscrete actions: one Categorical per action dimension."""

from __future__ import annotations

from typing import Any
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gae.layers import policy_head
from keras_gae.layers.logits_policy_head import LogitsPolicyHead
from keras_gae.ops import _checks

tfd = policy_head.tfd

# Logit of the padding classes: exp(-1e9 - max) is exactly 0 in float32, so
# padded classes get probability 0 and add 0 * finite = 0 to the entropy.
_PAD_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="keras_gae")
class MultiCategoricalPolicyHead(LogitsPolicyHead):
    r"""D independent discrete actions (gymnasium `MultiDiscrete(nvec)`).

        params = features @ W + b,  split into logits_d of size nvec[d],
        pi(a | s) = prod_d softmax(logits_d)_{a_d},
        log pi(a | s) = sum_d log softmax(logits_d)_{a_d},
        H = sum_d H(softmax(logits_d)).

    `distribution(params)` is `Independent(Categorical(logits), 1)` over
    `[..., D, max(nvec)]` logits, each row padded with -1e9 (probability
    exactly 0) past its nvec[d]; its batch shape is `params.shape[:-1]`,
    its event shape `[D]`. Actions are `[..., D]` integers, a_d in
    `0 .. nvec[d] - 1`; `greedy_action` takes each dimension's argmax.

    Args:
      nvec: sizes of the D action dimensions, each >= 1 (a list, or a 1-D
        array as in `MultiDiscrete(nvec)`).
      kernel_initializer: of W; default `Orthogonal(gain=0.01)`.
      bias_initializer: of b.
      action_dtype: "int32" or "int64".
      **kwargs: base Layer arguments.

    Raises:
      ValueError: empty nvec, an entry < 1, unknown action_dtype.
      TypeError: non-int entries.

    Example:

    ```python
    import keras
    import numpy as np
    import keras_gae

    head = keras_gae.layers.MultiCategoricalPolicyHead([3, 2])
    actor = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), head]
    )
    params = actor(np.zeros((2, 8), "float32"))  # [2, 5]: 3 + 2 logits
    action = head.distribution(params).sample()  # [2, 2] int32
    head.distribution(params).log_prob(action)  # [2]
    ```
    """

    def __init__(
        self,
        nvec: Sequence[int],
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        action_dtype: str = "int32",
        **kwargs,
    ):
        values = np.asarray(nvec)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(
                "`nvec` must be a non-empty 1-D list of action counts. "
                f"Received: nvec={nvec!r}"
            )
        checked = [
            _checks.check_positive_int(
                int(n) if isinstance(n, np.integer) else n, "nvec"
            )
            for n in values.tolist()
        ]
        super().__init__(
            sum(checked),
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            action_dtype=action_dtype,
            **kwargs,
        )
        self.nvec = checked

    @property
    def action_maximum(self) -> np.ndarray:
        """The largest action of each dimension, nvec - 1."""
        return np.asarray(self.nvec, np.int64) - 1

    def padded_logits(self, params: tf.Tensor) -> tf.Tensor:
        """`[..., D, max(nvec)]` logits, padding classes at -1e9."""
        params = policy_head.check_params(params, self.params_size)
        width = max(self.nvec)
        rows = []
        for logits in tf.split(params, self.nvec, axis=-1):
            pad = width - logits.shape[-1]
            if pad:
                filler = tf.fill(
                    tf.concat([tf.shape(logits)[:-1], [pad]], 0),
                    tf.constant(_PAD_LOGIT, logits.dtype),
                )
                logits = tf.concat([logits, filler], axis=-1)
            rows.append(logits)
        return tf.stack(rows, axis=-2)

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        return tfd.Independent(
            tfd.Categorical(
                logits=self.padded_logits(params), dtype=self.action_dtype
            ),
            reinterpreted_batch_ndims=1,
        )

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        return tf.argmax(
            self.padded_logits(params), axis=-1, output_type=self.action_dtype
        )

    @property
    def valid_action_range(self) -> str:
        return f"integers in [0, nvec[d]) for nvec={list(self.nvec)}"

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"nvec": list(self.nvec)})
        return config

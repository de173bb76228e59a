"""`ObservationNormalization`: features scaled by running moments.

The layer keeps its statistics as non-trainable weights, so they are part
of the model: checkpointed with it, saved with `save_weights`, and
exported with it (the SavedModel then takes raw observations). It
normalizes

    y = clip((x - mean) / sqrt(var + epsilon), -clip, clip),

with the moments of all rows seen so far, updated by `update(x)` with
keras_gae's one parallel-moments rule (`keras_gae._src.running_moments`,
Chan, Golub and LeVeque 1979). Before the first update it is the identity
(mean 0, var 1). `RolloutCollector` updates every
`ObservationNormalization` inside the model from the previous rollout's
observations at the start of each collection, so each rollout is
collected and trained under the same statistics (the recorded
log-probabilities stay those of the policy being trained).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_gae._src import running_moments
from keras_gae.ops import _checks


@keras.saving.register_keras_serializable(package="keras_gae")
class ObservationNormalization(keras.layers.Layer):
    """Normalizes features `[..., D]` by running mean and variance.

    Args:
      epsilon: added to the variance, > 0.
      clip: normalized values are clipped to [-clip, clip], > 0.
      **kwargs: base Layer arguments.
    """

    def __init__(self, epsilon: float = 1e-8, clip: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _checks.check_float(
            epsilon, "epsilon", minimum=0.0, inclusive=False
        )
        self.clip = _checks.check_float(
            clip, "clip", minimum=0.0, inclusive=False
        )

    def build(self, input_shape: Any) -> None:
        size = input_shape[-1]
        if size is None:
            raise ValueError(
                "ObservationNormalization needs a known last dimension. "
                f"Received: input_shape={input_shape}"
            )
        self.mean = self.add_weight(
            shape=(size,), initializer="zeros", trainable=False, name="mean"
        )
        self.variance = self.add_weight(
            shape=(size,), initializer="ones", trainable=False, name="variance"
        )
        self.count = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="count"
        )
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        inputs = keras.ops.cast(inputs, "float32")
        scale = keras.ops.rsqrt(self.variance + self.epsilon)
        return keras.ops.clip(
            (inputs - self.mean) * scale, -self.clip, self.clip
        )

    def update_statistics(self, inputs: Any) -> None:
        """`update` for `RolloutCollector`: the layer's own inputs."""
        self.update(inputs)

    def update(self, inputs: Any) -> None:
        """Adds the rows of `inputs` `[..., D]` to the running moments.

        Raises:
          ValueError: `inputs` whose last dimension is not D.
          tf.errors.InvalidArgumentError: `inputs` holding NaN or Inf; the
            statistics keep their values (one such row would make them,
            and every later output, NaN for good).
        """
        size = self.mean.shape[0]
        x = tf.cast(inputs, tf.float32)
        if x.shape.rank is not None and x.shape[-1] not in (None, size):
            raise ValueError(
                f"ObservationNormalization.update: `inputs` must end in the "
                f"layer's {size} features. Received: inputs.shape={x.shape}"
            )
        x = tf.debugging.check_numerics(
            tf.reshape(x, [-1, size]),
            "ObservationNormalization.update: `inputs` holds NaN or Inf; the "
            "statistics were not updated",
        )
        running_moments.absorb_rows((self.count, self.mean, self.variance), x)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(epsilon=self.epsilon, clip=self.clip)
        return config

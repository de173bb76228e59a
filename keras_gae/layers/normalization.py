"""Masked advantage normalization, combined across tf.distribute replicas."""

from __future__ import annotations

from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae.layers import _precision
from keras_gae.ops import _checks
from keras_gae.ops import masked


@keras.saving.register_keras_serializable(package="keras_gae")
class AdvantageNormalization(keras.layers.Layer):
    r"""Normalizes advantages by their mean and standard deviation.

    Over the N valid elements x_i of a batch (all elements, or those where
    `mask` is set),

        mean = sum_i x_i / N,   var = sum_i (x_i - mean)^2 / N,
        center=True:   y = (x - mean) / sqrt(var + epsilon)
        center=False:  y = x / sqrt(var + epsilon)

    (`center=False` keeps each advantage's sign; var is still the variance
    about the mean.) Masked elements come out as 0 and never enter the
    statistics, even when they hold NaN or Inf. A batch with no valid element
    has mean 0 and var 0. The statistics are those of
    `keras_gae.ops.masked_moments` (two passes: the mean, then the centred
    squares).

    Replicas: inside a tf.distribute replica context with more than one
    replica (`strategy.run`, or `Model.fit` under a strategy), the statistics
    cover the global batch: each pass of `masked_moments(...,
    across_replicas=True)` combines the replicas' sums and counts with one
    `ReplicaContext.all_reduce(SUM)`. In the default or a cross-replica
    context they are local.

    Running statistics (`momentum` not None): the layer keeps three
    non-trainable scalar weights, "mean", "variance" and "count" (the number
    of updates so far). A call with `training=True` whose batch has N > 0
    valid elements, all finite, updates them from that batch's (global)
    mean and var (a batch with a NaN or Inf advantage leaves them as they
    are; its own output is not finite):

        count == 0:  mean <- batch mean,  variance <- batch var
        count > 0:   mean <- momentum * mean + (1 - momentum) * batch mean
                     variance <- momentum * variance + (1 - momentum) * var
        count <- count + 1

    (`variance` tracks the within-batch variance, as Keras
    BatchNormalization does; the spread of the batch means is not added.)
    Every call with count > 0, training or not, normalizes with the running
    "mean" and "variance" after that call's update; while count == 0 it
    normalizes with the batch statistics. `training=None` counts as False
    unless an enclosing call (e.g. `Model.fit`) sets it. Under a strategy
    every replica computes the same all-reduced update, so the weights are
    mirrored variables written from the first replica
    (`aggregation="only_first_replica"`).

    Precision: the layer's dtype is float32 unless `dtype` is given, so under
    a mixed-precision policy sums of squares are not formed in half
    precision; half-precision dtypes are rejected.

    Call arguments:
      advantages: float tensor of any shape, e.g. `[B, T]`.
      mask: optional bool-like tensor broadcastable to `advantages`; false
        marks padding. A Keras mask carried by `advantages` is used when no
        `mask` is passed, and the mask is propagated to the output.
      training: Python bool, bool tensor or None; see running statistics.

    Returns:
      The normalized advantages, shaped like `advantages`, in the layer's
      dtype.

    Args:
      epsilon: float > 0 added to the variance.
      center: whether to subtract the mean.
      momentum: None (per-batch statistics) or a float in [0, 1) enabling the
        running statistics above.
      **kwargs: base Layer arguments (`name`, `dtype`, ...).

    Raises:
      ValueError: epsilon <= 0, momentum outside [0, 1), a half-precision
        `dtype`; at the call, a mask that does not broadcast.
      TypeError: non-bool `center`, non-float epsilon or momentum; at the
        call, non-float advantages or a non-bool-like mask.

    Example:

    ```python
    import numpy as np
    import keras_gae

    normalize = keras_gae.layers.AdvantageNormalization()
    advantages = np.array([[1.0, 3.0, 100.0]], "float32")
    normalize(advantages, mask=np.array([[True, True, False]]))
    # [[-1.0, 1.0, 0.0]]: the masked 100 is left out of the statistics.
    ```
    """

    def __init__(
        self,
        epsilon: float = 1e-8,
        center: bool = True,
        momentum: Optional[float] = None,
        **kwargs,
    ):
        epsilon = _checks.check_float(
            epsilon, "epsilon", minimum=0.0, inclusive=False
        )
        _checks.check_bool(center, "center")
        momentum = _checks.check_float(
            momentum, "momentum", minimum=0.0, allow_none=True
        )
        if momentum is not None and not momentum < 1.0:
            raise ValueError(
                "`momentum` must be None or lie in [0, 1). "
                f"Received: momentum={momentum!r}"
            )
        super().__init__(**_precision.float32_by_default(kwargs))
        _precision.check_not_half(self, "a sum of squares")
        self.epsilon = epsilon
        self.center = center
        self.momentum = momentum
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        if self.momentum is not None:

            def statistic(name, initializer):
                return self.add_weight(
                    name=name,
                    shape=(),
                    initializer=initializer,
                    trainable=False,
                    autocast=False,
                    aggregation="only_first_replica",
                )

            self.moving_mean = statistic("mean", "zeros")
            self.moving_variance = statistic("variance", "ones")
            self.count = statistic("count", "zeros")

    def _running_moments(
        self,
        mean: tf.Tensor,
        variance: tf.Tensor,
        any_valid: tf.Tensor,
        training: Any,
    ) -> tuple:
        if training is not None and training is not False:
            # A batch with a NaN or Inf advantage would poison the running
            # statistics for good; it is left out of them.
            update = tf.logical_and(
                any_valid,
                tf.logical_and(
                    tf.math.is_finite(mean), tf.math.is_finite(variance)
                ),
            )
            if training is not True:
                update = tf.logical_and(update, tf.cast(training, tf.bool))
            initialized = self.count > 0
            momentum = tf.constant(self.momentum, self.compute_dtype)

            def average(moving, batch):
                moving = tf.convert_to_tensor(moving)
                blended = momentum * moving + (1.0 - momentum) * batch
                new = tf.where(initialized, blended, batch)
                return tf.where(update, new, moving)

            new_mean = average(self.moving_mean, mean)
            new_variance = average(self.moving_variance, variance)
            self.moving_mean.assign(new_mean)
            self.moving_variance.assign(new_variance)
            self.count.assign_add(tf.cast(update, self.compute_dtype))
        use_running = self.count > 0
        mean = tf.where(use_running, self.moving_mean, mean)
        variance = tf.where(use_running, self.moving_variance, variance)
        return mean, variance

    def call(
        self,
        advantages: tf.Tensor,
        mask: Optional[Any] = None,
        training: Optional[Any] = None,
    ) -> tf.Tensor:
        if not advantages.dtype.is_floating:
            raise TypeError(
                "`advantages` must be a floating-point tensor, got dtype "
                f"{advantages.dtype.name}. "
                f"Received: advantages={_checks.describe(advantages)}"
            )
        if mask is not None:
            mask = _checks.convert_mask(mask, advantages, "advantages")
        if self.momentum is None:
            mean, variance = masked.masked_moments(
                advantages, mask, across_replicas=True
            )
        else:
            # The mean of ones over the valid elements is 1 when the global
            # batch has any (0 otherwise): whether to update, in the same
            # all-reduces as the statistics.
            (mean, variance), (any_valid, _) = masked.joint_masked_moments(
                [advantages, tf.ones_like(advantages)],
                mask,
                across_replicas=True,
            )
            mean, variance = self._running_moments(
                mean, variance, any_valid > 0, training
            )
        if self.center:
            advantages = advantages - mean
        normalized = advantages * tf.math.rsqrt(variance + self.epsilon)
        if mask is None:
            return normalized
        mask = tf.broadcast_to(mask, tf.shape(normalized))
        return tf.where(mask, normalized, tf.zeros_like(normalized))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return None
        return _checks.convert_flag(mask, "mask")

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "center": self.center,
                "momentum": self.momentum,
            }
        )
        return config

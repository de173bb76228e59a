"""Keras `Loss` classes around the policy, value, entropy and KL losses.

Each class is a thin wrapper of a function in `keras_gae.ops.policy_losses`
for use in `model.compile(loss=...)`. Keras calls a loss as
`loss(y_true, y_pred, sample_weight)`; here:

  * `y_pred` is the model output the loss differentiates (new log-probs,
    values, entropy), any per-step shape such as `[B, T]` or `[B]`.
  * `y_true` carries the data recorded at collection. Where a loss needs two
    such tensors, they are stacked on a new last axis:
    `y_true.shape == y_pred.shape + (2,)`, in the order each class documents
    (a single-output Keras model cannot take a dict as its target).
  * `sample_weight` is the mask: steps with weight 0 are left out, every
    nonzero weight counts as 1. Its axes line up with `y_pred`'s leading
    axes and broadcast over the rest, so a `[B]` weight masks whole rows of
    a `[B, T]` output. Losses are means over valid steps, not weighted
    means, exactly as the functions compute.

The result is always that scalar mean, so these classes take no `reduction`:
`fit` divides it by the number of replicas under a `tf.distribute` strategy,
as it does for Keras' own mean losses. The clipping diagnostics
(`clip_fraction`, `approx_kl`) are not returned by a Keras loss; call the
functions for them.

Under a mixed-precision policy Keras casts `y_true` to `y_pred`'s dtype:
make the layer that outputs log-probs or values float32.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

import numpy as np
import tensorflow as tf

from keras_gae.ops import policy_losses


def _float_option(value: Any, name: str, optional: bool = False):
    """A Python float for the config (None allowed where `optional`)."""
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"`{name}` must be a Python float (it is saved in the loss "
            "config); for a schedule held in a tf.Variable call the function "
            "in keras_gae.ops instead. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def _unstack(
    y_true: tf.Tensor, y_pred: tf.Tensor, names: Sequence[str]
) -> list:
    """Splits `y_true` into per-step tensors shaped like `y_pred`."""
    size = len(names)
    expected = y_pred.shape.concatenate([size])
    if not y_true.shape.is_compatible_with(expected):
        raise ValueError(
            f"`y_true` must stack ({', '.join(names)}) on a new last axis: "
            f"shape y_pred.shape + ({size},) = {tuple(expected)}, got "
            f"{tuple(y_true.shape)}. Received: y_true=<tensor shape="
            f"{tuple(y_true.shape)} dtype={y_true.dtype.name}>"
        )
    return tf.unstack(y_true, num=size, axis=-1)


def _mask(sample_weight: Any, y_pred: tf.Tensor) -> Optional[tf.Tensor]:
    if sample_weight is None:
        return None
    sample_weight = tf.convert_to_tensor(sample_weight)
    if sample_weight.shape.rank is not None and y_pred.shape.rank is not None:
        # Keras aligns weights with the leading (batch) axes: a [B] weight
        # covers every step of its row.
        for _ in range(y_pred.shape.rank - sample_weight.shape.rank):
            sample_weight = sample_weight[..., tf.newaxis]
    try:
        shape = tf.broadcast_static_shape(sample_weight.shape, y_pred.shape)
    except ValueError:
        shape = None
    if shape is None or not shape.is_compatible_with(y_pred.shape):
        raise ValueError(
            "`sample_weight` (the mask of valid steps) must broadcast to "
            f"y_pred's shape {tuple(y_pred.shape)}. Received: sample_weight="
            f"<tensor shape={tuple(sample_weight.shape)}>"
        )
    return tf.broadcast_to(sample_weight, tf.shape(y_pred))


class _MaskedMeanLoss(tf.keras.losses.Loss):
    """Base: `sample_weight` is a mask and the result a masked mean.

    Subclasses implement `call(y_true, y_pred, mask=None)` with the tensors
    converted and `sample_weight` turned into a mask shaped like `y_pred`.
    """

    def __init__(self, name: Optional[str]):
        super().__init__(reduction=tf.keras.losses.Reduction.AUTO, name=name)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self._name_scope):
            y_pred = tf.convert_to_tensor(y_pred)
            y_true = tf.convert_to_tensor(y_true)
            return self.call(y_true, y_pred, mask=_mask(sample_weight, y_pred))

    def get_config(self) -> dict:
        config = super().get_config()
        # Always a masked mean over valid steps: not a choice to restore.
        config.pop("reduction")
        return config


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class PPOClipLoss(_MaskedMeanLoss):
    """PPO's clipped surrogate loss; see `keras_gae.ops.ppo_clip_loss`.

    Packing:
      y_true: `y_pred.shape + (2,)`: advantages and old log-probs stacked on
        the last axis, `tf.stack([advantages, old_log_probs], axis=-1)`.
      y_pred: log pi(a_t | s_t) under the current policy, e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      clip_ratio: eps >= 0 for the bounds not given below.
      clip_ratio_low: eps_low >= 0 or None (`clip_ratio`).
      clip_ratio_high: eps_high >= 0 or None (`clip_ratio`).
      dual_clip: c > 1 (Ye et al. 2020) or None.
      name: the loss name.
    """

    def __init__(
        self,
        clip_ratio: float = 0.2,
        clip_ratio_low: Optional[float] = None,
        clip_ratio_high: Optional[float] = None,
        dual_clip: Optional[float] = None,
        name: str = "ppo_clip_loss",
    ):
        super().__init__(name=name)
        self.clip_ratio = _float_option(clip_ratio, "clip_ratio")
        self.clip_ratio_low = _float_option(
            clip_ratio_low, "clip_ratio_low", optional=True
        )
        self.clip_ratio_high = _float_option(
            clip_ratio_high, "clip_ratio_high", optional=True
        )
        self.dual_clip = _float_option(dual_clip, "dual_clip", optional=True)
        # Fail here, with the function's own messages, not in the first step.
        self.call(tf.zeros([1, 2]), tf.zeros([1]))

    def call(self, y_true, y_pred, mask=None):
        advantages, old_log_probs = _unstack(
            y_true, y_pred, ("advantages", "old_log_probs")
        )
        return policy_losses.ppo_clip_loss(
            y_pred,
            old_log_probs,
            advantages,
            clip_ratio=self.clip_ratio,
            clip_ratio_low=self.clip_ratio_low,
            clip_ratio_high=self.clip_ratio_high,
            dual_clip=self.dual_clip,
            mask=mask,
        ).loss

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            clip_ratio=self.clip_ratio,
            clip_ratio_low=self.clip_ratio_low,
            clip_ratio_high=self.clip_ratio_high,
            dual_clip=self.dual_clip,
        )
        return config


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class PolicyGradientLoss(_MaskedMeanLoss):
    """-mean(log pi * A); see `keras_gae.ops.policy_gradient_loss`.

    Packing:
      y_true: the advantages, shaped like `y_pred`.
      y_pred: log pi(a_t | s_t), e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      name: the loss name.
    """

    def __init__(self, name: str = "policy_gradient_loss"):
        super().__init__(name=name)

    def call(self, y_true, y_pred, mask=None):
        return policy_losses.policy_gradient_loss(y_pred, y_true, mask=mask)


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class ValueLoss(_MaskedMeanLoss):
    """The critic's (clipped) regression loss; see `keras_gae.ops.value_loss`.

    Packing:
      y_true: the returns shaped like `y_pred`, or, needed with `clip_range`,
        `y_pred.shape + (2,)`: returns and old values stacked on the last
        axis, `tf.stack([returns, old_values], axis=-1)`.
      y_pred: the critic's values V(s_t), e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      clip_range: c >= 0 or None for no value clipping.
      clip_mode: "max" (PPO2's max of clipped and unclipped losses) or
        "clamp" (the clipped prediction's loss only).
      loss_type: "squared" (0.5 * e^2) or "huber".
      huber_delta: delta > 0 for the Huber loss.
      name: the loss name.
    """

    def __init__(
        self,
        clip_range: Optional[float] = None,
        clip_mode: str = "max",
        loss_type: str = "squared",
        huber_delta: float = 1.0,
        name: str = "value_loss",
    ):
        super().__init__(name=name)
        self.clip_range = _float_option(clip_range, "clip_range", optional=True)
        self.clip_mode = clip_mode
        self.loss_type = loss_type
        self.huber_delta = _float_option(huber_delta, "huber_delta")
        self.call(tf.zeros([1, 2]), tf.zeros([1]))

    def call(self, y_true, y_pred, mask=None):
        if y_true.shape.rank == y_pred.shape.rank:
            if self.clip_range is not None:
                raise ValueError(
                    "`y_true` must stack (returns, old_values) on a new last "
                    "axis when `clip_range` is set: shape y_pred.shape + (2,) "
                    f"= {tuple(y_pred.shape.concatenate([2]))}, got "
                    f"{tuple(y_true.shape)}. Received: y_true=<tensor shape="
                    f"{tuple(y_true.shape)} dtype={y_true.dtype.name}>"
                )
            returns, old_values = y_true, None
        else:
            returns, old_values = _unstack(
                y_true, y_pred, ("returns", "old_values")
            )
        return policy_losses.value_loss(
            y_pred,
            returns,
            old_values=old_values,
            clip_range=self.clip_range,
            clip_mode=self.clip_mode,
            loss_type=self.loss_type,
            huber_delta=self.huber_delta,
            mask=mask,
        ).loss

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            clip_range=self.clip_range,
            clip_mode=self.clip_mode,
            loss_type=self.loss_type,
            huber_delta=self.huber_delta,
        )
        return config


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class EntropyLoss(_MaskedMeanLoss):
    """-mean(entropy), an entropy bonus; see `keras_gae.ops.entropy_loss`.

    Packing:
      y_true: ignored. Keras applies a loss only to outputs that have a
        target, so pass any tensor, e.g. zeros shaped like `y_pred`.
      y_pred: the policy's per-step entropy, e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Weight it with `loss_weights` in `compile` (the entropy coefficient).

    Args:
      name: the loss name.
    """

    def __init__(self, name: str = "entropy_loss"):
        super().__init__(name=name)

    def call(self, y_true, y_pred, mask=None):
        del y_true  # The entropy needs no target.
        return policy_losses.entropy_loss(y_pred, mask=mask)


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class KLPenaltyLoss(_MaskedMeanLoss):
    """KL(pi || pi_ref) penalty; see `keras_gae.ops.kl_penalty_loss`.

    Packing:
      y_true: the reference policy's log pi_ref(a_t | s_t), shaped like
        `y_pred`.
      y_pred: log pi(a_t | s_t) of actions sampled from pi, e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      estimator: "k1", "k2" or "k3", see
        `keras_gae.ops.kl_divergence_estimate`.
      name: the loss name.
    """

    def __init__(self, estimator: str = "k3", name: str = "kl_penalty_loss"):
        super().__init__(name=name)
        self.estimator = estimator
        self.call(tf.zeros([1]), tf.zeros([1]))

    def call(self, y_true, y_pred, mask=None):
        return policy_losses.kl_penalty_loss(
            y_pred, y_true, estimator=self.estimator, mask=mask
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(estimator=self.estimator)
        return config

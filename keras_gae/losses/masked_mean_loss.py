"""The wrapper that makes a masked-mean loss function a Keras `Loss`.

Keras' own `LossFunctionWrapper` (keras/src/losses/losses.py) holds a
function and its keyword arguments and serializes those arguments, so each
loss class only names them. `MaskedMeanLossWrapper` does the same for the
keras_gae losses, whose `sample_weight` is a mask of valid steps and whose
result is already the mean over them (see `keras_gae.losses.loss_classes`).
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional
from typing import Sequence

import keras
import tensorflow as tf

from keras_gae.ops import _checks


def check_hyperparameter(
    value: Any, name: str, **bounds: Any
) -> Optional[float]:
    """A Python float for the config (see `_checks.check_float`)."""
    if isinstance(value, (tf.Tensor, tf.Variable, keras.Variable)):
        raise TypeError(
            f"`{name}` must be a Python float (it is saved in the loss "
            "config); for a schedule held in a variable call the function "
            f"in keras_gae.ops instead. Received: {name}={value!r}"
        )
    return _checks.check_float(value, name, **bounds)


def unstack_targets(
    y_true: tf.Tensor, y_pred: tf.Tensor, names: Sequence[str]
) -> list:
    """Splits `y_true` into per-step tensors shaped like `y_pred`."""
    size = len(names)
    expected = y_pred.shape.concatenate([size])
    if not y_true.shape.is_compatible_with(expected):
        raise ValueError(
            f"`y_true` must stack ({', '.join(names)}) on a new last axis: "
            f"shape y_pred.shape + ({size},) = {tuple(expected)}, got "
            f"{tuple(y_true.shape)}. "
            f"Received: y_true={_checks.describe(y_true)}"
        )
    return tf.unstack(y_true, num=size, axis=-1)


def _mask(sample_weight: Any, y_pred: tf.Tensor) -> Optional[tf.Tensor]:
    """`sample_weight` broadcast to `y_pred`'s shape, aligned on the left."""
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
            f"y_pred's shape {tuple(y_pred.shape)}. "
            f"Received: sample_weight={_checks.describe(sample_weight)}"
        )
    # Keras callers pass weights: any nonzero weight marks a valid step
    # (the ops refuse masks other than 0/1, which catch weights by mistake).
    if not sample_weight.dtype.is_bool:
        sample_weight = tf.not_equal(
            sample_weight, tf.zeros([], sample_weight.dtype)
        )
    return tf.broadcast_to(sample_weight, tf.shape(y_pred))


def _nan_unless_finite(
    loss: tf.Tensor, sample_weight: tf.Tensor, check_numerics: bool
) -> tf.Tensor:
    """NaN if a weight is NaN or Inf (neither left out nor a plain step).

    With `check_numerics`, an InvalidArgumentError naming `sample_weight`.
    """
    if check_numerics:
        sample_weight = tf.debugging.check_numerics(
            sample_weight, "`sample_weight` holds NaN or Inf."
        )
    finite = tf.reduce_all(tf.math.is_finite(sample_weight))
    return tf.where(finite, loss, tf.constant(float("nan"), loss.dtype))


def _scale_for_replicas(loss: tf.Tensor) -> tf.Tensor:
    """`loss / num_replicas_in_sync`, as Keras 3 scales its mean losses."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas == 1:
        return loss
    return loss * tf.cast(1.0 / replicas, loss.dtype)


class MaskedMeanLossWrapper(keras.losses.Loss):
    """A function as a Keras loss whose `sample_weight` is a mask.

    Keras' `LossFunctionWrapper` with a masked mean in place of the
    reduction: `fn(y_true, y_pred, mask=mask, **kwargs)` returns the scalar
    mean over valid steps, and `get_config` serializes `kwargs` (the
    function is fixed by each subclass, so it is not saved).

    Args:
      fn: `fn(y_true, y_pred, mask=None, **kwargs)` returning a scalar.
      name: the loss name.
      **kwargs: `fn`'s keyword arguments, saved in the config.
    """

    def __init__(self, fn: Callable, name: Optional[str] = None, **kwargs):
        super().__init__(name=name)
        if "check_numerics" in kwargs:
            kwargs["check_numerics"] = _checks.check_bool(
                kwargs["check_numerics"], "check_numerics"
            )
        self.fn = fn
        self._fn_kwargs = kwargs

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            y_pred = tf.convert_to_tensor(y_pred)
            y_true = tf.convert_to_tensor(y_true)
            if sample_weight is not None:
                sample_weight = tf.convert_to_tensor(sample_weight)
            loss = self.fn(
                y_true,
                y_pred,
                mask=_mask(sample_weight, y_pred),
                **self._fn_kwargs,
            )
            if sample_weight is not None and sample_weight.dtype.is_floating:
                loss = _nan_unless_finite(
                    loss,
                    sample_weight,
                    self._fn_kwargs.get("check_numerics", False),
                )
            return _scale_for_replicas(loss)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        # Always a masked mean over valid steps: no `reduction` to restore.
        config = {"name": self.name}
        config.update(keras.saving.serialize_keras_object(self._fn_kwargs))
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**keras.saving.deserialize_keras_object(config))

"""The critic's regression loss, with optional PPO-style value clipping.

Inputs follow the conventions of `keras_gae.ops.policy_losses`: per-step
tensors of one shape, an optional bool-like `mask`, masked means, float32
results (float64 for float64 inputs), stop_gradient'ed targets.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import _loss_inputs
from keras_gae.ops import masked

VALUE_CLIP_MODES = ("max", "clamp")
VALUE_LOSS_TYPES = ("squared", "huber")


class ValueLossOutputs(NamedTuple):
    """What `value_loss` returns; every field is a scalar.

    Attributes:
      loss: the (clipped) value regression loss to minimize.
      clip_fraction: fraction of valid steps whose gradient the clip cuts
        (0 without value clipping).
    """

    loss: tf.Tensor
    clip_fraction: tf.Tensor


def _regression_loss(
    errors: tf.Tensor, loss_type: str, huber_delta: tf.Tensor
) -> tf.Tensor:
    if loss_type == "squared":
        return 0.5 * tf.square(errors)
    absolute = tf.abs(errors)
    quadratic = tf.minimum(absolute, huber_delta)
    return 0.5 * tf.square(quadratic) + huber_delta * (absolute - quadratic)


def _checked(loss: tf.Tensor, check_numerics: bool) -> tf.Tensor:
    return _loss_inputs.checked_loss(
        loss,
        check_numerics,
        "value_loss",
        "an error between values and returns beyond the float range",
    )


def value_loss(
    values: Any,
    returns: Any,
    *,
    old_values: Any = None,
    clip_range: Any = None,
    clip_mode: str = "max",
    loss_type: str = "squared",
    huber_delta: Any = 1.0,
    mask: Any = None,
    check_numerics: bool = False,
) -> ValueLossOutputs:
    """The critic's regression loss, with optional PPO-style value clipping.

    With the error e = V(s_t) - R_t, the per-step loss l(e) is
    `loss_type`:

        "squared": l(e) = 0.5 * e^2
        "huber":   l(e) = 0.5 * e^2                          if |e| <= delta
                          delta * (|e| - 0.5 * delta)        otherwise

    (delta = `huber_delta`; both agree for |e| <= delta). With `clip_range`
    c, the prediction may not move further than c from the value recorded at
    collection: V_clip = V_old + clip(V - V_old, -c, c), and `clip_mode`
    selects

        "max":   max(l(V - R), l(V_clip - R))  (the PPO2 baselines form)
        "clamp": l(V_clip - R)                 (only the clipped prediction)

    The loss is the masked mean of the per-step loss.

    `clip_fraction` is the fraction of valid steps where the clip makes the
    step's gradient zero: for "max", steps where l(V_clip - R) is strictly
    larger than l(V - R) (which needs |V - V_old| > c); for "clamp", steps
    where |V - V_old| > c. It is 0 without `clip_range`.

    A NaN or Inf input at a valid step (of `old_values` only where it is
    read, with `clip_range`) makes the loss NaN or Inf, never a finite
    number: in "clamp" mode, which would clip an infinite V to
    V_old +- c, such a step is NaN.

    Args:
      values: per-step float critic predictions V(s_t), any shape.
      returns: R_t, the regression targets, same shape. Gradient stopped.
      old_values: V_old(s_t) recorded at collection, same shape; needed with
        `clip_range`, not read without it. Gradient stopped.
      clip_range: c >= 0 (float or scalar tensor), or None for no clipping.
      clip_mode: "max" or "clamp", see above.
      loss_type: "squared" or "huber".
      huber_delta: delta > 0 for the Huber loss.
      mask: optional bool-like validity of each step, same shape.
      check_numerics: if True, NaN or Inf in an input at a valid step
        raises an InvalidArgumentError naming the input, and a loss that
        overflows (errors beyond the float range) one naming `value_loss`.

    Returns:
      `ValueLossOutputs(loss, clip_fraction)`, scalars.

    Raises:
      ValueError: mismatched shapes (naming both arguments), unknown
        `clip_mode` or `loss_type`, `clip_range` < 0, `huber_delta` <= 0,
        `clip_range` without `old_values`.
      TypeError: non-float inputs, a non-bool-like mask, a non-bool
        `check_numerics`.
    """
    _checks.check_option(clip_mode, "clip_mode", VALUE_CLIP_MODES)
    _checks.check_option(loss_type, "loss_type", VALUE_LOSS_TYPES)
    if clip_range is not None and old_values is None:
        raise ValueError(
            "`old_values` is required with `clip_range`: the clip keeps the "
            "prediction within clip_range of the values recorded at "
            f"collection. Received: old_values=None, clip_range={clip_range!r}"
        )
    with tf.name_scope("value_loss"):
        named = [("values", values), ("returns", returns)]
        if clip_range is not None:
            named.append(("old_values", old_values))
        tensors, mask = _loss_inputs.per_step_inputs(
            named, mask, check_numerics, "value_loss"
        )
        values, returns = tensors[0], tf.stop_gradient(tensors[1])
        dtype = values.dtype
        delta, assertions = _checks.convert_scalar_parameter(
            huber_delta, "huber_delta", dtype, minimum=0.0, inclusive=False
        )
        unclipped_losses = _regression_loss(values - returns, loss_type, delta)
        if clip_range is None:
            loss = masked.masked_mean(
                _loss_inputs.after(assertions, unclipped_losses), mask
            )
            return ValueLossOutputs(
                loss=_checked(loss, check_numerics),
                clip_fraction=tf.zeros([], dtype),
            )
        clip_range, more = _checks.convert_scalar_parameter(
            clip_range, "clip_range", dtype, minimum=0.0, inclusive=True
        )
        assertions += more
        old_values = tf.stop_gradient(tensors[2])
        change = values - old_values
        clipped_values = old_values + tf.clip_by_value(
            change, -clip_range, clip_range
        )
        clipped_losses = _regression_loss(
            clipped_values - returns, loss_type, delta
        )
        if clip_mode == "max":
            # Unclipped first: tf.maximum sends a tie's gradient to it.
            losses = tf.maximum(unclipped_losses, clipped_losses)
            clipped = clipped_losses > unclipped_losses
        else:
            # The clamp would make a finite loss of an infinite V.
            losses = tf.where(
                tf.math.is_finite(values),
                clipped_losses,
                tf.constant(float("nan"), dtype),
            )
            clipped = tf.abs(change) > clip_range
        loss = masked.masked_mean(_loss_inputs.after(assertions, losses), mask)
        return ValueLossOutputs(
            loss=_checked(loss, check_numerics),
            clip_fraction=_loss_inputs.fraction(clipped, mask, dtype),
        )

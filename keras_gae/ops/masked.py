"""Masked reductions: statistics over valid steps only.

A mask is a bool-like tensor of the same shape as the values (or
broadcastable to it); `None` means every element is valid. Masked elements
contribute nothing, even when they hold NaN or Inf.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import tensorflow as tf


def _weights(x: tf.Tensor, mask: Any) -> Optional[tf.Tensor]:
    if mask is None:
        return None
    mask = tf.convert_to_tensor(mask)
    if not mask.dtype.is_bool:
        mask = tf.not_equal(mask, tf.zeros([], mask.dtype))
    return tf.cast(tf.broadcast_to(mask, tf.shape(x)), x.dtype)


def masked_sum_and_count(x: Any, mask: Any = None) -> tuple:
    """Sum of valid elements and their number, both scalars of x's dtype."""
    x = tf.convert_to_tensor(x)
    weights = _weights(x, mask)
    if weights is None:
        return tf.reduce_sum(x), tf.cast(tf.size(x), x.dtype)
    safe = tf.where(weights > 0, x, tf.zeros_like(x))
    return tf.reduce_sum(safe), tf.reduce_sum(weights)


def masked_mean(x: Any, mask: Any = None) -> tf.Tensor:
    """Mean over valid elements; 0 when there are none."""
    total, count = masked_sum_and_count(x, mask)
    return tf.math.divide_no_nan(total, count)


def masked_moments(x: Any, mask: Any = None) -> tuple:
    """(mean, variance) over valid elements (population variance)."""
    x = tf.convert_to_tensor(x)
    mean = masked_mean(x, mask)
    variance = masked_mean(tf.square(x - mean), mask)
    return mean, variance


def masked_whiten(
    x: Any,
    mask: Any = None,
    *,
    shift_mean: bool = True,
    epsilon: float = 1e-8,
) -> tf.Tensor:
    """(x - mean) / sqrt(var + epsilon) with statistics over valid elements.

    Masked elements come out as 0. With `shift_mean=False` the mean is added
    back, so only the scale changes (the usual choice for rewards).
    """
    x = tf.convert_to_tensor(x)
    mean, variance = masked_moments(x, mask)
    whitened = (x - mean) * tf.math.rsqrt(variance + epsilon)
    if not shift_mean:
        whitened += mean
    weights = _weights(x, mask)
    if weights is None:
        return whitened
    return tf.where(weights > 0, whitened, tf.zeros_like(whitened))

"""Masked reductions: statistics over valid steps only.

A mask is a bool-like tensor of the same shape as the values (or
broadcastable to it); `None` means every element is valid. Masked elements
contribute nothing, even when they hold NaN or Inf.

This module is the one implementation of masked moments in keras_gae: the
advantage normalization layer, the training models and the language-model
whitening all call `masked_moments` / `joint_masked_moments`.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

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


def _replica_sum(stacked: tf.Tensor, across_replicas: bool) -> tf.Tensor:
    if not across_replicas:
        return stacked
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return stacked
    return context.all_reduce(tf.distribute.ReduceOp.SUM, stacked)


def joint_masked_moments(
    tensors: Sequence[Any],
    mask: Any = None,
    *,
    across_replicas: bool = False,
) -> list:
    """(mean, variance) of each tensor over the valid elements they share.

    Two passes, the means and then the centred squares, so the variance
    keeps its precision when the mean is large. With `across_replicas=True`
    inside a tf.distribute replica context with several replicas the
    statistics cover the global batch: each pass stacks the local sums (and
    the count) of every tensor into one tensor and one
    `ReplicaContext.all_reduce(SUM)` combines them; elsewhere they are
    local.

    Args:
      tensors: float tensors of one shape and dtype.
      mask: optional bool-like tensor broadcastable to that shape.
      across_replicas: whether to combine the statistics of all replicas.

    Returns:
      A list of `(mean, variance)` scalar pairs (population variance), one
      per tensor; both are 0 when no element is valid.
    """
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    weights = _weights(tensors[0], mask) if tensors else None
    if weights is not None:
        # Zero masked elements first: NaN or Inf there must reach neither
        # the statistics nor their gradients.
        tensors = [tf.where(weights > 0, t, tf.zeros_like(t)) for t in tensors]

    def sums(values):
        pairs = [masked_sum_and_count(v, mask) for v in values]
        stacked = tf.stack([total for total, _ in pairs] + [pairs[0][1]])
        return tf.unstack(_replica_sum(stacked, across_replicas))

    *totals, count = sums(tensors)
    means = [tf.math.divide_no_nan(total, count) for total in totals]
    *squares, _ = sums([tf.square(t - m) for t, m in zip(tensors, means)])
    variances = [tf.math.divide_no_nan(square, count) for square in squares]
    return list(zip(means, variances))


def masked_moments(
    x: Any, mask: Any = None, *, across_replicas: bool = False
) -> tuple:
    """(mean, variance) over valid elements (population variance).

    See `joint_masked_moments` for `across_replicas`.
    """
    (moments,) = joint_masked_moments(
        [x], mask, across_replicas=across_replicas
    )
    return moments


def masked_whiten(
    x: Any,
    mask: Any = None,
    *,
    shift_mean: bool = True,
    epsilon: float = 1e-8,
    across_replicas: bool = False,
) -> tf.Tensor:
    """(x - mean) / sqrt(var + epsilon) with statistics over valid elements.

    Masked elements come out as 0. With `shift_mean=False` the mean is added
    back, so only the scale changes (the usual choice for rewards). See
    `joint_masked_moments` for `across_replicas`.
    """
    x = tf.convert_to_tensor(x)
    mean, variance = masked_moments(x, mask, across_replicas=across_replicas)
    whitened = (x - mean) * tf.math.rsqrt(variance + epsilon)
    if not shift_mean:
        whitened += mean
    weights = _weights(x, mask)
    if weights is None:
        return whitened
    return tf.where(weights > 0, whitened, tf.zeros_like(whitened))

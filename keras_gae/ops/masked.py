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
    statistics cover the global batch: each pass stacks the local sums of
    every tensor (the first pass also the count) into one tensor and one
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
    if not tensors:
        return []
    # One [n, ...] tensor, masked once and reduced once per pass.
    stacked = tf.stack(tensors)
    rank = stacked.shape.rank
    axes = list(range(1, rank)) if rank is not None else None
    if axes is None:
        axes = tf.range(1, tf.rank(stacked))
    weights = _weights(tensors[0], mask)
    if weights is None:
        valid = None
        count = tf.cast(tf.size(tensors[0]), stacked.dtype)
    else:
        valid = weights > 0
        # Zero masked elements first: NaN or Inf there must reach neither
        # the statistics nor their gradients.
        stacked = tf.where(valid, stacked, tf.zeros_like(stacked))
        count = tf.reduce_sum(weights)

    def sums(values, *extra):
        totals = tf.concat([tf.reduce_sum(values, axes), *extra], 0)
        return _replica_sum(totals, across_replicas)

    totals, count = tf.split(sums(stacked, count[tf.newaxis]), [-1, 1])
    means = tf.math.divide_no_nan(totals, count)
    if rank is not None:
        broadcast_means = tf.reshape(means, [len(tensors)] + [1] * len(axes))
    else:
        broadcast_means = tf.reshape(
            means, tf.concat([[len(tensors)], tf.ones_like(axes)], 0)
        )
    squares = tf.square(stacked - broadcast_means)
    if valid is not None:
        squares = tf.where(valid, squares, tf.zeros_like(squares))
    variances = tf.math.divide_no_nan(sums(squares), count)
    means = tf.unstack(means, len(tensors))
    variances = tf.unstack(variances, len(tensors))
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

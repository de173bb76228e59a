"""Masked reductions: statistics over valid steps only.

A mask is a bool-like tensor (bool, or integers or floats holding 0 and 1)
of the same shape as the values or broadcastable to it; `None` means every
element is valid. Masked elements contribute nothing, even when they hold
NaN or Inf, neither to the results nor to their gradients; a NaN or Inf
valid element makes the statistics it enters NaN or Inf. float16 and
bfloat16 values are summed in float32 and the results cast back to their
dtype (a float16 sum or variance overflows at 65504).

This module is the one implementation of masked moments in keras_gae: the
advantage normalization layer, the training models and the language-model
whitening all call `masked_moments` / `joint_masked_moments`.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

import tensorflow as tf

from keras_gae.ops import _checks


def _accumulation_dtype(dtype: tf.DType) -> tf.DType:
    if dtype in (tf.float16, tf.bfloat16):
        return tf.float32
    return dtype


def _valid(x: tf.Tensor, mask: Any, name: str) -> Optional[tf.Tensor]:
    """The checked mask as a bool tensor of x's shape (None: all valid)."""
    if mask is None:
        return None
    mask = _checks.convert_mask(mask, x, name)
    return tf.broadcast_to(mask, tf.shape(x))


def _sum_and_count(x: tf.Tensor, valid: Optional[tf.Tensor]) -> tuple:
    if valid is None:
        return tf.reduce_sum(x), tf.cast(tf.size(x), x.dtype)
    safe = tf.where(valid, x, tf.zeros_like(x))
    return tf.reduce_sum(safe), tf.reduce_sum(tf.cast(valid, x.dtype))


def masked_sum_and_count(x: Any, mask: Any = None) -> tuple:
    """Sum of valid elements and their number, both scalars of x's dtype."""
    x = _checks.convert_float(x, "x")
    accumulated = tf.cast(x, _accumulation_dtype(x.dtype))
    total, count = _sum_and_count(accumulated, _valid(x, mask, "x"))
    return tf.cast(total, x.dtype), tf.cast(count, x.dtype)


def masked_mean(x: Any, mask: Any = None) -> tf.Tensor:
    """Mean over valid elements; 0 when there are none."""
    x = _checks.convert_float(x, "x")
    accumulated = tf.cast(x, _accumulation_dtype(x.dtype))
    total, count = _sum_and_count(accumulated, _valid(x, mask, "x"))
    return tf.cast(tf.math.divide_no_nan(total, count), x.dtype)


def _replica_sum(stacked: tf.Tensor, across_replicas: bool) -> tf.Tensor:
    if not across_replicas:
        return stacked
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return stacked
    return context.all_reduce(tf.distribute.ReduceOp.SUM, stacked)


def _moments(
    stacked: tf.Tensor, valid: Optional[tf.Tensor], across_replicas: bool
) -> tuple:
    """Means and variances `[n]` of `stacked[i]` over its valid elements.

    `valid` has the shape of one `stacked[i]`; nothing is checked here.
    """
    rank = stacked.shape.rank
    axes = list(range(1, rank)) if rank is not None else None
    if axes is None:
        axes = tf.range(1, tf.rank(stacked))
    if valid is None:
        count = tf.cast(tf.size(stacked[0]), stacked.dtype)
    else:
        # Zero masked elements first: NaN or Inf there must reach neither
        # the statistics nor their gradients.
        stacked = tf.where(valid, stacked, tf.zeros_like(stacked))
        count = tf.reduce_sum(tf.cast(valid, stacked.dtype))

    def sums(values, *extra):
        totals = tf.concat([tf.reduce_sum(values, axes), *extra], 0)
        return _replica_sum(totals, across_replicas)

    totals, count = tf.split(sums(stacked, count[tf.newaxis]), [-1, 1])
    means = tf.math.divide_no_nan(totals, count)
    size = tf.shape(stacked)[:1]
    if rank is not None:
        broadcast_means = tf.reshape(means, [-1] + [1] * len(axes))
    else:
        broadcast_means = tf.reshape(
            means, tf.concat([size, tf.ones_like(axes)], 0)
        )
    squares = tf.square(stacked - broadcast_means)
    if valid is not None:
        squares = tf.where(valid, squares, tf.zeros_like(squares))
    variances = tf.math.divide_no_nan(sums(squares), count)
    return means, variances


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
      per tensor, in their dtype; both are 0 when no element is valid.

    Raises:
      TypeError: a non-float tensor, tensors of different dtypes, a mask
        that is not bool-like, a non-bool `across_replicas`.
      ValueError: tensors of different shapes, a mask that does not
        broadcast to their shape or holds values other than 0 and 1.
    """
    _checks.check_bool(across_replicas, "across_replicas")
    tensors = [
        _checks.convert_float(t, f"tensors[{i}]") for i, t in enumerate(tensors)
    ]
    if not tensors:
        return []
    first = tensors[0]
    for tensor in tensors[1:]:
        if tensor.dtype != first.dtype:
            raise TypeError(
                "`tensors` must share one dtype, got "
                f"{[t.dtype.name for t in tensors]}. "
                f"Received: tensors={[_checks.describe(t) for t in tensors]}"
            )
        if not tensor.shape.is_compatible_with(first.shape):
            raise ValueError(
                "`tensors` must share one shape, got "
                f"{[tuple(t.shape) for t in tensors]}. "
                f"Received: tensors={[_checks.describe(t) for t in tensors]}"
            )
    valid = _valid(first, mask, "tensors")
    # One [n, ...] tensor, masked once and reduced once per pass.
    stacked = tf.cast(tf.stack(tensors), _accumulation_dtype(first.dtype))
    means, variances = _moments(stacked, valid, across_replicas)
    means = tf.unstack(tf.cast(means, first.dtype), len(tensors))
    variances = tf.unstack(tf.cast(variances, first.dtype), len(tensors))
    return list(zip(means, variances))


def masked_moments(
    x: Any, mask: Any = None, *, across_replicas: bool = False
) -> tuple:
    """(mean, variance) over valid elements (population variance).

    See `joint_masked_moments` for `across_replicas` and the errors.
    """
    x = _checks.convert_float(x, "x")
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
    `joint_masked_moments` for `across_replicas` and the errors; `epsilon`
    must be a float > 0.
    """
    _checks.check_bool(shift_mean, "shift_mean")
    _checks.check_bool(across_replicas, "across_replicas")
    epsilon = _checks.check_float(
        epsilon, "epsilon", minimum=0.0, inclusive=False
    )
    x = _checks.convert_float(x, "x")
    valid = _valid(x, mask, "x")
    accumulated = tf.cast(x, _accumulation_dtype(x.dtype))
    if valid is not None:
        # Zeroed before any math: a NaN or Inf masked element would
        # otherwise reach the gradients through (x - mean) * d rsqrt.
        accumulated = tf.where(valid, accumulated, tf.zeros_like(accumulated))
    means, variances = _moments(accumulated[tf.newaxis], valid, across_replicas)
    mean, variance = means[0], variances[0]
    whitened = (accumulated - mean) * tf.math.rsqrt(variance + epsilon)
    if not shift_mean:
        whitened += mean
    if valid is not None:
        whitened = tf.where(valid, whitened, tf.zeros_like(whitened))
    return tf.cast(whitened, x.dtype)

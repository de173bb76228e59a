"""Running mean and variance: the one parallel-moments rule of keras_gae.

stable-baselines3 keeps one `RunningMeanStd`; keras_gae keeps one rule,
used by every running statistic it has: `ObservationNormalization` and
`RewardNormalization` (`keras_gae.agents`) update their weights with it,
and `keras_gae.distributed.merge_moments` merges rollout workers' moments
at the learner with it. Two sets of rows `a` and `b`, with counts, means
and population variances, combine as (Chan, Golub and LeVeque 1979)

    n = n_a + n_b,  delta = mean_b - mean_a,
    mean = mean_a + delta * n_b / n,
    var = (var_a * n_a + var_b * n_b + delta^2 * n_a * n_b / n) / n,

which are the moments of the rows of both sets (up to rounding). A set of
0 rows leaves the other's moments as they are.
"""

from __future__ import annotations

from typing import Any
from typing import Sequence

import tensorflow as tf


def combine_moments(first: Any, second: Any) -> tuple:
    """The moments of two sets of rows together (module docstring).

    Args:
      first: `(count, mean, variance)` of set `a`: a scalar count and
        means and (population) variances of one shape, as tensors or
        arrays of one float dtype.
      second: `(count, mean, variance)` of set `b`, of the same shapes.

    Returns:
      `(count, mean, variance)` of both sets, as tensors.
    """
    count_a, mean_a, variance_a = first
    count_b, mean_b, variance_b = second
    total = count_a + count_b
    delta = mean_b - mean_a
    fraction = count_b / tf.maximum(total, 1.0)
    m2 = (
        variance_a * count_a
        + variance_b * count_b
        + tf.square(delta) * count_a * fraction
    )
    keep = count_b > 0
    mean = tf.where(keep, mean_a + delta * fraction, mean_a)
    variance = tf.where(keep, m2 / tf.maximum(total, 1.0), variance_a)
    return total, mean, variance


def absorb_moments(variables: Sequence[Any], moments: Sequence[Any]) -> None:
    """Combines `moments` into running-moment variables, in place.

    Args:
      variables: the `(count, mean, variance)` variables of the running
        statistics (Keras or TensorFlow variables).
      moments: `(count, mean, variance)` of the new rows, of the
        variables' dtype.
    """
    count, mean, variance = variables
    total, new_mean, new_variance = combine_moments(
        (count.value, mean.value, variance.value), tuple(moments)
    )
    mean.assign(new_mean)
    variance.assign(new_variance)
    count.assign(total)


def absorb_rows(variables: Sequence[Any], x: tf.Tensor) -> None:
    """Adds the rows of `x` `[N, ...]` (float32) to running moments."""
    batch_mean, batch_variance = tf.nn.moments(x, axes=[0])
    batch_count = tf.cast(tf.shape(x)[0], tf.float32)
    absorb_moments(variables, (batch_count, batch_mean, batch_variance))

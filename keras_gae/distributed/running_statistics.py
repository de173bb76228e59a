"""Running statistics across rollout workers: moments merged at the learner.

Each worker sees a share of the round's data; the learner needs the
statistics of all of it. `merge_moments` combines the workers' `Moments`
(count, mean and population variance of their rows) with the parallel
update of Chan, Golub and LeVeque (1979), keras_gae's one running-moments
rule (`keras_gae._src.running_moments.combine_moments`, which the
normalization layers update their own statistics with too): the moments
of the concatenated rows, up to rounding (in float64 here). The learner
absorbs the merged moments into its own statistics
(`RewardNormalization.absorb_moments` for the returns) and broadcasts
them with the weights. Observation statistics need no message of their
own: the observations come back in the rollout batches, and the learner
updates its `ObservationNormalization` layers from the
concatenated batch, the same update, on the same rows, as one process.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Sequence

import numpy as np

from keras_gae._src.running_moments import combine_moments


class Moments(NamedTuple):
    """Count, mean and population variance of a set of rows."""

    count: float
    mean: Any
    variance: Any


def moments_of(x: Any) -> Moments:
    """The `Moments` of the rows of `x` `[N, ...]` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        zeros = np.zeros(x.shape[1:])
        return Moments(0.0, zeros, zeros)
    return Moments(float(x.shape[0]), x.mean(axis=0), x.var(axis=0))


def merge_moments(parts: Sequence[Moments]) -> Moments:
    """The moments of all the parts' rows together (module docstring).

    Args:
      parts: one or more `Moments` of one shape (a part of 0 rows is
        allowed and changes nothing).

    Returns:
      `Moments` in float64 (NumPy).

    Raises:
      ValueError: no parts.
    """
    if not parts:
        raise ValueError(
            f"`parts` must hold at least one Moments. Received: parts={parts!r}"
        )
    count, mean, variance = (np.asarray(v, np.float64) for v in parts[0])
    for part in parts[1:]:
        count, mean, variance = combine_moments(
            (count, mean, variance),
            tuple(np.asarray(v, np.float64) for v in part),
        )
    return Moments(
        float(np.asarray(count)), np.asarray(mean), np.asarray(variance)
    )

"""How one observation leaf becomes float features: the leaf encodings.

`ObservationEncoder` (`keras_gae.agents.default_networks`) encodes an
observation nest leaf by leaf; which encoding a leaf gets is its space
type's `encoding` in `keras_gae.agents.space_types`. A `LeafEncoding`
holds

* `encode`: a callable `[N, *spec.shape] -> [N, size]` float32 (`N`:
  rows). A Keras layer when it has weights (a convolutional encoder for
  images): `ObservationEncoder` tracks it, so the actor and the critic,
  which share the encoder, share its weights too.
* `size`: the number of features per row.
* `normalized`: whether `ObservationEncoder(normalize=True)` standardizes
  these features with running statistics (the float leaves, concatenated,
  share one `ObservationNormalization`).

The encodings of the built-in space types:

| encoding | for | features |
|---|---|---|
| `flat_floats` | Box | `x` flattened, float32, normalized |
| `zero_one_floats` | MultiBinary | `x` flattened as 0.0/1.0 |
| `one_hot` | Discrete, MultiDiscrete | per entry i of bounds `[lo_i, hi_i]`, |
| | | `one_hot(x_i - lo_i, hi_i - lo_i + 1)`, concatenated |
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class LeafEncoding:
    """One observation leaf as float features (module docstring)."""

    encode: Callable[[tf.Tensor], tf.Tensor]
    size: int
    normalized: bool = False


def leaf_size(spec: Any) -> int:
    """The number of entries of one observation of `spec`."""
    return int(np.prod([int(d) for d in spec.shape], dtype=np.int64))


def _flat_float32(size: int) -> Callable[[tf.Tensor], tf.Tensor]:
    return lambda x: tf.cast(tf.reshape(x, [-1, size]), tf.float32)


def flat_floats(spec: Any) -> LeafEncoding:
    """A float leaf flattened to `[N, prod(shape)]`, normalized."""
    size = leaf_size(spec)
    return LeafEncoding(_flat_float32(size), size, normalized=True)


def zero_one_floats(spec: Any) -> LeafEncoding:
    """A 0/1 integer leaf (MultiBinary) as 0.0/1.0 floats."""
    size = leaf_size(spec)
    return LeafEncoding(_flat_float32(size), size)


def one_hot(spec: Any) -> LeafEncoding:
    """An integer leaf with bounds `[lo, hi]` one-hot encoded per entry,
    `one_hot(x - lo, hi - lo + 1)`, the entries concatenated."""
    shape = tuple(int(d) for d in spec.shape)
    low = np.broadcast_to(np.asarray(spec.minimum, np.int64), shape).ravel()
    high = np.broadcast_to(np.asarray(spec.maximum, np.int64), shape).ravel()
    lows = [int(v) for v in low]
    depths = [int(v) for v in high - low + 1]
    size = len(lows)

    def encode(x: tf.Tensor) -> tf.Tensor:
        flat = tf.cast(tf.reshape(x, [-1, size]), tf.int32)
        return tf.concat(
            [
                tf.one_hot(flat[:, j] - first, depth)
                for j, (first, depth) in enumerate(zip(lows, depths))
            ],
            -1,
        )

    return LeafEncoding(encode, sum(depths))

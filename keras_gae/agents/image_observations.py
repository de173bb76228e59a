"""Image observations: uint8 frames kept uint8, encoded by a Nature CNN.

The parts of the image entry of `keras_gae.agents.space_types.SPACE_TYPES`
(the one dispatch from spaces to specs, encoders and heads). An image is
a gymnasium `Box` of dtype uint8, rank 3 and bounds [0, 255] (as
stable-baselines3's `is_image_space` has it): `(4, 84, 84)` frame stacks
of `keras_gae.agents.make_atari_env`, `(210, 160, 3)` RGB screens. Its
tf-agents spec stays uint8 with the same shape, so the environments,
the collection, the rollout batch and the export carry bytes, a quarter
of float32's memory; `keras_gae.layers.NatureCNN` casts and scales them
to [0, 1] inside the network (channels first or last, detected from the
shape). Other uint8 Boxes (other ranks or bounds) are plain Boxes:
float32 specs, flattened.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import tensorflow as tf
from tf_agents.specs import array_spec

from keras_gae.agents import observation_features
from keras_gae.layers import NatureCNN

# The features per image: the Nature CNN's last layer.
FEATURES = 512


def is_image_space(space: gymnasium.Space) -> bool:
    """A uint8 Box of rank 3 with bounds [0, 255] (module docstring)."""
    return (
        isinstance(space, gymnasium.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
    )


def image_spec(space: gymnasium.Space, name: str) -> Any:
    """The uint8 `BoundedArraySpec` of an image space, bounds [0, 255]."""
    return array_spec.BoundedArraySpec(
        shape=tuple(space.shape),
        dtype=np.uint8,
        minimum=np.uint8(0),
        maximum=np.uint8(255),
        name=name,
    )


def is_image_spec(spec: Any) -> bool:
    """A uint8 (array or tensor) spec of rank 3: what `image_spec` makes."""
    return tf.as_dtype(spec.dtype) == tf.uint8 and len(spec.shape) == 3


def nature_cnn(spec: Any) -> observation_features.LeafEncoding:
    """A `NatureCNN` of `FEATURES` units for images of `spec`, built.

    Raises:
      ValueError: images smaller than the CNN's 36x36 receptive field.
    """
    encoder = NatureCNN(units=FEATURES)
    encoder.build((None,) + tuple(int(d) for d in spec.shape))
    return observation_features.LeafEncoding(encoder, FEATURES)

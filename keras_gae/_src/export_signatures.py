"""The inputs of an exported policy's functions, from an observation spec.

`keras_gae.export.export_policy` traces its functions for the specs made
here: `observation_signature` names every leaf of an observation nest by
its path (`keras_gae.export`'s module docstring, "Input names") and
refuses names TensorFlow or the "seed" input would clash with;
`input_specs` adds the float dtypes and the unbatched shape a single
observation is also accepted in; `integer_bounds` gives the ids a bounded
integer leaf may hold, which the exported functions check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

# The name of a single observation input, and the prefix of the paths of
# nested ones that do not start with a Dict key.
OBSERVATION = "observation"
# The other input of "sample_action".
SEED = "seed"
# What TensorFlow accepts as the name of a signature input.
_VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


def observation_signature(observation_spec: Any) -> Any:
    """TensorSpecs with a dynamic batch dimension for the observation nest.

    Each named by its path (`keras_gae.export`'s module docstring, "Input
    names").
    """

    def leaf(spec, path):
        if isinstance(spec, tf.TensorSpec):
            shape, dtype = spec.shape, spec.dtype
        elif hasattr(spec, "shape") and hasattr(spec, "dtype"):
            # tf-agents ArraySpec / BoundedArraySpec (numpy dtypes).
            shape, dtype = tf.TensorShape(spec.shape), tf.as_dtype(spec.dtype)
        else:
            raise TypeError(
                "`observation_spec` must be a tf.TensorSpec, a tf-agents "
                "ArraySpec, or a nest of them (without the batch dimension)."
                f" Received: observation_spec={observation_spec!r}"
            )
        if not path or not path[0][1]:
            path = ((OBSERVATION, True),) + path
        name = "_".join(part for part, _ in path)
        return tf.TensorSpec([None] + list(shape), dtype, name=name)

    def named(spec, path):
        # `path`: (name, is a Dict key) per level.
        if isinstance(spec, Mapping):
            return {
                key: named(value, path + ((str(key), True),))
                for key, value in spec.items()
            }
        if isinstance(spec, tuple) and hasattr(spec, "_fields"):
            return type(spec)(
                *(
                    named(getattr(spec, field), path + ((field, False),))
                    for field in spec._fields
                )
            )
        if isinstance(spec, (list, tuple)):
            return type(spec)(
                named(value, path + ((str(index), False),))
                for index, value in enumerate(spec)
            )
        return leaf(spec, path)

    signature = named(observation_spec, ())
    names = [spec.name for spec in tf.nest.flatten(signature)]
    for name in names:
        problem = None
        if not _VALID_NAME.match(name):
            problem = (
                "is not a valid TensorFlow input name (letters, digits "
                "and _.-/ only)"
            )
        elif names.count(name) > 1:
            problem = "names two inputs"
        elif name == SEED:
            problem = "is the seed input of sample_action"
        if problem:
            raise ValueError(
                f"`observation_spec` gives the SavedModel input {name!r}, "
                f"which {problem}; rename that key of the nest. "
                f"Received: observation_spec={observation_spec!r}"
            )
    return signature


def input_specs(signature: Any) -> list:
    """The observation specs the functions are traced for.

    The signature itself, and for a single floating observation also the
    other float dtypes (cast to the signature's: a float64 observation is
    what numpy gives) and the unbatched shape (one observation).
    """
    if not isinstance(signature, tf.TensorSpec):
        return [signature]
    dtypes = [signature.dtype]
    if signature.dtype.is_floating:
        dtypes += [
            dtype
            for dtype in (tf.float32, tf.float64, tf.float16)
            if dtype != signature.dtype
        ]
    return [
        tf.TensorSpec(shape, dtype, name=OBSERVATION)
        for shape in (signature.shape, signature.shape[1:])
        for dtype in dtypes
    ]


def integer_bounds(observation_spec: Any, signature: Any) -> list:
    """Per leaf, the (minimum, maximum) of an integer bounded spec, or None.

    Discrete, MultiDiscrete and MultiBinary observations are one-hot
    encoded inside the networks, where an id outside the space would
    become an all-zero vector and still give an action.
    """
    bounds = []
    for spec, signed in zip(
        tf.nest.flatten(observation_spec), tf.nest.flatten(signature)
    ):
        minimum = getattr(spec, "minimum", None)
        maximum = getattr(spec, "maximum", None)
        if signed.dtype.is_integer and minimum is not None:
            shape = signed.shape[1:]
            bounds.append(
                (
                    np.broadcast_to(minimum, shape).astype(np.int64),
                    np.broadcast_to(maximum, shape).astype(np.int64),
                )
            )
        else:
            bounds.append(None)
    return bounds

"""Input checks shared by the ops: rank, dtype, shapes, ranges, numerics.

Every check runs at the call (statically where shapes and values are known
when the graph is built, as a graph assertion otherwise) and its message names
the argument and ends with `Received: name=...`, the Keras convention.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import numpy as np
import tensorflow as tf


def describe(value: Any) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray)):
        dtype = getattr(value.dtype, "name", value.dtype)
        return f"<tensor shape={tuple(value.shape)} dtype={dtype}>"
    return repr(value)


def convert_float(value: Any, name: str) -> tf.Tensor:
    """Converts to a floating tensor or raises a TypeError naming `name`."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a floating-point tensor, not a bool. "
            f"Received: {name}={describe(value)}"
        )
    try:
        tensor = tf.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be convertible to a floating-point tensor. "
            f"Received: {name}={describe(value)}"
        ) from error
    if not tensor.dtype.is_floating:
        raise TypeError(
            f"`{name}` must be a floating-point tensor (float16, bfloat16, "
            f"float32 or float64), got dtype {tensor.dtype.name}. Cast it "
            f"first, e.g. tf.cast({name}, tf.float32). "
            f"Received: {name}={describe(value)}"
        )
    return tensor


def convert_flag(value: Any, name: str) -> tf.Tensor:
    """Converts a bool-like tensor (bool, integer or float 0/1) to bool."""
    try:
        tensor = tf.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be a bool-like tensor (bool, integer or float "
            f"holding 0 and 1). Received: {name}={describe(value)}"
        ) from error
    dtype = tensor.dtype
    if not (dtype.is_bool or dtype.is_integer or dtype.is_floating):
        raise TypeError(
            f"`{name}` must be a bool-like tensor (bool, integer or float "
            f"holding 0 and 1), got dtype {dtype.name}. "
            f"Received: {name}={describe(value)}"
        )
    if dtype.is_bool:
        return tensor
    return tf.not_equal(tensor, tf.zeros([], dtype))


def compute_dtype(*tensors: Optional[tf.Tensor]) -> tf.DType:
    """float64 if any input is float64, else float32.

    float16 and bfloat16 inputs are accumulated in float32: a discounted sum
    over hundreds of steps loses too many bits in half precision.
    """
    for tensor in tensors:
        if tensor is not None and tensor.dtype == tf.float64:
            return tf.float64
    return tf.float32


def check_rank(tensor: tf.Tensor, rank: int, name: str, layout: str) -> None:
    if tensor.shape.rank is not None and tensor.shape.rank != rank:
        raise ValueError(
            f"`{name}` must have rank {rank} ({layout}), got rank "
            f"{tensor.shape.rank}. Received: {name}={describe(tensor)}"
        )


def check_same_shape(
    tensor: tf.Tensor,
    reference: tf.Tensor,
    name: str,
    reference_name: str,
) -> list:
    """Static shape check; returns graph assertions for unknown dims."""
    if not tensor.shape.is_compatible_with(reference.shape):
        raise ValueError(
            f"`{name}` must have the same shape as `{reference_name}`: "
            f"{name}.shape={tuple(tensor.shape)} but "
            f"{reference_name}.shape={tuple(reference.shape)}. "
            f"Received: {name}={describe(tensor)}"
        )
    if tensor.shape.is_fully_defined() and reference.shape.is_fully_defined():
        return []
    return [
        tf.debugging.assert_equal(
            tf.shape(tensor),
            tf.shape(reference),
            message=(
                f"`{name}` must have the same shape as `{reference_name}`."
            ),
        )
    ]


def check_unit_interval(value: Any, name: str, dtype: tf.DType) -> tuple:
    """Converts gamma/lambda_ and checks it lies in [0, 1].

    Python numbers and constant tensors are checked when the graph is built;
    other tensors get a graph assertion.

    Returns:
      `(tensor, assertions)`.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a float in [0, 1] or a float tensor, not a "
            f"bool. Received: {name}={value!r}"
        )
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(
                f"`{name}` must lie in [0, 1]. Received: {name}={value!r}"
            )
        return tf.constant(float(value), dtype), []
    tensor = tf.convert_to_tensor(value)
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(
            f"`{name}` must be a float or a float tensor, got dtype "
            f"{tensor.dtype.name}. Received: {name}={describe(value)}"
        )
    tensor = tf.cast(tensor, dtype)
    static = tf.get_static_value(tensor)
    if static is not None:
        if not np.all((static >= 0.0) & (static <= 1.0)):
            raise ValueError(
                f"`{name}` must lie in [0, 1] everywhere. "
                f"Received: {name}={describe(value)} with values in "
                f"[{np.min(static)}, {np.max(static)}]"
            )
        return tensor, []
    return tensor, [
        tf.debugging.assert_greater_equal(
            tensor, tf.zeros([], dtype), message=f"`{name}` must be >= 0."
        ),
        tf.debugging.assert_less_equal(
            tensor, tf.ones([], dtype), message=f"`{name}` must be <= 1."
        ),
    ]


def check_broadcastable(tensor: tf.Tensor, shape: tf.TensorShape, name: str):
    """Checks a per-step coefficient broadcasts to the [T, B] inputs."""
    try:
        tf.broadcast_static_shape(tensor.shape, shape)
    except ValueError as error:
        raise ValueError(
            f"`{name}` must be a scalar or broadcastable to the rewards' "
            f"shape {tuple(shape)} (time-major). "
            f"Received: {name}={describe(tensor)}"
        ) from error
    if tensor.shape.rank is not None and tensor.shape.rank > 2:
        raise ValueError(
            f"`{name}` must have rank <= 2. Received: {name}={describe(tensor)}"
        )


def check_numerics(tensor: tf.Tensor, name: str) -> tf.Tensor:
    return tf.debugging.check_numerics(
        tensor, f"`{name}` contains NaN or Inf values."
    )


def check_positive_int(value: Any, name: str) -> int:
    """A Python int >= 1 (bools refused); errors name `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise TypeError(
            f"`{name}` must be a positive int. Received: {name}={value!r}"
        )
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value!r}")
    return int(value)


def convert_batch_vector(
    value: Any,
    name: str,
    reference: tf.Tensor,
    batch_axis: int,
    reference_name: str,
) -> tuple:
    """A float `[B]` tensor whose B is `reference`'s size on `batch_axis`.

    Returns:
      `(tensor, assertions)`: the graph assertions check B when a size is
      not known while the graph is built.
    """
    tensor = convert_float(value, name)
    check_rank(tensor, 1, name, "[B]")
    batch_shape = reference.shape[batch_axis : batch_axis + 1]
    if not tensor.shape.is_compatible_with(batch_shape):
        raise ValueError(
            f"`{name}` must have shape [B] matching the batch size of "
            f"`{reference_name}`: {name}.shape={tuple(tensor.shape)} but "
            f"{reference_name}.shape={tuple(reference.shape)}. "
            f"Received: {name}={describe(tensor)}"
        )
    if tensor.shape.is_fully_defined() and batch_shape.is_fully_defined():
        return tensor, []
    return tensor, [
        tf.debugging.assert_equal(
            tf.shape(tensor)[0],
            tf.shape(reference)[batch_axis],
            message=(
                f"`{name}` must have shape [B] matching the batch size of "
                f"`{reference_name}`."
            ),
        )
    ]

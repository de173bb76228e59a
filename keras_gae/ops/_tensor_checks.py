"""Checks and conversions of tensor inputs: dtype, rank, shape, flags.

Every check runs at the call (statically where shapes and values are known
when the graph is built, as a graph assertion otherwise) and its message names
the argument and ends with `Received: name=...`, the Keras convention.
Callers reach these through `_checks`.
"""

from __future__ import annotations

import warnings
from typing import Any
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae.ops._argument_checks import check_bool
from keras_gae.ops._argument_checks import check_float
from keras_gae.ops._xla_context import in_xla_context


def describe(value: Any) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray)):
        dtype = getattr(value.dtype, "name", value.dtype)
        return f"<tensor shape={tuple(value.shape)} dtype={dtype}>"
    return repr(value)


def _to_tensor(value: Any, name: str, expected: str) -> tf.Tensor:
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be {expected}. Received: {name}={describe(value)}"
        ) from error


def convert_float(value: Any, name: str) -> tf.Tensor:
    """Converts to a floating tensor or raises a TypeError naming `name`."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a floating-point tensor, not a bool. "
            f"Received: {name}={describe(value)}"
        )
    tensor = _to_tensor(value, name, "convertible to a floating-point tensor")
    if not tensor.dtype.is_floating:
        raise TypeError(
            f"`{name}` must be a floating-point tensor (float16, bfloat16, "
            f"float32 or float64), got dtype {tensor.dtype.name}. Cast it "
            f"first, e.g. tf.cast({name}, tf.float32). "
            f"Received: {name}={describe(value)}"
        )
    return tensor


def convert_flag(value: Any, name: str) -> tf.Tensor:
    """Converts a bool-like tensor (bool, integer or float 0/1) to bool.

    Any other value (0.5, a weight, NaN) is refused: a ValueError for an
    eager tensor, a failing assertion (InvalidArgumentError naming `name`)
    inside a graph.
    """
    tensor = _to_tensor(
        value,
        name,
        "a bool-like tensor (bool, integer or float holding 0 and 1)",
    )
    dtype = tensor.dtype
    if not (dtype.is_bool or dtype.is_integer or dtype.is_floating):
        raise TypeError(
            f"`{name}` must be a bool-like tensor (bool, integer or float "
            f"holding 0 and 1), got dtype {dtype.name}. "
            f"Received: {name}={describe(value)}"
        )
    if dtype.is_bool:
        return tensor
    zero = tf.equal(tensor, tf.zeros([], dtype))
    binary = tf.reduce_all(tf.logical_or(zero, tf.equal(tensor, 1)))
    message = (
        f"`{name}` must hold only 0 and 1 (a flag, not a weight: pass "
        "weights through the loss, e.g. a sample_weight). "
        f"Received: {name}={describe(value)}"
    )
    if tf.executing_eagerly():
        if not bool(binary):
            values = np.unique(tensor.numpy())
            raise ValueError(f"{message} with values {values[:8]}")
        return tf.logical_not(zero)
    # In a graph the check is an assertion the result depends on, so that
    # nothing computed from the flags runs with a non-binary one. (XLA
    # drops assertions; the training models check their batch themselves.)
    check = tf.debugging.Assert(binary, [message])
    with tf.control_dependencies([check]):
        return tf.logical_not(tf.identity(zero))


def convert_mask(mask: Any, values: tf.Tensor, values_name: str) -> tf.Tensor:
    """A bool-like `mask` as bool, checked to broadcast to `values`' shape.

    The mask may have fewer dimensions than `values` (they broadcast from the
    right), never more. Raises as `convert_flag` does, and a ValueError
    naming `values_name` for a shape that does not broadcast.
    """
    mask = convert_flag(mask, "mask")
    if mask.shape.rank is not None and values.shape.rank is not None:
        try:
            shape = tf.broadcast_static_shape(mask.shape, values.shape)
        except ValueError:
            shape = None
        if shape is None or shape.rank != values.shape.rank:
            raise ValueError(
                f"`mask` must have the shape of `{values_name}` or broadcast "
                f"to it: {tuple(values.shape)}. "
                f"Received: mask={describe(mask)}"
            )
    return mask


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


def numerics_checked(check_numerics: Any, function: str) -> bool:
    """`check_numerics` as a bool, with a warning where it cannot act.

    XLA has no numerics check and drops it: inside an XLA-compiled
    function a NaN would pass as if the user had not asked for the check.
    """
    check_bool(check_numerics, "check_numerics")
    if check_numerics and in_xla_context():
        warnings.warn(
            f"`check_numerics=True` has no effect in `{function}` inside an "
            "XLA-compiled function (jit_compile=True): XLA drops the check, "
            "so NaN or Inf reaches the result as without it. Check the "
            "inputs outside XLA, e.g. in a tf.function without "
            "jit_compile.",
            stacklevel=3,
        )
    return check_numerics


def check_numerics(tensor: tf.Tensor, name: str) -> tf.Tensor:
    return tf.debugging.check_numerics(
        tensor, f"`{name}` contains NaN or Inf values."
    )


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


def convert_scalar_parameter(
    value: Any,
    name: str,
    dtype: tf.DType,
    *,
    minimum: float,
    inclusive: bool = True,
) -> tuple:
    """A scalar hyperparameter as a `dtype` tensor, checked against `minimum`.

    Python numbers go through `check_float` and straight to `dtype` (through
    float32 first, 0.1 would come out as 0.10000000149 in a float64 loss).
    Tensors (a tf.Variable holding a schedule, say) are checked when the
    graph is built if their value is known then, else by a graph assertion.

    Returns:
      `(tensor, assertions)`.
    """
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        value = check_float(value, name, minimum=minimum, inclusive=inclusive)
        return tf.constant(value, dtype), []
    try:
        tensor = tf.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be a float or a scalar float tensor. "
            f"Received: {name}={describe(value)}"
        ) from error
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(
            f"`{name}` must be a float or a scalar float tensor, got dtype "
            f"{tensor.dtype.name}. Received: {name}={describe(value)}"
        )
    if tensor.shape.rank is not None and tensor.shape.rank != 0:
        raise ValueError(
            f"`{name}` must be a scalar. Received: {name}={describe(value)}"
        )
    tensor = tf.cast(tensor, dtype)
    relation = ">=" if inclusive else ">"
    static = tf.get_static_value(tensor)
    if static is not None:
        # As for Python floats: Inf is no clip range or Huber delta either.
        if not np.isfinite(static):
            raise ValueError(
                f"`{name}` must be finite. "
                f"Received: {name}={describe(value)} with value {static}"
            )
        if not (static >= minimum if inclusive else static > minimum):
            raise ValueError(
                f"`{name}` must be {relation} {minimum}. "
                f"Received: {name}={describe(value)} with value {static}"
            )
        return tensor, []
    bound = tf.constant(minimum, dtype)
    in_range = tensor >= bound if inclusive else tensor > bound
    valid = tf.logical_and(tf.math.is_finite(tensor), in_range)
    message = f"`{name}` must be finite and {relation} {minimum}. Received:"
    return tensor, [tf.debugging.Assert(valid, [message, tensor])]

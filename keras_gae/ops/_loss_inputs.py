"""What the per-step losses share: checked inputs, one dtype, masked zeros.

Used by `policy_losses`, `value_losses` and `kl`.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence
from typing import Tuple

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import masked


def per_step_inputs(
    named: Sequence[Tuple[str, Any]], mask: Any
) -> Tuple[list, Optional[tf.Tensor]]:
    """Checks per-step inputs, casts them to one dtype, zeroes masked steps.

    The first input is the reference the others' shapes must match.

    Returns:
      `(tensors, mask)`: the float tensors in input order and the bool mask
      (None when no mask is given).
    """
    tensors = [_checks.convert_float(value, name) for name, value in named]
    reference_name, reference = named[0][0], tensors[0]
    assertions = []
    for (name, _), tensor in zip(named[1:], tensors[1:]):
        assertions.extend(
            _checks.check_same_shape(tensor, reference, name, reference_name)
        )
    if mask is not None:
        mask = _checks.convert_flag(mask, "mask")
        assertions.extend(
            _checks.check_same_shape(mask, reference, "mask", reference_name)
        )
    dtype = _checks.compute_dtype(*tensors)
    tensors = [tf.cast(tensor, dtype) for tensor in tensors]
    if mask is not None:
        # Replacing (not multiplying) keeps NaN padding out of the gradients.
        tensors = [tf.where(mask, t, tf.zeros_like(t)) for t in tensors]
    if assertions:
        with tf.control_dependencies(assertions):
            tensors[0] = tf.identity(tensors[0])
    return tensors, mask


def after(assertions: list, tensor: tf.Tensor) -> tf.Tensor:
    """`tensor`, computed only after the graph assertions pass."""
    if not assertions:
        return tensor
    with tf.control_dependencies(assertions):
        return tf.identity(tensor)


def fraction(
    condition: tf.Tensor, mask: Optional[tf.Tensor], dtype: tf.DType
) -> tf.Tensor:
    """The fraction of valid steps where `condition` holds."""
    return masked.masked_mean(tf.cast(condition, dtype), mask)

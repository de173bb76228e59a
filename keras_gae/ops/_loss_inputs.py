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
    named: Sequence[Tuple[str, Any]],
    mask: Any,
    check_numerics: bool,
    function: str,
) -> Tuple[list, Optional[tf.Tensor]]:
    """Checks per-step inputs, casts them to one dtype, zeroes masked steps.

    The first input is the reference the others' shapes must match. With
    `check_numerics`, NaN or Inf at a valid step of an input raises an
    InvalidArgumentError naming it (masked steps, never read, are not
    checked; `function` names the caller in the warning given inside XLA).

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
    if _checks.numerics_checked(check_numerics, function):
        tensors = [
            tf.debugging.check_numerics(
                tensor, f"`{name}` holds NaN or Inf at a valid step."
            )
            for (name, _), tensor in zip(named, tensors)
        ]
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


def checked_loss(
    loss: tf.Tensor, check_numerics: bool, function: str, cause: str
) -> tf.Tensor:
    """`loss`, which with `check_numerics` must be finite.

    Called after `per_step_inputs` checked the inputs: a loss that is still
    not finite overflowed the float range, for the reason `cause` gives.
    """
    if not check_numerics:
        return loss
    return tf.debugging.check_numerics(
        loss,
        f"`{function}` overflowed: its inputs are finite at every valid "
        f"step but the loss is not ({cause}).",
    )


def fraction(
    condition: tf.Tensor, mask: Optional[tf.Tensor], dtype: tf.DType
) -> tf.Tensor:
    """The fraction of valid steps where `condition` holds."""
    return masked.masked_mean(tf.cast(condition, dtype), mask)

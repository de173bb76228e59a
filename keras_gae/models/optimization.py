"""One guarded gradient step of a training model, across replicas.

The step computes the gradients of this replica's share of the global loss,
sums them across replicas, clips them to a global norm, and applies them
only if the loss and the gradients are finite (and no earlier step of the
same execution failed). Keras 3 optimizers sum the replicas' gradients
themselves when they apply them, so the summed, clipped gradients are
handed back divided by the number of replicas: the optimizer's sum is then
exactly the clipped global gradient.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


def _all_finite(tensors: list) -> tf.Tensor:
    if not tensors:
        return tf.constant(True)
    return tf.reduce_all(
        tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])
    )


def _dense(gradient: Any) -> tf.Tensor:
    # Embedding lookups give IndexedSlices; the all-reduce, the clipping and
    # the finite check all want plain tensors.
    return tf.convert_to_tensor(gradient)


class _Unwrapped:
    """Hides variables from `merge_call`, which would unwrap mirrored ones.

    The optimizer must see the mirrored variables themselves when it runs
    again in each replica (Keras' LossScaleOptimizer does the same).
    """

    def __init__(self, value: list):
        self.value = value


def _apply_if(
    optimizer: Any, should_apply: tf.Tensor, grads: list, variables: list
) -> None:
    """`optimizer.apply(grads, variables)` when `should_apply`, else nothing.

    `should_apply` is the same on every replica. A `tf.cond` whose branch
    calls `merge_call` (as the optimizer does under a MirroredStrategy) is
    not allowed in a replica context, so under such a strategy the
    condition is taken in the cross-replica context and the update
    re-enters the replicas, as Keras' LossScaleOptimizer does for its
    skipped steps.
    """

    def apply(grads, wrapped):
        optimizer.apply(grads, wrapped.value)

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(
            should_apply,
            lambda: apply(grads, _Unwrapped(variables)),
            lambda: None,
        )
        return

    def cross_replica(distribution, should_apply, grads, wrapped):
        should_apply = distribution.experimental_local_results(should_apply)[0]

        def apply_in_replicas():
            distribution.extended.call_for_each_replica(
                apply, args=(grads, wrapped)
            )

        tf.cond(should_apply, apply_in_replicas, lambda: None)

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(should_apply, grads, _Unwrapped(variables))
    )


def scaled_loss(optimizer: Any, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: scaled under a LossScaleOptimizer."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def guarded_update(
    optimizer: Any,
    tape: tf.GradientTape,
    variables: list,
    loss: tf.Tensor,
    tape_loss: tf.Tensor,
    halted: tf.Tensor,
    max_grad_norm: Any,
) -> tf.Tensor:
    """Gradients, all-reduce, clipping and the guarded update.

    Args:
      optimizer: the model's (Keras 3) optimizer.
      tape: the tape that recorded `tape_loss`.
      variables: the trainable variables.
      loss: this replica's share of the loss, unscaled.
      tape_loss: `loss`, scaled under a LossScaleOptimizer.
      halted: whether an earlier step of this execution failed.
      max_grad_norm: None or the global norm to clip the gradients to.

    Returns:
      Whether the step was finite (the same on every replica). Under a
      LossScaleOptimizer, overflowing scaled gradients are the loss scale's
      business: it skips such steps and lowers the scale itself, and they
      count as finite here.
    """
    context = tf.distribute.get_replica_context()
    num_replicas = context.num_replicas_in_sync
    scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    gradients = tape.gradient(tape_loss, variables)
    pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
    gradients = [_dense(g) for g, _ in pairs]
    variables = [v for _, v in pairs]
    if num_replicas > 1:
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    if max_grad_norm is not None:
        clip_norm = max_grad_norm
        if scaling:
            # Clipping the scaled gradients at the scaled norm clips the
            # true gradients at `max_grad_norm`.
            clip_norm = max_grad_norm * optimizer.scale_loss(1.0)
        gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)

    finite = tf.math.is_finite(loss)
    if num_replicas > 1:
        failures = context.all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32)
        )
        finite = failures == 0
    if not scaling:
        finite = tf.logical_and(finite, _all_finite(gradients))
    apply = tf.logical_and(finite, tf.logical_not(halted))
    if num_replicas > 1:
        gradients = [g / num_replicas for g in gradients]
    if scaling:
        # NaN gradients make the loss scale optimizer skip the steps this
        # model refuses; it skips overflowing ones on its own.
        nan = tf.constant(np.nan, tf.float32)
        gradients = [
            tf.where(apply, g, tf.fill(tf.shape(g), tf.cast(nan, g.dtype)))
            for g in gradients
        ]
        optimizer.apply(gradients, variables)
    else:
        _apply_if(optimizer, apply, gradients, variables)
    return finite

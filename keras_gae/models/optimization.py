"""One guarded gradient step of a training model, across replicas.

The step computes the gradients of this replica's share of the global loss,
sums them across replicas, clips them to a global norm, and applies them
only if the loss and the gradients are finite, no earlier step of the
same execution failed and the batch holds a valid step; an update whose
new weights or optimizer state are not finite is undone. Keras 3
optimizers sum the replicas' gradients themselves when they apply them, so
the summed, clipped gradients are handed back divided by the number of
replicas: the optimizer's sum is then exactly the clipped global gradient.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_gae._src import private_apis


def _all_finite(tensors: list) -> tf.Tensor:
    # Integer tensors (the optimizer's iteration count) are always finite.
    tensors = [t for t in tensors if t.dtype.is_floating]
    if not tensors:
        return tf.constant(True)
    return tf.reduce_all(
        tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])
    )


def _read(variables: list) -> list:
    # One ReadVariableOp each (`tf.identity` would add an Identity op).
    return [tf.convert_to_tensor(v) for v in variables]


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


def _restore(state: list, saved: list) -> None:
    """Assigns `saved` back to the variables `state`.

    Runs where the strategy needs no `merge_call` (`_apply_checked`), so
    each replica updates its own copies directly.
    """
    distribution = tf.distribute.get_strategy()
    for variable, value in zip(state, saved):
        distribution.extended.update(
            variable.value,
            lambda v, x: v.assign(x),
            args=(value,),
            group=False,
        )


def _apply_checked(
    optimizer: Any,
    should_apply: tf.Tensor,
    state: list,
    grads: list,
    variables: list,
) -> tf.Tensor:
    """Applies the update, and undoes it unless it should stay.

    `state` is every variable the update writes (the weights and the
    optimizer's variables). The values before the update are read first
    (TensorFlow copies a variable's buffer on the write that follows a
    read, so this costs one copy of the state per step). The update is
    kept only when `should_apply` and the new state is finite; otherwise
    (a refused step, or a NaN or negative-overflowing learning rate, an
    overflow of the weights or of a moment) the saved values are assigned
    back, so the step did not happen, optimizer iterations included.
    Applying unconditionally and undoing keeps the optimizer's update out
    of a `tf.cond` branch: a smaller graph, traced and optimized faster.

    Returns:
      False when the update should have stayed but made the state
      non-finite (and was undone), else True.
    """
    saved = _read(state)
    # After `should_apply`, which follows the batch's checks: an assertion
    # that fails stops the step before anything is written. One gate: a
    # control dependency reaches every op the update creates, and one
    # edge per op (instead of one per saved value) keeps the graph small.
    with tf.control_dependencies([tf.group(saved + [should_apply])]):
        optimizer.apply(grads, variables)
    reads = _read(state)
    finite = _all_finite(reads)
    keep = tf.logical_and(should_apply, finite)
    with tf.control_dependencies([tf.group(reads)]):
        tf.cond(keep, lambda: None, lambda: _restore(state, saved))
    return tf.logical_or(tf.logical_not(should_apply), finite)


def _apply_if(
    optimizer: Any, should_apply: tf.Tensor, grads: list, variables: list
) -> tf.Tensor:
    """Applies the update when `should_apply` (and keeps it if finite).

    `should_apply` is the same on every replica. Without merge calls
    (one device) the update is applied and undone unless it should stay
    (`_apply_checked`). A `tf.cond` whose branch calls `merge_call` (as the
    optimizer does under a MirroredStrategy) is not allowed in a replica
    context, so under such a strategy the condition is taken in the
    cross-replica context and the update re-enters the replicas, as Keras'
    LossScaleOptimizer does for its skipped steps; the check and the undo
    run there too, on the mirrored variables (whose copies the update
    keeps equal).

    Returns:
      False when the update was applied and undone, else True.
    """
    if not optimizer.built:
        optimizer.build(variables)

    def apply(grads, wrapped):
        optimizer.apply(grads, wrapped.value)

    if private_apis.strategy_supports_no_merge_call():
        state = list(variables) + list(optimizer.variables)
        return _apply_checked(optimizer, should_apply, state, grads, variables)

    def cross_replica(distribution, should_apply, grads, wrapped):
        should_apply = distribution.experimental_local_results(should_apply)[0]
        # Every replica passed the same (mirrored) variables.
        first = distribution.experimental_local_results(wrapped)[0]
        state = list(first.value) + list(optimizer.variables)

        def apply_in_replicas():
            saved = _read(state)
            with tf.control_dependencies([tf.group(saved)]):
                distribution.extended.call_for_each_replica(
                    apply, args=(grads, wrapped)
                )
            reads = _read(state)
            finite = _all_finite(reads)

            def undo():
                for variable, value in zip(state, saved):
                    variable.assign(value)

            with tf.control_dependencies([tf.group(reads)]):
                tf.cond(finite, lambda: None, undo)
            return tf.identity(finite)

        return tf.cond(
            should_apply, apply_in_replicas, lambda: tf.constant(True)
        )

    return tf.distribute.get_replica_context().merge_call(
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
    count: Optional[tf.Tensor] = None,
    problems: Optional[tf.Tensor] = None,
) -> tuple:
    """Gradients, all-reduce, clipping and the guarded update.

    The update is applied only when the loss and the gradients are finite,
    no earlier step of the execution failed and the global batch has a
    valid step (`count`): a batch that is all padding moves nothing, not
    even through the optimizer's momentum. An applied update whose new
    weights or optimizer state are not finite is undone (`_apply_checked`).

    Args:
      optimizer: the model's (Keras 3) optimizer.
      tape: the tape that recorded `tape_loss`.
      variables: the trainable variables.
      loss: this replica's share of the loss, unscaled.
      tape_loss: `loss`, scaled under a LossScaleOptimizer.
      halted: whether an earlier step of this execution failed.
      max_grad_norm: None or the global norm to clip the gradients to.
      count: None, or this replica's number of valid steps.
      problems: None, or float32 `[P]` counts of this replica's invalid
        inputs (e.g. actions outside the action space); any makes the
        step refused.

    Returns:
      `(finite, problems)`: whether the step was finite (the same on every
      replica): loss, gradients and the state after the update; and the
      global batch's `problems` (zeros `[0]` without). Under a
      LossScaleOptimizer, overflowing scaled gradients are the loss
      scale's business: it skips such steps and lowers the scale itself,
      and they count as finite here.
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
    norm = None
    if max_grad_norm is not None:
        clip_norm = max_grad_norm
        if scaling:
            # Clipping the scaled gradients at the scaled norm clips the
            # true gradients at `max_grad_norm`.
            clip_norm = max_grad_norm * optimizer.scale_loss(1.0)
        gradients, norm = tf.clip_by_global_norm(gradients, clip_norm)

    # One all-reduce for the replicas' failures, valid steps and problems.
    if problems is None:
        problems = tf.zeros([0])
    totals = tf.concat(
        [
            tf.stack(
                [
                    tf.cast(~tf.math.is_finite(loss), tf.float32),
                    tf.ones([])
                    if count is None
                    else tf.cast(count, tf.float32),
                ]
            ),
            tf.cast(problems, tf.float32),
        ],
        0,
    )
    if num_replicas > 1:
        totals = context.all_reduce(tf.distribute.ReduceOp.SUM, totals)
    finite = totals[0] == 0
    problems = totals[2:]
    if not scaling:
        # The global norm is finite exactly when every gradient is and
        # their squares' sum does not overflow; otherwise
        # `clip_by_global_norm` has made every gradient NaN. One check
        # instead of one per gradient.
        finite = tf.logical_and(
            finite,
            _all_finite(gradients) if norm is None else tf.math.is_finite(norm),
        )
    apply = tf.logical_and(finite, tf.logical_not(halted))
    apply = tf.logical_and(apply, totals[1] > 0)
    apply = tf.logical_and(apply, tf.reduce_sum(problems) == 0)
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
        apply = tf.constant(True)
    updated = _apply_if(optimizer, apply, gradients, variables)
    return tf.logical_and(finite, updated), problems


def check_learning_rate(optimizer: Any) -> None:
    """Refuses a learning rate that is negative or not finite.

    A negative one would run gradient ascent; a NaN one would write NaN
    weights (which the guarded update undoes, failing the step).
    """
    learning_rate = float(np.asarray(optimizer.learning_rate))
    if not np.isfinite(learning_rate) or learning_rate < 0:
        raise ValueError(
            "The optimizer's learning rate must be finite and >= 0. "
            f"Received: learning_rate={learning_rate}"
        )

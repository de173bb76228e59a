"""Small tensor helpers of the actor-critic update on one replica.

Tensors in, tensors out, in the manner of tf-agents' `ppo_utils.py`: none
takes the model. `ActorCriticModel.train_step` tells the update in order
(prepare the batch, forward pass, losses, optimizer step) and calls these
for its details. Every loss is a masked mean over valid steps in float32.

Letters used in shapes: `B` rows, `T` steps per row, `N = B * T`.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.ops import _checks
from keras_gae.ops import masked


class PreparedBatch(NamedTuple):
    """A checked rollout batch ready for the loss.

    Attributes:
      observations: `[N, ...]` (or a nest), time merged into the batch.
      actions: `[N, ...]`.
      advantages: `[B, T]` float32, normalized when the model does so.
      returns: `[B, T]` float32 critic targets.
      old_values: `[B, T]` float32 values recorded at collection.
      old_log_probs: `[B, T]` float32 log-probabilities at collection.
      ref_log_probs: None or `[B, T]` float32 reference log-probabilities.
      mask: None or `[B, T]` bool validity.
      count: this replica's number of valid steps (float32 scalar).
      statistics: metrics of the targets (advantage mean and std before
        normalization, explained variance), over the global batch.
      problems: float32 `[2]`, this replica's number of valid steps whose
        action lies outside the policy head's action space, and of flag
        values (terminated, truncated, mask) other than 0 and 1. Such
        actions are replaced by 0 in `actions`, so that computing the loss
        never fails on them; a step with problems is refused.
    """

    observations: Any
    actions: tf.Tensor
    advantages: tf.Tensor
    returns: tf.Tensor
    old_values: tf.Tensor
    old_log_probs: tf.Tensor
    ref_log_probs: Optional[tf.Tensor]
    mask: Optional[tf.Tensor]
    count: tf.Tensor
    statistics: dict
    problems: tf.Tensor


def batch_mask(batch: dict) -> Optional[tf.Tensor]:
    """The batch's "mask" as a bool tensor, or None without one."""
    mask = batch.get(rollout_batch.MASK)
    if mask is None:
        return None
    return _checks.convert_flag(mask, 'batch["mask"]')


def precomputed_targets(batch: dict, mask: Optional[tf.Tensor]) -> tuple:
    """`(advantages, returns)` a batch carries (e.g. from `step_dataset`).

    float32 advantages, zero at masked steps; the returns as given.
    """
    advantages = tf.cast(batch[rollout_batch.ADVANTAGE], tf.float32)
    returns = _checks.convert_float(
        batch[rollout_batch.RETURN], 'batch["return"]'
    )
    if mask is not None:
        advantages = tf.where(mask, advantages, tf.zeros_like(advantages))
    return advantages, returns


def reference_log_probs(batch: dict) -> Optional[tf.Tensor]:
    """The batch's float32 "ref_log_prob", or None without one."""
    ref_log_probs = batch.get(rollout_batch.REF_LOG_PROB)
    if ref_log_probs is None:
        return None
    ref_log_probs = _checks.convert_float(
        ref_log_probs, 'batch["ref_log_prob"]'
    )
    return tf.cast(ref_log_probs, tf.float32)


def check_values(values: tf.Tensor, critic: Any) -> None:
    """Refuses critic outputs that are not one value per observation."""
    if values.shape.rank is not None and values.shape.rank != 1:
        raise ValueError(
            "The critic must return one value per observation, [N] or "
            f"[N, 1] for N observations, got shape {tuple(values.shape)} "
            f"after dropping a trailing 1. Received: critic={critic!r}"
        )


def kl_coefficient(kl_coef: Any) -> tf.Tensor:
    """The KL penalty's float32 coefficient: a float or a controller's."""
    if isinstance(kl_coef, float):
        return tf.constant(kl_coef, tf.float32)
    return tf.cast(kl_coef.value, tf.float32)


@tf.autograph.experimental.do_not_convert
def update_kl_controller(
    controller: Any, kl_penalty: tf.Tensor, count: tf.Tensor, weight: tf.Tensor
) -> None:
    """Feeds a KL controller the global batch's KL and number of steps.

    Args:
      controller: a `keras_gae.losses` KL controller.
      kl_penalty: this replica's KL penalty (a masked mean).
      count: this replica's number of valid steps.
      weight: this replica's share of the global valid steps.
    """
    context = tf.distribute.get_replica_context()
    if context.num_replicas_in_sync > 1:
        kl_penalty, count = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [kl_penalty * weight, count]
        )
    controller.update(tf.stop_gradient(kl_penalty), count)


def target_statistics(
    advantages: tf.Tensor,
    returns: tf.Tensor,
    old_values: tf.Tensor,
    mask: Optional[tf.Tensor],
) -> dict:
    """Advantage mean and std and the explained variance, global batch.

    explained_variance = 1 - Var[R - V_old] / Var[R] over valid steps (0
    when Var[R] = 0).
    """
    (mean, variance), (_, returns_variance), (_, residual_variance) = (
        masked.joint_masked_moments(
            [advantages, returns, returns - old_values],
            mask,
            across_replicas=True,
        )
    )
    return {
        "advantage_mean": mean,
        "advantage_std": tf.sqrt(variance),
        "explained_variance": tf.where(
            returns_variance > 0,
            1.0 - tf.math.divide_no_nan(residual_variance, returns_variance),
            tf.zeros([]),
        ),
    }


def valid_count(advantages: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    """This replica's number of valid steps, float32."""
    if mask is None:
        return tf.cast(tf.size(advantages), tf.float32)
    return tf.reduce_sum(tf.cast(mask, tf.float32))


def log_probs_and_entropy(
    distribution: Any, actions: tf.Tensor, shape: tf.Tensor
) -> tuple:
    """`(log pi(a), H[pi])`, float32, reshaped to `shape` (`[B, T]`)."""
    if actions.dtype != distribution.dtype:
        actions = tf.cast(actions, distribution.dtype)
    log_probs = tf.cast(distribution.log_prob(actions), tf.float32)
    entropy = tf.cast(distribution.entropy(), tf.float32)
    return tf.reshape(log_probs, shape), tf.reshape(entropy, shape)


def regularization_loss(losses: list) -> tf.Tensor:
    """The sum of a model's regularization losses, float32."""
    if not losses:
        return tf.zeros([])
    return tf.add_n([tf.cast(term, tf.float32) for term in losses])


def replica_objective(results: dict, count: tf.Tensor) -> tuple:
    """This replica's share of the global loss, and its weight.

    Every masked mean becomes a sum over this replica's valid steps divided
    by the global number of valid steps, so the gradients summed over
    replicas are those of the global batch; regularization is split
    evenly.

    Args:
      results: holds "loss" (regularization included) and
        "regularization".
      count: this replica's number of valid steps.

    Returns:
      `(loss, weight)`.
    """
    context = tf.distribute.get_replica_context()
    num_replicas = context.num_replicas_in_sync
    regularization = results["regularization"]
    if num_replicas == 1:
        return results["loss"], tf.ones([])
    data_loss = results["loss"] - regularization
    global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    weight = tf.math.divide_no_nan(count, global_count)
    return data_loss * weight + regularization / num_replicas, weight


_FLAG_KEYS = (rollout_batch.TERMINATED, rollout_batch.TRUNCATED)


def nonbinary_flags(batch: dict) -> tf.Tensor:
    """The number of flag values other than 0 and 1 (float32).

    `convert_flag` asserts the same in a graph; XLA drops assertions, so
    the training step counts them itself and refuses the step.
    """
    count = tf.zeros([])
    for key in _FLAG_KEYS + (rollout_batch.MASK,):
        flags = batch.get(key)
        if flags is None:
            continue
        flags = tf.convert_to_tensor(flags)
        if flags.dtype.is_bool:
            continue
        bad = tf.logical_and(
            tf.not_equal(flags, tf.zeros([], flags.dtype)),
            tf.not_equal(flags, tf.ones([], flags.dtype)),
        )
        count += tf.reduce_sum(tf.cast(bad, tf.float32))
    return count


def checked_actions(
    policy_head: Any, actions: Any, mask: Optional[tf.Tensor]
) -> tuple:
    """`(actions, count)` for a batch's `[B, T, ...]` actions: `[N, ...]`
    with out-of-space actions replaced by 0, and the number of those at
    valid steps (float32)."""
    actions = merge_time(tf.convert_to_tensor(actions))
    invalid = None
    if policy_head is not None:
        invalid = policy_head.invalid_actions(actions)
    if invalid is None:
        return actions, tf.zeros([])
    safe = tf.where(invalid, tf.zeros_like(actions), actions)
    if invalid.shape.rank is not None and invalid.shape.rank > 1:
        invalid = tf.reduce_any(
            tf.reshape(invalid, [tf.shape(invalid)[0], -1]), axis=-1
        )
    if mask is not None:
        invalid = tf.logical_and(invalid, tf.reshape(mask, [-1]))
    return safe, tf.reduce_sum(tf.cast(invalid, tf.float32))


def merged_observations(observations: Any) -> Any:
    """Observations (a nest allowed) with time merged into the batch."""
    return tf.nest.map_structure(
        lambda x: merge_time(tf.convert_to_tensor(x)), observations
    )


def merge_time(tensor: tf.Tensor) -> tf.Tensor:
    """`[B, T, ...]` -> `[B * T, ...]`."""
    inner = tensor.shape[2:]
    if inner.is_fully_defined():
        return tf.reshape(tensor, [-1] + inner.as_list())
    return tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], 0))

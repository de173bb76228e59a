"""The rollout batch: the one definition of its keys and their checks.

A rollout batch is a dict of batch-major tensors, one row per environment
(or generated sequence), T steps each (docs/design.md, "Rollout batch").
The GAE layer, the training models, the datasets, the tf-agents conversion
and the language-model rollouts all take their keys from here.

Letters used in shapes: `B` rows, `T` steps per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from keras_gae.ops import _checks

OBSERVATION = "observation"
ACTION = "action"
REWARD = "reward"
TERMINATED = "terminated"
TRUNCATED = "truncated"
LOG_PROB = "log_prob"
VALUE = "value"
BOOTSTRAP_VALUE = "bootstrap_value"
TRUNCATION_VALUE = "truncation_value"
MASK = "mask"
REF_LOG_PROB = "ref_log_prob"
ADVANTAGE = "advantage"
RETURN = "return"
# Each row's recurrent state before its first step (a nest of `[B, ...]`
# tensors), for recurrent models only (`keras_gae.models.recurrent`).
INITIAL_STATE = "initial_state"

# Read by every training step.
ALWAYS_REQUIRED = (OBSERVATION, ACTION, LOG_PROB, VALUE)
# GAE inputs; "advantage" and "return" replace them when the batch carries
# precomputed targets (`keras_gae.models.step_dataset`).
GAE_REQUIRED = (REWARD, BOOTSTRAP_VALUE)
GAE_OPTIONAL = (TERMINATED, TRUNCATED, TRUNCATION_VALUE)
PRECOMPUTED = (ADVANTAGE, RETURN)
OPTIONAL = (MASK, REF_LOG_PROB, INITIAL_STATE)
KEYS = ALWAYS_REQUIRED + GAE_REQUIRED + GAE_OPTIONAL + PRECOMPUTED + OPTIONAL

# Rollout-batch key -> argument of `keras_gae.ops.
# generalized_advantage_estimation`.
GAE_ARGUMENTS = {
    REWARD: "rewards",
    VALUE: "values",
    BOOTSTRAP_VALUE: "bootstrap_value",
    TERMINATED: "terminated",
    TRUNCATED: "truncated",
    TRUNCATION_VALUE: "truncation_values",
    MASK: "mask",
}
# Keys whose tensors are `[B, T]`.
PER_STEP = (
    REWARD,
    TERMINATED,
    TRUNCATED,
    LOG_PROB,
    VALUE,
    TRUNCATION_VALUE,
    MASK,
    REF_LOG_PROB,
    ADVANTAGE,
    RETURN,
)


def check_keys(batch: Any, name: str = "batch") -> dict:
    """A shallow copy of `batch` after checking it is a dict of known keys."""
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"`{name}` must be one rollout batch: a dict with keys among "
            f"{list(KEYS)}. Received: {name}={batch!r}"
        )
    batch = dict(batch)
    unknown = sorted(key for key in batch if key not in KEYS)
    if unknown:
        raise ValueError(
            f"The rollout batch has unknown key(s) {unknown}; accepted "
            f"keys are {list(KEYS)}. Received: {name} keys={sorted(batch)}"
        )
    return batch


def episode_starts(batch: Mapping) -> tf.Tensor:
    """`[B, T]` bool: where a new episode starts inside each row.

    A recurrent network resets its state (to zeros) before such a step;
    the first step of a row never counts, its state being the row's
    "initial_state", already reset at collection where needed. Step t > 0
    starts an episode when step t - 1 is a boundary row ("mask" false:
    tf-agents' LAST -> FIRST row, whose observation still belongs to the
    episode that ended), or when step t - 1 ended an episode ("terminated"
    or "truncated") and step t is valid (batches without boundary rows):

        start[t] = not mask[t-1] or (end[t-1] and mask[t]),  start[0] = 0.

    Absent flags count as false, an absent mask as true.
    """
    reference = batch[LOG_PROB]
    false = tf.zeros(tf.shape(reference), tf.bool)
    flag = lambda key: (  # noqa: E731
        tf.cast(batch[key], tf.bool) if key in batch else false
    )
    ended = tf.logical_or(flag(TERMINATED), flag(TRUNCATED))
    mask = tf.cast(batch[MASK], tf.bool) if MASK in batch else ~false
    starts = tf.logical_or(
        tf.logical_not(mask[:, :-1]),
        tf.logical_and(ended[:, :-1], mask[:, 1:]),
    )
    return tf.concat([false[:, :1], starts], axis=1)


def check_training_batch(
    data: Any, *, has_kl_penalty: bool, recurrent: bool = False
) -> dict:
    """Checks a rollout batch a training model is about to learn from.

    Args:
      data: the batch (a tuple holding it and Nones, as `train_on_batch`
        passes, is unpacked).
      has_kl_penalty: whether the model uses "ref_log_prob".
      recurrent: whether the model is recurrent: it needs
        "initial_state" (and whole rows), which a feed-forward one refuses.

    Returns:
      A shallow copy whose float inputs are converted to tensors.

    Raises:
      TypeError, ValueError: naming the key at fault.
    """
    if isinstance(data, tuple) and data and all(x is None for x in data[1:]):
        # `train_on_batch(batch)` and `evaluate(batch)` pass
        # `(batch, None, None)`: a rollout batch has no separate targets.
        data = data[0]
    batch = check_keys(data)
    precomputed = [key for key in PRECOMPUTED if key in batch]
    if len(precomputed) == 1:
        raise ValueError(
            'A rollout batch carries both "advantage" and "return" or '
            f"neither. Received: batch keys={sorted(batch)}"
        )
    required = ALWAYS_REQUIRED + (() if precomputed else GAE_REQUIRED)
    missing = [key for key in required if key not in batch]
    if missing:
        raise ValueError(
            f"The rollout batch is missing key(s) {missing}. "
            f"Received: batch keys={sorted(batch)}"
        )
    if REF_LOG_PROB in batch and not has_kl_penalty:
        raise ValueError(
            'The rollout batch carries "ref_log_prob" but the model has '
            "no KL penalty to use it; pass `kl_coef`. "
            f"Received: kl_coef=None, batch keys={sorted(batch)}"
        )
    if recurrent and INITIAL_STATE not in batch:
        raise ValueError(
            'A recurrent model needs each row\'s "initial_state" and '
            "minibatches of whole rows (`rollout_dataset`, "
            'minibatch_mode="rows"), not single steps (`step_dataset`). '
            f"Received: batch keys={sorted(batch)}"
        )
    if INITIAL_STATE in batch and not recurrent:
        raise ValueError(
            'The rollout batch carries "initial_state" but the model is '
            "feed-forward (no recurrent network to start from it). "
            f"Received: batch keys={sorted(batch)}"
        )
    reference_key = ADVANTAGE if precomputed else REWARD
    for key in (reference_key, LOG_PROB, VALUE):
        batch[key] = _checks.convert_float(batch[key], f'batch["{key}"]')
    reference = batch[reference_key]
    _checks.check_rank(reference, 2, f'batch["{reference_key}"]', "[B, T]")
    for key in PER_STEP:
        if key in batch and key != reference_key:
            tensor = tf.convert_to_tensor(batch[key])
            if not tensor.shape.is_compatible_with(reference.shape):
                raise ValueError(
                    f'batch["{key}"] must have the shape [B, T] of '
                    f'batch["{reference_key}"] {tuple(reference.shape)}. '
                    f"Received: batch[{key!r}]={_checks.describe(tensor)}"
                )
    leading = reference.shape[:2]
    for key in (OBSERVATION, ACTION):
        for leaf in tf.nest.flatten(batch[key]):
            leaf = tf.convert_to_tensor(leaf)
            if leaf.shape.rank is not None and (
                leaf.shape.rank < 2
                or not leaf.shape[:2].is_compatible_with(leading)
            ):
                raise ValueError(
                    f'batch["{key}"] must be [B, T, ...] with the '
                    f"[B, T] = {tuple(leading)} of "
                    f'batch["{reference_key}"]. '
                    f"Received: batch[{key!r}]={_checks.describe(leaf)}"
                )
    if INITIAL_STATE in batch:
        for leaf in tf.nest.flatten(batch[INITIAL_STATE]):
            leaf = tf.convert_to_tensor(leaf)
            if leaf.shape.rank is not None and (
                leaf.shape.rank < 1
                or not leaf.shape[:1].is_compatible_with(leading[:1])
            ):
                raise ValueError(
                    f'batch["{INITIAL_STATE}"] must be [B, ...] with the '
                    f'B = {leading[0]} of batch["{reference_key}"]. '
                    f"Received: batch[{INITIAL_STATE!r}]="
                    f"{_checks.describe(leaf)}"
                )
    return batch

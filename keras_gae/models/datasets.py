"""Minibatches of one rollout batch, as `tf.data` datasets for `Model.fit`.

Two ways to split a rollout batch (the docs/design.md dict, `[B, T, ...]`) into
the minibatches a PPO epoch iterates over:

* `rollout_dataset`: by rows. Each minibatch holds whole sequences, so the
  training model computes GAE on it inside its compiled step. Needed when
  the batch holds generated sequences, or when the networks must see
  whole rows; the default.
* `step_dataset`: by steps. GAE runs once over the whole rollout with the
  model's own GAE layer; the valid steps are then shuffled individually
  (the stable-baselines3 / CleanRL minibatching) and each minibatch is a
  `[M, 1]` rollout batch carrying "advantage" and "return", which the same
  `train_step` reads instead of recomputing GAE.

Each pass over either dataset is one epoch: `fit(dataset, epochs=E)` runs E
PPO epochs, reshuffling every epoch. `minibatch_dataset(model, batch,
mode=...)` picks one of the two by name ("rows" or "steps").

Both run without tf.data's autotuning (`tf.data.Options().autotune`): the
pipelines have nothing to tune (no parallel map or prefetch), and an
iterator with autotuning on can take about a second to close, which
`fit` waits for after every call (measured on an Atari rollout: 1.15 s
added to one fit in three).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from typing import Optional

import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.ops import _checks

# `minibatch_dataset`'s modes: `rollout_dataset`, `step_dataset`.
MINIBATCH_MODES = ("rows", "steps")

# Keys `step_dataset` carries from the rollout into each step.
_STEP_KEYS = (
    rollout_batch.OBSERVATION,
    rollout_batch.ACTION,
    rollout_batch.LOG_PROB,
    rollout_batch.VALUE,
    rollout_batch.REF_LOG_PROB,
)


def _check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    return _checks.check_int(seed, "seed")


def _as_tensors(batch: Any) -> dict:
    if not isinstance(batch, Mapping):
        raise TypeError(
            "`batch` must be a rollout batch: a dict of batch-major tensors "
            f"(see docs/design.md). Received: batch={batch!r}"
        )
    if not batch:
        raise ValueError("`batch` must not be empty. Received: batch={}")
    return tf.nest.map_structure(tf.convert_to_tensor, dict(batch))


def _num_rows(batch: dict) -> int:
    """B, the leading dimension every value of the batch shares."""
    rows = None
    for key, value in batch.items():
        for leaf in tf.nest.flatten(value):
            if leaf.shape.rank == 0:
                raise ValueError(
                    f'batch["{key}"] must be batch-major with a leading '
                    f"dimension B. Received: batch[{key!r}]="
                    f"{_checks.describe(leaf)}"
                )
            size = leaf.shape[0]
            if size is None:
                raise ValueError(
                    f'batch["{key}"] must have a known leading dimension B. '
                    f"Received: batch[{key!r}]={_checks.describe(leaf)}"
                )
            if rows is None:
                rows = size
            elif size != rows:
                raise ValueError(
                    f'batch["{key}"] has {size} rows but other keys have '
                    f"{rows}; every value must share the leading dimension "
                    f"B. Received: batch[{key!r}]={_checks.describe(leaf)}"
                )
    return rows


def rollout_dataset(
    batch: Mapping,
    *,
    num_minibatches: int,
    shuffle: bool = True,
    seed: Optional[int] = None,
) -> tf.data.Dataset:
    """Splits the rows of one rollout batch into minibatches, every epoch.

    The B rows (environments or sequences) are shuffled (again at every
    pass when `shuffle`) and cut into `num_minibatches` minibatches of
    B / num_minibatches whole rows; `[B, T, ...]` values become
    `[B / num_minibatches, T, ...]`, `[B]` values (bootstrap_value)
    `[B / num_minibatches]`. Minibatch shapes are static, which `jit_compile`
    and distribution strategies like.

    Args:
      batch: a rollout batch, a dict of batch-major tensors or arrays
        (nested observations allowed), every value with leading dimension B.
      num_minibatches: K >= 1 dividing B.
      shuffle: whether to shuffle rows (a new order every pass).
      seed: optional int seed of the shuffle.

    Returns:
      A `tf.data.Dataset` of K rollout batches.

    Raises:
      ValueError: K < 1, K not dividing B, values of different B.
      TypeError: `batch` not a dict, non-int K or seed, non-bool shuffle.
    """
    num_minibatches = _checks.check_positive_int(
        num_minibatches, "num_minibatches"
    )
    seed = _check_seed(seed)
    if not isinstance(shuffle, bool):
        raise TypeError(
            f"`shuffle` must be a bool. Received: shuffle={shuffle!r}"
        )
    batch = _as_tensors(batch)
    rows = _num_rows(batch)
    if rows % num_minibatches:
        raise ValueError(
            f"`num_minibatches` must divide the number of rows B={rows} of "
            "the rollout batch, so that minibatches have one static size. "
            f"Received: num_minibatches={num_minibatches}"
        )
    dataset = tf.data.Dataset.from_tensor_slices(batch)
    if shuffle:
        dataset = dataset.shuffle(
            rows, seed=seed, reshuffle_each_iteration=True
        )
    return _without_autotuning(
        dataset.batch(rows // num_minibatches, drop_remainder=True)
    )


def step_dataset(
    model: Any,
    batch: Mapping,
    *,
    num_minibatches: int,
    seed: Optional[int] = None,
) -> tf.data.Dataset:
    """Shuffled minibatches of single steps, with GAE computed once.

    1. `model.compute_advantages(batch)` runs the model's GAE layer (its
       gamma and lambda_) over the whole `[B, T]` rollout, so every trace
       spans its full row.
    2. The valid steps (all, or where "mask" is set) are gathered into
       N steps: "observation", "action", "log_prob", "value" (and
       "ref_log_prob" when present) with the "advantage" and "return" just
       computed.
    3. The steps are padded with masked zero steps to M * K steps,
       M = ceil(B * T / K) for K = `num_minibatches`, shuffled at every
       pass, and cut into K minibatches of M steps, each shaped as a
       rollout batch of M rows and one step: `[M, 1, ...]`, with a "mask"
       `[M, 1]` that is false on padding. M depends on the batch's shape,
       not on how many of its steps are valid, so rollouts with different
       numbers of episode boundaries give minibatches of one shape.

    The model's `train_step` reads "advantage" and "return" instead of
    running GAE, and normalizes the advantages per minibatch.

    Args:
      model: an `ActorCriticModel` (anything with `compute_advantages`).
      batch: a rollout batch (docs/design.md), `[B, T, ...]`.
      num_minibatches: K >= 1.
      seed: optional int seed of the shuffle.

    Returns:
      A `tf.data.Dataset` of K rollout batches of single steps.

    Raises:
      ValueError: K < 1, a batch without valid steps, the GAE layer's
        errors for malformed inputs.
      TypeError: `batch` not a dict, non-int K or seed.
    """
    num_minibatches = _checks.check_positive_int(
        num_minibatches, "num_minibatches"
    )
    seed = _check_seed(seed)
    batch = _as_tensors(batch)
    advantages, returns = model.compute_advantages(batch)
    steps = {key: batch[key] for key in _STEP_KEYS if key in batch}
    steps["advantage"] = advantages
    steps["return"] = returns

    if "mask" in batch:
        valid = _checks.convert_flag(batch["mask"], 'batch["mask"]')
    else:
        valid = tf.ones(tf.shape(advantages), tf.bool)
    indices = tf.where(tf.reshape(valid, [-1]))[:, 0]
    num_steps = int(indices.shape[0])
    if num_steps == 0:
        raise ValueError(
            'The rollout batch has no valid step ("mask" is false '
            "everywhere); there is nothing to train on. "
            f"Received: mask={_checks.describe(batch['mask'])}"
        )
    # M from the batch's B * T, not from the number of valid steps: the
    # minibatch shape stays the same from rollout to rollout (one trace,
    # one XLA compilation of the train step).
    size = math.ceil(int(tf.size(valid)) / num_minibatches)
    padding = size * num_minibatches - num_steps

    def gather(tensor):
        merged = tf.reshape(
            tensor, tf.concat([[-1], tf.shape(tensor)[2:]], axis=0)
        )
        kept = tf.gather(merged, indices)
        if padding:
            pad = tf.zeros(
                tf.concat([[padding], tf.shape(kept)[1:]], 0), kept.dtype
            )
            kept = tf.concat([kept, pad], axis=0)
        return kept[:, tf.newaxis]

    steps = tf.nest.map_structure(gather, steps)
    steps["mask"] = tf.concat(
        [tf.ones([num_steps, 1], tf.bool), tf.zeros([padding, 1], tf.bool)],
        axis=0,
    )
    # The indices are shuffled, not the steps: one gather per minibatch
    # instead of a shuffle buffer of N single-step dicts.
    return _without_autotuning(
        tf.data.Dataset.range(size * num_minibatches)
        .shuffle(
            size * num_minibatches, seed=seed, reshuffle_each_iteration=True
        )
        .batch(size, drop_remainder=True)
        .map(
            lambda minibatch: tf.nest.map_structure(
                lambda tensor: tf.gather(tensor, minibatch), steps
            )
        )
    )


def minibatch_dataset(
    model: Any,
    batch: Mapping,
    *,
    mode: str,
    num_minibatches: int,
    seed: Optional[int] = None,
) -> tf.data.Dataset:
    """`rollout_dataset` (mode "rows") or `step_dataset` (mode "steps").

    Raises:
      ValueError: a mode not in `MINIBATCH_MODES`, and the chosen
        function's errors.
    """
    mode = _checks.check_option(mode, "mode", MINIBATCH_MODES)
    if mode == "steps":
        return step_dataset(
            model, batch, num_minibatches=num_minibatches, seed=seed
        )
    return rollout_dataset(batch, num_minibatches=num_minibatches, seed=seed)


def _without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off (module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)

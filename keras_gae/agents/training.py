"""The collect-and-fit loop: tf-agents collection, Keras `fit` training.

`OnPolicyTrainer` (`keras_gae.agents.trainer`) trains a compiled keras_gae
`ActorCriticModel` (`PPOModel`, `A2CModel`) on a batched tf-agents
environment; `train(...)` builds one and runs it. Collection lives in
`keras_gae.agents.rollout_collector`, the episode statistics in
`keras_gae.agents.episode_statistics`, checkpoints in
`keras_gae.agents.checkpointing`. Letters: `B` environments (the
environment's batch size), `T` the rollout length (driver iterations per
collection), `E` epochs, `K` minibatches.

One iteration:

1. Collection. A `DynamicStepDriver` steps the `B` environments `T` times
   with a `KerasPolicy` of the model (its `run` compiled with
   `tf_agents.utils.common.function`) and writes every step into a
   `TFUniformReplayBuffer` of `T` rows per environment, cleared first.
   The driver is run with `maximum_iterations=T`, so every rollout has
   exactly `T` rows and the compiled training step sees one shape; the
   LAST -> FIRST boundary rows an auto-reset writes are masked out, so an
   iteration trains on `B * T` rows of which `B * T` minus the number of
   boundaries are environment steps. The environments keep running across
   iterations: each collection continues the episodes the last one left.
2. Conversion. The buffer's `[B, T]` trajectory becomes a rollout batch
   (`trajectory_to_rollout_batch`), bootstrapped from V(s_T) of the driver's
   final time step, passed explicitly.
3. Training. `model.fit` runs `E` epochs over `rollout_dataset(batch,
   num_minibatches=K)`: `E * K` gradient steps on minibatches of `B / K`
   whole rows, reshuffled every epoch; GAE runs inside the model's
   compiled train step. With `minibatch_mode="steps"` it runs over
   `step_dataset(model, batch, num_minibatches=K)` instead: GAE once over
   the rollout, then minibatches of single steps shuffled across the
   environments and time. (The `E` passes are one Keras epoch over the
   dataset repeated `E` times: the same steps with less overhead.)
   Compiling the model with `steps_per_execution=E * K` runs them in one
   call, for a slower first trace (`benchmarks/cartpole_benchmark.py`
   measures the parts of an iteration).

Logs. After every iteration the Keras callbacks get `on_epoch_end(index,
logs)` (`index` 0-based, continuing across resumes), through a
`keras.callbacks.CallbackList`, so `TensorBoard`, `CSVLogger`,
`EarlyStopping` (e.g. on "episode_return_mean") and custom callbacks work
unchanged, and the loop returns the `keras.callbacks.History` of them, as
`model.fit` does (`history.history["episode_return_mean"]`). `logs` holds

* the model's training metrics ("loss", "policy_loss", "value_loss",
  "entropy", "approx_kl", "clip_fraction", "explained_variance", ...),
  averaged over the iteration's `E * K` gradient steps;
* "episode_return_mean", "episode_length_mean": over the last
  `return_window` finished episodes of all environments (NaN before the
  first one ends), and "episodes", the number finished so far;
* "env_steps": environment steps so far (boundary rows not counted),
  "iteration": iterations done so far;
* "steps_per_second": this iteration's environment steps over its wall
  time, and the split of that time into "collect_seconds" (driver:
  policy inference and environment stepping), "convert_seconds" (reading
  the buffer, conversion, bootstrap value, dataset) and "fit_seconds"
  (`model.fit`, GAE included);
* "learning_rate": the optimizer's rate after the iteration (a
  schedule's value at the optimizer's iteration count).

TensorBoard. `EnvStepTensorBoard(log_dir)` (`keras_gae.agents.loop_logs`;
`train(..., log_dir=...)` adds one) writes these logs once per iteration
with "env_steps" as the step, grouped as `rollout/` (return and length
means, episodes), `train/` (the model's metrics and learning_rate) and
`time/` (steps per second, collect/convert/fit seconds, iteration), and
`eval/` for what `EvaluationCallback` adds ("eval_return_mean",
"eval_return_std"). A callback adds values to an iteration's logs through
an `iteration_logs(iteration, logs)` method, which the loop calls before
History, the progress line or any callback's `on_epoch_end` reads them
(`keras_gae.agents.loop_logs`), so the order of callbacks does not matter.
Keras' own `TensorBoard` callback works too, with the iteration index as
its step and every key under `epoch_`.

Checkpoints. With `root_dir`, a `tf.train.CheckpointManager` under
`root_dir/checkpoints` saves the model's weights, the optimizer's state, the
iteration and environment-step counters and the episode statistics every
`checkpoint_interval` iterations and when the loop ends. A trainer built on
a `root_dir` that holds checkpoints restores the latest readable one (with
a warning naming newer unreadable ones; none readable is an error, and so
is a checkpoint saved with another number of environments, named in the
message; `restart=True` moves the old checkpoints aside instead): its
counters, the weights and the optimizer continue where the checkpoint left
them. The environments are not part of a checkpoint: after a restart they
begin new episodes, and the transitions collected after the last checkpoint
are collected again with the restored policy. With `checkpoint_interval=1` (the
default) an interruption loses at most the iteration that was running.

Failures. A NaN or Inf loss makes `model.fit` raise `NonFiniteLossError`
(`keras_gae.models`), which the loop raises again with the iteration and
the last checkpoint named. That iteration is not checkpointed, so the
latest checkpoint still holds the weights of the last good iteration (the
model in memory may hold the finite updates of that iteration's earlier
gradient steps); restore it with a new trainer on the same `root_dir`,
after fixing the cause.

Seeding. `seed` sets TensorFlow's global seed when `run` starts (the
policy's sampling in the driver follows it) and, with the iteration
number, seeds each iteration's minibatch shuffle. The environments carry
their own seeds (`make_tf_environment(seed=...)`) and the model's initial
weights are the caller's (`keras.utils.set_random_seed` before building
it).
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

import keras

from keras_gae.agents.loop_logs import LOOP_LOG_KEYS
from keras_gae.agents.loop_logs import EnvStepTensorBoard
from keras_gae.agents.trainer import OnPolicyTrainer
from keras_gae.models import ActorCriticModel

__all__ = ["LOOP_LOG_KEYS", "EnvStepTensorBoard", "OnPolicyTrainer", "train"]


def train(
    model: ActorCriticModel,
    env: Any,
    *,
    rollout_length: int,
    total_env_steps: int,
    epochs: int = 4,
    num_minibatches: int = 4,
    minibatch_mode: str = "rows",
    callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
    root_dir: Optional[str] = None,
    seed: int = 0,
    target_return: Optional[float] = None,
    return_window: int = 20,
    checkpoint_interval: int = 1,
    max_checkpoints: int = 3,
    restart: bool = False,
    verbose: int = 1,
    log_dir: Optional[str] = None,
) -> keras.callbacks.History:
    """Trains `model` on `env` with the collect-and-fit loop.

    `OnPolicyTrainer(model, env, ...).run(total_env_steps=...,
    callbacks=..., target_return=..., verbose=...)`: resumes from the
    latest checkpoint under `root_dir` if there is one, then alternates
    collection (B environments x `rollout_length` steps) and `epochs`
    passes of `model.fit` over `num_minibatches` minibatches until
    `total_env_steps` environment steps, `target_return`, or a callback's
    stop. See the module docstring for the details and the logs.

    Args:
      model: a compiled keras_gae `ActorCriticModel`.
      env: a batched tf-agents `TFEnvironment` (batch size B), or
        `keras_gae.distributed.RolloutWorkers` collecting in Ray actors
        (B: all workers' environments; see `OnPolicyTrainer`).
      rollout_length: T, steps per environment per collection.
      total_env_steps: environment-step budget (restored steps count).
      epochs: E, passes over each rollout.
      num_minibatches: K (dividing B when `minibatch_mode="rows"`).
      minibatch_mode: "rows" (whole environment rows, GAE in the train
        step) or "steps" (GAE once per rollout, shuffled single steps);
        see `OnPolicyTrainer`.
      callbacks: Keras callbacks, called once per iteration.
      root_dir: checkpoint directory root, or None.
      seed: seed of TensorFlow's global seed and the minibatch shuffles.
      target_return: None, or the mean return of the last `return_window`
        episodes to stop at.
      return_window: episodes the return and length means average over.
      checkpoint_interval: iterations between checkpoints.
      max_checkpoints: checkpoints kept.
      restart: start over even if `root_dir` holds checkpoints (they are
        moved to `root_dir/checkpoints.old-<n>`, not overwritten).
      verbose: 0 silent, 1 progress bar, 2 a line per iteration.
      log_dir: None, or a directory for TensorBoard scalars against
        environment steps (an `EnvStepTensorBoard` after `callbacks`).

    Returns:
      The `keras.callbacks.History` of `OnPolicyTrainer.run`, as
      `model.fit` returns one: `history.history` maps each log key to one
      value per iteration run by this call.

    Raises:
      NonFiniteLossError: a NaN or Inf loss; the last checkpoint is intact.
      TypeError, ValueError: invalid arguments, naming them.

    Example:

    ```python
    env = keras_gae.agents.make_tf_environment("CartPole-v1", num_envs=8)
    model = keras_gae.models.PPOModel(actor, critic)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = keras_gae.agents.train(
        model, env, rollout_length=128, total_env_steps=100_000,
        epochs=10, num_minibatches=4, target_return=475)
    history.history["episode_return_mean"][-1]
    ```
    """
    trainer = OnPolicyTrainer(
        model,
        env,
        rollout_length=rollout_length,
        epochs=epochs,
        num_minibatches=num_minibatches,
        minibatch_mode=minibatch_mode,
        root_dir=root_dir,
        seed=seed,
        return_window=return_window,
        checkpoint_interval=checkpoint_interval,
        max_checkpoints=max_checkpoints,
        restart=restart,
    )
    callbacks = list(callbacks or [])
    if log_dir is not None:
        callbacks.append(EnvStepTensorBoard(log_dir))
    return trainer.run(
        total_env_steps=total_env_steps,
        callbacks=callbacks,
        target_return=target_return,
        verbose=verbose,
    )

"""The collect-and-fit loop: tf-agents collection, Keras `fit` training.

`OnPolicyTrainer` trains a compiled keras_gae `ActorCriticModel` (`PPOModel`,
`A2CModel`) on a batched tf-agents environment; `train(...)` builds one and
runs it. Letters: `B` environments (the environment's batch size), `T` the
rollout length (driver iterations per collection), `E` epochs, `K`
minibatches.

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
   compiled train step. (The `E` passes are one Keras epoch over the
   dataset repeated `E` times: the same steps with less overhead.)
   Compiling the model with `steps_per_execution=E * K` runs them in one
   call: for small networks that halves the time of `fit`, for the cost of
   a slower first trace (CartPole, tanh 64x64: about 60 instead of 150 ms
   per iteration of 40 steps, on 2 CPU cores).

Logs. After every iteration the Keras callbacks get `on_epoch_end(index,
logs)` (`index` 0-based, continuing across resumes), through a
`tf.keras.callbacks.CallbackList`, so `TensorBoard`, `CSVLogger`,
`EarlyStopping` (e.g. on "episode_return_mean") and custom callbacks work
unchanged. `logs` holds

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
  (`model.fit`, GAE included).

Checkpoints. With `root_dir`, a `tf.train.CheckpointManager` under
`root_dir/checkpoints` saves the model's weights, the optimizer's state, the
iteration and environment-step counters and the episode statistics every
`checkpoint_interval` iterations and when the loop ends. A trainer built on
a `root_dir` that holds checkpoints restores the latest: its counters, the
weights and the optimizer continue where the checkpoint left them. The
environments are not part of a checkpoint: after a restart they begin new
episodes, and the transitions collected after the last checkpoint are
collected again with the restored policy. With `checkpoint_interval=1` (the
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
weights are the caller's (`tf.keras.utils.set_random_seed` before building
it).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any
from typing import Dict
from typing import List
from typing import Optional
from typing import Sequence

import numpy as np
import tensorflow as tf
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import tf_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.utils import common

from keras_gae.agents.policy import LOG_PROB_KEY
from keras_gae.agents.policy import VALUE_KEY
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.trajectories import trajectory_to_rollout_batch
from keras_gae.models.base import ActorCriticModel
from keras_gae.models.base import NonFiniteLossError
from keras_gae.models.datasets import rollout_dataset
from keras_gae.ops import _checks

CHECKPOINT_DIR = "checkpoints"

# Keys of the per-iteration logs besides the model's training metrics.
LOOP_LOG_KEYS = (
    "episode_return_mean",
    "episode_length_mean",
    "episodes",
    "env_steps",
    "iteration",
    "steps_per_second",
    "collect_seconds",
    "convert_seconds",
    "fit_seconds",
)
# What the progress bar shows.
_PROGBAR_LOGS = ("episode_return_mean", "loss", "approx_kl", "steps_per_second")


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    return int(value)


def _check_verbose(verbose: Any) -> int:
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(
            "`verbose` must be 0 (silent), 1 (progress bar) or 2 (one line "
            f"per iteration). Received: verbose={verbose!r}"
        )
    return int(verbose)


def _shuffle_seed(seed: int, iteration: int) -> int:
    """A minibatch-shuffle seed per (seed, iteration), stable on resume."""
    state = np.random.SeedSequence([seed % 2**32, iteration]).generate_state(1)
    return int(state[0] % 2**31)


class _EpisodeStatistics(tf.Module):
    """Driver observer: return and length of the last finished episodes.

    Keeps what tf-agents' `AverageReturnMetric`, `AverageEpisodeLengthMetric`
    and `NumberOfEpisodes` keep (a return accumulator zeroed at FIRST steps,
    a length accumulator counting non-boundary steps, rings of the last
    `window` finished episodes in environment order, the episode count),
    with vectorised updates: those metrics add each finished episode in an
    AutoGraph loop, whose conversion and per-step loops made up most of the
    first collection's tracing time.
    """

    def __init__(self, batch_size: int, window: int):
        super().__init__(name="episode_statistics")
        self._window = window
        self._return_sums = tf.Variable(tf.zeros([batch_size]), name="return")
        self._lengths = tf.Variable(tf.zeros([batch_size]), name="length")
        # Finished episodes' [return, length], slot = episode number % window.
        self._finished = tf.Variable(tf.zeros([window, 2]), name="finished")
        self.episodes = tf.Variable(0, dtype=tf.int64, name="episodes")

    def __call__(self, trajectory: Any) -> Any:
        return_sums = trajectory.reward + tf.where(
            trajectory.is_first(), 0.0, self._return_sums
        )
        lengths = self._lengths + tf.cast(~trajectory.is_boundary(), tf.float32)
        last = trajectory.is_last()
        count = tf.reduce_sum(tf.cast(last, tf.int64))
        rank = tf.cumsum(tf.cast(last, tf.int64), exclusive=True)
        # Of more than `window` episodes ending at once, the last ones win.
        kept = last & (rank >= count - self._window)
        slots = tf.boolean_mask((self.episodes + rank) % self._window, kept)
        self._finished.scatter_nd_update(
            slots[:, None],
            tf.boolean_mask(tf.stack([return_sums, lengths], -1), kept),
        )
        self._return_sums.assign(return_sums)
        self._lengths.assign(tf.where(last, 0.0, lengths))
        self.episodes.assign_add(count)
        return trajectory

    def means(self) -> tf.Tensor:
        """[mean return, mean length] of the last finished episodes."""
        stored = tf.minimum(self.episodes, self._window)
        return tf.reduce_mean(self._finished[:stored], axis=0)


class OnPolicyTrainer:
    """Collects rollouts with tf-agents and trains a keras_gae model on them.

    See the module docstring for one iteration, the logs the callbacks get,
    checkpoints and resuming, failures and seeding. Construction restores
    the latest checkpoint under `root_dir`, if any; `run` trains.

    Args:
      model: a compiled keras_gae `ActorCriticModel` (`PPOModel`,
        `A2CModel`) whose networks take the environment's observations.
      env: a batched tf-agents `TFEnvironment` with batch size B, e.g.
        `keras_gae.agents.make_tf_environment(env_id, num_envs=B)`.
      rollout_length: T >= 1, driver iterations (rows per environment) per
        collection.
      epochs: E >= 1, passes of `model.fit` over each rollout.
      num_minibatches: K >= 1 dividing B: minibatches of B / K whole rows.
      root_dir: directory for checkpoints (`root_dir/checkpoints`); None
        saves none.
      seed: int seed of TensorFlow's global seed and of the shuffles.
      return_window: number of finished episodes the episode statistics
        average over, >= 1.
      checkpoint_interval: save a checkpoint every this many iterations
        (and when `run` ends), >= 1.
      max_checkpoints: how many checkpoints to keep, >= 1.

    Raises:
      TypeError: `model` not an `ActorCriticModel`, `env` not a
        `TFEnvironment`, non-int sizes.
      ValueError: a model that is not compiled, sizes < 1, `num_minibatches`
        not dividing B.
    """

    def __init__(
        self,
        model: ActorCriticModel,
        env: tf_environment.TFEnvironment,
        *,
        rollout_length: int,
        epochs: int = 4,
        num_minibatches: int = 4,
        root_dir: Optional[str] = None,
        seed: int = 0,
        return_window: int = 20,
        checkpoint_interval: int = 1,
        max_checkpoints: int = 3,
    ):
        if not isinstance(model, ActorCriticModel):
            raise TypeError(
                "`model` must be a keras_gae ActorCriticModel (e.g. "
                f"PPOModel). Received: model={model!r}"
            )
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                "`model` must be compiled first, e.g. model.compile("
                "optimizer=tf.keras.optimizers.Adam(3e-4)). "
                f"Received: model={model.name!r} (not compiled)"
            )
        if not isinstance(env, tf_environment.TFEnvironment):
            raise TypeError(
                "`env` must be a tf-agents TFEnvironment, e.g. from "
                "keras_gae.agents.make_tf_environment. "
                f"Received: env={env!r}"
            )
        self._model = model
        self._env = env
        self._rollout_length = _checks.check_positive_int(
            rollout_length, "rollout_length"
        )
        self._epochs = _checks.check_positive_int(epochs, "epochs")
        self._num_minibatches = _checks.check_positive_int(
            num_minibatches, "num_minibatches"
        )
        if not env.batched or env.batch_size is None:
            raise ValueError(
                "`env` must be batched with a known batch size B (a "
                "TFPyEnvironment, e.g. from make_tf_environment). "
                f"Received: env={env!r} with batch_size={env.batch_size!r}"
            )
        batch_size = int(env.batch_size)
        if batch_size % self._num_minibatches:
            raise ValueError(
                "`num_minibatches` must divide the number of environments "
                f"B={batch_size}: each minibatch holds B / num_minibatches "
                f"whole rows. Received: num_minibatches={num_minibatches!r}"
            )
        self._seed = _check_int(seed, "seed")
        self._return_window = _checks.check_positive_int(
            return_window, "return_window"
        )
        self._checkpoint_interval = _checks.check_positive_int(
            checkpoint_interval, "checkpoint_interval"
        )
        max_checkpoints = _checks.check_positive_int(
            max_checkpoints, "max_checkpoints"
        )
        if root_dir is not None and not isinstance(
            root_dir, (str, os.PathLike)
        ):
            raise TypeError(
                "`root_dir` must be a path (str) or None. "
                f"Received: root_dir={root_dir!r}"
            )

        self._policy = KerasPolicy(
            model, env.time_step_spec(), env.action_spec(), name="policy"
        )
        self._replay_buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            self._policy.trajectory_spec,
            batch_size=batch_size,
            max_length=self._rollout_length,
        )
        self._episode_stats = _EpisodeStatistics(
            batch_size, self._return_window
        )
        self._driver = dynamic_step_driver.DynamicStepDriver(
            env,
            self._policy,
            observers=[
                self._replay_buffer.add_batch,
                self._episode_stats,
            ],
            # Never reached before `maximum_iterations=T` (see `_run_driver`).
            num_steps=batch_size * self._rollout_length,
        )
        # Adam's slot variables made now, not inside the first compiled
        # train step: a tf.function that creates variables is traced twice,
        # which doubled the first iteration's fit time.
        model.optimizer.build(model.trainable_variables)
        self._run_driver_fn = common.function(self._run_driver)
        self._to_batch_fn = common.function(self._to_batch)
        self._iteration = tf.Variable(0, dtype=tf.int64, name="iteration")
        self._env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")

        self._root_dir = None if root_dir is None else os.fspath(root_dir)
        self._checkpoint_manager = None
        if self._root_dir is not None:
            self._checkpoint_manager = self._make_checkpoint_manager(
                max_checkpoints
            )
            self.restore()

    # Properties.

    @property
    def model(self) -> ActorCriticModel:
        return self._model

    @property
    def policy(self) -> KerasPolicy:
        """The collection policy (samples from the model's head)."""
        return self._policy

    @property
    def replay_buffer(self) -> tf_uniform_replay_buffer.TFUniformReplayBuffer:
        return self._replay_buffer

    @property
    def iteration(self) -> int:
        """Iterations done, restored ones included."""
        return int(self._iteration.numpy())

    @property
    def env_steps(self) -> int:
        """Environment steps collected, restored ones included."""
        return int(self._env_steps.numpy())

    @property
    def checkpoint_manager(self) -> Optional[tf.train.CheckpointManager]:
        return self._checkpoint_manager

    # Checkpoints.

    def _make_checkpoint_manager(
        self, max_checkpoints: int
    ) -> tf.train.CheckpointManager:
        # The optimizer is built (in __init__), so the restore fills its
        # slot variables at once.
        optimizer = self._model.optimizer
        checkpoint = tf.train.Checkpoint(
            model=self._model,
            optimizer=optimizer,
            iteration=self._iteration,
            env_steps=self._env_steps,
            episode_statistics=self._episode_stats,
        )
        return tf.train.CheckpointManager(
            checkpoint,
            os.path.join(self._root_dir, CHECKPOINT_DIR),
            max_to_keep=max_checkpoints,
            step_counter=self._iteration,
        )

    def restore(self) -> Optional[str]:
        """Restores the latest checkpoint under `root_dir`; its path or None."""
        if self._checkpoint_manager is None:
            return None
        path = self._checkpoint_manager.latest_checkpoint
        if path is not None:
            status = self._checkpoint_manager.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        return path

    def save(self) -> Optional[str]:
        """Saves a checkpoint now (numbered by iteration); its path or None."""
        if self._checkpoint_manager is None:
            return None
        return self._checkpoint_manager.save(checkpoint_number=self._iteration)

    # One iteration.

    def _run_driver(self) -> Any:
        self._replay_buffer.clear()
        # num_steps counts transitions summed over the batch; capping the
        # loop at T iterations gives exactly T rows per environment.
        time_step, _ = self._driver.run(maximum_iterations=self._rollout_length)
        return time_step

    def _to_batch(self, final_time_step: Any) -> Dict[str, Any]:
        trajectory = self._replay_buffer.gather_all()
        _, bootstrap_value = self._model(
            final_time_step.observation, training=False
        )
        batch = trajectory_to_rollout_batch(
            trajectory,
            bootstrap_value,
            value_key=VALUE_KEY,
            log_prob_key=LOG_PROB_KEY,
        )
        self._env_steps.assign_add(
            tf.reduce_sum(tf.cast(batch["mask"], tf.int64))
        )
        return batch

    def collect(self) -> Dict[str, Any]:
        """Collects one rollout; returns the rollout batch `[B, T]`.

        Advances the environment-step counter and the episode statistics.
        """
        return self._to_batch_fn(self._run_driver_fn())

    def fit(self, batch: Dict[str, Any]) -> Dict[str, float]:
        """Runs the E epochs over one rollout batch; the metrics' means.

        The metrics are the model's, averaged over the E * K gradient steps
        (each step weighted by its number of valid rows).
        """
        dataset = rollout_dataset(
            batch,
            num_minibatches=self._num_minibatches,
            seed=_shuffle_seed(self._seed, self.iteration),
        )
        # One Keras epoch over E reshuffled passes: Keras' per-epoch set-up
        # costs about as much as a PPO epoch of a small model, and its
        # metrics then average over all E * K gradient steps.
        history = self._model.fit(
            dataset.repeat(self._epochs), epochs=1, verbose=0
        )
        return {
            name: float(values[-1]) for name, values in history.history.items()
        }

    def episode_statistics(self) -> Dict[str, float]:
        """Mean return and length of the last `return_window` episodes.

        Returns:
          "episode_return_mean" and "episode_length_mean" (NaN before the
          first episode ends) and "episodes", the number finished so far,
          restored ones included.
        """
        episodes = int(self._episode_stats.episodes.numpy())
        if episodes == 0:
            return_mean = length_mean = math.nan
        else:
            means = self._episode_stats.means().numpy()
            return_mean, length_mean = float(means[0]), float(means[1])
        return {
            "episode_return_mean": return_mean,
            "episode_length_mean": length_mean,
            "episodes": float(episodes),
        }

    def train_iteration(self) -> Dict[str, float]:
        """Collects, converts and fits once; returns the iteration's logs.

        Raises:
          NonFiniteLossError: a NaN or Inf loss; nothing is checkpointed.
        """
        start = time.perf_counter()
        env_steps_before = self.env_steps
        final_time_step = self._run_driver_fn()
        collected = time.perf_counter()
        batch = self._to_batch_fn(final_time_step)
        converted = time.perf_counter()
        try:
            logs = self.fit(batch)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(
                f"{error} Raised in iteration {self.iteration + 1}; it was "
                "not checkpointed, so the latest checkpoint "
                f"({self._latest_checkpoint()}) holds the last good weights."
            ) from error
        done = time.perf_counter()
        self._iteration.assign_add(1)
        steps = self.env_steps - env_steps_before
        logs.update(self.episode_statistics())
        logs.update(
            env_steps=float(self.env_steps),
            iteration=float(self.iteration),
            steps_per_second=steps / max(done - start, 1e-9),
            collect_seconds=collected - start,
            convert_seconds=converted - collected,
            fit_seconds=done - converted,
        )
        return logs

    def _latest_checkpoint(self) -> Optional[str]:
        if self._checkpoint_manager is None:
            return None
        return self._checkpoint_manager.latest_checkpoint

    # The loop.

    def run(
        self,
        *,
        total_env_steps: int,
        callbacks: Optional[Sequence[tf.keras.callbacks.Callback]] = None,
        target_return: Optional[float] = None,
        verbose: int = 1,
    ) -> Dict[str, List[float]]:
        """Trains until `total_env_steps` environment steps (or a stop).

        Iterations run while the environment-step counter (restored ones
        included) is below `total_env_steps`. The loop stops early when
        `target_return` is reached (`return_window` episodes finished and
        their mean return >= target_return) or a callback sets
        `model.stop_training`.

        Args:
          total_env_steps: environment-step budget, >= 1.
          callbacks: Keras callbacks; they get `on_train_begin`,
            `on_epoch_begin(index)`, `on_epoch_end(index, logs)` once per
            iteration and `on_train_end(logs)`.
          target_return: None, or the mean episode return to stop at.
          verbose: 0 silent, 1 a progress bar over environment steps, 2 one
            line per iteration.

        Returns:
          A history dict: each log key -> its values, one per iteration of
          this call.

        Raises:
          NonFiniteLossError: a NaN or Inf loss (see the module docstring).
        """
        total_env_steps = _checks.check_positive_int(
            total_env_steps, "total_env_steps"
        )
        verbose = _check_verbose(verbose)
        if target_return is not None:
            if isinstance(target_return, bool) or not isinstance(
                target_return, (int, float, np.integer, np.floating)
            ):
                raise TypeError(
                    "`target_return` must be None or a float. "
                    f"Received: target_return={target_return!r}"
                )
            target_return = float(target_return)
        tf.random.set_seed(self._seed)
        callback_list = tf.keras.callbacks.CallbackList(
            list(callbacks or []), model=self._model
        )
        progbar = None
        if verbose == 1:
            progbar = tf.keras.utils.Progbar(
                total_env_steps, stateful_metrics=_PROGBAR_LOGS
            )
            progbar.update(min(self.env_steps, total_env_steps))
        history: Dict[str, List[float]] = {}
        logs: Dict[str, float] = {}
        saved_iteration = self.iteration
        self._model.stop_training = False
        callback_list.on_train_begin()
        while self.env_steps < total_env_steps:
            index = self.iteration
            callback_list.on_epoch_begin(index)
            logs = self.train_iteration()
            if self.iteration % self._checkpoint_interval == 0:
                self.save()
                saved_iteration = self.iteration
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            if progbar is not None:
                progbar.update(
                    min(self.env_steps, total_env_steps),
                    values=[(key, logs[key]) for key in _PROGBAR_LOGS],
                )
            elif verbose == 2:
                print(_summary_line(logs), flush=True)
            callback_list.on_epoch_end(index, logs)
            if self._model.stop_training or self._reached(target_return, logs):
                break
        if saved_iteration != self.iteration:
            self.save()
        callback_list.on_train_end(logs)
        return history

    def _reached(self, target_return: Optional[float], logs: dict) -> bool:
        if target_return is None:
            return False
        return (
            logs["episodes"] >= self._return_window
            and logs["episode_return_mean"] >= target_return
        )


def _summary_line(logs: Dict[str, float]) -> str:
    return (
        f"iteration {int(logs['iteration'])}: "
        f"env_steps={int(logs['env_steps'])} "
        f"episode_return_mean={logs['episode_return_mean']:.2f} "
        f"loss={logs['loss']:.4f} approx_kl={logs.get('approx_kl', 0.0):.4f} "
        f"steps_per_second={logs['steps_per_second']:.0f}"
    )


def train(
    model: ActorCriticModel,
    env: tf_environment.TFEnvironment,
    *,
    rollout_length: int,
    total_env_steps: int,
    epochs: int = 4,
    num_minibatches: int = 4,
    callbacks: Optional[Sequence[tf.keras.callbacks.Callback]] = None,
    root_dir: Optional[str] = None,
    seed: int = 0,
    target_return: Optional[float] = None,
    return_window: int = 20,
    checkpoint_interval: int = 1,
    max_checkpoints: int = 3,
    verbose: int = 1,
) -> Dict[str, List[float]]:
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
      env: a batched tf-agents `TFEnvironment` (batch size B).
      rollout_length: T, steps per environment per collection.
      total_env_steps: environment-step budget (restored steps count).
      epochs: E, passes over each rollout.
      num_minibatches: K, dividing B.
      callbacks: Keras callbacks, called once per iteration.
      root_dir: checkpoint directory root, or None.
      seed: seed of TensorFlow's global seed and the minibatch shuffles.
      target_return: None, or the mean return of the last `return_window`
        episodes to stop at.
      return_window: episodes the return and length means average over.
      checkpoint_interval: iterations between checkpoints.
      max_checkpoints: checkpoints kept.
      verbose: 0 silent, 1 progress bar, 2 a line per iteration.

    Returns:
      The history dict of `OnPolicyTrainer.run`: log key -> one value per
      iteration run by this call.

    Raises:
      NonFiniteLossError: a NaN or Inf loss; the last checkpoint is intact.
      TypeError, ValueError: invalid arguments, naming them.
    """
    trainer = OnPolicyTrainer(
        model,
        env,
        rollout_length=rollout_length,
        epochs=epochs,
        num_minibatches=num_minibatches,
        root_dir=root_dir,
        seed=seed,
        return_window=return_window,
        checkpoint_interval=checkpoint_interval,
        max_checkpoints=max_checkpoints,
    )
    return trainer.run(
        total_env_steps=total_env_steps,
        callbacks=callbacks,
        target_return=target_return,
        verbose=verbose,
    )

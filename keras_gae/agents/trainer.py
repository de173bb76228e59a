"""`OnPolicyTrainer`: tf-agents collection, Keras `fit` training.

The loop it runs (one iteration, the logs the callbacks get, checkpoints,
failures, seeding) is described in `keras_gae.agents.training`, whose
`train(...)` builds a trainer and runs it. Letters: `B` environments, `T`
the rollout length, `E` epochs, `K` minibatches.
"""

from __future__ import annotations

import os
import time
from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer

from keras_gae.agents import checkpointing
from keras_gae.agents import loop_logs
from keras_gae.agents import training_loop
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.rollout_collector import collector_for
from keras_gae.models import MINIBATCH_MODES
from keras_gae.models import ActorCriticModel
from keras_gae.models import NonFiniteLossError
from keras_gae.models import minibatch_dataset
from keras_gae.ops import _checks


def _shuffle_seed(seed: int, iteration: int) -> int:
    """A minibatch-shuffle seed per (seed, iteration), stable on resume."""
    state = np.random.SeedSequence([seed % 2**32, iteration]).generate_state(1)
    return int(state[0] % 2**31)


class OnPolicyTrainer:
    """Collects rollouts with tf-agents and trains a keras_gae model on them.

    See `keras_gae.agents.training` for one iteration, the logs the
    callbacks get, checkpoints and resuming, failures and seeding.
    Construction restores the latest readable checkpoint under `root_dir`,
    if any; `run` trains.

    Args:
      model: a compiled keras_gae `ActorCriticModel` (`PPOModel`,
        `A2CModel`) whose networks take the environment's observations.
      env: a batched tf-agents `TFEnvironment` with batch size B, e.g.
        `keras_gae.agents.make_tf_environment(env_id, num_envs=B)`, or
        `keras_gae.distributed.RolloutWorkers` (B: all workers'
        environments; their `rollout_length` must be this one), which
        collect in Ray actors and checkpoint their per-worker state with
        the loop (`keras_gae.distributed.remote_collector`).
      rollout_length: T >= 1, driver iterations (rows per environment) per
        collection.
      epochs: E >= 1, passes of `model.fit` over each rollout.
      num_minibatches: K >= 1 minibatches per epoch.
      minibatch_mode: "rows": minibatches of B / K whole environment rows
        (K must divide B), GAE in the compiled train step
        (`rollout_dataset`); "steps": GAE once over the rollout, then K
        minibatches of single steps shuffled across environments and time
        (`step_dataset`, stable-baselines3's minibatching), whose
        gradients are less correlated than a row's consecutive steps.
      root_dir: directory for checkpoints (`root_dir/checkpoints`); None
        saves none.
      seed: int seed of TensorFlow's global seed and of the shuffles.
      return_window: number of finished episodes the episode statistics
        average over, >= 1.
      checkpoint_interval: save a checkpoint every this many iterations
        (and when `run` ends), >= 1.
      max_checkpoints: how many checkpoints to keep, >= 1.
      restart: start a new run even if `root_dir` holds checkpoints: they
        are moved to `root_dir/checkpoints.old-<n>` (never overwritten),
        with a warning.

    Raises:
      TypeError: `model` not an `ActorCriticModel`, `env` not a
        `TFEnvironment`, non-int sizes.
      ValueError: a model that is not compiled, sizes < 1, `num_minibatches`
        not dividing B, checkpoints under `root_dir` none of which can be
        restored, or a checkpoint saved with another number of
        environments or other networks
        (`checkpointing.CheckpointMismatchError`).

    Example:

    ```python
    env = keras_gae.agents.make_tf_environment("CartPole-v1", num_envs=8)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))  # a PPOModel
    trainer = OnPolicyTrainer(model, env, rollout_length=128, epochs=10)
    history = trainer.run(total_env_steps=100_000, target_return=475)
    history.history["episode_return_mean"][-1]
    ```
    """

    def __init__(
        self,
        model: ActorCriticModel,
        env: tf_environment.TFEnvironment,
        *,
        rollout_length: int,
        epochs: int = 4,
        num_minibatches: int = 4,
        minibatch_mode: str = "rows",
        root_dir: Optional[str] = None,
        seed: int = 0,
        return_window: int = 20,
        checkpoint_interval: int = 1,
        max_checkpoints: int = 3,
        restart: bool = False,
    ):
        if not isinstance(model, ActorCriticModel):
            raise TypeError(
                "`model` must be a keras_gae ActorCriticModel (e.g. "
                f"PPOModel). Received: model={model!r}"
            )
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                "`model` must be compiled first, e.g. model.compile("
                "optimizer=keras.optimizers.Adam(3e-4)). "
                f"Received: model={model.name!r} (not compiled)"
            )
        self._model = model
        self._epochs = _checks.check_positive_int(epochs, "epochs")
        self._num_minibatches = _checks.check_positive_int(
            num_minibatches, "num_minibatches"
        )
        self._minibatch_mode = _checks.check_option(
            minibatch_mode, "minibatch_mode", MINIBATCH_MODES
        )
        self._seed = _checks.check_int(seed, "seed")
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

        rollout_length = _checks.check_positive_int(
            rollout_length, "rollout_length"
        )
        # A TFEnvironment gets a RolloutCollector; rollout workers (a
        # `CollectorFactory`) make their own.
        self._collector = collector_for(
            model,
            env,
            rollout_length=rollout_length,
            return_window=self._return_window,
        )
        if (
            self._minibatch_mode == "rows"
            and self._collector.batch_size % self._num_minibatches
        ):
            raise ValueError(
                "`num_minibatches` must divide the number of environments "
                f"B={self._collector.batch_size}: each minibatch holds "
                "B / num_minibatches whole rows (minibatch_mode='steps' "
                "has no such constraint). "
                f"Received: num_minibatches={num_minibatches!r}"
            )
        # The optimizer's slot variables made now, not inside the first
        # compiled train step (a tf.function that creates variables is
        # traced twice), and before a restore, which then fills them.
        model.optimizer.build(model.trainable_variables)
        self._iteration = tf.Variable(0, dtype=tf.int64, name="iteration")

        self._checkpoints = checkpointing.LoopCheckpoints(
            None if root_dir is None else os.fspath(root_dir),
            max_to_keep=max_checkpoints,
            iteration=self._iteration,
            num_envs=self._collector.batch_size,
            restart=_checks.check_bool(restart, "restart"),
            model=model,
            optimizer=model.optimizer,
            **self.counters(),
        )

    def counters(self) -> Dict[str, Any]:
        """The loop's state besides the model and optimizer, by name.

        The environment-step counter and the episode statistics, and with
        rollout workers their per-worker state
        (`keras_gae.distributed.remote_collector.WorkerState`).
        """
        counters = dict(
            env_steps=self._collector.env_steps,
            episode_statistics=self._collector.episode_statistics,
        )
        if self._collector.worker_state is not None:
            counters.update(rollout_workers=self._collector.worker_state)
        return counters

    # Properties.

    @property
    def model(self) -> ActorCriticModel:
        return self._model

    @property
    def policy(self) -> Optional[KerasPolicy]:
        """The collection policy (samples from the model's head).

        None with rollout workers: each worker holds its own.
        """
        return self._collector.policy

    @property
    def replay_buffer(self) -> tf_uniform_replay_buffer.TFUniformReplayBuffer:
        return self._collector.replay_buffer

    @property
    def iteration(self) -> int:
        """Iterations done, restored ones included."""
        return int(self._iteration.numpy())

    @property
    def env_steps(self) -> int:
        """Environment steps collected, restored ones included."""
        return int(self._collector.env_steps.numpy())

    @property
    def checkpoint_manager(self) -> Optional[tf.train.CheckpointManager]:
        return self._checkpoints.manager

    @property
    def restored_checkpoint(self) -> Optional[str]:
        """The checkpoint construction restored, or None."""
        return self._checkpoints.restored

    # Checkpoints.

    def checkpoint(self) -> tf.train.Checkpoint:
        """A new `tf.train.Checkpoint` of what the loop's checkpoints hold.

        The model, its optimizer, the iteration and the `counters()`, laid
        out as in the checkpoints under `root_dir` (with or without one):
        what `OnPolicyAgent.save` writes, so `learn` continues after a
        load.
        """
        return self._checkpoints.checkpoint()

    def restore(self) -> Optional[str]:
        """Restores the newest readable checkpoint; its path or None."""
        return self._checkpoints.restore()

    def save(self) -> Optional[str]:
        """Saves a checkpoint now (numbered by iteration); its path or None."""
        return self._checkpoints.save()

    # One iteration.

    def collect(self) -> Dict[str, Any]:
        """Collects one rollout; returns the rollout batch `[B, T]`.

        Advances the environment-step counter and the episode statistics.
        """
        return self._collector.collect()

    def fit(self, batch: Dict[str, Any]) -> Dict[str, float]:
        """Runs the E epochs over one rollout batch; the metrics' means.

        The metrics are the model's, averaged over the E * K gradient steps
        (each step weighted by its number of valid steps).
        """
        dataset = minibatch_dataset(
            self._model,
            batch,
            mode=self._minibatch_mode,
            num_minibatches=self._num_minibatches,
            seed=_shuffle_seed(self._seed, self.iteration),
        )
        # One Keras epoch over E reshuffled passes: Keras' per-epoch set-up
        # costs about as much as a PPO epoch of a small model, and its
        # metrics then average over all E * K gradient steps.
        # The dataset shuffles itself (seeded); Keras' `shuffle` does not
        # apply to datasets.
        history = self._model.fit(
            dataset.repeat(self._epochs), epochs=1, shuffle=False, verbose=0
        )
        return {
            name: float(values[-1]) for name, values in history.history.items()
        }

    def episode_statistics(self) -> Dict[str, float]:
        """The last `return_window` episodes' mean return and length.

        See `EpisodeStatistics.logs`; "episodes" counts restored ones too.
        """
        return self._collector.episode_statistics.logs()

    def train_iteration(self) -> Dict[str, float]:
        """Collects, converts and fits once; returns the iteration's logs.

        Raises:
          NonFiniteLossError: a NaN or Inf loss; nothing is checkpointed.
        """
        start = time.perf_counter()
        env_steps_before = self.env_steps
        final_time_step = self._collector.run_driver()
        collected = time.perf_counter()
        batch = self._collector.to_batch(final_time_step)
        converted = time.perf_counter()
        try:
            logs = self.fit(batch)
        except NonFiniteLossError as error:
            latest = self._checkpoints.latest
            raise NonFiniteLossError(
                f"{error} Raised in iteration {self.iteration + 1}; it was "
                "not checkpointed, so the latest checkpoint "
                f"({latest}) holds the last good weights."
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
            learning_rate=loop_logs.learning_rate(self._model.optimizer),
        )
        return logs

    # The loop.

    def run(
        self,
        *,
        total_env_steps: int,
        callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
        target_return: Optional[float] = None,
        verbose: int = 1,
    ) -> keras.callbacks.History:
        """Trains until `total_env_steps` environment steps (or a stop).

        Iterations run while the environment-step counter (restored ones
        included) is below `total_env_steps`; when the loop stops early,
        and how callbacks add to the logs, is in
        `keras_gae.agents.training_loop`.

        Args:
          total_env_steps: environment-step budget, >= 1.
          callbacks: Keras callbacks; they get `on_train_begin`,
            `on_epoch_begin(index)`, `on_epoch_end(index, logs)` once per
            iteration and `on_train_end(logs)`, also when no iteration
            runs.
          target_return: None, or the mean episode return to stop at.
          verbose: 0 silent, 1 a progress bar over environment steps, 2 one
            line per iteration. At 1 and 2, a stop before the budget (the
            target reached, a callback's stop, or the target already
            reached before the first iteration) ends with one line
            saying why.

        Returns:
          A `keras.callbacks.History`, as `model.fit` returns: its
          `history` maps each log key to its values, one per iteration of
          this call (contributed keys: one per iteration that has them),
          as the loop logged them (before other callbacks saw them), and
          its `epoch` holds the iterations' indices; both are empty when
          no iteration ran. A History among `callbacks` is the one
          returned.

        Raises:
          NonFiniteLossError: a NaN or Inf loss (see
            `keras_gae.agents.training`).
        """
        total_env_steps = _checks.check_positive_int(
            total_env_steps, "total_env_steps"
        )
        _checks.check_int(verbose, "verbose")
        verbose = _checks.check_option(verbose, "verbose", (0, 1, 2))
        target_return = _checks.check_float(
            target_return, "target_return", allow_none=True
        )
        return training_loop.run_loop(
            self,
            total_env_steps=total_env_steps,
            callbacks=callbacks,
            target_return=target_return,
            verbose=verbose,
            seed=self._seed,
            checkpoint_interval=self._checkpoint_interval,
            return_window=self._return_window,
        )

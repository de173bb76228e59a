"""`RemoteCollector`: the learner's side of the rollout workers.

`OnPolicyTrainer` collects through one of two collectors: a
`RolloutCollector` stepping environments in the process, or this, which
runs `RolloutWorkers` rounds (`keras_gae.distributed.worker_group`) and
gives the trainer what a `RolloutCollector` gives it: `run_driver` (one
round), `to_batch` (the rollout batch `[B, T]`, the workers' rows
concatenated in worker order), the environment-step counter and the
episode statistics. So `fit`, the logs, checkpoints and callbacks are the
one-process code.

Running statistics (`keras_gae.distributed.running_statistics`). Before
each round the learner's observation statistics take in the previous
round's observations, as `RolloutCollector` does before each rollout,
then travel to the workers with the weights. The workers' return moments
are merged and absorbed into the learner's reward statistics, which scale
the round's rewards. What belongs to each environment stays in its worker
and is recorded here for checkpoints (`WorkerState`): the running returns
of the reward normalization, and each worker's generation.

Resuming. Environments cannot be saved in general (a simulator's state),
so a run resumed from a checkpoint (environment steps already counted)
begins new episodes: at its first round every worker makes its
environments again at its next generation, from seeds the run has not
used (`rollout_worker.worker_seed`), continuing its running returns.
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import List

import numpy as np
import tensorflow as tf

from keras_gae._src import rollout_batch as rb
from keras_gae.agents.episode_statistics import EpisodeStatistics
from keras_gae.agents.rollout_collector import statistics_layers
from keras_gae.distributed.rollout_worker import policy_variables
from keras_gae.distributed.rollout_worker import reward_normalization_of
from keras_gae.distributed.running_statistics import Moments
from keras_gae.distributed.running_statistics import merge_moments


class WorkerState(tf.Module):
    """Per-worker state the learner checkpoints.

    Attributes:
      generations: `[N]` int64, how many times each worker was made again.
      returns: `[B]` float32, the reward normalization's running returns
        of every environment, worker `i`'s at rows `i * num_envs ...`.
      rounds: the rounds collected, the next round's policy version.
    """

    def __init__(self, num_workers: int, num_envs: int):
        super().__init__(name="rollout_workers")
        self.num_envs = num_envs
        self.generations = tf.Variable(
            tf.zeros([num_workers], tf.int64), name="generations"
        )
        self.returns = tf.Variable(
            tf.zeros([num_workers * num_envs]), name="returns"
        )
        self.rounds = tf.Variable(0, dtype=tf.int64, name="rounds")

    def worker_returns(self) -> List[np.ndarray]:
        returns = self.returns.numpy()
        return [
            returns[i : i + self.num_envs]
            for i in range(0, returns.size, self.num_envs)
        ]


class RemoteCollector:
    """Collects with `RolloutWorkers` for `OnPolicyTrainer` (module docs).

    Args:
      model: the learner's `ActorCriticModel` (built), whose
        `policy_variables` the workers' models match.
      workers: the `RolloutWorkers`.
      rollout_length: T; must be the workers'.
      return_window: finished episodes the statistics average over.

    Raises:
      ValueError: `rollout_length` other than the workers'.
    """

    # No local tf-agents policy or replay buffer: both live in the workers.
    policy = None
    replay_buffer = None

    def __init__(
        self,
        model: Any,
        workers: Any,
        *,
        rollout_length: int,
        return_window: int,
    ):
        if rollout_length != workers.rollout_length:
            raise ValueError(
                "`rollout_length` must be the rollout workers' "
                f"rollout_length={workers.rollout_length}. "
                f"Received: rollout_length={rollout_length!r}"
            )
        self._model = model
        self._workers = workers
        self.batch_size = workers.batch_size
        self._variables = policy_variables(model)
        self._statistics_layers = statistics_layers(model)
        self._reward_normalization = reward_normalization_of(model)
        self.episode_statistics = EpisodeStatistics(
            self.batch_size, return_window
        )
        self.env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
        self.worker_state = WorkerState(workers.num_workers, workers.num_envs)
        self._unseen_observations = None
        self._first_round = True

    def run_driver(self) -> List[Dict[str, Any]]:
        """One round of the workers; their results, in worker order."""
        if self._unseen_observations is not None:
            for layer in self._statistics_layers:
                layer.update_statistics(self._unseen_observations)
            self._unseen_observations = None
        if self._first_round:
            self._first_round = False
            if int(self.env_steps.numpy()) > 0:
                # Resumed from a checkpoint: new episodes, unused seeds.
                restarted = self.worker_state.generations.numpy() + 1
                self._workers.reseed([int(g) for g in restarted])
        results = self._workers.collect(
            [v.numpy() for v in self._variables],
            version=int(self.worker_state.rounds.numpy()),
            returns=(
                self.worker_state.worker_returns()
                if self._reward_normalization is not None
                else None
            ),
        )
        self.worker_state.rounds.assign_add(1)
        self.worker_state.generations.assign(self._workers.generations)
        return results

    def to_batch(self, results: List[Dict[str, Any]]) -> Dict[str, Any]:
        """The round's rollout batch `[B, T]`; counts its steps, episodes."""
        batch = tf.nest.map_structure(
            lambda *rows: np.concatenate(rows, axis=0),
            *[result["batch"] for result in results],
        )
        self.env_steps.assign_add(sum(r["env_steps"] for r in results))
        for result in results:
            self.episode_statistics.record(
                result["finished"], count=result["episodes"]
            )
        if self._statistics_layers:
            self._unseen_observations = batch[rb.OBSERVATION]
        batch = tf.nest.map_structure(tf.convert_to_tensor, batch)
        normalization = self._reward_normalization
        if normalization is not None:
            self.worker_state.returns.assign(
                np.concatenate([r["returns"] for r in results])
            )
            merged = merge_moments(
                [Moments(*r["return_moments"]) for r in results]
            )
            normalization.absorb_moments(*merged)
            batch[rb.REWARD] = normalization(batch[rb.REWARD])
        return batch

    def collect(self) -> Dict[str, Any]:
        """One rollout batch `[B, T]` (`run_driver`, then `to_batch`)."""
        return self.to_batch(self.run_driver())

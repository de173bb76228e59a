"""Rollout collection: a tf-agents driver writing fixed-length rollouts.

`RolloutCollector` steps a batched tf-agents environment with a
`KerasPolicy` of a keras_gae model and returns each rollout as a rollout
batch `[B, T]` (`B` environments, `T` rows each), bootstrapped from the
value of the driver's final time step. It only collects; learning from the
batches is the model's (`keras_gae.agents.trainer`). `collector_for` picks
the collector of what `OnPolicyTrainer` is given: a `RolloutCollector` for
a tf-agents environment, or the one a `CollectorFactory` (rollout workers)
makes.
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import Protocol
from typing import runtime_checkable

import tensorflow as tf
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import tf_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.utils import common

from keras_gae._src import private_apis
from keras_gae._src import rollout_batch as rb
from keras_gae.agents import reward_normalization
from keras_gae.agents.episode_statistics import EpisodeStatistics
from keras_gae.agents.policy import LOG_PROB_KEY
from keras_gae.agents.policy import VALUE_KEY
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.trajectories import trajectory_to_rollout_batch
from keras_gae.models import ActorCriticModel
from keras_gae.models.recurrent import reset_state


class RolloutCollector:
    """Collects rollouts of exactly `T` rows per environment.

    A `DynamicStepDriver` steps the `B` environments `T` times with a
    `KerasPolicy` of the model (its `run` compiled with
    `tf_agents.utils.common.function`) and writes every step into a
    `TFUniformReplayBuffer` of `T` rows per environment, cleared first.
    Capping the driver at `maximum_iterations=T` gives every rollout the
    same shape, so a compiled training step is traced once; the LAST ->
    FIRST boundary rows an auto-reset writes are masked out of the batch
    and not counted as environment steps. The environments keep running
    across collections: each continues the episodes the last one left,
    and so does a recurrent model's state (the driver's `policy_state`,
    kept in variables between rollouts; `KerasPolicy` resets it where an
    episode starts and records each row's initial state).

    Args:
      model: a keras_gae `ActorCriticModel` taking the observations.
      env: a batched tf-agents `TFEnvironment` with a known batch size B.
      rollout_length: T >= 1.
      return_window: how many finished episodes the episode statistics
        average over.
      update_statistics: whether this collector updates the model's
        running statistics (observation normalization before each
        rollout, reward scaling of each batch). False in a rollout
        worker: there the learner merges them over all workers and
        broadcasts them with the weights, and the batches keep the
        environment's rewards (`keras_gae.distributed`).

    Raises:
      TypeError: `env` not a `TFEnvironment`.
      ValueError: `env` not batched or of unknown batch size.
    """

    # Rollout workers' per-worker state, which the loop checkpoints;
    # collection in this process has none.
    worker_state = None

    def __init__(
        self,
        model: ActorCriticModel,
        env: tf_environment.TFEnvironment,
        *,
        rollout_length: int,
        return_window: int,
        update_statistics: bool = True,
    ):
        if not isinstance(env, tf_environment.TFEnvironment):
            raise TypeError(
                "`env` must be a tf-agents TFEnvironment, e.g. from "
                "keras_gae.agents.make_tf_environment. "
                f"Received: env={env!r}"
            )
        if not env.batched or env.batch_size is None:
            raise ValueError(
                "`env` must be batched with a known batch size B (a "
                "TFPyEnvironment, e.g. from make_tf_environment). "
                f"Received: env={env!r} with batch_size={env.batch_size!r}"
            )
        self._model = model
        self._rollout_length = rollout_length
        # Layers with running observation statistics (`update_statistics`),
        # and the model's reward normalization, if any
        # (keras_gae.agents.reward_normalization).
        self._statistics_layers = []
        self._reward_normalization = None
        if update_statistics:
            self._statistics_layers = statistics_layers(model)
            self._reward_normalization = getattr(
                model, reward_normalization.REWARD_NORMALIZATION_ATTRIBUTE, None
            )
        self.batch_size = int(env.batch_size)
        self.policy = KerasPolicy(
            model, env.time_step_spec(), env.action_spec(), name="policy"
        )
        self.replay_buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            self.policy.trajectory_spec,
            batch_size=self.batch_size,
            max_length=rollout_length,
        )
        self.episode_statistics = EpisodeStatistics(
            self.batch_size, return_window, env=env
        )
        self._driver = dynamic_step_driver.DynamicStepDriver(
            env,
            self.policy,
            observers=[self.replay_buffer.add_batch, self.episode_statistics],
            # Never reached before `maximum_iterations=T` (`_run_driver`).
            num_steps=self.batch_size * rollout_length,
        )
        # A recurrent policy's state between rollouts ([B, U] each).
        self._policy_state = tf.nest.map_structure(
            lambda x: tf.Variable(x, trainable=False, name="policy_state"),
            self.policy.get_initial_state(self.batch_size),
        )
        # Environment steps collected, boundary rows not counted.
        self.env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
        # Whether the buffer holds a rollout the statistics have not seen.
        self._unseen_rollout = tf.Variable(False, name="unseen_rollout")
        self.run_driver = common.function(self._run_driver)
        self.to_batch = common.function(self._to_batch)

    def _run_driver(self) -> Any:
        if self._statistics_layers:
            # The last rollout was collected and trained under the same
            # statistics; they take it in now, before the next rollout.
            def update():
                observations = self._gather().observation
                for layer in self._statistics_layers:
                    layer.update_statistics(observations)
                return tf.constant(True)

            tf.cond(self._unseen_rollout, update, lambda: tf.constant(False))
            self._unseen_rollout.assign(True)
        self.replay_buffer.clear()
        # num_steps counts transitions summed over the batch; capping the
        # loop at T iterations gives exactly T rows per environment.
        if not self._policy_state:
            time_step, _ = self._driver.run(
                maximum_iterations=self._rollout_length
            )
            return time_step
        time_step, policy_state = self._driver.run(
            policy_state=tf.nest.map_structure(tf.identity, self._policy_state),
            maximum_iterations=self._rollout_length,
        )
        tf.nest.map_structure(
            lambda variable, x: variable.assign(x),
            self._policy_state,
            policy_state,
        )
        return time_step

    def _to_batch(self, final_time_step: Any) -> Dict[str, Any]:
        trajectory = self._gather()
        state = None
        if self._policy_state:
            state = reset_state(
                tf.nest.map_structure(tf.identity, self._policy_state),
                final_time_step.is_first(),
            )
        _, bootstrap_value, _ = self._model.forward(
            final_time_step.observation, state, training=False
        )
        batch = trajectory_to_rollout_batch(
            trajectory,
            bootstrap_value,
            value_key=VALUE_KEY,
            log_prob_key=LOG_PROB_KEY,
        )
        self.env_steps.assign_add(
            tf.reduce_sum(tf.cast(batch[rb.MASK], tf.int64))
        )
        if self._reward_normalization is not None:
            batch[rb.REWARD] = self._reward_normalization.update_and_scale(
                batch[rb.REWARD],
                batch[rb.TERMINATED] | batch[rb.TRUNCATED],
                batch[rb.MASK],
            )
        return batch

    def _gather(self) -> Any:
        # The whole buffer, [B, T], in order: the one element of tf-agents'
        # deterministic pass (what its deprecated `gather_all` returns).
        # The pass batches environments without `drop_remainder`, so the
        # static shapes are set again: the compiled train step sees [B, T].
        dataset = self.replay_buffer.as_dataset(
            sample_batch_size=self.batch_size,
            num_steps=self._rollout_length,
            single_deterministic_pass=True,
        )
        trajectory, _ = dataset.take(1).get_single_element()
        rows = [self.batch_size, self._rollout_length]
        return tf.nest.map_structure(
            lambda x, spec: tf.ensure_shape(x, rows + spec.shape.as_list()),
            trajectory,
            self.replay_buffer.data_spec,
        )

    def collect(self) -> Dict[str, Any]:
        """One rollout batch `[B, T]` (`run_driver`, then `to_batch`)."""
        return self.to_batch(self.run_driver())


def statistics_layers(model: ActorCriticModel) -> list:
    """The distinct layers of `model` with an `update_statistics` method.

    A layer inside another such layer (an `ObservationEncoder`'s
    `ObservationNormalization`) is updated by its parent, not here.
    """
    found, seen = [], set()
    for layer in private_apis.flatten_layers(model):
        if layer is model:
            continue
        if hasattr(layer, "update_statistics") and id(layer) not in seen:
            found.append(layer)
            seen.update(
                id(inner) for inner in private_apis.flatten_layers(layer)
            )
    return found


@runtime_checkable
class CollectorFactory(Protocol):
    """What makes its own collector for `OnPolicyTrainer`.

    `keras_gae.distributed.RolloutWorkers` is one: its collector
    (`RemoteCollector`) gathers the workers' rollouts. A protocol, not an
    isinstance check of that class, because `keras_gae.distributed` is
    built on this package and is imported only by a user who asks for
    workers.
    """

    def make_collector(
        self, model: Any, *, rollout_length: int, return_window: int
    ) -> Any:
        """A collector with `RolloutCollector`'s interface for `model`."""


def collector_for(
    model: ActorCriticModel,
    env: Any,
    *,
    rollout_length: int,
    return_window: int,
) -> Any:
    """The collector of `env`: its own (`CollectorFactory`) or a local one.

    Raises:
      TypeError: `env` is neither a `CollectorFactory` nor a tf-agents
        `TFEnvironment` (`RolloutCollector`'s check).
    """
    if isinstance(env, CollectorFactory):
        return env.make_collector(
            model, rollout_length=rollout_length, return_window=return_window
        )
    return RolloutCollector(
        model, env, rollout_length=rollout_length, return_window=return_window
    )

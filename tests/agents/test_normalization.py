"""Tests for keras_gae/agents/observation_normalization.py and
reward_normalization.py (their running moments: keras_gae/_src/
running_moments.py), and the observation statistics in the collect-and-fit
loop (keras_gae/agents/rollout_collector.py).

The documented rule: at the start of every collection but the first, each
`ObservationNormalization` of the model takes in the previous rollout's
observations, every row of it (B environments times T rows, boundary rows
and reset observations included). So after k iterations the statistics are
the moments of rollouts 1 .. k-1, and each rollout is collected and trained
under one set of statistics.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.agents import ObservationNormalization
from keras_gae.agents import OnPolicyTrainer
from keras_gae.agents import RewardNormalization
from keras_gae.agents import build_networks
from keras_gae.agents import make_tf_environment
from keras_gae.models import PPOModel
from tests.agents.scripted_env import SCRIPTED_ENV_ID
from tests.agents.scripted_env import episode_length

NUM_ENVS = 2
ROLLOUT_LENGTH = 5


def scripted_environment():
    # Copy i plays episodes i, i + 2, i + 4, ... (observation: (episode,
    # step)); episodes of 2 to 4 steps put boundary rows in every rollout.
    return make_tf_environment(
        SCRIPTED_ENV_ID,
        num_envs=NUM_ENVS,
        seed=0,
        env_kwargs={"episode_stride": NUM_ENVS},
    )


def make_trainer(env):
    keras.utils.set_random_seed(0)
    actor, critic = build_networks(
        env.observation_spec(),
        env.action_spec(),
        hidden_sizes=(8,),
        normalize_observations=True,
    )
    model = PPOModel(actor, critic)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    trainer = OnPolicyTrainer(
        model,
        env,
        rollout_length=ROLLOUT_LENGTH,
        epochs=1,
        num_minibatches=1,
    )
    return trainer, actor.layers[0].normalization


def scripted_observations(env_index, rollouts):
    """The time steps' observations of copy `env_index`, from the script
    alone: each episode (j, 0), (j, 1), ..., (j, L_j) (the last one is the
    episode's final observation), then the next episode's reset."""
    stream = []
    episode = env_index
    while len(stream) < rollouts * ROLLOUT_LENGTH:
        steps = episode_length(episode)
        stream += [(episode, step) for step in range(steps + 1)]
        episode += NUM_ENVS
    stream = np.array(stream[: rollouts * ROLLOUT_LENGTH], np.float64)
    return stream.reshape(rollouts, ROLLOUT_LENGTH, 2)


class StopAfter(keras.callbacks.Callback):
    def __init__(self, iterations):
        super().__init__()
        self.iterations = iterations

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.iterations:
            self.model.stop_training = True


def numpy_moments(rollouts):
    """mean, var (population), count of every row of `rollouts`."""
    rows = np.concatenate([np.reshape(r, [-1, 2]) for r in rollouts])
    rows = rows.astype(np.float64)
    return rows.mean(axis=0), rows.var(axis=0), len(rows)


class ObservationStatisticsInTheLoopTest(
    tf.test.TestCase, parameterized.TestCase
):
    def assertStatistics(self, layer, rollouts):
        if not rollouts:
            self.assertAllEqual(layer.mean, [0.0, 0.0])
            self.assertAllEqual(layer.variance, [1.0, 1.0])
            self.assertEqual(float(layer.count), 0.0)
            return
        mean, variance, count = numpy_moments(rollouts)
        self.assertAllClose(layer.mean, mean, rtol=1e-5, atol=1e-6)
        self.assertAllClose(layer.variance, variance, rtol=1e-5, atol=1e-6)
        self.assertEqual(float(layer.count), count)

    def test_collect_and_fit_statistics_are_the_earlier_rollouts(self):
        env = scripted_environment()
        trainer, layer = make_trainer(env)
        collected = []
        for _ in range(3):
            batch = trainer.collect()
            # Collected under the statistics of the rollouts before it.
            self.assertStatistics(layer, collected)
            trainer.fit(batch)
            collected.append(batch["observation"].numpy())
        # The rollouts hold every time step, boundary rows included.
        self.assertFalse(batch["mask"].numpy().all())
        for env_index in range(NUM_ENVS):
            self.assertAllEqual(
                np.stack([rollout[env_index] for rollout in collected]),
                scripted_observations(env_index, 3),
            )
        # After 3 iterations: rollouts 1 and 2 (2 * B * T rows).
        self.assertStatistics(layer, collected[:2])
        self.assertEqual(float(layer.count), 2 * NUM_ENVS * ROLLOUT_LENGTH)

        # The statistics normalize what the networks see.
        observation = np.array([[3.0, 1.0]], np.float32)
        mean, variance, _ = numpy_moments(collected[:2])
        self.assertAllClose(
            layer(observation),
            np.clip((observation - mean) / np.sqrt(variance + 1e-8), -10, 10),
            atol=1e-5,
        )

    @parameterized.parameters(1, 3)
    def test_run_statistics_are_the_earlier_rollouts(self, iterations):
        env = scripted_environment()
        trainer, layer = make_trainer(env)
        history = trainer.run(
            total_env_steps=10_000,
            callbacks=[StopAfter(iterations)],
            verbose=0,
        )
        self.assertLen(history.history["iteration"], iterations)
        expected = [
            np.stack(
                [
                    scripted_observations(env_index, iterations)[rollout]
                    for env_index in range(NUM_ENVS)
                ]
            )
            for rollout in range(iterations - 1)
        ]
        self.assertStatistics(layer, expected)


class ObservationNormalizationTest(tf.test.TestCase):
    def test_normalization_is_identity_before_updates(self):
        layer = ObservationNormalization()
        self.assertAllClose(
            layer(np.array([[3.0, -20.0]], "f4")), [[3.0, -10.0]]
        )


class RewardNormalizationTest(tf.test.TestCase):
    def test_against_numpy_reference(self):
        gamma = 0.9
        rng = np.random.default_rng(0)
        layer = RewardNormalization(2, gamma=gamma)
        returns = np.zeros(2)
        seen = []
        for _ in range(3):
            reward = rng.normal(size=(2, 6)).astype("f4")
            ended = rng.random((2, 6)) < 0.2
            mask = rng.random((2, 6)) < 0.9
            reward[~mask] = 0.0
            out = layer.update_and_scale(reward, ended, mask)
            for t in range(6):
                for b in range(2):
                    if mask[b, t]:
                        returns[b] = returns[b] * gamma + reward[b, t]
                        seen.append(returns[b])
                    if ended[b, t]:
                        returns[b] = 0.0
            want = np.clip(reward / np.sqrt(np.var(seen) + 1e-8), -10, 10)
            self.assertAllClose(out, want, rtol=1e-4, atol=1e-5)
            self.assertAllClose(layer.returns, returns, atol=1e-5)


class NonFiniteStatisticsTest(parameterized.TestCase, tf.test.TestCase):
    """A NaN or Inf row is refused and leaves the statistics as they were."""

    @parameterized.parameters(np.nan, np.inf, -np.inf)
    def test_observation_update_refuses_and_keeps_statistics(self, bad):
        layer = ObservationNormalization()
        layer.build((None, 2))
        layer.update(np.array([[1.0, 2.0], [3.0, 6.0]], np.float32))
        before = [w.numpy().copy() for w in layer.weights]
        rows = np.array([[0.5, 0.5], [bad, 1.0]], np.float32)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            "ObservationNormalization.update: `inputs` holds NaN or Inf",
        ):
            layer.update(rows)
        for weight, value in zip(layer.weights, before):
            self.assertAllEqual(weight, value)
        # Still usable: a finite update goes through.
        layer.update(rows[:1])
        self.assertEqual(float(layer.count), 3.0)
        self.assertTrue(np.all(np.isfinite(layer(rows[:1]))))

    def test_observation_update_names_a_wrong_width(self):
        layer = ObservationNormalization()
        layer.build((None, 2))
        with self.assertRaisesRegex(
            ValueError, r"2 features. Received: inputs.shape=\(4, 3\)"
        ):
            layer.update(np.zeros((4, 3), np.float32))

    @parameterized.parameters(np.nan, np.inf)
    def test_reward_update_refuses_and_keeps_statistics(self, bad):
        layer = RewardNormalization(2, gamma=0.9)
        ended = np.zeros((2, 3), bool)
        mask = np.ones((2, 3), bool)
        layer.update_and_scale(np.ones((2, 3), np.float32), ended, mask)
        before = [w.numpy().copy() for w in layer.weights]
        reward = np.ones((2, 3), np.float32)
        reward[1, 2] = bad
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "`reward` holds NaN or Inf"
        ):
            layer.update_and_scale(reward, ended, mask)
        for weight, value in zip(layer.weights, before):
            self.assertAllEqual(weight, value)

    def test_reward_on_a_masked_row_is_ignored(self):
        # A boundary row's reward is not part of any return.
        reference = RewardNormalization(2, gamma=0.9)
        layer = RewardNormalization(2, gamma=0.9)
        ended = np.zeros((2, 3), bool)
        mask = np.array([[True, False, True], [True, True, True]])
        reward = np.ones((2, 3), np.float32)
        reference.update_and_scale(reward, ended, mask)
        reward[0, 1] = np.nan
        scaled = layer.update_and_scale(reward, ended, mask)
        for a, b in zip(layer.weights, reference.weights):
            self.assertAllEqual(a, b)
        self.assertTrue(np.isfinite(scaled.numpy()[mask]).all())

    def test_reward_rows_must_be_num_envs(self):
        layer = RewardNormalization(2)
        with self.assertRaisesRegex(
            ValueError,
            r"num_envs=2. Received: reward.shape=\(3, 4\)",
        ):
            layer.update_and_scale(
                np.ones((3, 4)), np.zeros((3, 4), bool), np.ones((3, 4), bool)
            )

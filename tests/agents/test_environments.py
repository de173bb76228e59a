"""Tests for keras_gae.agents.environments."""

from unittest import mock

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.drivers import dynamic_step_driver
from tf_agents.drivers import py_driver
from tf_agents.environments import batched_py_environment
from tf_agents.metrics import py_metrics
from tf_agents.metrics import tf_metrics
from tf_agents.policies import random_py_policy
from tf_agents.policies import random_tf_policy
from tf_agents.system import system_multiprocessing
from tf_agents.trajectories import time_step as ts

from keras_gae.agents import EPISODE_HISTORY
from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import make_tf_environment
from keras_gae.agents import space_types
from tests.agents import scripted_env
from tests.agents.scripted_env import SCRIPTED_ENV_ID

FIRST, MID, LAST = (
    int(ts.StepType.FIRST),
    int(ts.StepType.MID),
    int(ts.StepType.LAST),
)
FLOAT32_MAX = np.finfo(np.float32).max


def _step_types(env, actions):
    """(step_type, observation, reward, discount) of reset + each step."""
    steps = [env.reset()]
    steps += [env.step(action) for action in actions]
    return [
        (
            int(s.step_type),
            s.observation.tolist(),
            float(s.reward),
            float(s.discount),
        )
        for s in steps
    ]


class SpecTest(tf.test.TestCase, parameterized.TestCase):
    def test_cartpole_box_observation_discrete_action(self):
        env = GymnasiumEnvironment("CartPole-v1")
        observation_spec = env.observation_spec()
        self.assertEqual(observation_spec.dtype, np.float32)
        self.assertEqual(observation_spec.shape, (4,))
        high = env.gymnasium_env.observation_space.high
        # tf-agents stores infinite bounds as the dtype's limits.
        expected_high = np.where(np.isinf(high), FLOAT32_MAX, high)
        self.assertAllClose(observation_spec.maximum, expected_high)
        self.assertAllClose(observation_spec.minimum, -expected_high)
        action_spec = env.action_spec()
        self.assertEqual(action_spec.dtype, np.int64)
        self.assertEqual(action_spec.shape, ())
        self.assertEqual((action_spec.minimum, action_spec.maximum), (0, 1))
        time_step = env.reset()
        self.assertEqual(time_step.observation.dtype, np.float32)
        self.assertEqual(int(time_step.step_type), FIRST)

    def test_pendulum_box_action(self):
        env = GymnasiumEnvironment("Pendulum-v1")
        self.assertEqual(env.observation_spec().shape, (3,))
        self.assertAllClose(env.observation_spec().minimum, [-1, -1, -8])
        action_spec = env.action_spec()
        self.assertEqual(action_spec.dtype, np.float32)
        self.assertEqual(action_spec.shape, (1,))
        self.assertAllClose(action_spec.minimum, -2.0)
        self.assertAllClose(action_spec.maximum, 2.0)
        env.reset()
        time_step = env.step(np.array([0.5], np.float32))
        self.assertEqual(int(time_step.step_type), MID)
        self.assertEqual(time_step.reward.dtype, np.float32)

    def test_discrete_observation(self):
        env = GymnasiumEnvironment("FrozenLake-v1")
        spec = env.observation_spec()
        self.assertEqual((spec.dtype, spec.shape), (np.int64, ()))
        self.assertEqual((spec.minimum, spec.maximum), (0, 15))
        observation = env.reset().observation
        self.assertEqual(observation.dtype, np.int64)
        self.assertEqual(observation.shape, ())

    def test_multi_discrete_action_with_start(self):
        space = gymnasium.spaces.MultiDiscrete([2, 3], start=[-1, 1])
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID, env_kwargs={"action_space": space}
        )
        spec = env.action_spec()
        self.assertEqual((spec.dtype, spec.shape), (np.int64, (2,)))
        self.assertAllEqual(spec.minimum, [-1, 1])
        self.assertAllEqual(spec.maximum, [0, 3])
        env.reset()
        env.step(np.array([0, 3], np.int64))
        received = env.gymnasium_env.unwrapped.received_actions
        self.assertAllEqual(received, [[0, 3]])
        self.assertEqual(received[0].dtype, space.dtype)

    def test_discrete_action_with_start_reaches_env_as_int(self):
        space = gymnasium.spaces.Discrete(3, start=-1)
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID, env_kwargs={"action_space": space}
        )
        spec = env.action_spec()
        self.assertEqual((spec.minimum, spec.maximum), (-1, 1))
        env.reset()
        env.step(np.array(-1, np.int64))
        received = env.gymnasium_env.unwrapped.received_actions
        self.assertEqual(received, [-1])
        self.assertIsInstance(received[0], int)

    def test_action_space_entry_looked_up_once(self):
        # The entry casting actions comes from the space dispatch at
        # construction; steps no longer consult it.
        space = gymnasium.spaces.MultiDiscrete([2, 3], start=[-1, 1])
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID, env_kwargs={"action_space": space}
        )
        env.reset()
        with mock.patch.object(
            space_types, "space_type_of", side_effect=AssertionError
        ):
            env.step(np.array([-1, 2], np.int64))
            env.step(np.array([0, 1], np.int64))
        received = env.gymnasium_env.unwrapped.received_actions
        self.assertAllEqual(received, [[-1, 2], [0, 1]])
        self.assertEqual(received[0].dtype, space.dtype)

    def test_float64_box_observation_is_cast(self):
        env = GymnasiumEnvironment(SCRIPTED_ENV_ID, seed=5)
        spec = env.observation_spec()
        self.assertEqual(spec.dtype, np.float32)
        observation = env.reset().observation
        self.assertEqual(observation.dtype, np.float32)
        self.assertAllEqual(observation, [5.0, 0.0])

    def test_unsupported_space_raises(self):
        env = scripted_env.ScriptedEnv(action_space=gymnasium.spaces.Text(3))
        with self.assertRaisesRegex(TypeError, "action.*Text"):
            GymnasiumEnvironment(env)

    def test_tf_environment_specs_and_batch(self):
        tf_env = make_tf_environment("CartPole-v1", num_envs=3, seed=1)
        self.assertEqual(tf_env.batch_size, 3)
        self.assertEqual(tf_env.action_spec().dtype, tf.int64)
        self.assertEqual(tf_env.observation_spec().dtype, tf.float32)
        time_step = tf_env.reset()
        self.assertEqual(time_step.observation.shape, (3, 4))
        time_step = tf_env.step(tf.constant([0, 1, 0], tf.int64))
        self.assertAllEqual(time_step.step_type, [MID] * 3)


class EpisodeEndTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(True, False)
    def test_termination_truncation_and_auto_reset(self, handle_auto_reset):
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID, seed=0, handle_auto_reset=handle_auto_reset
        )
        action = np.array(1, np.int64)
        # Episode 0: 2 steps, terminates. Episode 1: 3 steps, truncated.
        # Episode 2: 4 steps, terminates.
        expected = [
            (FIRST, [0, 0], 0.0, 1.0),
            (MID, [0, 1], 1.0, 1.0),
            (LAST, [0, 2], 2.0, 0.0),
            (FIRST, [1, 0], 0.0, 1.0),
            (MID, [1, 1], 1.0, 1.0),
            (MID, [1, 2], 2.0, 1.0),
            (LAST, [1, 3], 3.0, 1.0),
            (FIRST, [2, 0], 0.0, 1.0),
            (MID, [2, 1], 1.0, 1.0),
        ]
        self.assertEqual(_step_types(env, [action] * 8), expected)
        # The two steps that reset ignored their actions.
        received = env.gymnasium_env.unwrapped.received_actions
        self.assertLen(received, 6)

    def test_discount_marks_non_terminal_steps(self):
        env = GymnasiumEnvironment(SCRIPTED_ENV_ID, seed=0, discount=0.9)
        discounts = [s[3] for s in _step_types(env, [np.int64(0)] * 6)]
        # FIRST, MID, LAST (terminated), FIRST, MID, MID, LAST (truncated).
        self.assertAllClose(discounts, [1.0, 0.9, 0.0, 1.0, 0.9, 0.9, 0.9])

    def test_time_limit_truncates(self):
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID,
            seed=1,
            env_kwargs={"max_episode_steps": 3, "endless": True},
        )
        steps = _step_types(env, [np.int64(0)] * 5)
        self.assertEqual(
            [s[0] for s in steps], [FIRST, MID, MID, LAST, FIRST, MID]
        )
        self.assertEqual(steps[3][3], 1.0)
        self.assertEqual(steps[3][1], [1, 3])
        self.assertEqual(steps[4][1], [2, 0])

    def test_termination_wins_over_time_limit(self):
        # Episode 0 terminates after 2 steps, when the limit also truncates.
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID, seed=0, env_kwargs={"max_episode_steps": 2}
        )
        steps = _step_types(env, [np.int64(0)] * 2)
        self.assertEqual(steps[2][0], LAST)
        self.assertEqual(steps[2][3], 0.0)

    def test_episode_statistics(self):
        env = GymnasiumEnvironment(SCRIPTED_ENV_ID, seed=0)
        env.reset()
        for _ in range(11):
            env.step(np.int64(0))
        # Episodes 0, 1, 2 (lengths 2, 3, 4) finish within 11 steps
        # (2 + 1 + 3 + 1 + 4 = 11, counting the two reset steps).
        self.assertEqual(env.episode_lengths(), [2, 3, 4])
        self.assertEqual(env.episode_returns(), [3.0, 6.0, 10.0])

    def test_episode_history_is_bounded(self):
        env = GymnasiumEnvironment(
            SCRIPTED_ENV_ID, env_kwargs={"max_episode_steps": 1}
        )
        env.reset()
        for _ in range(2 * (EPISODE_HISTORY + 5)):
            env.step(np.int64(0))
        self.assertLen(env.episode_returns(), EPISODE_HISTORY)
        self.assertLen(env.episode_lengths(), EPISODE_HISTORY)

    def test_tf_agents_metrics_match_episode_statistics(self):
        num_envs = 2
        tf_env = make_tf_environment(
            SCRIPTED_ENV_ID,
            num_envs=num_envs,
            seed=0,
            env_kwargs={"episode_stride": num_envs},
        )
        policy = random_tf_policy.RandomTFPolicy(
            tf_env.time_step_spec(), tf_env.action_spec()
        )
        metrics = [
            tf_metrics.AverageReturnMetric(batch_size=num_envs),
            tf_metrics.AverageEpisodeLengthMetric(batch_size=num_envs),
            tf_metrics.NumberOfEpisodes(),
            tf_metrics.EnvironmentSteps(),
        ]
        driver = dynamic_step_driver.DynamicStepDriver(
            tf_env, policy, observers=metrics, num_steps=2 * 12
        )
        driver.run()
        returns, lengths, environment_steps = [], [], 0
        for env in tf_env.pyenv.envs:
            returns += env.episode_returns()
            lengths += env.episode_lengths()
            environment_steps += len(
                env.gymnasium_env.unwrapped.received_actions
            )
        self.assertGreaterEqual(len(returns), 4)
        self.assertAllClose(metrics[0].result(), np.mean(returns))
        self.assertAllClose(metrics[1].result(), np.mean(lengths))
        self.assertEqual(int(metrics[2].result()), len(returns))
        self.assertEqual(int(metrics[3].result()), environment_steps)

    def test_py_metrics_match_episode_statistics(self):
        envs = [
            GymnasiumEnvironment(
                SCRIPTED_ENV_ID, seed=index, env_kwargs={"episode_stride": 2}
            )
            for index in range(2)
        ]
        env = batched_py_environment.BatchedPyEnvironment(
            envs, multithreading=False
        )
        policy = random_py_policy.RandomPyPolicy(
            env.time_step_spec(), env.action_spec(), outer_dims=(2,)
        )
        metrics = [
            py_metrics.AverageReturnMetric(batch_size=2),
            py_metrics.AverageEpisodeLengthMetric(batch_size=2),
            py_metrics.NumberOfEpisodes(),
            py_metrics.EnvironmentSteps(),
        ]
        driver = py_driver.PyDriver(
            env, policy, observers=metrics, max_steps=24
        )
        driver.run(env.reset())
        returns = envs[0].episode_returns() + envs[1].episode_returns()
        lengths = envs[0].episode_lengths() + envs[1].episode_lengths()
        self.assertGreaterEqual(len(returns), 4)
        self.assertAllClose(metrics[0].result(), np.mean(returns))
        self.assertAllClose(metrics[1].result(), np.mean(lengths))
        self.assertEqual(metrics[2].result(), len(returns))
        self.assertEqual(metrics[3].result(), 24)


class SeedingTest(tf.test.TestCase, parameterized.TestCase):
    def _rollout(self, seed, num_steps=30):
        env = GymnasiumEnvironment(
            "CartPole-v1", seed=seed, env_kwargs={"max_episode_steps": 6}
        )
        steps = [env.reset()]
        for step in range(num_steps):
            steps.append(env.step(np.int64(step % 3 == 0)))
        observations = np.stack([s.observation for s in steps])
        step_types = [int(s.step_type) for s in steps]
        return observations, step_types, env

    def test_same_seed_same_trajectory(self):
        observations, step_types, env = self._rollout(seed=7)
        again, again_step_types, env_again = self._rollout(seed=7)
        self.assertIn(LAST, step_types)
        self.assertAllEqual(observations, again)
        self.assertEqual(step_types, again_step_types)
        samples = [env.gymnasium_env.action_space.sample() for _ in range(8)]
        samples_again = [
            env_again.gymnasium_env.action_space.sample() for _ in range(8)
        ]
        self.assertEqual(samples, samples_again)

    def test_different_seed_different_trajectory(self):
        observations, _, _ = self._rollout(seed=7)
        other, _, _ = self._rollout(seed=8)
        self.assertNotAllClose(observations, other)

    def test_seed_method_seeds_next_reset(self):
        env = GymnasiumEnvironment("CartPole-v1", seed=1)
        first = env.reset().observation
        env.seed(1)
        self.assertAllEqual(env.reset().observation, first)

    def test_tf_environment_copies_use_consecutive_seeds(self):
        tf_env = make_tf_environment("CartPole-v1", num_envs=3, seed=4)
        observations = tf_env.reset().observation
        for index in range(3):
            env = GymnasiumEnvironment("CartPole-v1", seed=4 + index)
            self.assertAllEqual(observations[index], env.reset().observation)

    def test_parallel_matches_batched(self):
        if not system_multiprocessing.multiprocessing_core.initialized():
            system_multiprocessing.enable_interactive_mode()
        kwargs = dict(num_envs=2, seed=3, env_kwargs={"max_episode_steps": 3})
        parallel = make_tf_environment("CartPole-v1", parallel=True, **kwargs)
        batched = make_tf_environment("CartPole-v1", **kwargs)
        try:
            actions = tf.constant([0, 1], tf.int64)
            steps = [(parallel.reset(), batched.reset())]
            steps += [
                (parallel.step(actions), batched.step(actions))
                for _ in range(5)
            ]
            for from_parallel, from_batched in steps:
                tf.nest.map_structure(
                    self.assertAllEqual, from_parallel, from_batched
                )
        finally:
            parallel.close()


class ErrorTest(tf.test.TestCase, parameterized.TestCase):
    def test_env_of_wrong_type(self):
        with self.assertRaisesRegex(TypeError, "Received: env=3"):
            GymnasiumEnvironment(3)

    def test_env_kwargs_with_instance(self):
        with self.assertRaisesRegex(ValueError, "Received: env_kwargs="):
            GymnasiumEnvironment(
                scripted_env.ScriptedEnv(), env_kwargs={"endless": True}
            )

    @parameterized.parameters(0.0, -0.5, 1.5)
    def test_discount_out_of_range(self, discount):
        with self.assertRaisesRegex(ValueError, "Received: discount="):
            GymnasiumEnvironment(SCRIPTED_ENV_ID, discount=discount)

    def test_seed_of_wrong_type(self):
        with self.assertRaisesRegex(TypeError, "Received: seed="):
            GymnasiumEnvironment(SCRIPTED_ENV_ID, seed=1.5)

    def test_action_of_wrong_shape(self):
        env = GymnasiumEnvironment(SCRIPTED_ENV_ID)
        env.reset()
        with self.assertRaisesRegex(ValueError, "Received: action="):
            env.step(np.array([0, 1], np.int64))

    @parameterized.parameters(
        (0, ValueError), (-1, ValueError), (1.0, TypeError), (True, TypeError)
    )
    def test_num_envs(self, num_envs, error):
        with self.assertRaisesRegex(error, "Received: num_envs="):
            make_tf_environment(SCRIPTED_ENV_ID, num_envs=num_envs)

    def test_make_tf_environment_env_types(self):
        # An instance is one environment now; a number is no environment.
        self.assertEqual(
            make_tf_environment(scripted_env.ScriptedEnv()).batch_size, 1
        )
        with self.assertRaisesRegex(TypeError, "Received: env=3"):
            make_tf_environment(3)

    def test_render_mode_mismatch(self):
        env = GymnasiumEnvironment("CartPole-v1")
        with self.assertRaisesRegex(ValueError, "Received: mode="):
            env.render("rgb_array")

"""OnPolicyAgent.predict checks its input as the environment's is checked."""

import os

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_gae.agents as agents
from tests.agents.space_envs import SpaceEnv

S = gymnasium.spaces
SMALL = dict(num_envs=2, rollout_length=8, epochs=1, num_minibatches=1)


class PredictInputTest(parameterized.TestCase, tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.agent = agents.PPO("CartPole-v1", verbose=0, **SMALL)
        cls.dict_agent = agents.PPO(
            lambda: SpaceEnv(
                S.Dict(mode=S.Discrete(3), position=S.Box(-1, 1, (2,))),
                S.Discrete(2),
            ),
            verbose=0,
            **SMALL,
        )

    @parameterized.parameters(np.nan, np.inf, -np.inf)
    def test_non_finite_observations_are_refused(self, bad):
        for observation in (
            np.array([0.0, bad, 0.0, 0.0]),
            np.array([[0.0] * 4, [0.0, 0.0, bad, 0.0]], np.float32),
        ):
            with self.assertRaisesRegex(
                ValueError,
                r"PPO.predict was given, for 'CartPole-v1', an observation "
                r"that breaks its observation space: .*Received: observation=",
            ):
                self.agent.predict(observation)

    def test_wrong_shape_is_named(self):
        with self.assertRaisesRegex(ValueError, r"shape \(3,\), expected"):
            self.agent.predict(np.zeros(3))

    def test_ids_outside_the_space_are_named(self):
        with self.assertRaisesRegex(
            ValueError, r"observation\['mode'\].*values outside"
        ):
            self.dict_agent.predict(
                {"mode": np.array(3), "position": np.zeros(2, np.float32)}
            )
        action = self.dict_agent.predict(
            {"mode": np.array(2), "position": np.zeros(2)}
        )
        self.assertEqual(np.shape(action), ())


class SettingValuesTest(tf.test.TestCase):
    def test_bad_values_are_refused_before_anything_is_written(self):
        root_dir = os.path.join(self.get_temp_dir(), "never")
        for settings in (
            dict(learning_rate=0.0),
            dict(num_minibatches=3),  # does not divide CartPole's 32 envs
            dict(n_epochs=0),
        ):
            with self.assertRaises(ValueError):
                agents.PPO("CartPole-v1", root_dir=root_dir, **settings)
        self.assertFalse(os.path.exists(root_dir))


class BatchSizeTest(tf.test.TestCase):
    def test_batch_size_counts_the_environments_the_agent_has(self):
        # stable-baselines3's batch_size: steps per minibatch of the
        # rollout the environments give, whatever the preset's num_envs.
        vector_env = gymnasium.make_vec("CartPole-v1", num_envs=4)
        agent = agents.PPO(vector_env, verbose=0, n_steps=16, batch_size=32)
        self.assertEqual(agent.env.batch_size, 4)
        self.assertEqual(agent.settings["num_minibatches"], 4 * 16 // 32)
        self.assertEqual(agent.settings["minibatch_mode"], "steps")

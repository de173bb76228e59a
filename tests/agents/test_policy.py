"""Tests for keras_gae.agents.policy."""

import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.drivers import dynamic_episode_driver
from tf_agents.drivers import dynamic_step_driver
from tf_agents.drivers import py_driver
from tf_agents.metrics import tf_metrics
from tf_agents.policies import policy_saver
from tf_agents.policies import py_tf_eager_policy
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from keras_gae._src.dependencies import tfp
from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import KerasPolicy
from keras_gae.agents import make_tf_environment
from keras_gae.layers import CategoricalPolicyHead
from keras_gae.layers import GaussianPolicyHead
from keras_gae.models import PPOModel
from tests.agents.scripted_env import SCRIPTED_ENV_ID

LAST = int(ts.StepType.LAST)


def make_model(head, hidden=8):
    actor = keras.Sequential(
        [keras.layers.Dense(hidden, activation="tanh"), head]
    )
    critic = keras.Sequential(
        [
            keras.layers.Dense(hidden, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    return PPOModel(actor, critic)


def box_time_step_spec(dim):
    return ts.time_step_spec(tf.TensorSpec([dim], tf.float32, "observation"))


def discrete_spec(num_actions, dtype=tf.int64, minimum=0):
    return tensor_spec.BoundedTensorSpec(
        (), dtype, minimum, minimum + num_actions - 1, name="action"
    )


def box_action_spec(dim, low=-2.0, high=2.0):
    return tensor_spec.BoundedTensorSpec(
        (dim,), tf.float32, low, high, name="action"
    )


def batch_time_step(observations):
    observations = tf.constant(observations, tf.float32)
    return ts.restart(observations, batch_size=observations.shape[0])


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def categorical_log_prob(logits, actions):
    """float64 log softmax(logits)[action], row by row."""
    log_probs = log_softmax(logits)
    return log_probs[np.arange(len(actions)), np.asarray(actions)]


def normal_log_prob(actions, mean, log_std):
    """float64 log density of a diagonal Gaussian, summed over the event."""
    actions, mean, log_std = (
        np.asarray(x, np.float64) for x in (actions, mean, log_std)
    )
    z = (actions - mean) / np.exp(log_std)
    return np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


def model_outputs(model, observations):
    """(params, value) of the model as float64 arrays."""
    params, value = model(tf.constant(observations, tf.float32))
    return params.numpy().astype(np.float64), value.numpy().astype(np.float64)


class ConstructionTest(tf.test.TestCase, parameterized.TestCase):
    def test_rejects_a_model_that_is_not_an_actor_critic(self):
        with self.assertRaisesRegex(TypeError, "model"):
            KerasPolicy(
                keras.Sequential([keras.layers.Dense(2)]),
                box_time_step_spec(4),
                discrete_spec(2),
            )

    def test_rejects_non_bool_greedy(self):
        model = make_model(CategoricalPolicyHead(2))
        with self.assertRaisesRegex(TypeError, "greedy"):
            KerasPolicy(
                model, box_time_step_spec(4), discrete_spec(2), greedy=1
            )

    def test_rejects_nested_action_spec(self):
        model = make_model(CategoricalPolicyHead(2))
        with self.assertRaisesRegex(TypeError, "action_spec"):
            KerasPolicy(
                model, box_time_step_spec(4), {"move": discrete_spec(2)}
            )

    def test_rejects_discrete_spec_not_starting_at_zero(self):
        model = make_model(CategoricalPolicyHead(2))
        with self.assertRaisesRegex(ValueError, "action_spec.*start at 0"):
            KerasPolicy(
                model, box_time_step_spec(4), discrete_spec(2, minimum=1)
            )

    def test_rejects_spec_with_other_number_of_actions(self):
        model = make_model(CategoricalPolicyHead(3))
        with self.assertRaisesRegex(
            ValueError,
            r"0 \.\. 1 but the policy head samples 0 \.\. 2 "
            r"\(integers in \[0, 3\) \(num_actions\)\)",
        ):
            KerasPolicy(model, box_time_step_spec(4), discrete_spec(2))

    def test_rejects_action_shape_not_matching_spec(self):
        model = make_model(GaussianPolicyHead(2))
        with self.assertRaisesRegex(ValueError, "action_spec"):
            KerasPolicy(model, box_time_step_spec(3), box_action_spec(1))

    def test_builds_the_model_and_tracks_its_variables(self):
        model = make_model(CategoricalPolicyHead(2))
        self.assertFalse(model.built)
        policy = KerasPolicy(model, box_time_step_spec(4), discrete_spec(2))
        self.assertTrue(model.built)
        self.assertIs(policy.model, model)
        policy_variables = policy.variables()
        self.assertLen(policy_variables, len(model.variables))
        self.assertGreaterEqual(
            len(policy_variables), len(model.trainable_variables)
        )
        # The policy's variables are the model's: a change to one shows in
        # the other.
        for index, variable in enumerate(model.variables):
            variable.assign(variable + float(index + 1))
        for policy_variable, variable in zip(policy_variables, model.variables):
            self.assertAllEqual(policy_variable, variable.numpy())

    def test_info_spec(self):
        model = make_model(CategoricalPolicyHead(2))
        policy = KerasPolicy(model, box_time_step_spec(4), discrete_spec(2))
        self.assertEqual(
            policy.info_spec,
            {
                "log_prob": tf.TensorSpec([], tf.float32, "log_prob"),
                "value": tf.TensorSpec([], tf.float32, "value"),
            },
        )


class CategoricalActionTest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        tf.random.set_seed(1)
        self.model = make_model(CategoricalPolicyHead(3))
        self.observations = np.random.default_rng(0).normal(size=(32, 4))
        self.time_step = batch_time_step(self.observations)

    def policy(self, **kwargs):
        spec = discrete_spec(3, dtype=kwargs.pop("dtype", tf.int64))
        return KerasPolicy(self.model, box_time_step_spec(4), spec, **kwargs)

    @parameterized.parameters(tf.int64, tf.int32)
    def test_actions_have_the_spec_dtype_and_shape(self, dtype):
        step = self.policy(dtype=dtype).action(self.time_step)
        self.assertEqual(step.action.dtype, dtype)
        self.assertEqual(step.action.shape, (32,))
        self.assertAllInSet(step.action, [0, 1, 2])

    def test_info_holds_log_prob_and_value_of_the_action(self):
        step = self.policy().action(self.time_step)
        self.assertEqual(set(step.info), {"log_prob", "value"})
        for key in ("log_prob", "value"):
            self.assertEqual(step.info[key].dtype, tf.float32)
            self.assertEqual(step.info[key].shape, (32,))
        logits, value = model_outputs(self.model, self.observations)
        self.assertAllClose(step.info["value"], value, atol=1e-6)
        self.assertAllClose(
            step.info["log_prob"],
            categorical_log_prob(logits, step.action.numpy()),
            atol=1e-5,
        )

    def test_greedy_takes_the_most_likely_action(self):
        step = self.policy(greedy=True).action(self.time_step)
        logits, _ = model_outputs(self.model, self.observations)
        expected = logits.argmax(axis=-1)
        self.assertAllEqual(step.action, expected)
        self.assertAllClose(
            step.info["log_prob"],
            categorical_log_prob(logits, expected),
            atol=1e-5,
        )

    def test_greedy_distribution_is_deterministic_at_the_mode(self):
        step = self.policy(greedy=True).distribution(self.time_step)
        logits, value = model_outputs(self.model, self.observations)
        expected = logits.argmax(axis=-1)
        self.assertIsInstance(step.action, tfp.distributions.Deterministic)
        self.assertEqual(step.action.dtype, tf.int64)
        self.assertAllEqual(step.action.sample(), expected)
        self.assertAllEqual(step.action.mode(), expected)
        self.assertAllClose(step.info["value"], value, atol=1e-6)

    def test_distribution_is_the_heads_with_the_spec_dtype(self):
        step = self.policy().distribution(self.time_step)
        logits, value = model_outputs(self.model, self.observations)
        distribution = step.action
        self.assertIsInstance(distribution, tfp.distributions.Categorical)
        self.assertEqual(distribution.dtype, tf.int64)
        self.assertAllClose(
            log_softmax(distribution.logits_parameter().numpy()),
            log_softmax(logits),
            atol=1e-5,
        )
        self.assertAllClose(
            step.info["log_prob"],
            categorical_log_prob(logits, logits.argmax(axis=-1)),
            atol=1e-5,
        )
        self.assertAllClose(step.info["value"], value, atol=1e-6)

    def test_stateless_seed_gives_reproducible_samples(self):
        policy = self.policy()
        first = policy.action(self.time_step, seed=tf.constant([3, 4]))
        again = policy.action(self.time_step, seed=tf.constant([3, 4]))
        other = policy.action(self.time_step, seed=tf.constant([5, 6]))
        self.assertAllEqual(first.action, again.action)
        # 32 near-uniform 3-way samples agree by chance with p = 3**-32.
        self.assertNotAllEqual(first.action, other.action)

    def test_samples_follow_the_softmax(self):
        model = make_model(
            CategoricalPolicyHead(
                2,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(
                    [0.0, np.log(3.0)]
                ),
            )
        )
        policy = KerasPolicy(model, box_time_step_spec(4), discrete_spec(2))
        tf.random.set_seed(2)
        step = policy.action(batch_time_step(np.zeros((20000, 4))))
        # P(action = 1) = 3 / (1 + 3); the standard error is 0.003.
        self.assertAllClose(np.mean(step.action.numpy()), 0.75, atol=0.02)


class GaussianActionTest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        tf.random.set_seed(3)
        self.observations = np.random.default_rng(1).normal(size=(64, 3))
        self.time_step = batch_time_step(self.observations)

    def test_clip_head_actions_are_stored_unclipped(self):
        head = GaussianPolicyHead(
            1, initial_log_std=1.0, bound="clip", low=-2.0, high=2.0
        )
        model = make_model(head)
        policy = KerasPolicy(model, box_time_step_spec(3), box_action_spec(1))
        step = policy.action(self.time_step)
        actions = step.action.numpy()
        self.assertEqual(step.action.dtype, tf.float32)
        self.assertEqual(actions.shape, (64, 1))
        # std e: about half the samples fall outside [-2, 2].
        self.assertTrue(np.any(np.abs(actions) > 2.0))
        params, value = model_outputs(model, self.observations)
        mean, log_std = params[:, :1], params[:, 1:]
        self.assertAllClose(
            step.info["log_prob"],
            normal_log_prob(actions, mean, log_std),
            atol=1e-4,
        )
        self.assertAllClose(step.info["value"], value, atol=1e-6)

    def test_clip_head_greedy_action_is_the_clipped_mean(self):
        head = GaussianPolicyHead(
            1,
            bound="clip",
            low=-0.001,
            high=0.001,
            kernel_initializer="ones",
        )
        model = make_model(head)
        policy = KerasPolicy(
            model,
            box_time_step_spec(3),
            box_action_spec(1, low=-0.001, high=0.001),
            greedy=True,
        )
        step = policy.action(self.time_step)
        params, _ = model_outputs(model, self.observations)
        expected = np.clip(params[:, :1], -0.001, 0.001)
        self.assertAllClose(step.action, expected, atol=1e-7)
        self.assertTrue(np.any(np.abs(params[:, :1]) > 0.001))

    def test_tanh_head_actions_stay_inside_the_box(self):
        head = GaussianPolicyHead(
            2, initial_log_std=1.0, bound="tanh", low=-2.0, high=2.0
        )
        model = make_model(head)
        policy = KerasPolicy(model, box_time_step_spec(3), box_action_spec(2))
        actions = policy.action(self.time_step).action.numpy()
        self.assertEqual(actions.shape, (64, 2))
        self.assertTrue(np.all(np.abs(actions) <= 2.0))

    def test_greedy_distribution_of_vector_actions(self):
        model = make_model(GaussianPolicyHead(2))
        policy = KerasPolicy(
            model, box_time_step_spec(3), box_action_spec(2), greedy=True
        )
        distribution = policy.distribution(self.time_step).action
        params, _ = model_outputs(model, self.observations)
        self.assertEqual(distribution.event_shape, (2,))
        self.assertEqual(distribution.batch_shape, (64,))
        self.assertAllClose(distribution.sample(), params[:, :2], atol=1e-6)


def scripted_policy(env, hidden=8):
    """A KerasPolicy for the scripted env: observation (episode, step)."""
    tf.random.set_seed(4)
    model = make_model(CategoricalPolicyHead(3), hidden=hidden)
    return KerasPolicy(model, env.time_step_spec(), env.action_spec())


class DriverTest(tf.test.TestCase, parameterized.TestCase):
    def assert_info_matches_model(self, model, observations, actions, info):
        """Every row's info is log pi(action) and V(observation)."""
        observations = np.reshape(observations, (-1, 2))
        logits, value = model_outputs(model, observations)
        self.assertAllClose(np.reshape(info["value"], [-1]), value, atol=1e-5)
        self.assertAllClose(
            np.reshape(info["log_prob"], [-1]),
            categorical_log_prob(logits, np.reshape(actions, [-1])),
            atol=1e-5,
        )

    def test_dynamic_step_driver_records_info_at_every_step(self):
        env = make_tf_environment(SCRIPTED_ENV_ID, num_envs=2, seed=0)
        policy = scripted_policy(env)
        buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            policy.trajectory_spec, batch_size=2, max_length=32
        )
        driver = dynamic_step_driver.DynamicStepDriver(
            env, policy, observers=[buffer.add_batch], num_steps=20
        )
        tf.function(driver.run)()
        trajectory = buffer.gather_all()
        self.assertEqual(trajectory.action.dtype, tf.int64)
        step_type = trajectory.step_type.numpy()
        # LAST time steps (the boundary rows) carry info too.
        self.assertTrue(np.any(step_type == LAST))
        self.assert_info_matches_model(
            policy.model,
            trajectory.observation.numpy(),
            trajectory.action.numpy(),
            trajectory.policy_info,
        )

    def test_dynamic_episode_driver(self):
        env = make_tf_environment(SCRIPTED_ENV_ID, num_envs=2, seed=0)
        policy = scripted_policy(env)
        buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            policy.trajectory_spec, batch_size=2, max_length=32
        )
        episodes = tf_metrics.NumberOfEpisodes()
        driver = dynamic_episode_driver.DynamicEpisodeDriver(
            env, policy, observers=[buffer.add_batch, episodes], num_episodes=3
        )
        driver.run()
        self.assertGreaterEqual(int(episodes.result()), 3)
        trajectory = buffer.gather_all()
        self.assertEqual(trajectory.action.dtype, tf.int64)
        self.assert_info_matches_model(
            policy.model,
            trajectory.observation.numpy(),
            trajectory.action.numpy(),
            trajectory.policy_info,
        )

    def test_py_driver_with_eager_policy(self):
        py_env = GymnasiumEnvironment(SCRIPTED_ENV_ID, seed=0)
        policy = scripted_policy(py_env)
        eager_policy = py_tf_eager_policy.PyTFEagerPolicy(
            policy, use_tf_function=True
        )
        trajectories = []
        driver = py_driver.PyDriver(
            py_env, eager_policy, observers=[trajectories.append], max_steps=9
        )
        driver.run(py_env.reset())
        # max_steps counts transitions; boundary rows come on top.
        boundaries = [t.is_boundary() for t in trajectories]
        self.assertEqual(len(trajectories) - sum(boundaries), 9)
        self.assertTrue(any(boundaries))
        actions = np.array([t.action for t in trajectories])
        self.assertEqual(actions.dtype, np.int64)
        info = {
            key: np.array([t.policy_info[key] for t in trajectories])
            for key in ("log_prob", "value")
        }
        self.assertEqual(info["value"].dtype, np.float32)
        self.assert_info_matches_model(
            policy.model,
            np.array([t.observation for t in trajectories]),
            actions,
            info,
        )


class PolicySaverTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(True, False)
    def test_saved_policy_acts_like_the_policy(self, greedy):
        tf.random.set_seed(5)
        model = make_model(CategoricalPolicyHead(3))
        policy = KerasPolicy(
            model, box_time_step_spec(4), discrete_spec(3), greedy=greedy
        )
        path = os.path.join(self.get_temp_dir(), f"policy_{greedy}")
        policy_saver.PolicySaver(policy, batch_size=None).save(path)
        loaded = tf.saved_model.load(path)

        observations = np.random.default_rng(2).normal(size=(16, 4))
        time_step = batch_time_step(observations)
        step = loaded.action(time_step)
        logits, value = model_outputs(model, observations)
        self.assertEqual(step.action.dtype, tf.int64)
        self.assertAllClose(step.info["value"], value, atol=1e-6)
        self.assertAllClose(
            step.info["log_prob"],
            categorical_log_prob(logits, step.action.numpy()),
            atol=1e-5,
        )
        if greedy:
            self.assertAllEqual(step.action, logits.argmax(axis=-1))

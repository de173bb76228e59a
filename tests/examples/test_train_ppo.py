"""Smoke tests of examples/train_ppo.py: tiny budgets, seconds each."""

import os
from unittest import mock

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver
from absl.testing import parameterized
from tf_agents.policies import py_tf_eager_policy

from examples import configs
from examples import train_ppo
from keras_gae.agents import GymnasiumEnvironment

# Two environments, 32 steps each, one pass: a few hundred steps per run.
TINY = dict(
    num_envs=2,
    rollout_length=32,
    epochs=1,
    num_minibatches=1,
    hidden_sizes=(8,),
    target_return=None,
)


def checkpoint_number(checkpoint_dir):
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    return int(latest.rsplit("-", 1)[1])


def load_tf_agents_policy(result, env_id):
    py_env = GymnasiumEnvironment(env_id, seed=3)
    policy = py_tf_eager_policy.SavedModelPyTFEagerPolicy(
        result["tf_agents_policy_dir"],
        py_env.time_step_spec(),
        py_env.action_spec(),
    )
    return policy, py_env


class TrainPPOTest(tf.test.TestCase, parameterized.TestCase):
    def assert_outputs_written(self, result):
        self.assertTrue(
            os.path.exists(
                tf.train.latest_checkpoint(result["checkpoint_dir"]) + ".index"
            )
        )
        self.assertTrue(
            any(
                name.startswith("events.out.tfevents")
                for name in os.listdir(result["log_dir"])
            )
        )
        for key in ("policy_dir", "tf_agents_policy_dir"):
            self.assertTrue(
                os.path.exists(os.path.join(result[key], "saved_model.pb"))
            )

    def test_cartpole_trains_exports_and_resumes(self):
        root_dir = os.path.join(self.get_temp_dir(), "cartpole")
        first = train_ppo.train_eval(
            root_dir, total_env_steps=100, verbose=0, **TINY
        )
        # 2 x 32 rows minus the LAST -> FIRST boundaries, per iteration.
        self.assertEqual(first["iterations"], 2)
        self.assertBetween(first["env_steps"], 100, 2 * 64)
        self.assertLen(first["history"]["env_steps"], 2)
        self.assertTrue(np.all(np.isfinite(first["history"]["loss"])))
        self.assertEqual(first["config"]["learning_rate"], 2e-3)
        self.assert_outputs_written(first)
        self.assertEqual(checkpoint_number(first["checkpoint_dir"]), 2)

        # The greedy tf-agents policy acts like the exported "action".
        policy, py_env = load_tf_agents_policy(first, "CartPole-v1")
        exported = tf.saved_model.load(first["policy_dir"])
        time_step = py_env.reset()
        for _ in range(5):
            action = policy.action(time_step).action
            self.assertEqual(action.dtype, np.int64)
            expected = exported.signatures["action"](
                observation=tf.constant(time_step.observation[None])
            )["action"]
            self.assertEqual(int(action), int(expected.numpy()[0]))
            time_step = py_env.step(action)

        # A rerun on the same root_dir continues the counters.
        resumed = train_ppo.train_eval(
            root_dir, total_env_steps=200, verbose=0, **TINY
        )
        self.assertGreater(resumed["env_steps"], first["env_steps"])
        self.assertGreaterEqual(resumed["env_steps"], 200)
        self.assertEqual(
            resumed["iterations"],
            first["iterations"] + len(resumed["history"]["env_steps"]),
        )
        self.assertEqual(
            resumed["history"]["env_steps"][0] - first["env_steps"],
            first["history"]["env_steps"][0],
        )
        self.assertEqual(
            checkpoint_number(resumed["checkpoint_dir"]), resumed["iterations"]
        )

    def test_pendulum_gaussian_head_with_reward_scale(self):
        root_dir = os.path.join(self.get_temp_dir(), "pendulum")
        result = train_ppo.train_eval(
            root_dir,
            env_id="Pendulum-v1",
            # 2 x 200 steps end the first episodes; their LAST -> FIRST
            # rows, where the return metrics count them, come next.
            total_env_steps=401,
            verbose=0,
            **dict(TINY, rollout_length=100, num_envs=2),
        )
        self.assertEqual(result["config"]["reward_scale"], 0.1)
        self.assert_outputs_written(result)
        # One 200-step episode per env finished; its return is reported in
        # Pendulum's units (-16.3 <= reward <= 0 per step), not scaled.
        self.assertEqual(result["iterations"], 3)
        self.assertEqual(result["episodes"], 2)
        self.assertBetween(result["episode_return_mean"], -16.3 * 200, -200.0)
        self.assertBetween(
            result["history"]["episode_return_mean"][-1],
            0.1 * -16.3 * 200,
            0.1 * -200.0,
        )

        policy, py_env = load_tf_agents_policy(result, "Pendulum-v1")
        time_step = py_env.reset()
        action = policy.action(time_step).action
        self.assertEqual(action.shape, (1,))
        self.assertBetween(float(action[0]), -2.0, 2.0)
        exported = tf.saved_model.load(result["policy_dir"])
        expected = exported.signatures["action"](
            observation=tf.constant(time_step.observation[None])
        )["action"]
        self.assertAllClose(action, expected.numpy()[0])

    def test_a2c(self):
        root_dir = os.path.join(self.get_temp_dir(), "a2c")
        result = train_ppo.train_eval(
            root_dir,
            algorithm="a2c",
            total_env_steps=60,
            verbose=0,
            **dict(TINY, epochs=3),
        )
        self.assertEqual(result["config"]["num_minibatches"], 1)
        self.assertEqual(result["config"]["epochs"], 3)
        self.assertEqual(result["iterations"], 1)
        # PPO's clip statistics are absent from A2C's metrics.
        self.assertIn("policy_loss", result["history"])
        self.assertNotIn("clip_fraction", result["history"])
        self.assert_outputs_written(result)

    def test_unknown_hyperparameter(self):
        with self.assertRaisesRegex(ValueError, "num_env"):
            train_ppo.train_eval(self.get_temp_dir(), num_env=2)

    @flagsaver.flagsaver
    def test_main_passes_only_the_flags_given(self):
        flags.FLAGS(
            [
                "train_ppo",
                "--env=Pendulum-v1",
                "--num_envs=4",
                "--hidden_sizes=16,8",
                "--root_dir=/tmp/somewhere",
            ]
        )
        with mock.patch.object(train_ppo, "train_eval") as train_eval:
            train_ppo.main(["train_ppo"])
        args, kwargs = train_eval.call_args
        self.assertEqual(args, ("/tmp/somewhere",))
        self.assertEqual(kwargs["env_id"], "Pendulum-v1")
        self.assertEqual(kwargs["num_envs"], 4)
        self.assertEqual(kwargs["hidden_sizes"], (16, 8))
        # Not given: left to the environment's config.
        self.assertNotIn("learning_rate", kwargs)
        self.assertNotIn("gamma", kwargs)


class ConfigsTest(tf.test.TestCase):
    def test_environment_values_override_defaults(self):
        config = configs.config_for("Pendulum-v1")
        self.assertEqual(set(config), set(configs.DEFAULTS))
        self.assertEqual(
            config["gamma"], configs.ENV_CONFIGS["Pendulum-v1"]["gamma"]
        )
        self.assertEqual(config["value_coef"], configs.DEFAULTS["value_coef"])
        self.assertEqual(configs.config_for("Unknown-v0"), configs.DEFAULTS)
        # A new dict each call.
        config["gamma"] = 0.5
        self.assertNotEqual(configs.config_for("Pendulum-v1")["gamma"], 0.5)

    def test_a2c_overrides(self):
        config = configs.config_for("CartPole-v1", "a2c")
        self.assertEqual(config["epochs"], 1)
        self.assertEqual(config["num_minibatches"], 1)
        self.assertEqual(config["learning_rate"], 2e-3)

    def test_every_environment_config_is_consistent(self):
        for env_id in configs.ENV_CONFIGS:
            config = configs.config_for(env_id)
            self.assertEqual(
                config["num_envs"] % config["num_minibatches"], 0, msg=env_id
            )
            self.assertEqual(set(config), set(configs.DEFAULTS), msg=env_id)

    def test_unknown_algorithm(self):
        with self.assertRaisesRegex(ValueError, "algorithm"):
            configs.config_for("CartPole-v1", "dqn")

"""Smoke tests of examples/train_ppo.py: tiny budgets, seconds each."""

import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.policies import py_tf_eager_policy

from examples import configs
from examples import train_ppo
from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import make_tf_environment

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
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

    def test_a2c_with_xla(self):
        root_dir = os.path.join(self.get_temp_dir(), "a2c")
        result = train_ppo.train_eval(
            root_dir,
            algorithm="a2c",
            jit_compile=True,
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

    def test_command_line_flags_override_the_environment_config(self):
        root_dir = os.path.join(self.get_temp_dir(), "command_line")
        result = subprocess.run(
            [
                sys.executable,
                os.path.join(REPO_ROOT, "examples", "train_ppo.py"),
                "--env=Pendulum-v1",
                "--num_envs=2",
                "--rollout_length=16",
                "--epochs=1",
                "--num_minibatches=1",
                "--hidden_sizes=8,4",
                "--total_env_steps=20",
                f"--root_dir={root_dir}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        settings = result.stdout.splitlines()[0]
        self.assertStartsWith(settings, "Pendulum-v1 ppo: ")
        for given in ("num_envs=2", "rollout_length=16", "hidden_sizes=(8, 4)"):
            self.assertIn(given, settings)
        # Flags not given keep Pendulum's values, not the flags' defaults.
        pendulum = configs.ENV_CONFIGS["Pendulum-v1"]
        for key in ("gamma", "reward_scale", "learning_rate"):
            self.assertIn(f"{key}={pendulum[key]},", settings)
        self.assertIn(
            "after 32 environment steps (1 iterations)", result.stdout
        )
        self.assertIn(f"Exported policy:  {root_dir}/policy", result.stdout)
        self.assertTrue(
            os.path.exists(os.path.join(root_dir, "policy", "saved_model.pb"))
        )


class Keras3Test(tf.test.TestCase):
    def test_examples_leave_the_process_on_keras_3(self):
        # The binaries import keras_gae, which lets tf-agents import its
        # Keras 2 inside; the user's process stays on Keras 3.
        for name in ("train_ppo.py", "evaluate_policy.py", "gae_demo.py"):
            with open(os.path.join(REPO_ROOT, "examples", name)) as file:
                self.assertNotIn("TF_USE_LEGACY_KERAS", file.read(), name)
        self.assertNotIn("TF_USE_LEGACY_KERAS", os.environ)
        self.assertStartsWith(keras.__version__, "3.")
        self.assertIs(tf.keras.Model, keras.Model)
        model = train_ppo.make_model(
            make_tf_environment("CartPole-v1", num_envs=1).action_spec(),
            algorithm="ppo",
            hidden_sizes=(4,),
            gamma=0.99,
            lambda_=0.95,
            clip_ratio=0.2,
            clip_ratio_low=None,
            clip_ratio_high=None,
            value_coef=0.5,
            entropy_coef=0.0,
            max_grad_norm=0.5,
            action_bound="clip",
            initial_log_std=0.0,
        )
        self.assertIsInstance(model, keras.Model)
        self.assertIsInstance(model.actor, keras.Sequential)


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
        self.assertEqual(config["learning_rate"], 1e-3)
        # What A2C leaves alone stays the environment's.
        self.assertEqual(config["target_return"], 475.0)

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


class CheckpointSafetyTest(tf.test.TestCase):
    """Unreadable or mismatched checkpoints: fall back, refuse, never lose."""

    def train(self, root_dir, total_env_steps, **kwargs):
        return train_ppo.train_eval(
            root_dir,
            total_env_steps=total_env_steps,
            verbose=0,
            **dict(TINY, **kwargs),
        )

    def checkpoint_files(self, root_dir, directory="checkpoints"):
        directory = os.path.join(root_dir, directory)
        contents = {}
        for name in sorted(os.listdir(directory)):
            if name.startswith("ckpt-"):
                with open(os.path.join(directory, name), "rb") as file:
                    contents[name] = file.read()
        return contents

    def truncate(self, root_dir, number, keep=None):
        data = os.path.join(
            root_dir, "checkpoints", f"ckpt-{number}.data-00000-of-00001"
        )
        with open(data, "rb") as file:
            content = file.read()
        with open(data, "wb") as file:
            file.write(content[: len(content) // 2 if keep is None else keep])

    def write_state_file(self, root_dir, text):
        state = os.path.join(root_dir, "checkpoints", "checkpoint")
        with open(state, "w") as file:
            file.write(text)

    def test_unparsable_state_file_resumes_from_the_newest_checkpoint(self):
        root_dir = self.get_temp_dir()
        first = self.train(root_dir, 100)
        last = first["iterations"]
        self.assertGreaterEqual(last, 2)
        saved = self.checkpoint_files(root_dir)
        self.write_state_file(root_dir, "this is not a CheckpointState {{{")
        with self.assertWarnsRegex(
            RuntimeWarning, f"cannot be parsed; restored .*ckpt-{last}"
        ):
            result = self.train(root_dir, first["env_steps"] + 1)
        self.assertEqual(result["iterations"], last + 1)
        self.assertGreater(result["env_steps"], first["env_steps"])
        after = self.checkpoint_files(root_dir)
        for name, content in saved.items():
            self.assertEqual(after[name], content, name)

    def test_truncated_latest_checkpoint_falls_back(self):
        root_dir = self.get_temp_dir()
        first = self.train(root_dir, 100)
        last = first["iterations"]
        self.truncate(root_dir, last)
        with self.assertWarnsRegex(
            RuntimeWarning,
            f"ckpt-{last - 1} instead.*ckpt-{last}.*Read less bytes",
        ):
            result = self.train(root_dir, first["env_steps"])
        # Iteration `last` ran again from the weights of `last - 1`.
        self.assertEqual(result["iterations"], last)

    def test_no_readable_checkpoint_refuses_then_restart_keeps_them(self):
        root_dir = self.get_temp_dir()
        first = self.train(root_dir, 100)
        for name in self.checkpoint_files(root_dir):
            if name.endswith(".index"):
                self.truncate(root_dir, int(name[5:-6]), keep=3)
        # A garbage state file too: the checkpoints are still found.
        self.write_state_file(root_dir, "garbage")
        broken = self.checkpoint_files(root_dir)
        with self.assertRaisesRegex(
            ValueError, "None of the checkpoints.*restart"
        ):
            self.train(root_dir, first["env_steps"] + 1)
        self.assertEqual(self.checkpoint_files(root_dir), broken)

        with self.assertWarnsRegex(RuntimeWarning, "checkpoints.old-1"):
            result = self.train(root_dir, 1, restart=True)
        self.assertEqual(result["iterations"], 1)
        self.assertEqual(
            self.checkpoint_files(root_dir, "checkpoints.old-1"), broken
        )

    def test_resume_with_other_num_envs_names_the_setting(self):
        root_dir = self.get_temp_dir()
        self.train(root_dir, 1)
        saved = self.checkpoint_files(root_dir)
        with self.assertRaisesRegex(
            ValueError,
            r"ckpt-1 was saved by a run with num_envs=2; this run has "
            r"num_envs=4",
        ):
            self.train(root_dir, 1000, num_envs=4)
        self.assertEqual(self.checkpoint_files(root_dir), saved)

    def test_resume_with_other_networks_is_refused(self):
        root_dir = self.get_temp_dir()
        self.train(root_dir, 1)
        with self.assertRaisesRegex(ValueError, "does not fit this run"):
            self.train(root_dir, 1000, hidden_sizes=(16,))


BINARY = "train_ppo.py"


class CommandLineErrorsTest(tf.test.TestCase):
    def run_binary(self, *flags):
        return subprocess.run(
            [sys.executable, os.path.join(REPO_ROOT, "examples", BINARY)]
            + [f"--root_dir={self.get_temp_dir()}", "--total_env_steps=1"]
            + list(flags),
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )

    def test_malformed_list_flag_is_one_line(self):
        result = self.run_binary("--hidden_sizes=64,x")
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn(
            "train_ppo.py: error: --hidden_sizes must be a comma-separated "
            "list of positive ints",
            result.stderr,
        )
        self.assertIn("hidden_sizes='64,x'", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_nan_learning_rate_is_one_line_and_saves_nothing(self):
        result = self.run_binary(
            "--algorithm=a2c", "--learning_rate=nan", "--num_envs=2"
        )
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("learning_rate=nan", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertIsNone(
            tf.train.latest_checkpoint(
                os.path.join(self.get_temp_dir(), "checkpoints")
            )
        )

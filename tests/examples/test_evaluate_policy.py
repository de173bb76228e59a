"""Tests of examples/evaluate_policy.py on small untrained exports."""

import ast
import functools
import json
import os
import subprocess
import sys

import gymnasium
import keras
import numpy as np
import pytest
import tensorflow as tf

from examples import cli
from examples import evaluate_policy
from examples import quiet_start
from keras_gae import export
from keras_gae import layers
from keras_gae import models
from tests.examples import binary_checks

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
NUM_EPISODES = 3
SEED = 5
PENDULUM_WORST_STEP = -16.2736044  # -(pi^2 + 0.1 * 8^2 + 0.001 * 2^2)

# Runs in a fresh interpreter where importing keras_gae fails.
_EVALUATE = """
import json, sys
sys.modules["keras_gae"] = None
sys.path.insert(0, sys.argv[1])
from examples import evaluate_policy
from examples import quiet_start
cartpole, pendulum, episodes, seed = sys.argv[2:6]
episodes, seed = int(episodes), int(seed)
out = {
    "greedy": evaluate_policy.evaluate(cartpole, "CartPole-v1", episodes,
                                       False, seed),
    "greedy_again": evaluate_policy.evaluate(cartpole, "CartPole-v1",
                                             episodes, False, seed),
    "sampled": evaluate_policy.evaluate(cartpole, "CartPole-v1", episodes,
                                        True, seed),
    "sampled_again": evaluate_policy.evaluate(cartpole, "CartPole-v1",
                                              episodes, True, seed),
    "pendulum": evaluate_policy.evaluate(pendulum, "Pendulum-v1", 1,
                                         False, seed),
    "pendulum_again": evaluate_policy.evaluate(pendulum, "Pendulum-v1", 1,
                                               False, seed),
    "pendulum_sampled": evaluate_policy.evaluate(pendulum, "Pendulum-v1", 1,
                                                 True, seed),
    "keras_gae_loaded": sys.modules["keras_gae"] is not None,
}
print(json.dumps(out))
"""


def make_model(head):
    model = models.PPOModel(
        keras.Sequential([keras.layers.Dense(8, activation="tanh"), head]),
        keras.Sequential([keras.layers.Dense(1)]),
    )
    return model


def reference_greedy_returns(model, env_id, num_episodes, seed):
    """Greedy episodes with the in-memory model, reset seeds seed + i."""
    env = gymnasium.make(env_id)
    returns = []
    for episode in range(num_episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            params, _ = model(observation[None].astype(np.float32))
            action = int(model.policy_head.greedy_action(params).numpy()[0])
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


class EvaluatePolicyTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = tf.compat.v1.test.get_temp_dir()
        keras.utils.set_random_seed(1)
        cls.cartpole_model = make_model(layers.CategoricalPolicyHead(2))
        cls.cartpole_dir = export.export_policy(
            cls.cartpole_model,
            os.path.join(root, "cartpole_policy"),
            observation_spec=tf.TensorSpec([4], tf.float32),
        )
        cls.pendulum_dir = export.export_policy(
            make_model(
                layers.GaussianPolicyHead(1, bound="clip", low=-2.0, high=2.0)
            ),
            os.path.join(root, "pendulum_policy"),
            observation_spec=tf.TensorSpec([3], tf.float32),
        )

    def test_evaluates_without_keras_gae(self):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _EVALUATE,
                REPO_ROOT,
                self.cartpole_dir,
                self.pendulum_dir,
                str(NUM_EPISODES),
                str(SEED),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertFalse(out["keras_gae_loaded"])

        for key in ("greedy", "sampled"):
            self.assertLen(out[key], NUM_EPISODES)
            self.assertTrue(np.all(np.isfinite(out[key])), msg=key)
            # CartPole pays 1 per step, for 1 to 500 steps.
            self.assertTrue(
                np.all((np.array(out[key]) >= 1) & (np.array(out[key]) <= 500))
            )
        # Seeded resets (and seeded sampling) repeat exactly.
        self.assertEqual(out["greedy"], out["greedy_again"])
        self.assertEqual(out["sampled"], out["sampled_again"])
        # The greedy actions are the model's own.
        self.assertEqual(
            out["greedy"],
            reference_greedy_returns(
                self.cartpole_model, "CartPole-v1", NUM_EPISODES, SEED
            ),
        )

        for key in ("pendulum", "pendulum_sampled"):
            (episode_return,) = out[key]
            self.assertBetween(episode_return, 200 * PENDULUM_WORST_STEP, 0.0)
        self.assertEqual(out["pendulum"], out["pendulum_again"])

    def test_imports_nothing_but_gymnasium_numpy_tensorflow_absl(self):
        def top_level_imports(path):
            with open(path, encoding="utf-8") as file:
                tree = ast.parse(file.read())
            imported = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported.update(
                        alias.name.split(".")[0] for alias in node.names
                    )
                elif isinstance(node, ast.ImportFrom):
                    imported.add(node.module.split(".")[0])
            return imported

        self.assertContainsSubset(
            top_level_imports(evaluate_policy.__file__),
            {
                "__future__",
                "math",
                "os",
                "sys",
                "typing",
                "gymnasium",
                "numpy",
                "tensorflow",
                "absl",
                "examples",  # quiet_start and cli only, below
            },
        )
        # Its quiet start and flag parsing (shared with the other
        # binaries) are standard library and absl.
        self.assertContainsSubset(
            top_level_imports(quiet_start.__file__),
            {"contextlib", "os", "re", "sys", "tempfile"},
        )
        self.assertContainsSubset(
            top_level_imports(cli.__file__),
            {"__future__", "sys", "typing", "absl"},
        )

    @pytest.mark.slow
    def test_run_prints_no_log_line_nor_warning_and_ends_with_a_summary(
        self,
    ):
        returns = reference_greedy_returns(
            self.cartpole_model, "CartPole-v1", 2, SEED
        )
        summary = (
            f"CartPole-v1, {self.cartpole_dir}, greedy: mean return "
            f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over 2 episodes"
        )
        flags = [
            f"--policy_dir={self.cartpole_dir}",
            "--num_episodes=2",
            f"--seed={SEED}",
        ]
        result, _, _ = run_script(*flags, importtime=False)
        binary_checks.assert_quiet_run(self, result)
        self.assertEqual(
            result.stdout.splitlines(),
            [f"episode {i}: return {r:.1f}" for i, r in enumerate(returns)]
            + [summary],
        )
        # Below --min_mean_return: status 1, the summary says so.
        result, _, _ = run_script(
            *flags, f"--min_mean_return={max(returns) + 1}", importtime=False
        )
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        self.assertEqual(
            result.stdout.splitlines()[-1],
            f"{summary}, below --min_mean_return={max(returns) + 1:.1f}",
        )

    def test_num_episodes_must_be_positive(self):
        with self.assertRaisesRegex(ValueError, "num_episodes"):
            evaluate_policy.evaluate(self.cartpole_dir, "CartPole-v1", 0)

    def test_missing_signature(self):
        module = tf.Module()
        module.value = tf.function(
            lambda observation: {"value": tf.reduce_sum(observation, -1)},
            input_signature=[tf.TensorSpec([None, 4], tf.float32)],
        )
        path = os.path.join(self.get_temp_dir(), "value_only")
        tf.saved_model.save(module, path, signatures={"value": module.value})
        with self.assertRaisesRegex(ValueError, "'action'.*policy_dir="):
            evaluate_policy.evaluate(path, "CartPole-v1", 1)


class EvaluatePolicyErrorsTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.policy_dir = export.export_policy(
            make_model(layers.CategoricalPolicyHead(2)),
            os.path.join(tf.compat.v1.test.get_temp_dir(), "errors_policy"),
            observation_spec=tf.TensorSpec([4], tf.float32),
        )

    def test_tf_agents_export_is_named(self):
        path = os.path.join(self.get_temp_dir(), "tf_agents_policy")
        os.makedirs(path)
        # What PolicySaver writes next to its saved_model.pb.
        with open(os.path.join(path, "policy_specs.pbtxt"), "w") as file:
            file.write("")
        with self.assertRaisesRegex(ValueError, "tf-agents PolicySaver"):
            evaluate_policy.evaluate(path, "CartPole-v1", 1)

    def test_not_a_saved_model(self):
        with self.assertRaisesRegex(
            ValueError, "Cannot load a SavedModel.*policy_dir="
        ):
            evaluate_policy.evaluate(self.get_temp_dir(), "CartPole-v1", 1)

    def test_environment_that_does_not_fit(self):
        for env_id, message in (
            ("FrozenLake-v1", "observation space Discrete.* is not a Box"),
            ("Pendulum-v1", r"shape \(3,\), the policy's \(4,\)"),
            ("NoSuchEnv-v0", "Unknown gymnasium environment"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                evaluate_policy.evaluate(self.policy_dir, env_id, 1)

    def test_command_line_error_is_one_line(self):
        result, errors, imported = run_script(
            f"--policy_dir={self.policy_dir}", "--env=FrozenLake-v1"
        )
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            errors,
            [
                "evaluate_policy.py: error: The environment does not fit the "
                "policy: its observation space Discrete(16) is not a Box (the "
                "exported policy takes one array per observation). "
                "Received: env='FrozenLake-v1'"
            ],
        )
        self.assertIn("tensorflow", imported)  # the policy was loaded

    def test_help_exits_0_without_tensorflow(self):
        binary_checks.assert_help_without_tensorflow(
            self, SCRIPT, "--min_mean_return"
        )

    def test_bad_flags_are_one_error_line_before_tensorflow(self):
        tf_agents_dir = os.path.join(self.get_temp_dir(), "tf_agents_policy")
        os.makedirs(tf_agents_dir)
        with open(os.path.join(tf_agents_dir, "policy_specs.pbtxt"), "w"):
            pass
        missing = os.path.join(self.get_temp_dir(), "missing")
        policy = f"--policy_dir={self.policy_dir}"
        binary_checks.assert_bad_flags_are_one_error_line(
            self,
            SCRIPT,
            (
                ([policy, "--num_episodes=0"], "--num_episodes=0"),
                ([policy, "--seed=-1"], "--seed=-1"),
                (
                    [policy, "--min_mean_return=nan"],
                    "--min_mean_return=nan: must be a finite number",
                ),
                (
                    [f"--policy_dir={missing}"],
                    "`policy_dir` is not a directory",
                ),
                ([f"--policy_dir={tf_agents_dir}"], "tf-agents PolicySaver"),
                (
                    [policy, "--env=NoSuchEnv-v0"],
                    "Unknown gymnasium environment",
                ),
                ([policy, "extra"], "unexpected arguments ['extra']"),
            ),
        )


SCRIPT = "evaluate_policy.py"
run_script = functools.partial(binary_checks.run_script, SCRIPT)

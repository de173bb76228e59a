"""Smoke tests of examples/train_ppo.py: tiny budgets, seconds each."""

import os
import subprocess
import sys

import gymnasium
import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.policies import py_tf_eager_policy

import keras_gae.agents
from examples import quiet_start
from examples import train_ppo
from keras_gae import presets
from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import MLPNetwork
from keras_gae.agents.loop_logs import read_scalars
from tests.agents.space_envs import SpaceEnv
from tests.examples import binary_checks
from tests.examples.binary_checks import checkpoint_files
from tests.examples.binary_checks import truncate_checkpoint

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


# Spaces no built-in environment has: Dict observations with MultiDiscrete
# actions, Tuple observations with MultiBinary actions.
DICT_ENV_ID = "KerasGAETrainPPODict-v0"
TUPLE_ENV_ID = "KerasGAETrainPPOTuple-v0"
gymnasium.register(
    id=DICT_ENV_ID,
    entry_point=SpaceEnv,
    kwargs=dict(
        observation_space=gymnasium.spaces.Dict(
            position=gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32),
            mode=gymnasium.spaces.Discrete(3),
        ),
        action_space=gymnasium.spaces.MultiDiscrete([3, 2]),
        episode_length=7,
    ),
)
gymnasium.register(
    id=TUPLE_ENV_ID,
    entry_point=SpaceEnv,
    kwargs=dict(
        observation_space=gymnasium.spaces.Tuple(
            (
                gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32),
                gymnasium.spaces.MultiDiscrete([2, 3]),
            )
        ),
        action_space=gymnasium.spaces.MultiBinary(3),
        episode_length=6,
    ),
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
        self.assertEqual(
            result["learning_curve"],
            os.path.join(result["root_dir"], "learning_curve.png"),
        )
        with open(result["learning_curve"], "rb") as file:
            self.assertEqual(file.read(8), b"\x89PNG\r\n\x1a\n")

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
        cartpole_rate = presets.ENV_CONFIGS["CartPole-v1"]["learning_rate"]
        self.assertEqual(first["config"]["learning_rate"], cartpole_rate)
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

        # TensorBoard: grouped tags, one point per iteration of both runs at
        # its environment-step count, the learning rate logged.
        self.assertEqual(resumed["log_dir"], first["log_dir"])
        scalars = read_scalars(resumed["log_dir"])
        for tag in (
            "rollout/episode_length_mean",
            "rollout/episodes",
            "train/loss",
            "train/approx_kl",
            "train/clip_fraction",
            "train/explained_variance",
            "train/learning_rate",
            "time/steps_per_second",
            "time/collect_seconds",
            "time/fit_seconds",
        ):
            self.assertIn(tag, scalars)
        env_steps = (
            first["history"]["env_steps"] + resumed["history"]["env_steps"]
        )
        self.assertEqual(
            [step for step, _ in scalars["train/loss"]],
            [int(step) for step in env_steps],
        )
        self.assertAllClose(
            [value for _, value in scalars["train/learning_rate"]],
            [cartpole_rate] * len(env_steps),
        )
        self.assertNotIn("epoch_loss", scalars)

    def test_pendulum_gaussian_head_with_reward_normalization(self):
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
        self.assertTrue(result["config"]["normalize_rewards"])
        self.assert_outputs_written(result)
        # One 200-step episode per env finished; its return is reported in
        # Pendulum's units (-16.3 <= reward <= 0 per step), not normalized.
        self.assertEqual(result["iterations"], 3)
        self.assertEqual(result["episodes"], 2)
        self.assertBetween(result["episode_return_mean"], -16.3 * 200, -200.0)
        self.assertEqual(
            result["history"]["episode_return_mean"][-1],
            result["episode_return_mean"],
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

    def test_each_env_gets_its_own_default_root_dir(self):
        # Without root_dir a second environment used to resume the first
        # one's checkpoints (and fail on their shapes).
        cwd = os.getcwd()
        work_dir = os.path.join(self.get_temp_dir(), "default_root_dirs")
        os.makedirs(work_dir)
        os.chdir(work_dir)
        try:
            cartpole = train_ppo.train_eval(
                total_env_steps=20, verbose=0, **TINY
            )
            acrobot = train_ppo.train_eval(
                env_id="Acrobot-v1", total_env_steps=20, verbose=0, **TINY
            )
            a2c = train_ppo.train_eval(
                algorithm="a2c", total_env_steps=20, verbose=0, **TINY
            )
        finally:
            os.chdir(cwd)
        runs = os.path.join("runs", "train_ppo")
        self.assertEqual(
            cartpole["root_dir"], os.path.join(runs, "CartPole-v1")
        )
        self.assertEqual(
            acrobot["root_dir"], os.path.join("runs", "train_ppo", "Acrobot-v1")
        )
        self.assertEqual(
            a2c["root_dir"],
            os.path.join("runs", "train_ppo", "CartPole-v1-a2c"),
        )
        for result in (cartpole, acrobot, a2c):
            # A new run each: nothing resumed.
            self.assertEqual(result["iterations"], 1)
        self.assertEqual(
            train_ppo.default_root_dir("ALE/Pong-v5"),
            os.path.join("runs", "train_ppo", "ALE_Pong-v5"),
        )

    @parameterized.named_parameters(
        ("discrete_observations", "FrozenLake-v1"),
        ("tuple_of_discrete_observations", "Blackjack-v1"),
        ("dict_observations_multi_discrete_actions", DICT_ENV_ID),
        ("tuple_observations_multi_binary_actions", TUPLE_ENV_ID),
    )
    def test_spaces(self, env_id):
        result = train_ppo.train_eval(
            os.path.join(self.get_temp_dir(), env_id),
            env_id=env_id,
            total_env_steps=100,
            verbose=0,
            **TINY,
        )
        # Blackjack's episodes of 1-3 steps leave many LAST -> FIRST rows,
        # which are not environment steps: 2 or 3 iterations of 64 rows.
        self.assertBetween(result["iterations"], 2, 3)
        self.assertGreaterEqual(result["env_steps"], 100)
        self.assertTrue(np.all(np.isfinite(result["history"]["loss"])))
        self.assert_outputs_written(result)
        # The saved greedy policy acts in the environment's action space.
        policy, py_env = load_tf_agents_policy(result, env_id)
        space = py_env.gymnasium_env.action_space
        time_step = py_env.reset()
        for _ in range(5):
            action = policy.action(time_step).action
            self.assertTrue(space.contains(np.asarray(action)), action)
            time_step = py_env.step(action)

    def test_step_minibatches(self):
        root_dir = os.path.join(self.get_temp_dir(), "steps")
        result = train_ppo.train_eval(
            root_dir,
            total_env_steps=60,
            verbose=0,
            **dict(TINY, epochs=2, num_minibatches=3, minibatch_mode="steps"),
        )
        self.assertEqual(result["config"]["minibatch_mode"], "steps")
        self.assertEqual(result["iterations"], 1)
        # 3 minibatches of single steps, though 3 does not divide 2 envs.
        self.assertTrue(np.isfinite(result["history"]["loss"]).all())

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
        for given in ("num_envs=2", "rollout_length=16", "hidden_sizes=8,4"):
            self.assertIn(given, settings)
        # Flags not given keep Pendulum's values, not the flags' defaults.
        pendulum = presets.ENV_CONFIGS["Pendulum-v1"]
        for key in ("gamma", "normalize_rewards", "learning_rate"):
            self.assertIn(f"{key}={train_ppo._show(pendulum[key])},", settings)
        self.assertIn(
            "after 32 environment steps (1 iterations)", result.stdout
        )
        self.assertIn(f"{root_dir}/policy,", result.stdout)
        self.assertTrue(
            os.path.exists(os.path.join(root_dir, "policy", "saved_model.pb"))
        )


def run_binary(*flags, env=None):
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "examples", "train_ppo.py")]
        + list(flags),
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **(env or {})),
    )


class HelpTest(tf.test.TestCase):
    def flag_help(self, output, name):
        """The help text of `--name` in absl's --help output."""
        marker = f"  --{name}:"
        if marker not in output:
            marker = f"  --[no]{name}:"  # absl's bool flags
        start = output.index(marker)
        end = output.index("\n  --", start + 1)
        return " ".join(output[start:end].split())

    def test_help_shows_the_defaults_of_the_chosen_env(self):
        result = run_binary("--env", "Pendulum-v1", "--algorithm=a2c", "--help")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        pendulum_a2c = presets.config_for("Pendulum-v1", "a2c")
        for name in (
            "num_envs",
            "gamma",
            "epochs",
            "learning_rate",
            "normalize_rewards",
            "total_env_steps",
        ):
            shown = train_ppo._show(pendulum_a2c[name])
            if isinstance(pendulum_a2c[name], bool):
                shown = str(pendulum_a2c[name]).lower()
            self.assertIn(
                f"(default: '{shown}')",
                self.flag_help(result.stdout, name),
                name,
            )
        self.assertIn(
            "(default: 'runs/train_ppo/Pendulum-v1-a2c')",
            self.flag_help(result.stdout, "root_dir"),
        )
        self.assertEqual(pendulum_a2c["gamma"], 0.95)
        self.assertEqual(pendulum_a2c["learning_rate"], 2e-3)
        # Each per-env flag lists its presets.
        self.assertIn(
            "Preset: CartPole-v1 0.004, Acrobot-v1 0.001, Pendulum-v1 0.001, "
            "ALE/*-v5 0.00025, other envs 0.0003; --algorithm=a2c 0.002.",
            self.flag_help(result.stdout, "learning_rate"),
        )

        # Without --env: CartPole-v1 PPO's, the preset agents.PPO uses.
        result = run_binary("--help")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        cartpole = presets.config_for("CartPole-v1")
        for name in ("learning_rate", "num_envs", "target_return"):
            self.assertIn(
                f"(default: '{cartpole[name]}')",
                self.flag_help(result.stdout, name),
                name,
            )

    def test_empty_hidden_sizes_read_as_none(self):
        # ALE/*-v5 puts the heads on the CNN's features: an empty list.
        self.assertEqual(presets.config_for("ALE/Pong-v5")["hidden_sizes"], ())
        text = train_ppo.preset_help("hidden_sizes")
        self.assertIn("ALE/*-v5 none,", text)
        self.assertIn(
            "other envs "
            + ",".join(map(str, presets.DEFAULTS["hidden_sizes"])),
            text,
        )
        # The flag itself still takes the empty list.
        self.assertEqual(train_ppo._layer_sizes([]), ())

    def test_every_setting_is_a_flag(self):
        for name in presets.DEFAULTS:
            self.assertIn(name, train_ppo.FLAGS, name)

    def test_flag_from_argv(self):
        argv = ["train_ppo.py", "--env=Acrobot-v1", "--seed", "3"]
        self.assertEqual(train_ppo.flag_from_argv(argv, "env"), "Acrobot-v1")
        self.assertEqual(
            train_ppo.flag_from_argv(argv + ["--env", "Pendulum-v1"], "env"),
            "Pendulum-v1",
        )
        self.assertIsNone(train_ppo.flag_from_argv(argv, "algorithm"))
        self.assertIsNone(
            train_ppo.flag_from_argv(["x", "--", "--env=A-v0"], "env")
        )


# A `tensorflow` that cannot be imported: what the binary does without
# importing TensorFlow works with it first on the path.
NO_TENSORFLOW = "raise ImportError('TensorFlow imported too early')\n"


class EarlyChecksTest(tf.test.TestCase):
    """Help and flag errors come before TensorFlow is imported."""

    def run_without_tensorflow(self, *flags):
        fake = os.path.join(self.get_temp_dir(), "no_tensorflow")
        os.makedirs(os.path.join(fake, "tensorflow"), exist_ok=True)
        with open(os.path.join(fake, "tensorflow", "__init__.py"), "w") as f:
            f.write(NO_TENSORFLOW)
        root_dir = os.path.join(self.get_temp_dir(), "run")
        result, _, _ = binary_checks.run_script(
            "train_ppo.py",
            f"--root_dir={root_dir}",
            *flags,
            importtime=False,
            env={"PYTHONPATH": f"{fake}{os.pathsep}{REPO_ROOT}"},
            timeout=120,
        )
        # Nothing was written: no checkpoint, no event file.
        self.assertFalse(os.path.exists(root_dir))
        return result

    def assert_one_error_line(self, result, text):
        binary_checks.assert_one_error_line(self, result, "train_ppo.py", text)

    def test_help_exits_zero(self):
        result = self.run_without_tensorflow("--env=Acrobot-v1", "--help")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("--learning_rate", result.stdout)

    def test_unknown_environment(self):
        result = self.run_without_tensorflow("--env=NoSuch-v0")
        self.assert_one_error_line(result, "--env='NoSuch-v0'")
        self.assertIn("NoSuch", result.stderr)

    def test_environment_with_a_missing_dependency(self):
        # Box2D is not a keras_gae dependency; the id is registered.
        result = self.run_without_tensorflow("--env=LunarLander-v3")
        self.assert_one_error_line(result, "--env='LunarLander-v3'")
        self.assertIn("DependencyNotInstalled", result.stderr)

    def test_bad_flag_values(self):
        for flags, text in (
            (["--bogus=1"], "bogus"),
            (["--num_envs=0"], "--num_envs=0"),
            (["--learning_rate=nan"], "--learning_rate must be a finite"),
            (["--target_return=inf"], "--target_return must be a finite"),
            (["--algorithm=a2c", "--clip_ratio=0.1"], "--clip_ratio"),
            (["--hidden_sizes=64,x"], "hidden_sizes='64,x'"),
            (["--learning_rate=-1"], "`learning_rate` must be > 0"),
            (["--learning_rate=0"], "`learning_rate` must be > 0"),
            (["--gamma=1.5"], "`gamma` must be <= 1"),
            (["--num_minibatches=7"], "`num_minibatches` must divide"),
            (["--num_workers=0"], "--num_workers=0"),
            (["--ray_address=HEAD:6379"], "give --num_workers too"),
            (
                ["--num_workers=2", "--worker_timeout_s=0"],
                "--worker_timeout_s must be > 0",
            ),
        ):
            self.assert_one_error_line(
                self.run_without_tensorflow(*flags), text
            )


class QuietRunTest(tf.test.TestCase):
    def test_a_run_prints_only_its_own_lines(self):
        root_dir = self.get_temp_dir()
        # The Makefile's setting: the binary quiets TensorFlow's C++ logs
        # itself.
        result = run_binary(
            "--env=CartPole-v1",
            "--num_envs=2",
            "--rollout_length=16",
            "--epochs=1",
            "--num_minibatches=1",
            "--total_env_steps=40",
            f"--root_dir={root_dir}",
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        # Nothing on stderr: no C++ start-up lines (I0000/W0000/E0000),
        # no Gym banner, no warnings.
        self.assertEqual(result.stderr, "")
        lines = result.stdout.splitlines()
        self.assertStartsWith(lines[0], "CartPole-v1 ppo: num_envs=2, ")
        self.assertEqual(sum(line.startswith("iteration") for line in lines), 2)
        self.assertStartsWith(lines[-2], f"Wrote {root_dir}/checkpoints, ")
        # It ends with one summary line.
        self.assertRegex(
            lines[-1],
            r"^CartPole-v1 ppo: mean return .* after \d+ environment steps "
            r"\(2 iterations\), [\d.]+ s training, [\d.]+ s in all$",
        )

    def test_native_log_lines_are_recognized(self):
        for line in (
            "WARNING: All log messages before absl::InitializeLog() is "
            "called are written to STDERR",
            "I0000 00:00:1796023381.285184   13750 port.cc:153] oneDNN custom "
            "operations are on.",
            "E0000 00:00:1796023385.842923   13750 cuda_platform.cc:52] failed "
            "call to cuInit",
            "W0102 12:34:56.789012 4242 some_file.cc:7] a warning",
            "To enable the following instructions: AVX2 FMA, in other "
            "operations, rebuild TensorFlow",
        ):
            self.assertTrue(quiet_start.NATIVE_LOG_LINE.match(line), line)
        for line in (
            "Traceback (most recent call last):",
            "ValueError: bad",
            "I0000 is not a log line",
            "/path/x.py:3: DeprecationWarning: old",
        ):
            self.assertFalse(quiet_start.NATIVE_LOG_LINE.match(line), line)


class OnePathTest(tf.test.TestCase):
    def test_the_binary_trains_the_agent_with_its_preset(self):
        # train_eval builds keras_gae.agents.PPO with the environment's
        # preset: the same settings, networks and first collection.
        root_dir = os.path.join(self.get_temp_dir(), "one_path")
        result = train_ppo.train_eval(
            root_dir, total_env_steps=64, verbose=0, **TINY
        )
        agent = keras_gae.agents.PPO(
            "CartPole-v1", verbose=0, total_env_steps=64, **TINY
        )
        self.assertEqual(result["config"], agent.settings)
        self.assertEqual(
            {key: result["config"][key] for key in presets.DEFAULTS},
            dict(presets.config_for("CartPole-v1"), total_env_steps=64, **TINY),
        )
        history = agent.learn(64)
        self.assertAllClose(result["history"]["loss"], history.history["loss"])
        self.assertIsInstance(agent.model.actor, MLPNetwork)

    def test_examples_leave_the_process_on_keras_3(self):
        # The binaries import keras_gae, which lets tf-agents import its
        # Keras 2 inside; the user's process stays on Keras 3.
        for name in ("train_ppo.py", "evaluate_policy.py", "gae_demo.py"):
            with open(os.path.join(REPO_ROOT, "examples", name)) as file:
                self.assertNotIn("TF_USE_LEGACY_KERAS", file.read(), name)
        self.assertNotIn("TF_USE_LEGACY_KERAS", os.environ)
        self.assertStartsWith(keras.__version__, "3.")
        self.assertIs(tf.keras.Model, keras.Model)


class CheckpointSafetyTest(tf.test.TestCase):
    """Unreadable or mismatched checkpoints: fall back, refuse, never lose."""

    def train(self, root_dir, total_env_steps, **kwargs):
        return train_ppo.train_eval(
            root_dir,
            total_env_steps=total_env_steps,
            verbose=0,
            **dict(TINY, **kwargs),
        )

    def write_state_file(self, root_dir, text):
        state = os.path.join(root_dir, "checkpoints", "checkpoint")
        with open(state, "w") as file:
            file.write(text)

    def test_unparsable_state_file_resumes_from_the_newest_checkpoint(self):
        root_dir = self.get_temp_dir()
        first = self.train(root_dir, 100)
        last = first["iterations"]
        self.assertGreaterEqual(last, 2)
        saved = checkpoint_files(root_dir)
        self.write_state_file(root_dir, "this is not a CheckpointState {{{")
        with self.assertWarnsRegex(
            RuntimeWarning, f"cannot be parsed; restored .*ckpt-{last}"
        ):
            result = self.train(root_dir, first["env_steps"] + 1)
        self.assertEqual(result["iterations"], last + 1)
        self.assertGreater(result["env_steps"], first["env_steps"])
        after = checkpoint_files(root_dir)
        for name, content in saved.items():
            self.assertEqual(after[name], content, name)

    def test_truncated_latest_checkpoint_falls_back(self):
        root_dir = self.get_temp_dir()
        first = self.train(root_dir, 100)
        last = first["iterations"]
        truncate_checkpoint(root_dir, last)
        unreadable = {
            name: content
            for name, content in checkpoint_files(root_dir).items()
            if name.startswith(f"ckpt-{last}.")
        }
        with self.assertWarnsRegex(
            RuntimeWarning,
            f"ckpt-{last - 1} instead.*unreadable-1.*ckpt-{last}.*Read less",
        ):
            # One step past ckpt-{last - 1}'s count: one iteration (the
            # environments start new episodes, so it may end with fewer
            # steps than the first run's iteration `last`).
            resume_at = int(first["history"]["env_steps"][-2]) + 1
            result = self.train(root_dir, resume_at)
        # Iteration `last` ran again from the weights of `last - 1`.
        self.assertEqual(result["iterations"], last)
        # Its new checkpoint took the number; the unreadable one was kept.
        self.assertEqual(
            checkpoint_files(root_dir, "checkpoints/unreadable-1"),
            unreadable,
        )
        self.assertIn(f"ckpt-{last}.index", checkpoint_files(root_dir))

    def test_no_readable_checkpoint_refuses_then_restart_keeps_them(self):
        root_dir = self.get_temp_dir()
        first = self.train(root_dir, 100)
        for name in checkpoint_files(root_dir):
            if name.endswith(".index"):
                truncate_checkpoint(root_dir, int(name[5:-6]), keep=3)
        # A garbage state file too: the checkpoints are still found.
        self.write_state_file(root_dir, "garbage")
        broken = checkpoint_files(root_dir)
        with self.assertRaisesRegex(
            ValueError, "None of the checkpoints.*restart"
        ):
            self.train(root_dir, first["env_steps"] + 1)
        self.assertEqual(checkpoint_files(root_dir), broken)

        with self.assertWarnsRegex(RuntimeWarning, "checkpoints.old-1"):
            result = self.train(root_dir, 1, restart=True)
        self.assertEqual(result["iterations"], 1)
        self.assertEqual(
            checkpoint_files(root_dir, "checkpoints.old-1"),
            broken,
        )

    def test_resume_with_other_num_envs_names_the_setting(self):
        root_dir = self.get_temp_dir()
        self.train(root_dir, 1)
        saved = checkpoint_files(root_dir)
        with self.assertRaisesRegex(
            ValueError,
            r"ckpt-1 was saved by a run with num_envs=2; this run has "
            r"num_envs=4",
        ):
            self.train(root_dir, 1000, num_envs=4)
        self.assertEqual(checkpoint_files(root_dir), saved)

    def test_resume_with_other_networks_is_refused(self):
        root_dir = self.get_temp_dir()
        self.train(root_dir, 1)
        with self.assertRaisesRegex(ValueError, "does not fit this run"):
            self.train(root_dir, 1000, hidden_sizes=(16,))

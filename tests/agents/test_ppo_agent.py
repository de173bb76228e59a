"""The short path: PPO(env).learn().export(), save/load, spaces end to end."""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
from unittest import mock

import gymnasium
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

import keras_gae
import keras_gae.agents as agents
from keras_gae.agents import checkpointing
from keras_gae.agents import environment_checks
from keras_gae.agents import space_types
from keras_gae.agents.loop_logs import read_scalars
from tests.agents.space_envs import SpaceEnv
from tests.fresh_process import run_python

S = gymnasium.spaces
SMALL = dict(num_envs=2, rollout_length=8, epochs=1, num_minibatches=1)


class SpacesEndToEndTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.named_parameters(
        ("multi_discrete", S.Box(-1, 1, (3,)), S.MultiDiscrete([3, 2])),
        ("multi_binary", S.Box(-1, 1, (3,)), S.MultiBinary(4)),
        ("discrete_obs", S.Discrete(5), S.Discrete(2)),
        (
            "dict_tuple_obs",
            S.Dict(
                {
                    "pos": S.Box(-1, 1, (2,)),
                    "pair": S.Tuple((S.Discrete(3), S.MultiBinary(2))),
                }
            ),
            S.Discrete(3),
        ),
    )
    def test_trains_and_exports(self, observation_space, action_space):
        factory = lambda: SpaceEnv(observation_space, action_space)  # noqa
        agent = agents.PPO(
            factory, verbose=0, normalize_observations=True, **SMALL
        )
        history = agent.learn(total_env_steps=48)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        # The environment received actions of its own space.
        sample = agent.env.pyenv.gymnasium_env.envs[0].actions[-1]
        self.assertTrue(
            action_space.contains(sample.astype(action_space.dtype))
        )
        path = agent.export(os.path.join(self.get_temp_dir(), "policy"))
        loaded = tf.saved_model.load(path)
        convert = environment_checks.ObservationConverter(
            space_types.space_to_spec(observation_space, "observation"), "test"
        )
        observation = tf.nest.map_structure(
            lambda x: x[None], convert(observation_space.sample())
        )
        exported = loaded.action(observation)
        exported = (
            exported["action"] if isinstance(exported, dict) else exported
        )
        self.assertAllEqual(exported, agent.predict(observation))


class AgentTest(tf.test.TestCase):
    def test_save_load_round_trip(self):
        agent = agents.PPO(
            "Pendulum-v1", verbose=0, seed=3, **SMALL
        )  # preset: reward normalization on
        agent.learn(total_env_steps=32)
        self.assertTrue(agent.settings["normalize_rewards"])
        path = agent.save(os.path.join(self.get_temp_dir(), "agent"))
        loaded = agents.PPO.load(path, verbose=0)
        self.assertEqual(loaded.env_steps, agent.env_steps)
        self.assertEqual(loaded.settings, agent.settings)
        for a, b in zip(agent.model.weights, loaded.model.weights):
            self.assertAllEqual(a, b, msg=a.path)
        self.assertEqual(
            int(loaded.model.optimizer.iterations),
            int(agent.model.optimizer.iterations),
        )
        variance = loaded.model.reward_normalization.return_variance
        self.assertNotEqual(float(variance), 1.0)
        loaded.learn(total_env_steps=16)
        self.assertEqual(loaded.env_steps, agent.env_steps + 16)

    def test_steps_per_execution_defaults_to_an_iteration(self):
        agent = agents.PPO(
            "Acrobot-v1", verbose=0, **dict(SMALL, epochs=3, num_minibatches=2)
        )
        self.assertIsNone(agent.settings["steps_per_execution"])
        self.assertEqual(agent.model.steps_per_execution, 6)

    def test_compile_and_gae_settings_reach_the_model(self):
        agent = agents.PPO(
            "CartPole-v1",
            verbose=0,
            steps_per_execution=3,
            jit_compile=True,
            gae_implementation="scan",
            **SMALL,
        )
        self.assertEqual(agent.model.steps_per_execution, 3)
        self.assertTrue(agent.model.jit_compile)
        self.assertEqual(agent.model.gae_implementation, "scan")
        # One epoch of one minibatch per rollout: one gradient step per
        # iteration, each run inside an execution of up to 3 steps.
        history = agent.learn(total_env_steps=16)
        self.assertEqual(
            int(agent.model.optimizer.iterations), agent.trainer.iteration
        )
        self.assertGreaterEqual(agent.trainer.iteration, 1)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))

    def test_unknown_setting(self):
        with self.assertRaisesRegex(
            ValueError, "Did you mean learning_rate.*learning_rat=0.001"
        ):
            agents.PPO("CartPole-v1", learning_rat=1e-3)

    def test_unbatched_observations_get_unbatched_actions(self):
        agent = agents.PPO("Pendulum-v1", verbose=0, **SMALL)
        env = gymnasium.make("Pendulum-v1")
        observation, _ = env.reset(seed=0)
        action = agent.predict(observation)  # float64, as env returns it
        self.assertEqual(action.shape, env.action_space.shape)
        env.step(action)
        batch = np.stack([observation, observation + 0.1])
        actions = agent.predict(batch)
        self.assertEqual(actions.shape, (2,) + env.action_space.shape)
        self.assertAllClose(actions[0], action)

    def test_an_instance_is_copied_from_its_spec(self):
        env = gymnasium.wrappers.TimeAwareObservation(
            gymnasium.make("CartPole-v1")
        )
        agent = agents.PPO(env, verbose=0, **dict(SMALL, num_envs=4))
        self.assertEqual(agent.env.batch_size, 4)
        # The wrapper came along: time is the fifth observation entry.
        self.assertEqual(agent.env.observation_spec().shape, (5,))
        self.assertEqual(agent.settings["num_minibatches"], 1)
        agent.learn(total_env_steps=32)
        self.assertEqual(agent.evaluate(1)["lengths"][0] > 0, True)

    def test_an_instance_without_a_spec_keeps_the_rollout_size(self):
        factory = lambda: SpaceEnv(S.Box(-1, 1, (3,)), S.Discrete(2))  # noqa
        with self.assertWarnsRegex(UserWarning, "no registered spec"):
            agent = agents.PPO(factory(), verbose=0, num_envs=4)
        preset = agents.PPO(factory, verbose=0, num_envs=4)
        self.assertEqual(agent.env.batch_size, 1)
        self.assertEqual(
            agent.settings["rollout_length"],
            4 * preset.settings["rollout_length"],
        )
        # As many gradient steps per iteration as the preset's.
        self.assertEqual(agent.settings["minibatch_mode"], "steps")
        self.assertEqual(
            agent.settings["num_minibatches"],
            preset.settings["num_minibatches"],
        )

    def test_agents_from_factories_save_and_load_with_env(self):
        factory = lambda: SpaceEnv(S.Box(-1, 1, (3,)), S.Discrete(2))  # noqa
        agent = agents.PPO(factory, verbose=0, **SMALL)
        agent.learn(total_env_steps=16)
        path = agent.save(os.path.join(self.get_temp_dir(), "factory"))
        with self.assertRaisesRegex(ValueError, "pass it again.*env=None"):
            agents.PPO.load(path)
        loaded = agents.PPO.load(path, env=factory, verbose=0)
        self.assertEqual(loaded.env_steps, agent.env_steps)
        for a, b in zip(agent.model.weights, loaded.model.weights):
            self.assertAllEqual(a, b, msg=a.path)
        with self.assertRaisesRegex(ValueError, "saved PPO agent"):
            agents.A2C.load(path, env=factory)

    def test_a2c_agent(self):
        agent = agents.A2C("CartPole-v1", verbose=0, num_envs=2)
        self.assertIsInstance(agent.model, keras_gae.models.A2CModel)
        self.assertEqual(agent.settings["epochs"], 1)
        history = agent.learn(total_env_steps=64)
        self.assertNotIn("clip_fraction", history.history)
        self.assertEqual(
            int(agent.model.optimizer.iterations), agent.trainer.iteration
        )

    def test_log_dir_writes_tensorboard_scalars(self):
        log_dir = os.path.join(self.get_temp_dir(), "tb")
        agent = agents.PPO(
            "CartPole-v1", verbose=0, tensorboard_log=log_dir, **SMALL
        )
        agent.learn(total_env_steps=16)
        scalars = read_scalars(log_dir)
        self.assertIn("train/loss", scalars)
        self.assertEqual(
            [step for step, _ in scalars["train/loss"]], [agent.env_steps]
        )

    def test_evaluate_against_manual_loop(self):
        agent = agents.PPO("CartPole-v1", verbose=0, **SMALL)
        result = agent.evaluate(num_episodes=2, seed=5)
        returns = []
        for index in range(2):
            env = gymnasium.make("CartPole-v1")
            observation, _ = env.reset(seed=5 + index)
            total, done = 0.0, False
            while not done:
                action = int(agent.predict(observation[None].astype("f4"))[0])
                observation, reward, terminated, truncated, _ = env.step(action)
                total += reward
                done = terminated or truncated
            returns.append(total)
        self.assertEqual(result["returns"], returns)

    def test_quiet_import_and_collection(self):
        code = (
            "import keras_gae.agents as a\n"
            "p = a.PPO('CartPole-v1', verbose=0, num_envs=2, rollout_length=4,"
            " epochs=1, num_minibatches=1)\n"
            "p.learn(8)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            check=True,
        )
        self.assertNotIn("Gym has been unmaintained", result.stderr)
        self.assertNotIn("gather_all", result.stderr)
        self.assertNotIn("deprecat", result.stderr.lower())


@pytest.mark.slow
class StableBaselines3HabitsTest(tf.test.TestCase):
    def test_sb3_code_runs_as_written(self):
        # What a stable-baselines3 user types, names and all.
        code = (
            "import gymnasium\n"
            "from keras_gae.agents import PPO\n"
            "env = gymnasium.make('CartPole-v1')\n"
            "model = PPO('MlpPolicy', env, n_steps=16, batch_size=64,\n"
            "            n_epochs=2, gae_lambda=0.9, ent_coef=0.01,\n"
            "            vf_coef=0.5, clip_range=0.1, verbose=0,\n"
            "            tensorboard_log='tb')\n"
            "model.learn(total_timesteps=1024)\n"
            "obs, info = env.reset(seed=0)\n"
            "for _ in range(20):\n"
            "    action = model.predict(obs)\n"
            "    obs, reward, terminated, truncated, info = env.step(action)\n"
            "    if terminated or truncated:\n"
            "        obs, info = env.reset()\n"
            "model.save('agent')\n"
            "model = PPO.load('agent', env=env, verbose=0)\n"
            "s = model.settings\n"
            "print(s['num_envs'], s['rollout_length'], s['num_minibatches'],"
            " s['minibatch_mode'], s['epochs'], s['lambda_'],"
            " s['entropy_coef'], s['clip_ratio'], model.env_steps >= 1024)\n"
        )
        result = run_python(code, cwd=self.get_temp_dir())
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertEqual(
            result.stdout.split(),
            [
                "32",
                "16",
                str(32 * 16 // 64),
                "steps",
                "2",
                "0.9",
                "0.01",
                "0.1",
                "True",
            ],
        )
        self.assertTrue(os.listdir(os.path.join(self.get_temp_dir(), "tb")))
        self.assertNotIn("Warning", result.stderr)


@pytest.mark.slow
class CartPoleShortPathTest(tf.test.TestCase):
    def test_three_lines_reach_475(self):
        agent = agents.PPO("CartPole-v1", verbose=0)
        history = agent.learn(total_env_steps=100_000)
        self.assertGreaterEqual(history.history["episode_return_mean"][-1], 475)
        self.assertGreaterEqual(agent.evaluate(5)["return_mean"], 475)
        path = agent.export(os.path.join(self.get_temp_dir(), "policy"))
        self.assertTrue(os.path.isdir(path))


_SAVE_REPEATEDLY = """
import os, sys, time
import numpy as np
import keras_gae.agents as agents
path, seed, ready, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
agent = agents.PPO(
    "CartPole-v1", seed=seed, verbose=0, num_envs=2, rollout_length=8,
    epochs=1, num_minibatches=1,
)
np.save(os.path.join(out, f"kernel-{seed}.npy"), agent.model.weights[0])
open(os.path.join(ready, str(seed)), "w").close()
while len(os.listdir(ready)) < 2:
    time.sleep(0.01)
for _ in range(10):
    agent.save(path)
"""


class SaveLoadSafetyTest(tf.test.TestCase, parameterized.TestCase):
    """Saves are atomic, loads of damaged saves say what is wrong."""

    def saved(self, name="agent", **kwargs):
        agent = agents.PPO("CartPole-v1", verbose=0, **dict(SMALL, **kwargs))
        path = os.path.join(self.get_temp_dir(), name)
        return agent, agent.save(path)

    def files(self, path):
        contents = {}
        for name in sorted(os.listdir(path)):
            with open(os.path.join(path, name), "rb") as file:
                contents[name] = file.read()
        return contents

    def test_truncated_checkpoint_names_the_file(self):
        _, path = self.saved()
        data = os.path.join(path, "agent.data-00000-of-00001")
        with open(data, "r+b") as file:
            file.truncate(100)
        with self.assertRaisesRegex(
            ValueError,
            f"{re.escape(path)}/agent cannot be read.*truncated.*"
            "Received: IndexError",
        ):
            agents.PPO.load(path, verbose=0)

    def test_missing_checkpoint_file_names_the_file(self):
        _, path = self.saved()
        os.remove(os.path.join(path, "agent.index"))
        with self.assertRaisesRegex(
            ValueError, f"{re.escape(path)}/agent cannot be read.*Received: "
        ):
            agents.PPO.load(path, verbose=0)

    @parameterized.named_parameters(
        ("not_json", b"{not json", "not JSON"),
        ("not_utf8", b"\xff\xfe", "not JSON"),
        ("a_list", b"[1, 2]", "not a saved agent's settings"),
        ("no_settings", b'{"algorithm": "ppo"}', "lacks .*'settings'"),
        (
            "bad_value",
            b'{"algorithm": "ppo", "env_id": "CartPole-v1", "seed": 0, '
            b'"env_kwargs": {}, "settings": {"num_envs": "two"}}',
            "cannot rebuild the agent.*num_envs='two'",
        ),
    )
    def test_unusable_settings_file_names_the_file(self, content, message):
        _, path = self.saved()
        settings = os.path.join(path, "settings.json")
        with open(settings, "wb") as file:
            file.write(content)
        with self.assertRaisesRegex(
            ValueError, f"{re.escape(settings)}.*{message}.*Received: "
        ):
            agents.PPO.load(path, verbose=0)

    def test_settings_edited_to_another_env_is_a_mismatch(self):
        _, path = self.saved()
        settings = os.path.join(path, "settings.json")
        with open(settings) as file:
            saved = json.load(file)
        saved["env_id"] = "Acrobot-v1"  # 6 observations, not 4
        with open(settings, "w") as file:
            json.dump(saved, file)
        with self.assertRaisesRegex(
            checkpointing.CheckpointMismatchError,
            f"{re.escape(path)}/agent does not fit.*{re.escape(settings)}.*"
            r"Received: saved shape=\(4, ",
        ):
            agents.PPO.load(path, verbose=0)

    def test_a_failed_save_leaves_the_previous_save_intact(self):
        agent, path = self.saved(seed=1)
        before = self.files(path)
        other = agents.PPO("CartPole-v1", verbose=0, seed=2, **SMALL)
        with mock.patch.object(
            tf.train.Checkpoint, "write", side_effect=OSError("disk full")
        ):
            with self.assertRaisesRegex(OSError, "disk full"):
                other.save(path)
        self.assertEqual(self.files(path), before)
        # Nothing half-written is left beside it either.
        self.assertEqual(os.listdir(os.path.dirname(path)), ["agent"])
        loaded = agents.PPO.load(path, verbose=0)
        self.assertEqual(loaded.seed, 1)
        self.assertAllEqual(loaded.model.weights[0], agent.model.weights[0])

    def test_save_refuses_non_finite_weights(self):
        # As the export does: NaN weights never replace a good save.
        agent, path = self.saved()
        before = self.files(path)
        kernel = agent.model.weights[0]
        kernel.assign(tf.fill(kernel.shape, np.nan))
        with self.assertRaisesRegex(
            ValueError,
            f"NaN or Inf.*{re.escape(kernel.path)}.*Received: "
            f"path={re.escape(repr(path))}",
        ):
            agent.save(path)
        self.assertEqual(self.files(path), before)

    def test_save_refuses_a_file_or_a_directory_of_other_files(self):
        agent = agents.PPO("CartPole-v1", verbose=0, **SMALL)
        mine = os.path.join(self.get_temp_dir(), "mine")
        os.makedirs(mine)
        with open(os.path.join(mine, "notes.txt"), "w") as file:
            file.write("keep")
        with self.assertRaisesRegex(
            ValueError, f"notes.txt.*Received: path={re.escape(repr(mine))}"
        ):
            agent.save(mine)
        self.assertEqual(os.listdir(mine), ["notes.txt"])
        a_file = os.path.join(mine, "notes.txt")
        with self.assertRaisesRegex(ValueError, "is a file.*Received: path="):
            agent.save(a_file)
        with open(a_file) as file:
            self.assertEqual(file.read(), "keep")

    def test_concurrent_saves_leave_one_whole_save(self):
        # Two processes save to one path at once, ten times each: both
        # succeed and the result is one of them, settings and weights.
        root = self.get_temp_dir()
        path = os.path.join(root, "agent")
        ready = os.path.join(root, "ready")
        os.makedirs(ready)

        def save(seed):
            return run_python(
                _SAVE_REPEATEDLY, args=[path, str(seed), ready, root]
            )

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(save, (1, 2)))
        for result in results:
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        loaded = agents.PPO.load(path, verbose=0)
        kernel = np.load(os.path.join(root, f"kernel-{loaded.seed}.npy"))
        self.assertAllEqual(loaded.model.weights[0], kernel)
        self.assertEqual(
            sorted(os.listdir(root)),
            ["agent", "kernel-1.npy", "kernel-2.npy", "ready"],
        )

"""Tests for keras_gae.agents.training (the collect-and-fit loop)."""

import contextlib
import glob
import io
import os
import re
import textwrap

import gymnasium
import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.environments import batched_py_environment
from tf_agents.environments import tf_environment
from tf_agents.environments import tf_py_environment
from tf_agents.metrics import tf_metrics

from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import OnPolicyTrainer
from keras_gae.agents import make_tf_environment
from keras_gae.agents import train
from keras_gae.agents.loop_logs import read_scalars
from keras_gae.agents.rollout_collector import RolloutCollector
from keras_gae.agents.training import LOOP_LOG_KEYS
from keras_gae.agents.training import EnvStepTensorBoard
from keras_gae.layers import CategoricalPolicyHead
from keras_gae.layers import GaussianPolicyHead
from keras_gae.models import A2CModel
from keras_gae.models import NonFiniteLossError
from keras_gae.models import PPOModel
from tests.agents.run_outputs import USER_SCRIPT
from tests.agents.run_outputs import event_scalars
from tests.agents.run_outputs import event_tags
from tests.agents.run_outputs import output_sections
from tests.agents.scripted_env import SCRIPTED_ENV_ID
from tests.agents.scripted_env import ScriptedEnv
from tests.fresh_process import run_python


def make_model(head, *, model_class=PPOModel, seed=0, learning_rate=1e-3):
    keras.utils.set_random_seed(seed)

    def network(output):
        return keras.Sequential(
            [keras.layers.Dense(8, activation="tanh"), output]
        )

    model = model_class(network(head), network(keras.layers.Dense(1)))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


def cartpole(num_envs=2, seed=0):
    return make_tf_environment("CartPole-v1", num_envs=num_envs, seed=seed)


class HugeRewardAfter(gymnasium.Wrapper):
    """Rewards of 3e38 after `steps` steps of the wrapped environment.

    tf-agents refuses NaN rewards; a float32 reward near the largest
    finite one makes the squared value error, hence the loss, Inf.
    """

    def __init__(self, env, steps):
        super().__init__(env)
        self.steps_left = steps

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.steps_left -= 1
        if self.steps_left < 0:
            reward = 3e38
        return observation, reward, terminated, truncated, info


class Recorder(keras.callbacks.Callback):
    """Records the callback calls, the logs and the weights at each end."""

    def __init__(self, raise_at=None):
        super().__init__()
        self.raise_at = raise_at
        self.events = []
        self.logs = []
        self.weights = []
        self.optimizer_weights = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")
        self.weights_at_begin = self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch))
        self.logs.append(dict(logs))
        self.weights.append(self.model.get_weights())
        self.optimizer_weights.append(
            [v.numpy() for v in self.model.optimizer.variables]
        )
        if epoch == self.raise_at:
            raise KeyboardInterrupt("interrupted by the test")

    def on_train_end(self, logs=None):
        self.events.append("train_end")


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


class ArgumentTest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        self.env = make_tf_environment(SCRIPTED_ENV_ID, num_envs=2)
        self.model = make_model(CategoricalPolicyHead(3))

    def test_rejects_model_that_is_not_compiled(self):
        model = PPOModel(
            keras.Sequential([CategoricalPolicyHead(3)]),
            keras.Sequential([keras.layers.Dense(1)]),
        )
        with self.assertRaisesRegex(ValueError, "model.*compiled"):
            OnPolicyTrainer(
                model, self.env, rollout_length=4, num_minibatches=2
            )

    def test_rejects_python_environment(self):
        with self.assertRaisesRegex(TypeError, "env"):
            OnPolicyTrainer(
                self.model, self.env.pyenv, rollout_length=4, num_minibatches=2
            )

    def test_a_collector_factory_makes_its_own_collector(self):
        # What rollout workers are to the trainer (keras_gae.distributed),
        # without Ray: anything with `make_collector` collects for it.
        made = []

        class Factory:
            def make_collector(self, model, *, rollout_length, return_window):
                made.append((rollout_length, return_window))
                return RolloutCollector(
                    model,
                    make_tf_environment(SCRIPTED_ENV_ID, num_envs=2),
                    rollout_length=rollout_length,
                    return_window=return_window,
                )

        trainer = OnPolicyTrainer(
            self.model,
            Factory(),
            rollout_length=4,
            num_minibatches=2,
            return_window=5,
        )
        self.assertEqual(made, [(4, 5)])
        self.assertEqual(trainer.collect()["reward"].shape, (2, 4))

    def test_rejects_environment_without_batch_size(self):
        class Unsized(tf_environment.TFEnvironment):
            def _current_time_step(self):
                raise NotImplementedError

            def _reset(self):
                raise NotImplementedError

            def _step(self, action):
                raise NotImplementedError

        env = Unsized(
            self.env.time_step_spec(), self.env.action_spec(), batch_size=None
        )
        with self.assertRaisesRegex(ValueError, "env.*batch_size=None"):
            OnPolicyTrainer(
                self.model, env, rollout_length=4, num_minibatches=2
            )

    @parameterized.parameters(
        ("rollout_length", 0, ValueError),
        ("rollout_length", 2.0, TypeError),
        ("epochs", 0, ValueError),
        ("num_minibatches", 3, ValueError),
        ("num_minibatches", True, TypeError),
        ("return_window", 0, ValueError),
        ("checkpoint_interval", 0, ValueError),
        ("seed", "0", TypeError),
        ("minibatch_mode", "episodes", ValueError),
    )
    def test_rejects_invalid_sizes(self, name, value, error):
        kwargs = {"rollout_length": 4, "num_minibatches": 2, name: value}
        with self.assertRaisesRegex(error, f"{name}={value!r}"):
            OnPolicyTrainer(self.model, self.env, **kwargs)

    @parameterized.parameters(
        ("total_env_steps", 0, ValueError),
        ("verbose", 3, ValueError),
        ("target_return", "high", TypeError),
    )
    def test_run_rejects_invalid_arguments(self, name, value, error):
        trainer = OnPolicyTrainer(
            self.model, self.env, rollout_length=4, num_minibatches=2
        )
        kwargs = {"total_env_steps": 10, "verbose": 0, name: value}
        with self.assertRaisesRegex(error, f"{name}={value!r}"):
            trainer.run(**kwargs)
        self.assertEqual(trainer.iteration, 0)


class MinibatchModeTest(tf.test.TestCase):
    def test_one_step_minibatch_equals_one_batch_of_rows(self):
        # K = 1: both modes take each gradient step on every valid step of
        # the rollout (GAE over whole rows, advantages normalized over all
        # of them), in another order; E = 2 steps each.
        env = cartpole(num_envs=3, seed=4)
        models = []
        for _ in range(2):
            model = make_model(CategoricalPolicyHead(2))
            model.compile(optimizer=keras.optimizers.SGD(0.05))
            models.append(model)
        trainers = [
            OnPolicyTrainer(
                model,
                env,
                rollout_length=48,
                epochs=2,
                num_minibatches=1,
                minibatch_mode=mode,
            )
            for model, mode in zip(models, ("rows", "steps"))
        ]
        models[1].set_weights(models[0].get_weights())
        initial = models[0].get_weights()
        batch = trainers[0].collect()
        self.assertTrue(np.any(~batch["mask"].numpy()))  # an episode ended
        logs = [trainer.fit(batch) for trainer in trainers]
        self.assertGreater(
            max(
                np.abs(after - before).max()
                for after, before in zip(models[0].get_weights(), initial)
            ),
            1e-3,
        )
        for rows, steps in zip(
            models[0].get_weights(), models[1].get_weights()
        ):
            self.assertAllClose(rows, steps, atol=1e-5)
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl"):
            self.assertAllClose(logs[0][name], logs[1][name], atol=1e-5)
        self.assertEqual(int(models[1].optimizer.iterations), 2)

    def test_steps_need_not_divide_the_environments(self):
        trainer = OnPolicyTrainer(
            make_model(CategoricalPolicyHead(2)),
            cartpole(num_envs=2),
            rollout_length=8,
            epochs=2,
            num_minibatches=3,
            minibatch_mode="steps",
        )
        history = trainer.run(total_env_steps=32, verbose=0)
        iterations = len(history.history["loss"])
        self.assertEqual(
            int(trainer.model.optimizer.iterations), iterations * 2 * 3
        )
        self.assertTrue(np.isfinite(history.history["loss"]).all())


class CollectTest(tf.test.TestCase, parameterized.TestCase):
    def test_rollouts_have_fixed_length_and_continue_episodes(self):
        num_envs, rollout_length = 2, 7
        env = make_tf_environment(
            SCRIPTED_ENV_ID,
            num_envs=num_envs,
            seed=0,
            env_kwargs={"episode_stride": num_envs},
        )
        model = make_model(CategoricalPolicyHead(3))
        trainer = OnPolicyTrainer(
            model, env, rollout_length=rollout_length, num_minibatches=2
        )
        first = trainer.collect()
        for key in ("reward", "mask", "value", "log_prob", "action"):
            self.assertEqual(first[key].shape, (num_envs, rollout_length))
        mask = first["mask"].numpy()
        # Scripted episodes last 2-4 steps: boundary rows are in the batch
        # and do not count as environment steps.
        self.assertFalse(mask.all())
        self.assertEqual(trainer.env_steps, mask.sum())

        second = trainer.collect()
        self.assertEqual(
            trainer.env_steps, mask.sum() + second["mask"].numpy().sum()
        )
        # The next rollout starts at the time step the bootstrap came from.
        self.assertAllClose(
            first["bootstrap_value"], second["value"][:, 0], atol=1e-6
        )
        observations = first["observation"].numpy()
        following = second["observation"].numpy()[:, 0]
        for env_index in range(num_envs):
            episode, step = observations[env_index, -1]
            if mask[env_index, -1] and not (
                first["terminated"][env_index, -1]
                or first["truncated"][env_index, -1]
            ):
                self.assertAllEqual(following[env_index], [episode, step + 1])

    def test_episode_statistics_match_the_environments(self):
        env = make_tf_environment(SCRIPTED_ENV_ID, num_envs=2, seed=0)
        model = make_model(CategoricalPolicyHead(3))
        trainer = OnPolicyTrainer(
            model, env, rollout_length=9, num_minibatches=2, return_window=100
        )
        trainer.collect()
        logs = trainer.episode_statistics()
        returns = [r for e in env.pyenv.envs for r in e.episode_returns()]
        lengths = [n for e in env.pyenv.envs for n in e.episode_lengths()]
        self.assertGreater(len(returns), 2)
        self.assertEqual(logs["episodes"], len(returns))
        self.assertAllClose(logs["episode_return_mean"], np.mean(returns))
        self.assertAllClose(logs["episode_length_mean"], np.mean(lengths))

    @parameterized.parameters(1, 3)
    def test_episode_statistics_match_tf_agents_metrics(self, window):
        # Windows smaller than the episodes ending per rollout, several
        # environments ending on the same step: the last `window` episodes
        # in tf-agents' order (step, then environment index).
        env = make_tf_environment(SCRIPTED_ENV_ID, num_envs=4, seed=0)
        model = make_model(CategoricalPolicyHead(3))
        trainer = OnPolicyTrainer(
            model,
            env,
            rollout_length=7,
            num_minibatches=2,
            return_window=window,
        )
        returns = tf_metrics.AverageReturnMetric(
            batch_size=4, buffer_size=window
        )
        lengths = tf_metrics.AverageEpisodeLengthMetric(
            batch_size=4, buffer_size=window
        )
        episodes = tf_metrics.NumberOfEpisodes()
        for _ in range(2):
            trainer.collect()
            trajectory = trainer.replay_buffer.gather_all()
            for t in range(7):
                row = tf.nest.map_structure(lambda x, t=t: x[:, t], trajectory)
                for metric in (returns, lengths, episodes):
                    metric(row)
        logs = trainer.episode_statistics()
        self.assertGreater(int(episodes.result()), window)
        self.assertEqual(logs["episodes"], int(episodes.result()))
        self.assertAllClose(logs["episode_return_mean"], returns.result())
        self.assertAllClose(logs["episode_length_mean"], lengths.result())


class RunTest(tf.test.TestCase, parameterized.TestCase):
    def test_smoke_history_callbacks_and_progress_bar(self):
        model = make_model(CategoricalPolicyHead(2))
        recorder = Recorder()
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            history = train(
                model,
                cartpole(),
                rollout_length=8,
                total_env_steps=40,
                epochs=2,
                num_minibatches=2,
                callbacks=[recorder],
                verbose=1,
            )
        iterations = len(history.history["iteration"])
        self.assertGreaterEqual(iterations, 3)
        self.assertEqual(
            history.history["iteration"], list(range(1, iterations + 1))
        )
        env_steps = history.history["env_steps"]
        self.assertTrue(np.all(np.diff(env_steps) > 0))
        # At most B * T = 16 steps per iteration; stops once past 40.
        self.assertTrue(np.all(np.diff([0] + env_steps) <= 16))
        self.assertGreaterEqual(env_steps[-1], 40)
        self.assertLess(env_steps[-2], 40)
        # What `model.fit` returns: a History, one epoch per iteration.
        self.assertIsInstance(history, keras.callbacks.History)
        self.assertEqual(history.epoch, list(range(iterations)))
        self.assertIs(model.history, history)
        expected_keys = set(LOOP_LOG_KEYS) | set(model.metric_names)
        self.assertEqual(set(history.history), expected_keys)
        for name in model.metric_names:
            self.assertTrue(np.all(np.isfinite(history.history[name])), name)
        self.assertTrue(
            np.all(np.array(history.history["steps_per_second"]) > 0)
        )

        expected_events = ["train_begin"]
        for index in range(iterations):
            expected_events += [("epoch_begin", index), ("epoch_end", index)]
        expected_events.append("train_end")
        self.assertEqual(recorder.events, expected_events)
        self.assertEqual(
            [logs["env_steps"] for logs in recorder.logs], env_steps
        )
        self.assertIn("40/40", output.getvalue())
        self.assertIn("episode_return_mean", output.getvalue())

    def test_tensorboard_callback_writes_scalars(self):
        log_dir = os.path.join(self.get_temp_dir(), "tensorboard")
        history = train(
            make_model(CategoricalPolicyHead(2)),
            cartpole(),
            rollout_length=8,
            total_env_steps=30,
            epochs=1,
            num_minibatches=2,
            callbacks=[keras.callbacks.TensorBoard(log_dir)],
            verbose=0,
        )
        tags = event_tags(os.path.join(log_dir, "train"))
        iterations = len(history.history["iteration"])
        for name in ("loss", "approx_kl", "env_steps", "episode_return_mean"):
            self.assertEqual(tags[f"epoch_{name}"], iterations, name)

    def test_env_step_tensorboard_groups_scalars_at_env_steps(self):
        log_dir = os.path.join(self.get_temp_dir(), "grouped")
        # A schedule, so the logged rate changes: 1e-3 * 0.5 ** (steps / 4).
        schedule = keras.optimizers.schedules.ExponentialDecay(
            1e-3, decay_steps=4, decay_rate=0.5
        )
        model = make_model(CategoricalPolicyHead(2))
        model.compile(optimizer=keras.optimizers.Adam(schedule))
        history = train(
            model,
            cartpole(),
            rollout_length=32,
            total_env_steps=150,
            epochs=2,
            num_minibatches=2,
            log_dir=log_dir,
            verbose=0,
        )
        scalars = event_scalars(log_dir)
        expected = {
            "rollout/episode_return_mean",
            "rollout/episode_length_mean",
            "rollout/episodes",
            "train/loss",
            "train/policy_loss",
            "train/value_loss",
            "train/entropy",
            "train/approx_kl",
            "train/clip_fraction",
            "train/explained_variance",
            "train/learning_rate",
            "time/steps_per_second",
            "time/collect_seconds",
            "time/convert_seconds",
            "time/fit_seconds",
            "time/iteration",
        }
        self.assertContainsSubset(expected, set(scalars))
        self.assertEqual(
            {tag.split("/")[0] for tag in scalars},
            {"rollout", "train", "time"},
        )
        self.assertNotIn("train/env_steps", scalars)
        # The x axis is the environment-step counter, one point per
        # iteration.
        env_steps = [int(steps) for steps in history.history["env_steps"]]
        self.assertGreaterEqual(len(env_steps), 3)
        for tag in ("train/loss", "time/steps_per_second", "rollout/episodes"):
            self.assertEqual([step for step, _ in scalars[tag]], env_steps)
        self.assertAllClose(
            [value for _, value in scalars["train/loss"]],
            history.history["loss"],
        )
        # E * K = 4 gradient steps per iteration: after iteration i the
        # schedule is at step 4 i.
        iterations = np.arange(1, len(env_steps) + 1)
        self.assertAllClose(
            [value for _, value in scalars["train/learning_rate"]],
            1e-3 * 0.5 ** (4 * iterations / 4),
        )
        self.assertAllClose(
            history.history["learning_rate"], 1e-3 * 0.5**iterations
        )
        # The return mean is written once finite (NaN before the first
        # episode ends is left out).
        returns = history.history["episode_return_mean"]
        finite = [
            (step, value)
            for step, value in zip(env_steps, returns)
            if np.isfinite(value)
        ]
        self.assertNotEmpty(finite)
        self.assertEqual(
            [step for step, _ in scalars["rollout/episode_return_mean"]],
            [step for step, _ in finite],
        )
        self.assertAllClose(
            [value for _, value in scalars["rollout/episode_return_mean"]],
            [value for _, value in finite],
        )
        # read_scalars reads the same points back.
        self.assertEqual(
            read_scalars(log_dir, "train/loss")["train/loss"],
            sorted(scalars["train/loss"]),
        )

    def test_constant_learning_rate_is_logged(self):
        model = make_model(CategoricalPolicyHead(2), learning_rate=2.5e-3)
        history = train(
            model,
            cartpole(),
            rollout_length=8,
            total_env_steps=20,
            epochs=1,
            num_minibatches=1,
            verbose=0,
        )
        self.assertAllClose(
            history.history["learning_rate"],
            [2.5e-3] * len(history.history["iteration"]),
        )

    def test_read_scalars_keeps_the_newest_value_of_a_repeated_step(self):
        # A resumed run repeats the iterations after its last checkpoint:
        # the second file's points replace the first's at the same steps.
        log_dir = self.get_temp_dir()
        for values in ({10: 1.0, 20: 2.0}, {20: 5.0, 30: 6.0}):
            writer = tf.summary.create_file_writer(
                log_dir, filename_suffix=f".{len(glob.glob(log_dir + '/*'))}"
            )
            with writer.as_default():
                for step, value in values.items():
                    tf.summary.scalar("rollout/return", value, step)
            writer.close()
        self.assertEqual(
            read_scalars(log_dir),
            {"rollout/return": [(10, 1.0), (20, 5.0), (30, 6.0)]},
        )

    def test_env_step_tensorboard_refuses_logs_without_env_steps(self):
        callback = EnvStepTensorBoard(self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "env_steps"):
            callback.on_epoch_end(0, {"loss": 1.0})
        with self.assertRaisesRegex(TypeError, "Received: log_dir=3"):
            EnvStepTensorBoard(3)

    def test_stops_at_target_return(self):
        history = train(
            make_model(CategoricalPolicyHead(2)),
            cartpole(),
            rollout_length=8,
            total_env_steps=10_000,
            epochs=1,
            num_minibatches=2,
            return_window=1,
            # Every CartPole return is positive: the first episode stops it.
            target_return=0.5,
            verbose=0,
        )
        episodes = history.history["episodes"]
        self.assertGreaterEqual(episodes[-1], 1)
        self.assertTrue(all(count == 0 for count in episodes[:-1]))
        self.assertLess(history.history["env_steps"][-1], 10_000)

    def test_callback_can_stop_training(self):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            history = train(
                make_model(CategoricalPolicyHead(2)),
                cartpole(),
                rollout_length=4,
                total_env_steps=10_000,
                epochs=1,
                num_minibatches=1,
                callbacks=[StopAt(epoch=1)],
                verbose=2,
            )
        self.assertEqual(history.history["iteration"], [1.0, 2.0])
        lines = output.getvalue().splitlines()
        self.assertLen(lines, 3)
        self.assertStartsWith(lines[1], "iteration 2: env_steps=")
        env_steps = int(history.history["env_steps"][-1])
        self.assertEqual(
            lines[2],
            "Stopped by a callback (model.stop_training) after "
            f"{env_steps} env steps (2 iterations).",
        )

    def test_a2c_with_gaussian_actions(self):
        env = make_tf_environment("Pendulum-v1", num_envs=2, seed=0)
        head = GaussianPolicyHead(1, bound="clip", low=-2.0, high=2.0)
        model = make_model(head, model_class=A2CModel)
        history = train(
            model,
            env,
            rollout_length=5,
            total_env_steps=20,
            epochs=1,
            num_minibatches=1,
            verbose=0,
        )
        # Pendulum episodes last 200 steps: no boundary rows here.
        self.assertEqual(history.history["env_steps"], [10.0, 20.0])
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))


class CheckpointTest(tf.test.TestCase, parameterized.TestCase):
    def trainer(self, root_dir, seed, **kwargs):
        model = make_model(CategoricalPolicyHead(2), seed=seed)
        kwargs.setdefault("checkpoint_interval", 1)
        return OnPolicyTrainer(
            model,
            cartpole(seed=seed),
            rollout_length=8,
            epochs=2,
            num_minibatches=2,
            root_dir=root_dir,
            **kwargs,
        )

    def test_resume_continues_from_the_last_checkpoint(self):
        root_dir = self.get_temp_dir()
        interrupted = Recorder(raise_at=1)
        with self.assertRaises(KeyboardInterrupt):
            self.trainer(root_dir, seed=0).run(
                total_env_steps=1000, callbacks=[interrupted], verbose=0
            )
        env_steps = interrupted.logs[-1]["env_steps"]
        self.assertEqual(interrupted.logs[-1]["iteration"], 2)

        resumed = self.trainer(root_dir, seed=1)
        self.assertEqual(resumed.iteration, 2)
        self.assertEqual(resumed.env_steps, env_steps)
        self.assertTrue(
            resumed.checkpoint_manager.latest_checkpoint.endswith("ckpt-2")
        )
        for restored, saved in zip(
            resumed.model.get_weights(), interrupted.weights[-1]
        ):
            self.assertAllEqual(restored, saved)
        for restored, saved in zip(
            resumed.model.optimizer.variables, interrupted.optimizer_weights[-1]
        ):
            self.assertAllEqual(restored, saved)

        recorder = Recorder()
        history = resumed.run(
            total_env_steps=int(env_steps) + 1, callbacks=[recorder], verbose=0
        )
        for weights, saved in zip(
            recorder.weights_at_begin, interrupted.weights[-1]
        ):
            self.assertAllEqual(weights, saved)
        self.assertEqual(history.history["iteration"], [3.0])
        self.assertEqual(history.epoch, [2])
        self.assertGreater(history.history["env_steps"][0], env_steps)
        self.assertEqual(
            recorder.events,
            ["train_begin", ("epoch_begin", 2), ("epoch_end", 2), "train_end"],
        )
        self.assertEqual(int(resumed.model.optimizer.iterations), 3 * 2 * 2)
        self.assertTrue(
            resumed.checkpoint_manager.latest_checkpoint.endswith("ckpt-3")
        )

    def test_checkpoint_interval_and_final_checkpoint(self):
        trainer = self.trainer(
            self.get_temp_dir(), seed=0, checkpoint_interval=2
        )
        history = trainer.run(total_env_steps=40, verbose=0)
        self.assertLen(history.history["iteration"], 3)
        names = [
            os.path.basename(path)
            for path in trainer.checkpoint_manager.checkpoints
        ]
        self.assertEqual(names, ["ckpt-2", "ckpt-3"])

    def test_unreadable_latest_checkpoint_falls_back_with_a_warning(self):
        root_dir = self.get_temp_dir()
        trainer = self.trainer(root_dir, seed=0)
        recorder = Recorder()
        trainer.run(total_env_steps=40, callbacks=[recorder], verbose=0)
        last = trainer.iteration
        self.assertGreaterEqual(last, 2)
        latest = trainer.checkpoint_manager.latest_checkpoint
        self.assertTrue(latest.endswith(f"ckpt-{last}"))
        for path in glob.glob(latest + ".data-*"):
            with open(path, "wb") as file:
                file.write(b"not a checkpoint")

        with self.assertWarnsRegex(
            RuntimeWarning, f"ckpt-{last - 1} instead.*ckpt-{last}"
        ):
            resumed = self.trainer(root_dir, seed=1)
        self.assertEqual(resumed.iteration, last - 1)
        self.assertEqual(resumed.env_steps, recorder.logs[-2]["env_steps"])
        for restored, saved in zip(
            resumed.model.get_weights(), recorder.weights[-2]
        ):
            self.assertAllEqual(restored, saved)

    def test_no_readable_checkpoint_is_refused(self):
        root_dir = self.get_temp_dir()
        trainer = self.trainer(root_dir, seed=0)
        trainer.run(total_env_steps=16, verbose=0)
        for path in trainer.checkpoint_manager.checkpoints:
            for data in glob.glob(path + ".data-*"):
                with open(data, "wb") as file:
                    file.write(b"not a checkpoint")
        with self.assertRaisesRegex(ValueError, "None of the checkpoints"):
            self.trainer(root_dir, seed=1)

    def test_non_finite_loss_raises_and_keeps_the_last_good_checkpoint(self):
        root_dir = self.get_temp_dir()
        env = tf_py_environment.TFPyEnvironment(
            batched_py_environment.BatchedPyEnvironment(
                [
                    GymnasiumEnvironment(
                        HugeRewardAfter(ScriptedEnv(), steps=20), seed=seed
                    )
                    for seed in (0, 1)
                ]
            )
        )
        model = make_model(CategoricalPolicyHead(3))
        trainer = OnPolicyTrainer(
            model,
            env,
            rollout_length=6,
            epochs=1,
            num_minibatches=2,
            root_dir=root_dir,
        )
        recorder = Recorder()
        with self.assertRaisesRegex(NonFiniteLossError, "iteration") as caught:
            trainer.run(total_env_steps=1000, callbacks=[recorder], verbose=0)
        good = len(recorder.logs)
        self.assertGreaterEqual(good, 1)
        self.assertIn(f"iteration {good + 1}", str(caught.exception))
        self.assertIn(f"ckpt-{good}", str(caught.exception))
        self.assertTrue(
            trainer.checkpoint_manager.latest_checkpoint.endswith(
                f"ckpt-{good}"
            )
        )

        restored = OnPolicyTrainer(
            make_model(CategoricalPolicyHead(3), seed=1),
            env,
            rollout_length=6,
            epochs=1,
            num_minibatches=2,
            root_dir=root_dir,
        )
        self.assertEqual(restored.iteration, good)
        for weights, saved in zip(
            restored.model.get_weights(), recorder.weights[-1]
        ):
            self.assertTrue(np.all(np.isfinite(weights)))
            self.assertAllEqual(weights, saved)


# verbose=2's line per iteration, and the stop lines.
_ITERATION_LINE = re.compile(
    r"iteration (\d+): env_steps=(\d+) episode_return_mean=([\d.]+) "
)
_TARGET_LINE = (
    r"Stopped: reached target_return=1 \(episode_return_mean={mean} over "
    r"the last 1 episode\) after {steps} env steps \({iterations} "
    r"iterations?\)\."
)


class UserScriptTest(tf.test.TestCase):
    """The loop as a user runs it: a fresh interpreter, its stdout."""

    @pytest.mark.slow
    def test_a_stop_finishes_the_progress_line_and_says_why(self):
        code = USER_SCRIPT + textwrap.dedent(
            """
            class StopAfterTwo(keras.callbacks.Callback):
                def on_epoch_end(self, epoch, logs=None):
                    if epoch == 1:
                        self.model.stop_training = True

            model, env = ppo(), cartpole()
            for verbose in (1, 2, 0):
                print(f"=== target {verbose}", flush=True)
                history = agents.train(
                    model, env, total_env_steps=10_000, return_window=1,
                    target_return=1.0, verbose=verbose, **SETTINGS,
                )
                print(f"=== target {verbose} history", flush=True)
                print(history.history["env_steps"][-1],
                      history.history["episode_return_mean"][-1],
                      len(history.epoch))
            for verbose in (1, 2):
                print(f"=== callback {verbose}", flush=True)
                history = agents.train(
                    model, env, total_env_steps=10_000,
                    callbacks=[StopAfterTwo()], verbose=verbose, **SETTINGS,
                )
                print(f"=== callback {verbose} history", flush=True)
                print(history.history["env_steps"][-1])
            print("=== end", flush=True)
            """
        )
        result = run_python(code, timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        sections = output_sections(result.stdout)
        for verbose in (1, 2, 0):
            steps, mean, iterations = sections[
                f"target {verbose} history"
            ].split()
            expected = _TARGET_LINE.format(
                mean=f"{float(mean):.2f}",
                steps=int(float(steps)),
                iterations=iterations,
            )
            output = sections[f"target {verbose}"]
            if verbose == 0:
                self.assertEqual(output, "")
                continue
            # The stop line is the last, a whole line of its own.
            self.assertRegex(output, rf"\n{expected}\n$")
            if verbose == 1:
                # The progress bar's last line: the full count is not
                # reached, the line is ended.
                bar = output.splitlines()[-2]
                self.assertIn(f"{int(float(steps))}/10000", bar)
                self.assertIn("episode_return_mean:", bar)
            else:
                lines = output.splitlines()
                self.assertLen(lines, int(iterations) + 1)
                last = _ITERATION_LINE.match(lines[-2])
                self.assertEqual(last[1], iterations)
                self.assertEqual(last[2], str(int(float(steps))))
        for verbose in (1, 2):
            steps = int(float(sections[f"callback {verbose} history"]))
            output = sections[f"callback {verbose}"]
            self.assertRegex(
                output,
                r"\nStopped by a callback \(model.stop_training\) after "
                rf"{steps} env steps \(2 iterations\)\.\n$",
            )
            if verbose == 2:
                self.assertLen(output.splitlines(), 3)

    @pytest.mark.slow
    def test_a_rerun_after_the_target_was_met_trains_nothing(self):
        code = USER_SCRIPT + textwrap.dedent(
            """
            root_dir = sys.argv[1]

            class Calls(keras.callbacks.Callback):
                def __init__(self):
                    super().__init__()
                    self.calls = []

                def on_train_begin(self, logs=None):
                    self.calls.append("train_begin")

                def on_epoch_begin(self, epoch, logs=None):
                    self.calls.append("epoch_begin")

                def on_train_end(self, logs=None):
                    self.calls.append("train_end")

            run = dict(total_env_steps=10_000, target_return=1.0)
            first = agents.train(
                ppo(), cartpole(), root_dir=root_dir, return_window=1,
                verbose=0, **run, **SETTINGS,
            )
            print("first", first.history["iteration"][-1],
                  first.history["env_steps"][-1],
                  first.history["episode_return_mean"][-1])
            trainer = agents.OnPolicyTrainer(
                ppo(), cartpole(), root_dir=root_dir, return_window=1,
                **SETTINGS,
            )
            calls = Calls()
            print("=== second", flush=True)
            second = trainer.run(callbacks=[calls], verbose=1, **run)
            print("=== result", flush=True)
            print(second.history, second.epoch, calls.calls)
            print(trainer.iteration, trainer.env_steps,
                  trainer.checkpoint_manager.latest_checkpoint)
            """
        )
        root_dir = self.get_temp_dir()
        result = run_python(code, args=[root_dir], timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        sections = output_sections(result.stdout)
        first = result.stdout.splitlines()[0].split()
        self.assertEqual(first[0], "first")
        iterations, steps = int(float(first[1])), int(float(first[2]))
        self.assertEqual(
            sections["second"],
            "Not training: target_return=1 already reached "
            f"(episode_return_mean={float(first[3]):.2f} over the last 1 "
            f"episode) after {steps} env steps ({iterations} iteration"
            f"{'' if iterations == 1 else 's'}).\n",
        )
        self.assertEqual(
            sections["result"],
            "{} [] ['train_begin', 'train_end']\n"
            f"{iterations} {steps} {root_dir}/checkpoints/ckpt-{iterations}\n",
        )

    def test_resuming_with_other_networks_names_the_shapes(self):
        code = USER_SCRIPT + textwrap.dedent(
            """
            root_dir = sys.argv[1]

            def wider():
                actor = keras.Sequential([
                    keras.layers.Dense(16, activation="tanh"),
                    layers.CategoricalPolicyHead(2),
                ])
                critic = keras.Sequential([keras.layers.Dense(1)])
                model = models.PPOModel(actor, critic)
                model.compile(optimizer="adam")
                return model

            env = cartpole()
            agents.OnPolicyTrainer(
                ppo(), env, root_dir=root_dir, **SETTINGS
            ).save()
            try:
                agents.OnPolicyTrainer(
                    wider(), env, root_dir=root_dir, **SETTINGS
                )
            except ValueError as error:
                print(type(error).__name__, error)
            """
        )
        root_dir = self.get_temp_dir()
        result = run_python(code, args=[root_dir], timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertNotIn("Received: Received", result.stdout)
        checkpoint = re.escape(f"{root_dir}/checkpoints/ckpt-0")
        # The first Dense kernel: 4 observations x 8 units saved, x 16 now.
        self.assertRegex(
            result.stdout.strip(),
            rf"^CheckpointMismatchError The checkpoint {checkpoint} does "
            r"not fit this run's model: it was saved with other networks, "
            r"action space or settings\. Resume with the settings it was "
            r"saved with, or start a new run \(restart=True, --restart\) "
            r"or another root_dir\. Received: saved shape=\(4, 8\), this "
            r"model's shape=\(4, 16\) \(variable \S+\)$",
        )


if __name__ == "__main__":
    tf.test.main()

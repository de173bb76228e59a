"""make_atari_env and its wrappers: lives, FIRE, clipping, game scores."""

import functools

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.drivers import dynamic_step_driver
from tf_agents.policies import random_tf_policy

from keras_gae import presets
from keras_gae.agents import PPO
from keras_gae.agents import atari_environments
from keras_gae.agents import environment_sources
from keras_gae.agents import evaluate_policy
from keras_gae.agents import make_tf_environment
from keras_gae.agents import whole_episodes
from keras_gae.agents.episode_statistics import EpisodeStatistics
from keras_gae.agents.whole_episodes import WholeEpisodes


class _FakeALE:
    def __init__(self, game):
        self._game = game

    def lives(self):
        return self._game.lives


class _FakeGame(gymnasium.Env):
    """3 lives, one lost every 3 steps; counts resets, records actions."""

    observation_space = gymnasium.spaces.Box(0, 1000, (), np.int64)
    action_space = gymnasium.spaces.Discrete(3)

    def __init__(self, meanings=("NOOP", "FIRE", "LEFT"), reward=1.0):
        self.ale = _FakeALE(self)
        self.reward = reward
        self.meanings = list(meanings)
        self.resets = 0
        self.actions = []

    def get_action_meanings(self):
        return self.meanings

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        self.lives, self.frame = 3, 0
        return self.frame, {}

    def step(self, action):
        self.actions.append(int(action))
        self.frame += 1
        if self.frame % 3 == 0:
            self.lives -= 1
        return self.frame, self.reward, self.lives == 0, False, {}


def _play(env, actions):
    """Steps `actions`, resetting after each episode end; the step rows."""
    rows = []
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        rows.append((observation, reward, terminated, truncated, info))
        if terminated or truncated:
            env.reset()
    return rows


class WrapperTest(tf.test.TestCase):
    def test_episodic_life_keeps_the_game_between_lives(self):
        game = _FakeGame()
        env = atari_environments.EpisodicLife(game)
        env.reset()
        rows = _play(env, [2] * 8)
        terminated = [row[2] for row in rows]
        # Lives are lost at frames 3, 6 and 9, each ending an episode; the
        # resets after the first two are a no-op step (frames 4 and 7),
        # not a new game; the third life ends the game, whose reset is
        # real (frame 1 again).
        self.assertEqual(
            terminated, [False, False, True, False, True, False, True, False]
        )
        self.assertEqual([row[0] for row in rows], [1, 2, 3, 5, 6, 8, 9, 1])
        self.assertEqual(game.actions, [2, 2, 2, 0, 2, 2, 0, 2, 2, 2])
        self.assertEqual(game.resets, 2)  # the first and the game over's

    def test_fire_reset(self):
        game = _FakeGame()
        env = atari_environments.FireReset(game)
        observation, _ = env.reset()
        self.assertEqual((observation, game.actions), (1, [1]))
        with self.assertRaisesRegex(ValueError, "FIRE.*Received"):
            atari_environments.FireReset(_FakeGame(("NOOP", "UP")))


class AtariGameTest(tf.test.TestCase, parameterized.TestCase):
    def test_one_game_of_breakout(self):
        # Random play, seed 2: 5 lives, one point in all.
        envs = [
            atari_environments.AtariGame("ALE/Breakout-v5", clip_rewards=c)()
            for c in (True, False)
        ]
        for env in envs:
            self.assertEqual(env.observation_space.shape, (4, 84, 84))
            self.assertEqual(env.observation_space.dtype, np.uint8)
            observation, info = env.reset(seed=2)
            self.assertEqual(observation.dtype, np.uint8)
            self.assertEqual(info["lives"], 5)
        actions = np.random.default_rng(2).integers(0, 4, size=400)
        clipped, raw = [], []
        for action in actions:
            clipped.append(envs[0].step(action))
            raw.append(envs[1].step(action))
            self.assertAllEqual(clipped[-1][0], raw[-1][0])
            if clipped[-1][2] or clipped[-1][3]:
                if "episode" in raw[-1][4]:
                    break
                for env in envs:
                    env.reset()
        rewards = np.array([row[1] for row in raw])
        self.assertAllEqual([row[1] for row in clipped], np.sign(rewards))
        # An episode per life; the game's score spans them all.
        ends = [index for index, row in enumerate(raw) if row[2]]
        self.assertLen(ends, 5)
        self.assertEqual(
            [raw[index][4]["lives"] for index in ends], [4, 3, 2, 1, 0]
        )
        self.assertGreater(rewards.sum(), 0.0)
        for env in envs:
            statistics = atari_environments.game_statistics(env)
            self.assertEqual(statistics["games"], 1.0)
            self.assertEqual(statistics["game_return_mean"], rewards.sum())
            # Frames: 4 per step, plus the no-ops and FIREs of resets.
            self.assertGreater(statistics["game_length_mean"], 4 * len(raw))

    def test_spec_and_settings(self):
        game = atari_environments.AtariGame(
            "ALE/Pong-v5",
            env_kwargs={"repeat_action_probability": 0.0},
            frame_stack=2,
            screen_size=64,
        )
        self.assertEqual(game.spec.id, "ALE/Pong-v5")
        self.assertEqual(game.spec.kwargs["frameskip"], 1)
        env = game()
        self.assertEqual(env.unwrapped.spec.kwargs["frameskip"], 1)
        self.assertEqual(
            env.unwrapped.spec.kwargs["repeat_action_probability"], 0.0
        )
        self.assertEqual(env.observation_space.shape, (2, 64, 64))

    @parameterized.named_parameters(
        ("not_atari", {"env_id": "CartPole-v1"}, ValueError, "env_id"),
        ("unknown", {"env_id": "ALE/Nothing-v5"}, ValueError, "env_id"),
        ("not_str", {"env_id": 3}, TypeError, "env_id"),
        (
            "frameskip",
            {"env_id": "ALE/Pong-v5", "env_kwargs": {"frameskip": 4}},
            ValueError,
            "frameskip",
        ),
        (
            "frame_stack",
            {"env_id": "ALE/Pong-v5", "frame_stack": 0},
            ValueError,
            "frame_stack",
        ),
    )
    def test_bad_settings(self, kwargs, error, name):
        with self.assertRaisesRegex(error, f"{name}.*Received"):
            atari_environments.AtariGame(**kwargs)


class MakeAtariEnvTest(tf.test.TestCase):
    def test_vector_env_seeded(self):
        first, second = (
            atari_environments.make_atari_env(
                "ALE/Breakout-v5", num_envs=2, seed=3
            )
            for _ in range(2)
        )
        self.assertEqual(first.spec.id, "ALE/Breakout-v5")
        self.assertEqual(first.single_observation_space.shape, (4, 84, 84))
        self.assertEqual(first.single_observation_space.dtype, np.uint8)
        actions = np.random.default_rng(0).integers(0, 4, size=(20, 2))
        for action in actions:
            observation, reward, *_ = first.step(action)
            self.assertEqual(observation.dtype, np.uint8)
            self.assertAllEqual(observation, second.step(action)[0])

    def test_game_statistics_through_tf_environment(self):
        env = make_tf_environment(
            atari_environments.make_atari_env(
                "ALE/Breakout-v5", num_envs=1, seed=0
            ),
            seed=0,
        )
        statistics = atari_environments.game_statistics(env)
        self.assertEqual(statistics["games"], 0.0)
        self.assertTrue(np.isnan(statistics["game_return_mean"]))
        # NOOP: each life ends when the ball is missed.
        lasts = 0
        for _ in range(400):
            time_step = env.step(tf.constant([0]))
            lasts += int(time_step.is_last().numpy()[0])
            if atari_environments.game_statistics(env)["games"]:
                break
        self.assertEqual(lasts, 5)
        self.assertEqual(atari_environments.game_statistics(env)["games"], 1.0)

    def test_game_statistics_window(self):
        env = atari_environments.make_atari_env("ALE/Pong-v5", num_envs=2)
        # Games as the monitors under the wrappers record them.
        finished = ([1.0, 2.0, 3.0], [10.0, 20.0])
        for queue, returns in zip(env.get_attr("return_queue"), finished):
            queue.extend(returns)
        for queue, returns in zip(env.get_attr("length_queue"), finished):
            queue.extend(10 * value for value in returns)
        statistics = atari_environments.game_statistics(env, window=2)
        # The last ceil(2 / 2) = 1 game of each environment.
        self.assertEqual(statistics["game_return_mean"], (3.0 + 20.0) / 2)
        self.assertEqual(statistics["game_length_mean"], (30.0 + 200.0) / 2)
        statistics = atari_environments.game_statistics(env)
        self.assertEqual(statistics["game_return_mean"], 36.0 / 5)
        for window in (0, 101):
            with self.assertRaisesRegex(ValueError, "window.*Received"):
                atari_environments.game_statistics(env, window=window)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "num_envs.*Received"):
            atari_environments.make_atari_env("ALE/Pong-v5", num_envs=0)
        with self.assertRaisesRegex(ValueError, "vectorization_mode"):
            atari_environments.make_atari_env(
                "ALE/Pong-v5", vectorization_mode="vector_entry_point"
            )
        with self.assertRaisesRegex(TypeError, "game statistics"):
            atari_environments.game_statistics(gymnasium.make("CartPole-v1"))


def _lives_of_a_game(monitored):
    """The fake game (9 frames of reward 5, a life lost every 3) with
    episodic life and clipped rewards; the monitor under them or none."""
    env = _FakeGame(reward=5.0)
    if monitored:
        env = gymnasium.wrappers.RecordEpisodeStatistics(env)
    env = atari_environments.EpisodicLife(env)
    return gymnasium.wrappers.TransformReward(env, np.sign)


class WholeEpisodeStatisticsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(True, False)
    def test_the_loop_counts_whole_games_where_recorded(self, monitored):
        env = make_tf_environment(
            lambda: _lives_of_a_game(monitored), num_envs=2, seed=0
        )
        self.assertEqual(WholeEpisodes.of(env) is not None, monitored)
        statistics = EpisodeStatistics(2, 100, env=env)
        ends = tf.Variable([0, 0], dtype=tf.int64)

        def count_ends(trajectory):
            # A step into LAST from frame 8 (to 9) ends the game, the
            # others a life.
            last = trajectory.is_last()
            game = last & tf.equal(trajectory.observation, 8)
            ends.assign_add(
                tf.reduce_sum(tf.cast(tf.stack([last, game]), tf.int64), 1)
            )
            return trajectory

        policy = random_tf_policy.RandomTFPolicy(
            env.time_step_spec(), env.action_spec()
        )
        driver = dynamic_step_driver.DynamicStepDriver(
            env, policy, observers=[statistics, count_ends], num_steps=2
        )
        run = tf.function(driver.run)
        time_step = None
        for _ in range(45):
            time_step, _ = run(time_step)
        lives, games = ends.numpy()
        self.assertGreater(games, 2)
        # 3 lives a game; each of the 2 games under way has lost fewer.
        self.assertBetween(lives - 3 * games, 0, 2 * 2)
        logs = statistics.logs()
        if monitored:
            # Whole games: all lives, the unclipped rewards, every frame
            # (the no-op steps of the resets between lives included).
            self.assertEqual(logs["episodes"], games)
            self.assertEqual(logs["episode_return_mean"], 9 * 5.0)
            self.assertEqual(logs["episode_length_mean"], 9.0)
        else:
            # Lives, as the model sees them: 3, 2 and 2 steps of reward 1.
            self.assertEqual(logs["episodes"], lives)
            # Each of the 2 environments in lockstep: lives of 3, 2, 2, ...
            per_env = [(3, 2, 2)[i % 3] for i in range(lives // 2)]
            self.assertAllClose(logs["episode_return_mean"], np.mean(per_env))
            self.assertAllClose(logs["episode_length_mean"], np.mean(per_env))

    def test_evaluation_plays_whole_games_where_recorded(self):
        agent = PPO(
            lambda: _lives_of_a_game(False),
            num_envs=1,
            num_minibatches=1,
            seed=0,
            verbose=0,
        )
        for monitored, returns, lengths in ((True, 5.0, 9), (False, 1, 3)):
            results = evaluate_policy(
                agent.model,
                functools.partial(_lives_of_a_game, monitored),
                num_episodes=2,
                seed=0,
            )
            # The game's 3 lives (9 frames of reward 5), or the first life
            # (3 steps, rewards clipped to 1).
            self.assertEqual(results["returns"], [returns * lengths] * 2)
            self.assertEqual(results["lengths"], [lengths] * 2)

    def test_which_environments_record_whole_episodes(self):
        cartpole = gymnasium.make("CartPole-v1")
        self.assertFalse(whole_episodes.records_whole_episodes(cartpole))
        monitored = gymnasium.wrappers.TimeLimit(
            gymnasium.wrappers.RecordEpisodeStatistics(cartpole), 10
        )
        self.assertTrue(whole_episodes.records_whole_episodes(monitored))
        for mode in ("sync", "async"):
            env = atari_environments.make_atari_env(
                "ALE/Pong-v5", num_envs=1, vectorization_mode=mode
            )
            self.assertTrue(whole_episodes.records_whole_episodes(env), mode)
            env.close()
        numpy_vector = gymnasium.make_vec("CartPole-v1", num_envs=2)
        self.assertFalse(whole_episodes.records_whole_episodes(numpy_vector))
        self.assertIsNone(
            WholeEpisodes.of(make_tf_environment("CartPole-v1", num_envs=2))
        )

    def test_a_bare_ale_id_is_the_preset_set_up(self):
        # RL Zoo's set-up: make_atari_env's wrappers, the preset's envs.
        env = environment_sources.make_gymnasium_env("ALE/Breakout-v5")
        self.assertIsInstance(env, gymnasium.wrappers.FrameStackObservation)
        self.assertEqual(env.observation_space.shape, (4, 84, 84))
        agent = PPO("CnnPolicy", "ALE/Pong-v5", seed=0)
        config = presets.config_for("ALE/Pong-v5")
        self.assertEqual(agent.env.batch_size, config["num_envs"])
        spec = agent.env.observation_spec()
        self.assertEqual((spec.shape, spec.dtype), ((4, 84, 84), np.uint8))
        # The raw game stays a gymnasium.make away.
        raw = environment_sources.make_gymnasium_env(
            atari_environments.AtariGame("ALE/Pong-v5").spec
        )
        self.assertEqual(raw.observation_space.shape, (210, 160, 3))

    def test_agent_logs_whole_games_of_breakout(self):
        agent = PPO(
            "ALE/Breakout-v5",
            seed=0,
            num_envs=2,
            rollout_length=128,
            epochs=1,
            num_minibatches=1,
            total_env_steps=512,
            verbose=0,
        )
        history = agent.learn()
        logs = {name: values[-1] for name, values in history.history.items()}
        games = atari_environments.game_statistics(agent.env)
        self.assertGreater(games["games"], 0.0)
        self.assertEqual(logs["episodes"], games["games"])
        # float32 statistics against float64 means.
        self.assertAllClose(
            [logs["episode_return_mean"], logs["episode_length_mean"]],
            [games["game_return_mean"], games["game_length_mean"]],
            rtol=1e-6,
        )
        # Games of 5 lives, 4 frames a step: far longer than one life's
        # steps of the loop's lives.
        self.assertGreater(logs["episode_length_mean"], 4 * 5 * 10)


if __name__ == "__main__":
    tf.test.main()

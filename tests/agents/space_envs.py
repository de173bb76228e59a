"""Small gymnasium environments over any space, and broken ones."""

import gymnasium
import numpy as np


class SpaceEnv(gymnasium.Env):
    """Observations sampled from `observation_space` (seeded), episodes of
    `episode_length` steps, reward 1 when the action's first entry is 0.

    `break_with` returns a bad value for one field at step `break_at`:
    "shape", "dtype", "nan", "bounds", "reward_nan", "reward_shape".
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        observation_space,
        action_space,
        episode_length=5,
        break_with=None,
        break_at=2,
    ):
        self.observation_space = observation_space
        self.action_space = action_space
        self.episode_length = episode_length
        self.break_with = break_with
        self.break_at = break_at
        self.steps = 0
        self.actions = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(None if seed is None else seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.actions.append(np.asarray(action).copy())
        self.steps += 1
        observation = self.observation_space.sample()
        reward = float(np.ravel(action)[0] == 0)
        if self.break_with and self.steps == self.break_at:
            observation, reward = self._broken(observation, reward)
        done = self.steps >= self.episode_length
        return observation, reward, False, done, {}

    def _broken(self, observation, reward):
        kind = self.break_with
        if kind == "shape":
            observation = np.zeros(7, np.float32)
        elif kind == "dtype":
            observation = np.float64(1.5)
        elif kind == "nan":
            observation = np.full(self.observation_space.shape, np.nan)
        elif kind == "bounds":
            observation = np.int64(self.observation_space.n + 3)
        elif kind == "reward_nan":
            reward = float("nan")
        elif kind == "reward_shape":
            reward = np.ones(2)
        return observation, reward

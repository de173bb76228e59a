"""A scripted gymnasium environment whose every number is known in advance.

The observation is `(episode_id, step)` as a float64 Box, so anything that is
a function of the observation (a value, a log-probability) can be recomputed
in a test from the script alone. Episode `j` lasts `episode_length(j)` steps
(2, 3 or 4) and then terminates when `episode_terminates(j)` (even `j`) or is
truncated by the environment (odd `j`). The reward of step `k` (0-based,
the transition from step k to k + 1) is `k + 1`. Actions are ignored apart
from being recorded in `received_actions`.

Episode ids: the first reset with seed `s` starts episode `s` (0 when
unseeded) and every later reset adds `episode_stride`, so copies seeded 0..3
with stride 4 play disjoint episodes that one copy with stride 1 plays in
turn.

With `endless=True` episodes never end by themselves (for gymnasium's
`TimeLimit`, e.g. `gymnasium.make(SCRIPTED_ENV_ID, max_episode_steps=3,
endless=True)`).
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import gymnasium
import numpy as np

SCRIPTED_ENV_ID = "KerasGAEScripted-v0"


def episode_length(episode_id: int) -> int:
    """Number of steps of episode `episode_id` before it ends."""
    return 2 + episode_id % 3


def episode_terminates(episode_id: int) -> bool:
    """Whether the episode terminates (True) or is truncated (False)."""
    return episode_id % 2 == 0


def scripted_reward(step: int) -> float:
    """Reward of the transition from step `step` to `step + 1`."""
    return float(step + 1)


class ScriptedEnv(gymnasium.Env):
    """See the module docstring."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        episode_stride: int = 1,
        action_space: Optional[gymnasium.Space] = None,
        endless: bool = False,
    ):
        self.observation_space = gymnasium.spaces.Box(
            low=0.0, high=1e6, shape=(2,), dtype=np.float64
        )
        self.action_space = action_space or gymnasium.spaces.Discrete(3)
        self.episode_stride = episode_stride
        self.endless = endless
        self.episode_id = None
        self.step_index = 0
        self.received_actions = []

    def _observation(self) -> np.ndarray:
        return np.array([self.episode_id, self.step_index], np.float64)

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[dict] = None
    ) -> tuple:
        super().reset(seed=seed)
        if self.episode_id is None or seed is not None:
            self.episode_id = 0 if seed is None else seed
        else:
            self.episode_id += self.episode_stride
        self.step_index = 0
        return self._observation(), {"episode_id": self.episode_id}

    def step(self, action: Any) -> tuple:
        if not self.action_space.contains(action):
            raise ValueError(f"Action {action!r} not in {self.action_space}")
        self.received_actions.append(action)
        reward = scripted_reward(self.step_index)
        self.step_index += 1
        ended = not self.endless and self.step_index == episode_length(
            self.episode_id
        )
        terminated = ended and episode_terminates(self.episode_id)
        truncated = ended and not terminated
        info = {"episode_id": self.episode_id}
        return self._observation(), reward, terminated, truncated, info


if SCRIPTED_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=SCRIPTED_ENV_ID, entry_point=ScriptedEnv)

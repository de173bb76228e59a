"""CartPole without its velocities: a small memory task.

CartPole-v1's observation is (cart position, cart velocity, pole angle,
pole angular velocity). `KeepObservationEntries(env, (0, 2))` keeps the
position and the angle only, so a policy must infer the velocities from
the observations it has seen: a feed-forward policy plateaus, a recurrent
one (`PPO(env, policy="lstm")`) can solve it. sb3-contrib benchmarks its
RecurrentPPO on the same task ("CartPoleNoVel").
`make_cartpole_no_velocity()` is the picklable factory an agent or a
rollout worker takes, `SETTINGS` the agent settings the learning test and
`benchmarks/memory_task.py` train it with.
"""

from __future__ import annotations

from typing import Any
from typing import Sequence

import gymnasium
import numpy as np

# CartPole-v1's cart position and pole angle.
CARTPOLE_POSITIONS = (0, 2)

# `PPO(make_cartpole_no_velocity, policy=..., **SETTINGS)`: 8 environments
# x 32 steps, 4 epochs over the whole rollout, rewards scaled by a running
# return std (the value targets of a shared recurrent trunk need it: without
# it the LSTM policy did not learn CartPole-v1 itself), gamma and lambda
# 0.98 (RL Zoo's CartPoleNoVel settings), MLPs of 64 (after the cell of a
# recurrent policy, whose size `recurrent_units` is).
SETTINGS = dict(
    num_envs=8,
    rollout_length=32,
    num_minibatches=1,
    epochs=4,
    learning_rate=3e-3,
    gamma=0.98,
    lambda_=0.98,
    hidden_sizes=(64,),
    recurrent_units=64,
    normalize_rewards=True,
)


class KeepObservationEntries(gymnasium.ObservationWrapper):
    """Keeps the entries `indices` of a flat Box observation.

    Args:
      env: a gymnasium env with a rank-1 Box observation space.
      indices: the entries to keep, in order.

    Raises:
      ValueError: an observation space that is not a rank-1 Box, or an
        index outside it.
    """

    def __init__(self, env: gymnasium.Env, indices: Sequence[int]):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                "`env` must have a rank-1 Box observation space. "
                f"Received: env.observation_space={space!r}"
            )
        indices = [int(i) for i in indices]
        if not indices or any(i < 0 or i >= space.shape[0] for i in indices):
            raise ValueError(
                f"`indices` must be entries of 0 .. {space.shape[0] - 1}. "
                f"Received: indices={indices!r}"
            )
        self.indices = np.asarray(indices)
        self.observation_space = gymnasium.spaces.Box(
            low=space.low[self.indices],
            high=space.high[self.indices],
            dtype=space.dtype,
        )

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(observation)[self.indices]


def make_cartpole_no_velocity(**kwargs: Any) -> gymnasium.Env:
    """CartPole-v1 (`gymnasium.make` keyword arguments) without velocities."""
    return KeepObservationEntries(
        gymnasium.make("CartPole-v1", **kwargs), CARTPOLE_POSITIONS
    )

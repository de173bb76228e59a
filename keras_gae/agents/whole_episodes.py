"""Whole episodes, as a `RecordEpisodeStatistics` under the wrappers sees them.

Some environments end the episodes the agent learns from before the task
itself ends, or change its rewards: `make_atari_env`'s games end an
episode at each lost life and clip the rewards. Placed under those
wrappers, gymnasium's `RecordEpisodeStatistics` records the episodes of
the task itself (the whole game, its unclipped score, its length in the
game's own steps), as stable-baselines3's `Monitor` does. `WholeEpisodes`
reads what those monitors recorded, for the training loop's episode
statistics (`keras_gae.agents.episode_statistics`) and `game_statistics`.

An environment records whole episodes when each of its gymnasium envs
has a `RecordEpisodeStatistics` among its wrappers: a `gymnasium.Env`, or
each sub-environment of a sync vector env (of an async one, a copy made
by its first factory, closed at once: the sub-environments live in other
processes).
"""

from __future__ import annotations

from typing import Any
from typing import List
from typing import Optional
from typing import Tuple

import gymnasium
import numpy as np
from tf_agents.environments import batched_py_environment
from tf_agents.environments import tf_py_environment

from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.agents.vector_environment import GymnasiumVectorEnvironment

# What a RecordEpisodeStatistics keeps: its finished episodes' returns and
# lengths (the last `buffer_length`) and how many finished in all.
_MONITOR = ("return_queue", "length_queue", "episode_count")


def gymnasium_environments(env: Any) -> List[Any]:
    """The gymnasium envs or vector envs inside `env`, in batch order.

    Args:
      env: a gymnasium env or vector env, a keras_gae `GymnasiumEnvironment`
        or `GymnasiumVectorEnvironment`, a `BatchedPyEnvironment` of them,
        or the `TFPyEnvironment` of either (in this process).

    Raises:
      TypeError: anything else.
    """
    if isinstance(env, tf_py_environment.TFPyEnvironment):
        env = env.pyenv
    if isinstance(env, batched_py_environment.BatchedPyEnvironment):
        return [
            inner
            for environment in env.envs
            for inner in gymnasium_environments(environment)
        ]
    if isinstance(env, (GymnasiumEnvironment, GymnasiumVectorEnvironment)):
        env = env.gymnasium_env
    if isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv)):
        return [env]
    raise TypeError(
        "`env` must be a gymnasium env or vector env, or keras_gae's "
        "tf-agents environment of one in this process. "
        f"Received: env={env!r}"
    )


def records_whole_episodes(env: Any) -> bool:
    """Whether a gymnasium env (each sub-env of a vector env) has a
    `RecordEpisodeStatistics` among its wrappers (module docstring)."""
    if isinstance(env, gymnasium.vector.VectorEnv):
        base = env.unwrapped
        if isinstance(base, gymnasium.vector.SyncVectorEnv):
            return all(records_whole_episodes(inner) for inner in base.envs)
        if isinstance(base, gymnasium.vector.AsyncVectorEnv):
            probe = base.env_fns[0]()
            try:
                return records_whole_episodes(probe)
            finally:
                probe.close()
        return False
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, gymnasium.wrappers.RecordEpisodeStatistics):
            return True
        env = env.env
    return False


def monitors(env: gymnasium.Env | gymnasium.vector.VectorEnv) -> list:
    """`(returns, lengths, episode_count)` of each monitor in `env`."""
    if isinstance(env, gymnasium.vector.VectorEnv):
        return list(zip(*(env.get_attr(name) for name in _MONITOR)))
    return [tuple(env.get_wrapper_attr(name) for name in _MONITOR)]


class WholeEpisodes:
    """Reads the whole episodes the monitors of some environments finished.

    Args:
      environments: gymnasium envs or vector envs that record whole
        episodes (`records_whole_episodes`), in batch order.
    """

    def __init__(self, environments: List[Any]):
        self._environments = list(environments)
        self._seen = None

    @classmethod
    def of(cls, env: Any) -> Optional[WholeEpisodes]:
        """A reader of `env`'s monitors, or None where `env` (a tf-agents
        environment of this process, or what `gymnasium_environments`
        takes) has none in any of its environments."""
        try:
            environments = gymnasium_environments(env)
        except TypeError:
            return None
        if environments and all(map(records_whole_episodes, environments)):
            return cls(environments)
        return None

    def read(self) -> Tuple[np.ndarray, np.int64]:
        """The episodes finished since the last read, and their number.

        The first read counts every episode its monitors recorded.

        Returns:
          `[n, 2]` float32 `[return, length]` rows, each monitor's oldest
          first, monitors in batch order (n is capped by what each keeps),
          and the number of episodes that finished, >= n.
        """
        found = [m for env in self._environments for m in monitors(env)]
        if self._seen is None:
            self._seen = [0] * len(found)
        rows, total = [], 0
        for index, (returns, lengths, count) in enumerate(found):
            new = int(count) - self._seen[index]
            self._seen[index] = int(count)
            total += new
            kept = min(new, len(returns))
            if kept:
                rows.extend(zip(list(returns)[-kept:], list(lengths)[-kept:]))
        finished = np.asarray(rows, np.float32).reshape([-1, 2])
        return finished, np.int64(total)

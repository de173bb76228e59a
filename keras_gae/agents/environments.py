"""Gymnasium environments as tf-agents environments.

`GymnasiumEnvironment` wraps one gymnasium 1.x environment as a tf-agents
`PyEnvironment`; `make_tf_environment` builds `num_envs` seeded copies of one
and batches them into a `TFPyEnvironment` for tf-agents drivers.

Specs. Spaces map to `array_spec.BoundedArraySpec`, for observations and
actions alike:

| gymnasium space | spec dtype | spec shape | bounds |
|---|---|---|---|
| `Discrete(n, start=s)` | int64 | `()` | `[s, s + n - 1]` |
| `MultiDiscrete(nvec, start=s)` | int64 | `nvec.shape` | `[s, s + nvec - 1]` |
| `Box(low, high)` | float32 | `low.shape` | `[low, high]` |

Bounds equal in every entry become a scalar; tf-agents stores infinite Box
bounds as the float32 limits. Observations are cast to the spec dtype (a
float64 or integer Box observation arrives as float32); actions are cast
back to the space's own dtype before `env.step` (a Discrete action as a
Python int). Rewards are float32 scalars. Other spaces (Dict, Tuple,
MultiBinary, Text, ...) raise a TypeError.

Episode ends. gymnasium's `terminated` becomes `ts.termination` (discount 0:
the next state is terminal and has no value); `truncated` without
`terminated` becomes `ts.truncation` with the environment's `discount`
(default 1.0, always > 0), so a consumer can tell the two apart from the
discount of the LAST step alone (see `keras_gae.agents.trajectories`). The
`discount` here marks non-terminal steps; it is not the GAE `gamma`.

Auto-reset. After a LAST time step the next `step` call resets the episode
and returns its FIRST time step, ignoring the action, as tf-agents expects;
a driver therefore records one LAST -> FIRST boundary transition per
episode. With `handle_auto_reset=True` (default) the tf-agents base class
does the reset, otherwise `_step` does; both give the same time steps.

Seeding. The first reset calls `env.reset(seed=seed)` and the action space is
seeded with `seed` too; later resets continue the environment's random
stream. Two environments with the same seed yield the same time steps for
the same actions. `make_tf_environment` gives copy `i` the seed `seed + i`.

Episode statistics. Each environment keeps the undiscounted return and the
length of its last `EPISODE_HISTORY` finished episodes
(`episode_returns()`, `episode_lengths()`). Through a driver, the tf-agents
trajectory metrics work unchanged because boundary rows carry reward 0 and
are skipped by the length counters: `tf_metrics.AverageReturnMetric`,
`AverageEpisodeLengthMetric`, `MaxReturnMetric`, `MinReturnMetric`,
`NumberOfEpisodes`, `EnvironmentSteps` (pass `batch_size=num_envs` to the
first four) and their `py_metrics` counterparts in a `PyDriver`.
"""

from __future__ import annotations

import collections
from typing import Any
from typing import Mapping
from typing import Optional
from typing import Union

import gymnasium
import numpy as np
from tf_agents.environments import batched_py_environment
from tf_agents.environments import parallel_py_environment
from tf_agents.environments import py_environment
from tf_agents.environments import tf_py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from keras_gae.ops import _checks

# How many finished episodes each environment remembers for
# `episode_returns()` and `episode_lengths()`.
EPISODE_HISTORY = 100

SUPPORTED_SPACES = ("Discrete", "MultiDiscrete", "Box")


def _bounds(values: np.ndarray, dtype: type) -> np.ndarray:
    """Bounds in the spec dtype; a scalar when all entries are equal."""
    values = np.asarray(values).astype(dtype)
    if values.size and np.all(values == values.flat[0]):
        return values.flat[0]
    return values


def _space_to_spec(space: gymnasium.Space, name: str):
    """The `BoundedArraySpec` of a Discrete, MultiDiscrete or Box space."""
    if isinstance(space, gymnasium.spaces.Discrete):
        start = int(space.start)
        return array_spec.BoundedArraySpec(
            shape=(),
            dtype=np.int64,
            minimum=start,
            maximum=start + int(space.n) - 1,
            name=name,
        )
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        start = np.asarray(space.start, np.int64)
        return array_spec.BoundedArraySpec(
            shape=space.nvec.shape,
            dtype=np.int64,
            minimum=_bounds(start, np.int64),
            maximum=_bounds(start + space.nvec - 1, np.int64),
            name=name,
        )
    if isinstance(space, gymnasium.spaces.Box):
        return array_spec.BoundedArraySpec(
            shape=space.shape,
            dtype=np.float32,
            minimum=_bounds(space.low, np.float32),
            maximum=_bounds(space.high, np.float32),
            name=name,
        )
    raise TypeError(
        f"The {name} space must be one of {SUPPORTED_SPACES}, got "
        f"{type(space).__name__}. Received: {name}_space={space!r}"
    )


class GymnasiumEnvironment(py_environment.PyEnvironment):
    """A gymnasium 1.x environment as a tf-agents `PyEnvironment`.

    See the module docstring for the spec mapping, the episode-end step
    types, auto-reset, seeding and which tf-agents metrics work.

    Args:
      env: a gymnasium environment id (made with
        `gymnasium.make(env, **env_kwargs)`) or a `gymnasium.Env` instance.
      seed: seed of the first reset and of the action space; None leaves
        both unseeded.
      handle_auto_reset: whether the tf-agents base class resets after a
        LAST step (True) or `_step` does (False); the time steps agree.
      env_kwargs: keyword arguments for `gymnasium.make`; only with an id.
      discount: discount of non-terminal steps (transitions and
        truncations), in (0, 1]. Terminations always have discount 0.
    """

    def __init__(
        self,
        env: Union[str, gymnasium.Env],
        *,
        seed: Optional[int] = None,
        handle_auto_reset: bool = True,
        env_kwargs: Optional[Mapping[str, Any]] = None,
        discount: float = 1.0,
    ):
        super().__init__(handle_auto_reset=handle_auto_reset)
        if isinstance(env, str):
            env = gymnasium.make(env, **dict(env_kwargs or {}))
        elif isinstance(env, gymnasium.Env):
            if env_kwargs:
                raise ValueError(
                    "`env_kwargs` only applies when `env` is an environment "
                    "id; pass the arguments to the constructor of the "
                    f"instance instead. Received: env_kwargs={env_kwargs!r}"
                )
        else:
            raise TypeError(
                "`env` must be a gymnasium environment id (str) or a "
                f"gymnasium.Env instance. Received: env={env!r}"
            )
        if seed is not None:
            seed = _checks.check_int(seed, "seed")
        # A discount of 0 marks terminal steps only.
        discount = _checks.check_float(
            discount, "discount", minimum=0.0, maximum=1.0, inclusive=False
        )
        self._env = env
        self._seed = seed
        self._discount = np.asarray(discount, np.float32)
        self._observation_spec = _space_to_spec(
            env.observation_space, "observation"
        )
        self._action_spec = _space_to_spec(env.action_space, "action")
        if self._seed is not None:
            env.action_space.seed(self._seed)
        self._episode_ended = True
        self._episode_return = 0.0
        self._episode_length = 0
        self._returns = collections.deque(maxlen=EPISODE_HISTORY)
        self._lengths = collections.deque(maxlen=EPISODE_HISTORY)
        self._info = {}

    @property
    def gymnasium_env(self) -> gymnasium.Env:
        """The wrapped gymnasium environment."""
        return self._env

    def observation_spec(self) -> array_spec.BoundedArraySpec:
        return self._observation_spec

    def action_spec(self) -> array_spec.BoundedArraySpec:
        return self._action_spec

    def episode_returns(self) -> list:
        """Undiscounted returns of the last finished episodes, oldest first."""
        return list(self._returns)

    def episode_lengths(self) -> list:
        """Lengths (steps) of the last finished episodes, oldest first."""
        return list(self._lengths)

    def get_info(self) -> dict:
        """The info dict of the last `reset` or `step` of gymnasium."""
        return self._info

    def seed(self, seed: Optional[int]) -> None:
        """Seeds the next reset and the action space (tf-agents API)."""
        self._seed = None if seed is None else int(seed)
        if self._seed is not None:
            self._env.action_space.seed(self._seed)

    def render(self, mode: str = "rgb_array") -> Any:
        """The gymnasium render; `mode` must be the env's `render_mode`."""
        if self._env.render_mode != mode:
            raise ValueError(
                f"The environment renders in mode {self._env.render_mode!r}; "
                f"make it with env_kwargs={{'render_mode': {mode!r}}}. "
                f"Received: mode={mode!r}"
            )
        return self._env.render()

    def close(self) -> None:
        self._env.close()

    def _observation(self, observation: Any) -> np.ndarray:
        return np.asarray(observation, dtype=self._observation_spec.dtype)

    def _gymnasium_action(self, action: Any) -> Any:
        action = np.asarray(action)
        if action.shape != self._action_spec.shape:
            raise ValueError(
                f"`action` must have shape {self._action_spec.shape} (the "
                f"action spec). Received: action={_checks.describe(action)}"
            )
        space = self._env.action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            # Some environments use a discrete action as a dict key.
            return int(action)
        return action.astype(space.dtype)

    def _reset(self) -> ts.TimeStep:
        # The seed is used once: later resets continue the random stream.
        observation, self._info = self._env.reset(seed=self._seed)
        self._seed = None
        self._episode_ended = False
        self._episode_return = 0.0
        self._episode_length = 0
        return ts.restart(self._observation(observation))

    def _step(self, action: Any) -> ts.TimeStep:
        if self._episode_ended:
            # The tf-agents contract when the base class does not reset.
            return self.reset()
        observation, reward, terminated, truncated, self._info = self._env.step(
            self._gymnasium_action(action)
        )
        observation = self._observation(observation)
        reward = np.asarray(reward, np.float32)
        self._episode_return += float(reward)
        self._episode_length += 1
        if terminated or truncated:
            self._episode_ended = True
            self._returns.append(self._episode_return)
            self._lengths.append(self._episode_length)
        if terminated:
            return ts.termination(observation, reward)
        if truncated:
            return ts.truncation(observation, reward, self._discount)
        return ts.transition(observation, reward, self._discount)


def make_tf_environment(
    env_id: str,
    *,
    num_envs: int = 1,
    seed: Optional[int] = 0,
    parallel: bool = False,
    env_kwargs: Optional[Mapping[str, Any]] = None,
) -> tf_py_environment.TFPyEnvironment:
    """`num_envs` seeded copies of a gymnasium environment as one TF env.

    Copy `i` is `GymnasiumEnvironment(env_id, seed=seed + i,
    env_kwargs=env_kwargs)`. The copies are batched by a
    `BatchedPyEnvironment` stepping them one after another in this process
    (cheapest for light environments), or with `parallel=True` by a
    `ParallelPyEnvironment` running each in its own process. Parallel
    environments need tf-agents' multiprocessing set up first: run the
    program's main through `tf_agents.system.multiprocessing.handle_main`
    (or call `enable_interactive_mode()` in a notebook).

    Args:
      env_id: a gymnasium environment id.
      num_envs: number of copies B >= 1: the batch size of the time steps.
      seed: seed of copy 0; copy i gets `seed + i`. None: unseeded.
      parallel: whether each copy runs in its own process.
      env_kwargs: keyword arguments for `gymnasium.make`.

    Returns:
      A `TFPyEnvironment` with batch size `num_envs`.
    """
    if not isinstance(env_id, str):
        raise TypeError(
            "`env_id` must be a gymnasium environment id (str). "
            f"Received: env_id={env_id!r}"
        )
    num_envs = _checks.check_positive_int(num_envs, "num_envs")
    if seed is not None:
        seed = _checks.check_int(seed, "seed")
    env_kwargs = dict(env_kwargs or {})

    def constructor(index: int):
        copy_seed = None if seed is None else int(seed) + index
        return lambda: GymnasiumEnvironment(
            env_id, seed=copy_seed, env_kwargs=env_kwargs
        )

    constructors = [constructor(index) for index in range(num_envs)]
    if parallel:
        environment = parallel_py_environment.ParallelPyEnvironment(
            constructors
        )
    else:
        environment = batched_py_environment.BatchedPyEnvironment(
            [make() for make in constructors], multithreading=False
        )
    return tf_py_environment.TFPyEnvironment(environment)

"""Gymnasium environments as tf-agents environments.

`GymnasiumEnvironment` wraps one gymnasium 1.x environment as a tf-agents
`PyEnvironment`; `make_tf_environment` (in
`keras_gae.agents.tf_environment_factory`) builds `num_envs` seeded copies
of one and batches them into a `TFPyEnvironment` for tf-agents drivers.
What an environment may be given as (an id, an instance, a factory) is
`keras_gae.agents.environment_sources`'.

Specs. Spaces map to nests of `array_spec.BoundedArraySpec` as
`keras_gae.agents.space_types` describes (Discrete, MultiDiscrete,
MultiBinary, Box; Dict and Tuple observations). Observations are cast to
the spec dtype (a float64 or integer Box observation arrives as float32)
and checked against it, on reset and on every step: a wrong shape, a
non-numeric or float-for-integer dtype, an integer outside its bounds, a
NaN or infinite float in any leaf (a Box with infinite bounds allows any
finite value), a reward that is not a finite scalar, or a
`terminated`/`truncated` that is not a bool raises an error naming the
environment and the field
(`environment_checks.ObservationConverter`). Actions are checked
(`environment_checks.ActionChecker`: shape, integers within an integer
space, finite Box values) and cast back to the space's own dtype before
`env.step` (a Discrete action as a Python int).

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
from typing import Callable
from typing import Mapping
from typing import Optional
from typing import Union

import gymnasium
import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from keras_gae.agents import environment_checks
from keras_gae.agents import gymnasium_api
from keras_gae.agents import space_types
from keras_gae.agents.environment_sources import make_gymnasium_env
from keras_gae.ops import _checks

# How many finished episodes each environment remembers for
# `episode_returns()` and `episode_lengths()`.
EPISODE_HISTORY = 100

SUPPORTED_SPACES = space_types.SUPPORTED_SPACES


class GymnasiumEnvironment(py_environment.PyEnvironment):
    """A gymnasium 1.x environment as a tf-agents `PyEnvironment`.

    See the module docstring for the spec mapping, the episode-end step
    types, auto-reset, seeding and which tf-agents metrics work.

    Args:
      env: a gymnasium environment id (made with
        `gymnasium.make(env, **env_kwargs)`), a `gymnasium.Env` instance,
        or a factory: a callable returning one.
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
        env: Union[str, gymnasium.Env, Callable[[], gymnasium.Env]],
        *,
        seed: Optional[int] = None,
        handle_auto_reset: bool = True,
        env_kwargs: Optional[Mapping[str, Any]] = None,
        discount: float = 1.0,
    ):
        handle_auto_reset = _checks.check_bool(
            handle_auto_reset, "handle_auto_reset"
        )
        super().__init__(handle_auto_reset=handle_auto_reset)
        env = make_gymnasium_env(env, env_kwargs)
        if seed is not None:
            seed = _checks.check_int(seed, "seed")
        # A discount of 0 marks terminal steps only.
        discount = _checks.check_float(
            discount, "discount", minimum=0.0, maximum=1.0, inclusive=False
        )
        self._env = env
        self._seed = seed
        self._discount = np.asarray(discount, np.float32)
        self._name = gymnasium_api.env_name(env)
        self._observation_spec = space_types.space_to_spec(
            env.observation_space, "observation"
        )
        self._action_spec = space_types.space_to_spec(
            env.action_space, "action", nested=False
        )
        self._convert_observation = environment_checks.ObservationConverter(
            self._observation_spec, self._name
        )
        self._check_action = environment_checks.ActionChecker(
            self._action_spec, self._name
        )
        # The action space's entry, looked up once: `step` casts with it.
        entry = space_types.space_type_of(env.action_space)
        self._env_action = entry.env_action
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
        self._seed = None if seed is None else _checks.check_int(seed, "seed")
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

    def _observation(self, observation: Any, method: str = "step") -> Any:
        return self._convert_observation(observation, method)

    def _gymnasium_action(self, action: Any) -> Any:
        return self._env_action(
            self._env.action_space, self._check_action(action)
        )

    def _reset(self) -> ts.TimeStep:
        # The seed is used once: later resets continue the random stream.
        observation, self._info = gymnasium_api.split_reset(
            self._env.reset(seed=self._seed), self._name
        )
        self._seed = None
        self._episode_ended = False
        self._episode_return = 0.0
        self._episode_length = 0
        return ts.restart(self._observation(observation, "reset"))

    def _step(self, action: Any) -> ts.TimeStep:
        if self._episode_ended:
            # The tf-agents contract when the base class does not reset.
            return self.reset()
        result = self._env.step(self._gymnasium_action(action))
        observation, reward, terminated, truncated, self._info = (
            gymnasium_api.split_step(result, self._name)
        )
        observation = self._observation(observation)
        reward = environment_checks.convert_reward(reward, self._name)
        terminated = environment_checks.convert_flag(
            terminated, "terminated", self._name
        )
        truncated = environment_checks.convert_flag(
            truncated, "truncated", self._name
        )
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

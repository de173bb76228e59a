"""A gymnasium vector environment as one batched tf-agents environment.

`GymnasiumVectorEnvironment` wraps a `gymnasium.vector.VectorEnv` (B
sub-environments stepped by one call) as a batched `PyEnvironment`, so a
`TFPyEnvironment` and a tf-agents driver step all B copies with one Python
call per step instead of B (`BatchedPyEnvironment` of single environments).

Auto-reset. gymnasium's default next-step auto-reset matches tf-agents':
after sub-environment i ends (terminated or truncated, a LAST time step)
the next `step` ignores its action and returns the first observation of a
new episode with reward 0, which becomes a FIRST time step. Termination
gives discount 0, truncation and ordinary steps `discount` (see
`keras_gae.agents.environments`, "Episode ends"). Vector envs with
same-step or disabled auto-reset are refused.

Specs and checks are those of `keras_gae.agents.space_types`, per
sub-environment (`single_observation_space`, `single_action_space`),
batched: observations `[B, ...]` (finite floats, integers in bounds),
rewards `[B]` finite floats, `terminated` and `truncated` `[B]` bools,
with errors naming the environment, the field and the sub-environments at
fault. Sub-environments on the old gym API are refused with a TypeError
that says so (see `keras_gae.agents.environment_sources`):
when the vector env is made if their `reset` takes no seed and gymnasium
made them in this process (sync), else at the first reset or step.
"""

from __future__ import annotations

import collections
from typing import Any
from typing import Mapping
from typing import Optional

import gymnasium
import numpy as np
from tf_agents.environments import py_environment
from tf_agents.trajectories import time_step as ts

from keras_gae.agents import environment_checks
from keras_gae.agents import environment_sources
from keras_gae.agents import gymnasium_api
from keras_gae.agents import space_types
from keras_gae.ops import _checks

EPISODE_HISTORY = 100
VECTOR_MODES = ("sync", "async", "vector_entry_point", "auto")


def make_vector_env(
    env: Any,
    num_envs: int,
    mode: str,
    env_kwargs: Optional[Mapping[str, Any]] = None,
) -> gymnasium.vector.VectorEnv:
    """`num_envs` copies of an id or a factory as one gymnasium vector env.

    Args:
      env: a gymnasium id or `EnvSpec` (an instance's `env.spec`, its
        wrappers included), or a factory returning a `gymnasium.Env`.
      num_envs: B.
      mode: "sync", "async", "vector_entry_point" or "auto" (the entry
        point when the id registers one, else "sync").
      env_kwargs: keyword arguments of `gymnasium.make` (or the factory).

    Raises:
      ValueError: `num_envs` < 1, an unknown `mode`, "vector_entry_point"
        with a factory.
      TypeError: `env_kwargs` not a mapping; a factory that makes no
        gymnasium.Env or one on the old gym API (`make_gymnasium_env`).
    """
    num_envs = _checks.check_positive_int(num_envs, "num_envs")
    mode = _checks.check_option(mode, "mode", VECTOR_MODES)
    env_kwargs = environment_sources.check_env_kwargs(env_kwargs)
    # A bare Atari id makes make_atari_env's games (environment_sources):
    # a factory here, unless ale-py's own vector env is asked for.
    if mode != "vector_entry_point":
        env = environment_sources.resolve_id(env)
    if isinstance(env, (str, gymnasium.envs.registration.EnvSpec)):
        if mode == "auto":
            spec = env if not isinstance(env, str) else gymnasium.spec(env)
            # An instance's spec with wrappers is remade wrapper and all,
            # which only gymnasium's sync and async vector envs do.
            native = spec.vector_entry_point and not spec.additional_wrappers
            mode = "vector_entry_point" if native else "sync"
        return gymnasium.make_vec(
            env, num_envs=num_envs, vectorization_mode=mode, **env_kwargs
        )
    if mode == "vector_entry_point":
        raise ValueError(
            "`vectorization_mode='vector_entry_point'` needs an environment "
            "id; a factory runs as 'sync' or 'async'. "
            f"Received: vectorization_mode={mode!r}"
        )
    factories = [_SubEnvironment(env, env_kwargs)] * num_envs
    if mode == "async":
        return gymnasium.vector.AsyncVectorEnv(factories)
    return gymnasium.vector.SyncVectorEnv(factories)


class _SubEnvironment:
    """Makes one sub-environment from a factory, checked as
    `make_gymnasium_env` checks it; named after the factory for errors.
    (A class, not a closure, so that AsyncVectorEnv can pickle it.)"""

    def __init__(self, factory: Any, env_kwargs: Mapping[str, Any]):
        self.factory = factory
        self.env_kwargs = env_kwargs
        self.__name__ = getattr(factory, "__name__", type(factory).__name__)

    def __call__(self) -> gymnasium.Env:
        return environment_sources.make_gymnasium_env(
            self.factory, self.env_kwargs
        )


class GymnasiumVectorEnvironment(py_environment.PyEnvironment):
    """A gymnasium `VectorEnv` as a batched tf-agents `PyEnvironment`.

    See the module docstring for auto-reset, specs and checks.

    Args:
      env: a `gymnasium.vector.VectorEnv` with next-step auto-reset.
      seed: seed of the first reset (sub-environment i gets `seed + i` in
        gymnasium's sync and async vector envs) and of the action space;
        None leaves both unseeded.
      discount: discount of non-terminal steps, in (0, 1].

    Raises:
      TypeError: `env` not a vector env, unsupported spaces.
      ValueError: an auto-reset mode other than next-step.
    """

    def __init__(
        self,
        env: gymnasium.vector.VectorEnv,
        *,
        seed: Optional[int] = None,
        discount: float = 1.0,
    ):
        super().__init__(handle_auto_reset=False)
        if not isinstance(env, gymnasium.vector.VectorEnv):
            raise TypeError(
                "`env` must be a gymnasium.vector.VectorEnv. "
                f"Received: env={env!r}"
            )
        mode = env.metadata.get(
            "autoreset_mode", gymnasium.vector.AutoresetMode.NEXT_STEP
        )
        if mode != gymnasium.vector.AutoresetMode.NEXT_STEP:
            raise ValueError(
                "The vector env must auto-reset on the next step (gymnasium's "
                "default, AutoresetMode.NEXT_STEP), as tf-agents drivers "
                f"expect. Received: env with autoreset_mode={mode!r}"
            )
        if seed is not None:
            seed = _checks.check_int(seed, "seed")
        discount = _checks.check_float(
            discount, "discount", minimum=0.0, maximum=1.0, inclusive=False
        )
        self._env = env
        self._num_envs = int(env.num_envs)
        self._name = gymnasium_api.env_name(env)
        self._seed = seed
        self._discount = np.float32(discount)
        self._observation_spec = space_types.space_to_spec(
            env.single_observation_space, "observation"
        )
        self._action_spec = space_types.space_to_spec(
            env.single_action_space, "action", nested=False
        )
        self._convert_observation = environment_checks.ObservationConverter(
            self._observation_spec, self._name, (self._num_envs,)
        )
        self._action_dtype = env.single_action_space.dtype
        self._check_action = environment_checks.ActionChecker(
            self._action_spec, self._name, (self._num_envs,)
        )
        for sub_environment in getattr(env.unwrapped, "envs", None) or ():
            gymnasium_api.check_reset_signature(sub_environment, self._name)
        if seed is not None:
            env.action_space.seed(seed)
        self._ended = np.ones(self._num_envs, bool)
        self._episode_return = np.zeros(self._num_envs)
        self._episode_length = np.zeros(self._num_envs, np.int64)
        self._returns = collections.deque(maxlen=EPISODE_HISTORY)
        self._lengths = collections.deque(maxlen=EPISODE_HISTORY)
        self._info = {}

    @property
    def batched(self) -> bool:
        return True

    @property
    def batch_size(self) -> int:
        return self._num_envs

    @property
    def gymnasium_env(self) -> gymnasium.vector.VectorEnv:
        """The wrapped vector env."""
        return self._env

    def observation_spec(self) -> Any:
        return self._observation_spec

    def action_spec(self) -> Any:
        return self._action_spec

    def episode_returns(self) -> list:
        """Undiscounted returns of the last finished episodes, oldest first."""
        return list(self._returns)

    def episode_lengths(self) -> list:
        """Lengths of the last finished episodes, oldest first."""
        return list(self._lengths)

    def get_info(self) -> dict:
        """The info dict of the last `reset` or `step` of gymnasium."""
        return self._info

    def close(self) -> None:
        self._env.close()

    def _reset(self) -> ts.TimeStep:
        try:
            result = self._env.reset(seed=self._seed)
        except (TypeError, ValueError, AttributeError) as error:
            gymnasium_api.raise_if_old_api(error, "reset", self._name)
            raise
        observation, self._info = gymnasium_api.split_reset(result, self._name)
        self._seed = None
        self._ended[:] = False
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        observation = self._convert_observation(observation, "reset")
        return ts.restart(observation, batch_size=self._num_envs)

    def _step(self, action: Any) -> ts.TimeStep:
        action = self._check_action(action)
        try:
            result = self._env.step(
                action.astype(self._action_dtype, copy=False)
            )
        except (TypeError, ValueError) as error:
            gymnasium_api.raise_if_old_api(error, "step", self._name)
            raise
        observation, reward, terminated, truncated, self._info = (
            gymnasium_api.split_step(result, self._name)
        )
        batch_shape = (self._num_envs,)
        observation = self._convert_observation(observation)
        reward = environment_checks.convert_reward(
            reward, self._name, batch_shape
        )
        terminated = environment_checks.convert_flag(
            terminated, "terminated", self._name, batch_shape
        )
        truncated = environment_checks.convert_flag(
            truncated, "truncated", self._name, batch_shape
        )
        first = self._ended
        # A sub-environment that just reset reports reward 0; it is the
        # boundary row's and must not count.
        reward = np.where(first, np.float32(0), reward)
        last = (terminated | truncated) & ~first
        self._episode_return = np.where(first, 0.0, self._episode_return)
        self._episode_length = np.where(first, 0, self._episode_length)
        self._episode_return += reward
        self._episode_length += ~first
        for index in np.flatnonzero(last):
            self._returns.append(float(self._episode_return[index]))
            self._lengths.append(int(self._episode_length[index]))
        self._ended = last
        step_type = np.where(
            first, ts.StepType.FIRST, np.where(last, ts.StepType.LAST, 1)
        ).astype(np.int32)
        discount = np.where(
            last & terminated, np.float32(0), self._discount
        ).astype(np.float32)
        return ts.TimeStep(step_type, reward, discount, observation)

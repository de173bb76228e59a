"""Gymnasium environments as tf-agents environments.

`GymnasiumEnvironment` wraps one gymnasium 1.x environment as a tf-agents
`PyEnvironment`; `make_tf_environment` builds `num_envs` seeded copies of one
and batches them into a `TFPyEnvironment` for tf-agents drivers.

Specs. Spaces map to nests of `array_spec.BoundedArraySpec` as
`keras_gae.agents.spaces` describes (Discrete, MultiDiscrete, MultiBinary,
Box; Dict and Tuple observations). Observations are cast to the spec dtype
(a float64 or integer Box observation arrives as float32) and checked
against it, on reset and on every step: a wrong shape, a non-numeric or
float-for-integer dtype, an integer outside its bounds, a NaN or infinite
float in any leaf (a Box with infinite bounds allows any finite value),
a reward that is not a finite scalar, or a `terminated`/`truncated` that
is not a bool raises an error naming the environment and the field
(`spaces.ObservationConverter`). Actions are checked (`spaces.ActionChecker`:
shape, integers within an integer space, finite Box values) and cast back
to the space's own dtype before `env.step` (a Discrete action as a Python
int).

gymnasium 1.x API. An environment on the old gym API (`reset()` without
a seed or returning the observation alone, `step` returning `(observation,
reward, done, info)`) raises a TypeError naming it that says so and how to
port it: when it is made if its `reset` takes no seed, else at the first
reset or step. gymnasium 1.x has no adapter for such environments; one of
the old `gym` package (not a `gymnasium.Env`) is refused with a pointer to
shimmy's `GymV21CompatibilityV0` / `GymV26CompatibilityV0`.

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
import collections.abc
from typing import Any
from typing import Callable
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

from keras_gae.agents import spaces
from keras_gae.ops import _checks

# How many finished episodes each environment remembers for
# `episode_returns()` and `episode_lengths()`.
EPISODE_HISTORY = 100

SUPPORTED_SPACES = spaces.SUPPORTED_SPACES


def _looks_like_env(value: Any) -> bool:
    """An environment object that is no gymnasium.Env (the old gym's)."""
    if isinstance(value, (type, gymnasium.Env, gymnasium.vector.VectorEnv)):
        return False
    return all(
        hasattr(value, name)
        for name in ("reset", "step", "observation_space", "action_space")
    )


def _not_gymnasium_error(env: Any, received: str) -> TypeError:
    return TypeError(
        f"The environment {type(env).__name__} is not a gymnasium.Env "
        "(environments of the old `gym` package are not). Wrap one with "
        "shimmy: shimmy.GymV21CompatibilityV0(env=env) for the gym 0.21 "
        "API, shimmy.GymV26CompatibilityV0(env=env) for gym 0.26 (pip "
        'install "shimmy[gym-v21]" or "shimmy[gym-v26]"); or derive it '
        "from gymnasium.Env with the gymnasium 1.x API: reset(*, "
        "seed=None, options=None) -> (observation, info), step(action) -> "
        "(observation, reward, terminated, truncated, info). "
        f"Received: {received}"
    )


def check_env_kwargs(env_kwargs: Any) -> dict:
    """`env_kwargs` as a dict (None: empty), else a TypeError."""
    if env_kwargs is None:
        return {}
    if not isinstance(env_kwargs, collections.abc.Mapping):
        raise TypeError(
            "`env_kwargs` must be a mapping of keyword arguments (a dict) "
            f"or None. Received: env_kwargs={env_kwargs!r}"
        )
    return dict(env_kwargs)


def make_gymnasium_env(
    env: Any, env_kwargs: Optional[Mapping[str, Any]] = None
) -> gymnasium.Env:
    """A `gymnasium.Env` from an id, an instance or a factory.

    Raises:
      TypeError: anything else (a vector env included: see
        `make_tf_environment`), a factory returning something else, an
        environment object that is no gymnasium.Env (the old gym's), or
        one whose `reset` takes no seed (the old gym API).
      ValueError: `env_kwargs` with an instance.
    """
    env_kwargs = check_env_kwargs(env_kwargs)
    if isinstance(env, (str, gymnasium.envs.registration.EnvSpec)):
        made = gymnasium.make(env, **env_kwargs)
    elif isinstance(env, gymnasium.Env):
        if env_kwargs:
            raise ValueError(
                "`env_kwargs` only applies when `env` is an environment "
                "id; pass the arguments to the constructor of the "
                f"instance instead. Received: env_kwargs={env_kwargs!r}"
            )
        made = env
    elif _looks_like_env(env):
        raise _not_gymnasium_error(env, f"env={env!r}")
    elif callable(env) and not isinstance(env, gymnasium.vector.VectorEnv):
        made = env(**env_kwargs)
        if _looks_like_env(made):
            raise _not_gymnasium_error(made, f"env={env!r} returning {made!r}")
        if not isinstance(made, gymnasium.Env):
            raise TypeError(
                "An `env` factory must return a gymnasium.Env. "
                f"Received: env={env!r} returning {made!r}"
            )
    else:
        raise TypeError(
            "`env` must be a gymnasium environment id (str), a "
            "gymnasium.Env instance or a factory returning one. "
            f"Received: env={env!r}"
        )
    spaces.check_reset_signature(made)
    return made


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
        self._name = spaces.env_name(env)
        self._observation_spec = spaces.space_to_spec(
            env.observation_space, "observation"
        )
        self._action_spec = spaces.space_to_spec(
            env.action_space, "action", nested=False
        )
        self._convert_observation = spaces.ObservationConverter(
            self._observation_spec, self._name
        )
        self._check_action = spaces.ActionChecker(self._action_spec, self._name)
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
        action = self._check_action(action)
        space = self._env.action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            # Some environments use a discrete action as a dict key.
            return int(action)
        return action.astype(space.dtype)

    def _reset(self) -> ts.TimeStep:
        # The seed is used once: later resets continue the random stream.
        observation, self._info = spaces.split_reset(
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
            spaces.split_step(result, self._name)
        )
        observation = self._observation(observation)
        reward = spaces.convert_reward(reward, self._name)
        terminated = spaces.convert_flag(terminated, "terminated", self._name)
        truncated = spaces.convert_flag(truncated, "truncated", self._name)
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


VECTORIZATION_MODES = (None, "auto", "sync", "async", "vector_entry_point")


def make_tf_environment(
    env: Any,
    *,
    num_envs: Optional[int] = None,
    seed: Optional[int] = 0,
    parallel: bool = False,
    env_kwargs: Optional[Mapping[str, Any]] = None,
    vectorization_mode: Optional[str] = None,
) -> tf_py_environment.TFPyEnvironment:
    """`num_envs` seeded copies of a gymnasium environment as one TF env.

    What `env` may be:

    * an id (or an `EnvSpec`, such as an instance's `env.spec`: copies
      with its keyword arguments and wrappers), or a factory (a callable
      returning a `gymnasium.Env`): copy `i`
      is `GymnasiumEnvironment(env, seed=seed + i, env_kwargs=env_kwargs)`;
    * a `gymnasium.Env` instance: one copy only (`num_envs` 1);
    * a `gymnasium.vector.VectorEnv` (next-step auto-reset, gymnasium's
      default): wrapped as it is by `GymnasiumVectorEnvironment`;
      `num_envs`, when given, must equal its `num_envs`.

    How the copies run (`vectorization_mode`, ids and factories only):

    * None: a `BatchedPyEnvironment` steps `GymnasiumEnvironment` copies
      one after another in this process, or with `parallel=True` a
      `ParallelPyEnvironment` runs each in its own process (which needs
      tf-agents' multiprocessing set up first: the program's main run
      through `tf_agents.system.multiprocessing.handle_main`).
    * "sync", "async", "vector_entry_point": `gymnasium.make_vec(env,
      num_envs, vectorization_mode=...)` (a factory: a `SyncVectorEnv` or
      `AsyncVectorEnv` of it) behind one `GymnasiumVectorEnvironment`:
      one Python call per batched step instead of one per copy.
      "vector_entry_point" is the environment's own NumPy-vectorized
      implementation (CartPole-v1 has one), "async" runs each copy in a
      subprocess (gymnasium's own, so no `handle_main` is needed).
    * "auto": "vector_entry_point" when the id registers one, else "sync".

    The sub-environments get seeds `seed + i` in every mode except
    "vector_entry_point", whose one vectorized environment draws all
    copies from one generator seeded with `seed`.

    Args:
      env: an id, an instance, a factory or a vector env (above).
      num_envs: number of copies B >= 1 (the batch size of the time
        steps); None: the vector env's, else 1.
      seed: seed of copy 0; copy i gets `seed + i`. None: unseeded.
      parallel: with `vectorization_mode=None`, a process per copy.
      env_kwargs: keyword arguments for `gymnasium.make` (or the factory).
      vectorization_mode: one of `VECTORIZATION_MODES` (above).

    Returns:
      A `TFPyEnvironment` with batch size `num_envs`.
    """
    from keras_gae.agents import vector_environment

    vectorization_mode = _checks.check_option(
        vectorization_mode, "vectorization_mode", VECTORIZATION_MODES
    )
    if num_envs is not None:
        num_envs = _checks.check_positive_int(num_envs, "num_envs")
    if seed is not None:
        seed = _checks.check_int(seed, "seed")
    parallel = _checks.check_bool(parallel, "parallel")
    env_kwargs = check_env_kwargs(env_kwargs)

    if isinstance(env, gymnasium.vector.VectorEnv):
        if num_envs is not None and num_envs != env.num_envs:
            raise ValueError(
                f"`num_envs` must match the vector env's num_envs="
                f"{env.num_envs} (or be None). Received: num_envs={num_envs}"
            )
        if env_kwargs:
            raise ValueError(
                "`env_kwargs` does not apply to a vector env instance. "
                f"Received: env_kwargs={env_kwargs!r}"
            )
        return tf_py_environment.TFPyEnvironment(
            vector_environment.GymnasiumVectorEnvironment(env, seed=seed)
        )
    num_envs = 1 if num_envs is None else num_envs
    if isinstance(env, gymnasium.Env):
        if num_envs != 1:
            raise ValueError(
                "A gymnasium.Env instance is one environment; pass its id "
                "or a factory to make several copies. "
                f"Received: num_envs={num_envs}"
            )
        return tf_py_environment.TFPyEnvironment(
            batched_py_environment.BatchedPyEnvironment(
                [GymnasiumEnvironment(env, seed=seed)], multithreading=False
            )
        )
    if _looks_like_env(env):
        raise _not_gymnasium_error(env, f"env={env!r}")
    if not isinstance(
        env, (str, gymnasium.envs.registration.EnvSpec)
    ) and not callable(env):
        raise TypeError(
            "`env` must be a gymnasium environment id (str), a gymnasium.Env "
            "instance, a factory returning one, or a gymnasium vector env. "
            f"Received: env={env!r}"
        )
    if vectorization_mode is not None:
        vector_env = vector_environment.make_vector_env(
            env, num_envs, vectorization_mode, env_kwargs
        )
        return tf_py_environment.TFPyEnvironment(
            vector_environment.GymnasiumVectorEnvironment(vector_env, seed=seed)
        )

    def constructor(index: int):
        copy_seed = None if seed is None else int(seed) + index
        return lambda: GymnasiumEnvironment(
            env, seed=copy_seed, env_kwargs=env_kwargs
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

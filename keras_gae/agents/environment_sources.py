"""What an `env` argument may be: an id, a spec, an instance or a factory.

`make_gymnasium_env` makes one `gymnasium.Env` from any of them, the
entry of every environment keras_gae wraps (`GymnasiumEnvironment`, the
copies of `make_tf_environment`, a vector env's sub-environments).

gymnasium 1.x API. An environment on the old gym API (`reset()` without
a seed or returning the observation alone, `step` returning `(observation,
reward, done, info)`) raises a TypeError naming it that says so and how to
port it: when it is made if its `reset` takes no seed, else at the first
reset or step. gymnasium 1.x has no adapter for such environments; one of
the old `gym` package (not a `gymnasium.Env`) is refused with a pointer to
shimmy's `GymV21CompatibilityV0` / `GymV26CompatibilityV0`.

A bare Atari id ("ALE/Breakout-v5", a string starting with "ALE/") makes
the preprocessed game of `keras_gae.agents.make_atari_env` (its
`AtariGame`, the `ALE/*-v5` preset's standard set-up: no-op reset, frame
skip 4, episodic life, FIRE reset, clipped rewards, 84x84 grayscale,
4 stacked frames), as RL Zoo sets up its Atari games; `env_kwargs` go to
`gymnasium.make`. For the raw game, pass `gymnasium.make(id)` or a
factory.
"""

from __future__ import annotations

import collections.abc
from typing import Any
from typing import Mapping
from typing import Optional

import gymnasium

from keras_gae.agents import gymnasium_api

# ale-py's namespace: its ids are the Atari games.
ATARI_PREFIX = "ALE/"


def looks_like_env(value: Any) -> bool:
    """An environment object that is no gymnasium.Env (the old gym's)."""
    if isinstance(value, (type, gymnasium.Env, gymnasium.vector.VectorEnv)):
        return False
    return all(
        hasattr(value, name)
        for name in ("reset", "step", "observation_space", "action_space")
    )


def not_gymnasium_error(env: Any, received: str) -> TypeError:
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


def resolve_id(env: Any) -> Any:
    """`env`, or for a bare Atari id the factory that makes it (module doc).

    The one place an id is turned into its set-up: `make_gymnasium_env`
    and the vector-env builder both call it first.
    """
    if not (isinstance(env, str) and env.startswith(ATARI_PREFIX)):
        return env
    # Imported here: atari_environments builds on the environments that
    # use this module.
    from keras_gae.agents.atari_environments import AtariGame

    return AtariGame(env)


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
    env = resolve_id(env)
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
    elif looks_like_env(env):
        raise not_gymnasium_error(env, f"env={env!r}")
    elif callable(env) and not isinstance(env, gymnasium.vector.VectorEnv):
        made = env(**env_kwargs)
        if looks_like_env(made):
            raise not_gymnasium_error(made, f"env={env!r} returning {made!r}")
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
    gymnasium_api.check_reset_signature(made)
    return made

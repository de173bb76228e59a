"""The gymnasium 1.x API, checked, and how errors name an environment.

`check_reset_signature` refuses an environment whose `reset` takes no seed
(gym 0.21 and older) when it is made, `split_reset` and `split_step` a
result that is not `(observation, info)` or `(observation, reward,
terminated, truncated, info)`, and `raise_if_old_api` recognises what
gymnasium's vector envs raise on such sub-environments; each says the
environment uses the old gym API and how to port it. gymnasium 1.x ships
no adapter for old-API environments (its `EnvCompatibility` wrapper moved
to shimmy, which wraps environments of the old `gym` package only).
`env_name` is how every error names the environment.
"""

from __future__ import annotations

import inspect
from typing import Any
from typing import Optional

import gymnasium

from keras_gae.agents.environment_checks import describe


def env_name(env: Any) -> str:
    """The environment's id (`env.spec.id`), else its class name.

    A vector env without an id is named after its first sub-environment
    (or the `__name__` of the factory that makes them, unless a lambda).
    """
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return repr(spec.id)
    unwrapped = getattr(env, "unwrapped", env)
    name = type(unwrapped).__name__
    copies = getattr(unwrapped, "envs", None)
    factories = getattr(unwrapped, "env_fns", None)
    if copies:
        return f"{name} of {env_name(copies[0])}"
    factory = getattr(factories[0], "__name__", "<") if factories else "<"
    if not factory.startswith("<"):
        name = f"{name} of {factory}"
    return name


GYMNASIUM_API = (
    "keras_gae needs the gymnasium 1.x API: reset(*, seed=None, "
    "options=None) -> (observation, info) and step(action) -> "
    "(observation, reward, terminated, truncated, info). Port the "
    "environment to it (gymnasium.utils.step_api_compatibility."
    "convert_to_terminated_truncated_step_api turns an old 4-value step "
    "result into the 5 values)"
)


def api_error(env: str, problem: str, received: str, old: bool = True):
    """The TypeError of an environment off the gymnasium 1.x API."""
    what = "uses the old gym API" if old else "breaks the gymnasium 1.x API"
    return TypeError(
        f"The environment {env} {what}: {problem}. {GYMNASIUM_API}. "
        f"Received: {received}"
    )


def check_reset_signature(env: Any, name: Optional[str] = None) -> None:
    """Refuses an environment whose `reset` takes no `seed` (gym 0.21).

    Every layer of a wrapped environment is looked at, so an old-API
    environment made by `gymnasium.make` fails here, before any reset.

    Args:
      env: a `gymnasium.Env` (possibly wrapped).
      name: how errors name the environment; default `env_name(env)`, and
        when given, `env` is a sub-environment of the one so named.
    """
    layer = env
    while layer is not None:
        try:
            signature = inspect.signature(layer.reset)
        except (TypeError, ValueError):  # Not introspectable (compiled).
            signature = None
        if signature is not None and not any(
            parameter.name == "seed" or parameter.kind is parameter.VAR_KEYWORD
            for parameter in signature.parameters.values()
        ):
            whose = "" if name is None else "its sub-environments' "
            raise api_error(
                env_name(env) if name is None else name,
                f"{whose}reset() takes no seed (gym 0.21 and older seed "
                "with env.seed(seed) instead)",
                f"reset={type(layer).__name__}.reset{signature}",
            )
        layer = layer.env if isinstance(layer, gymnasium.Wrapper) else None


def split_reset(result: Any, env: str) -> tuple:
    """`(observation, info)` from what `reset` returned, checked."""
    if isinstance(result, tuple) and len(result) == 2:
        if isinstance(result[1], dict):
            return result
        raise api_error(
            env,
            f"reset() returned an info of type {type(result[1]).__name__}, "
            "expected a dict",
            f"reset_result={describe(result)}",
            old=False,
        )
    raise api_error(
        env,
        f"reset() returned {_kind(result)} instead of (observation, info) "
        "(the old API returns the observation alone)",
        f"reset_result={describe(result)}",
    )


def split_step(result: Any, env: str) -> tuple:
    """The 5 values of what `step` returned, checked."""
    if isinstance(result, tuple) and len(result) == 5:
        return result
    if isinstance(result, tuple) and len(result) == 4:
        problem = "step() returned 4 values (observation, reward, done, info)"
        old = True
    else:
        problem = (
            f"step() returned {_kind(result)} instead of (observation, "
            "reward, terminated, truncated, info)"
        )
        old = False
    raise api_error(env, problem, f"step_result={describe(result)}", old)


_RESET_RESULT = "reset() did not return (observation, info)"
# What gymnasium's vector envs raise when a sub-environment is on the old
# API: Python's unpacking errors (in this process, or with the same type
# and text from an AsyncVectorEnv worker), a reset that takes no seed, an
# observation taken for the info dict.
_OLD_API_SIGNS = {
    "reset": (
        ("unexpected keyword argument 'seed'", "reset() takes no seed"),
        ("unexpected keyword argument 'options'", "reset() takes no options"),
        ("values to unpack (expected 2", _RESET_RESULT),
        ("cannot unpack non-iterable", _RESET_RESULT),
        ("has no attribute 'items'", _RESET_RESULT),
    ),
    "step": (
        (
            "values to unpack (expected 5, got 4)",
            "step() returned 4 values (observation, reward, done, info)",
        ),
    ),
}


def raise_if_old_api(error: Exception, method: str, env: str) -> None:
    """Raises the old-API TypeError, from `error`, when `error` is what a
    gymnasium vector env's `method` ("reset", "step") raises on an
    old-API sub-environment; returns otherwise."""
    text = str(error)
    for sign, problem in _OLD_API_SIGNS[method]:
        if sign in text:
            raise api_error(
                env,
                f"its sub-environments' {problem}",
                f"error={error!r}",
                old=sign != "has no attribute 'items'",
            ) from error


def _kind(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    return f"a single {type(value).__name__}"

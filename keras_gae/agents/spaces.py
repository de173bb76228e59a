"""gymnasium spaces as tf-agents specs, and checks of what an env returns.

`space_to_spec` maps a space to a nest of `array_spec.BoundedArraySpec`:

| gymnasium space | spec dtype | spec shape | bounds |
|---|---|---|---|
| `Discrete(n, start=s)` | int64 | `()` | `[s, s + n - 1]` |
| `MultiDiscrete(nvec, start=s)` | int64 | `nvec.shape` | `[s, s + nvec - 1]` |
| `MultiBinary(n)` | int64 | `(n,)` (or its shape) | `[0, 1]` |
| `Box(low, high)` | float32 | `low.shape` | `[low, high]` |
| `Dict({k: space})` | a dict of the specs | | |
| `Tuple((space, ...))` | a tuple of the specs | | |

Bounds equal in every entry become a scalar; tf-agents stores infinite Box
bounds (and float64 bounds beyond the float32 range) as the float32
limits. Dict and Tuple nest (observations only: the policy takes one action
tensor) and need at least one entry; other spaces (Text, Graph, Sequence,
...) raise a TypeError.

`ObservationConverter` casts what `reset`/`step` return to the spec and
refuses, naming the environment and the field (`observation['pos'][1]`),
a nest that does not match, something that is no array (a ragged list), a
wrong shape, a non-numeric dtype, a float where integers are expected, an
integer outside its bounds, and a float that is not finite: NaN, +inf or
-inf, or a float64 value beyond the float32 range. A Box with infinite
bounds allows any finite value; infinity itself is refused, and float
values outside finite Box bounds are let through (many environments
overshoot their declared box slightly). `convert_reward` refuses a
non-scalar, non-numeric or non-finite reward the same way, and
`convert_flag` a `terminated` or `truncated` that is not a bool (or an
integer 0 or 1). For a vector of environments the errors list the
sub-environments at fault. A broken environment then fails at the step
that broke the spec, not deep inside a network or tf-agents, and NaN or
inf never reach the policy or the normalization statistics.
`ActionChecker` checks what goes the other way: an action of the wrong
shape, a float for an integer space (it would be truncated), an integer
outside the space or a NaN/inf Box action is refused before `env.step`.

The gymnasium 1.x API is checked too: `check_reset_signature` refuses an
environment whose `reset` takes no seed (gym 0.21 and older) when it is
made, `split_reset` and `split_step` a result that is not `(observation,
info)` or `(observation, reward, terminated, truncated, info)`, and
`raise_if_old_api` recognises what gymnasium's vector envs raise on
such sub-environments; each says the environment uses the old gym API and
how to port it. gymnasium 1.x ships no adapter for old-API environments
(its `EnvCompatibility` wrapper moved to shimmy, which wraps environments
of the old `gym` package only).
"""

from __future__ import annotations

import inspect
from typing import Any
from typing import Optional
from typing import Tuple

import gymnasium
import numpy as np
from tf_agents.specs import array_spec

SUPPORTED_SPACES = (
    "Discrete",
    "MultiDiscrete",
    "MultiBinary",
    "Box",
    "Dict",
    "Tuple",
)
# Spaces an action may be: one tensor per step.
ACTION_SPACES = ("Discrete", "MultiDiscrete", "MultiBinary", "Box")


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


def _bounds(values: np.ndarray, dtype: type) -> np.ndarray:
    """Bounds in the spec dtype; a scalar when all entries are equal."""
    # float64 bounds beyond the float32 range become infinite, as tf-agents
    # stores them (the float32 limits).
    with np.errstate(over="ignore"):
        values = np.asarray(values).astype(dtype)
    if values.size and np.all(values == values.flat[0]):
        return values.flat[0]
    return values


def space_to_spec(space: gymnasium.Space, name: str, *, nested: bool = True):
    """The `BoundedArraySpec` (or nest of them) of a gymnasium space.

    Args:
      space: the space.
      name: "observation" or "action", for the specs' names and errors.
      nested: whether Dict and Tuple spaces are allowed.

    Raises:
      TypeError: a space not in `SUPPORTED_SPACES` (or a nest when
        `nested` is False).
      ValueError: a Dict or Tuple without entries.
    """
    spaces = gymnasium.spaces
    if nested and isinstance(space, (spaces.Dict, spaces.Tuple)):
        if not space.spaces:
            raise ValueError(
                f"The {name} space {type(space).__name__} has no entries: "
                "an observation needs at least one array. "
                f"Received: {name}_space={space!r}"
            )
    if nested and isinstance(space, spaces.Dict):
        return {
            key: space_to_spec(sub, f"{name}_{key}")
            for key, sub in space.spaces.items()
        }
    if nested and isinstance(space, spaces.Tuple):
        return tuple(
            space_to_spec(sub, f"{name}_{index}")
            for index, sub in enumerate(space.spaces)
        )
    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        return array_spec.BoundedArraySpec(
            shape=(),
            dtype=np.int64,
            minimum=start,
            maximum=start + int(space.n) - 1,
            name=name,
        )
    if isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(space.start, np.int64)
        return array_spec.BoundedArraySpec(
            shape=space.nvec.shape,
            dtype=np.int64,
            minimum=_bounds(start, np.int64),
            maximum=_bounds(start + space.nvec - 1, np.int64),
            name=name,
        )
    if isinstance(space, spaces.MultiBinary):
        return array_spec.BoundedArraySpec(
            shape=tuple(space.shape),
            dtype=np.int64,
            minimum=0,
            maximum=1,
            name=name,
        )
    if isinstance(space, spaces.Box):
        return array_spec.BoundedArraySpec(
            shape=space.shape,
            dtype=np.float32,
            minimum=_bounds(space.low, np.float32),
            maximum=_bounds(space.high, np.float32),
            name=name,
        )
    supported = SUPPORTED_SPACES if nested else ACTION_SPACES
    raise TypeError(
        f"The {name} space must be one of {supported}, got "
        f"{type(space).__name__}. Received: {name}_space={space!r}"
    )


class _SpecChecker:
    """What the observation and action checks share.

    Args:
      spec: the spec (nest) to check against (`space_to_spec`).
      env: a description of the environment for error messages.
      batch_shape: `()` for one environment, `(B,)` for a vector of them.
      caller: for values given to a function rather than exchanged with
        the environment (e.g. "PPO.predict"), what errors start with.
    """

    def __init__(
        self,
        spec: Any,
        env: str,
        batch_shape: Tuple[int, ...] = (),
        caller: Optional[str] = None,
    ):
        self._spec = spec
        self._env = env
        self._batch_shape = tuple(batch_shape)
        self._caller = caller


class ObservationConverter(_SpecChecker):
    """Casts observations to their spec nest, checking them on the way.

    Takes `_SpecChecker`'s arguments; `spec` is the observation spec nest.
    """

    def __call__(self, observation: Any, method: str = "step") -> Any:
        return self._convert(observation, self._spec, "observation", method)

    def _fail(self, error: type, field: str, method: str, why: str, value):
        source = f"The environment {self._env} returned from {method}()"
        if self._caller is not None:
            source = f"{self._caller} was given, for {self._env},"
        raise error(
            f"{source} an {field} that breaks its observation space: "
            f"{why}. Received: {field}={_describe(value)}"
        )

    def _convert(self, value: Any, spec: Any, field: str, method: str):
        if isinstance(spec, dict):
            if not isinstance(value, dict) or set(value) != set(spec):
                got = type(value).__name__
                if isinstance(value, dict):
                    got += f" with keys {sorted(value, key=str)}"
                self._fail(
                    ValueError,
                    field,
                    method,
                    f"expected a dict with keys {sorted(spec)}, got {got}",
                    value,
                )
            return {
                key: self._convert(value[key], sub, f"{field}[{key!r}]", method)
                for key, sub in spec.items()
            }
        if isinstance(spec, tuple):
            if not isinstance(value, (tuple, list)) or len(value) != len(spec):
                self._fail(
                    ValueError,
                    field,
                    method,
                    f"expected a tuple of {len(spec)} entries",
                    value,
                )
            return tuple(
                self._convert(item, sub, f"{field}[{index}]", method)
                for index, (item, sub) in enumerate(zip(value, spec))
            )
        return self._leaf(value, spec, field, method)

    def _leaf(self, value: Any, spec: Any, field: str, method: str):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            self._fail(
                ValueError, field, method, f"not an array ({error})", value
            )
        expected = self._batch_shape + tuple(spec.shape)
        if array.shape != expected:
            self._fail(
                ValueError,
                field,
                method,
                f"shape {array.shape}, expected {expected}",
                value,
            )
        kind = array.dtype.kind
        if kind not in "biuf":
            self._fail(
                TypeError,
                field,
                method,
                f"dtype {array.dtype} is not numeric",
                value,
            )
        if np.issubdtype(spec.dtype, np.integer):
            if kind == "f":
                self._fail(
                    TypeError,
                    field,
                    method,
                    f"dtype {array.dtype}, expected integers",
                    value,
                )
            outside = (array < spec.minimum) | (array > spec.maximum)
            if outside.any():
                self._fail(
                    ValueError,
                    field,
                    method,
                    f"values outside {_interval(spec)}"
                    + _rows(outside, self._batch_shape),
                    value,
                )
            return array.astype(spec.dtype, copy=False)
        # A float64 value beyond the float32 range becomes inf here (numpy
        # warns of the overflow), and is refused with the others.
        converted = array.astype(spec.dtype, copy=False)
        if not np.isfinite(converted).all():
            bad = ~np.isfinite(converted)
            self._fail(
                ValueError,
                field,
                method,
                _non_finite(array, converted, bad)
                + _rows(bad, self._batch_shape),
                value,
            )
        return converted


def _non_finite(source: np.ndarray, converted: np.ndarray, bad) -> str:
    """What is wrong with the non-finite entries `bad` of `converted`."""
    if np.isfinite(source[bad]).all():
        return "a value beyond the float32 range (it would become inf)"
    names = [
        name
        for name, test in (
            ("NaN", np.isnan),
            ("+inf", np.isposinf),
            ("-inf", np.isneginf),
        )
        if test(converted).any()
    ]
    if names == ["NaN"]:
        return "a NaN value"
    return (
        f"a non-finite value ({', '.join(names)}); observations must be "
        "finite, even in a Box with infinite bounds"
    )


class ActionChecker(_SpecChecker):
    """Checks actions against the action spec before they reach `step`.

    An action must have the spec's shape (after `batch_shape`); for an
    integer spec (Discrete, MultiDiscrete, MultiBinary) it must hold
    integers within the bounds, for a Box finite numbers (values outside
    the box pass: environments clip them, see `keras_gae.agents.policy`).
    A float for a Discrete space would otherwise be truncated silently.

    Takes `_SpecChecker`'s arguments; `spec` is the action spec
    (`space_to_spec(..., nested=False)`).
    """

    def __init__(self, spec: Any, env: str, batch_shape: Tuple[int, ...] = ()):
        super().__init__(spec, env, batch_shape)
        self._shape = self._batch_shape + tuple(spec.shape)
        self._integer = np.issubdtype(spec.dtype, np.integer)
        self._low, self._high = spec.minimum, spec.maximum
        # With scalar bounds min() and max() are the cheapest range check.
        self._scalar_bounds = (
            np.ndim(spec.minimum) == np.ndim(spec.maximum) == 0
        )

    def __call__(self, action: Any) -> np.ndarray:
        array, problem = _array_of_shape(action, self._shape)
        error = ValueError
        if problem is None:
            kind = array.dtype.kind
            if kind not in ("iu" if self._integer else "iuf"):
                expected = "integers" if self._integer else "numbers"
                error = TypeError
                problem = f"dtype {array.dtype}, expected {expected}"
            elif self._integer:
                if not self._within(array):
                    bad = (array < self._low) | (array > self._high)
                    problem = f"values outside {_interval(self._spec)}"
                    problem += _rows(bad, self._batch_shape)
            elif not np.isfinite(array).all():
                problem = "a NaN or infinite value"
                problem += _rows(~np.isfinite(array), self._batch_shape)
        if problem is None:
            return array
        raise error(
            f"The environment {self._env} received an action that breaks "
            f"its action space: {problem}. "
            f"Received: action={_describe(action)}"
        )

    def _within(self, array: np.ndarray) -> bool:
        if not array.size:
            return True
        if self._scalar_bounds:
            return self._low <= array.min() and array.max() <= self._high
        return not ((array < self._low) | (array > self._high)).any()


def _interval(spec: Any) -> str:
    """The spec's bounds as `[low, high]`, each a number or a list."""
    low, high = (np.asarray(b).tolist() for b in (spec.minimum, spec.maximum))
    return f"[{low}, {high}]"


def _rows(bad: np.ndarray, batch_shape: Tuple[int, ...]) -> str:
    """Which sub-environments hold the `bad` entries (vectors only)."""
    if not batch_shape:
        return ""
    rows = np.flatnonzero(bad.reshape(batch_shape[0], -1).any(axis=1))
    return f" (sub-environments {rows.tolist()})"


def _array_of_shape(value: Any, shape: Tuple[int, ...]) -> tuple:
    """`(array, None)`, or `(None, what is wrong)` when `value` is no
    array of `shape`."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # A ragged nest.
        return None, f"not an array ({error})"
    if array.shape != shape:
        return None, f"shape {array.shape}, expected {shape}"
    return array, None


def convert_reward(
    reward: Any, env: str, batch_shape: Tuple[int, ...] = ()
) -> np.ndarray:
    """The reward as float32 of `batch_shape`, or an error naming `env`."""
    array, problem = _array_of_shape(reward, tuple(batch_shape))
    error = ValueError
    if problem is None and array.dtype.kind not in "biuf":
        error, problem = TypeError, f"dtype {array.dtype} is not a real number"
    elif problem is None:
        source, array = array, array.astype(np.float32)
        bad = ~np.isfinite(array)
        if bad.any():
            if np.isfinite(source[bad]).all():
                problem = "a value beyond the float32 range"
            else:
                problem = "a NaN or infinite value"
            problem += _rows(bad, tuple(batch_shape))
    if problem is not None:
        raise error(
            f"The environment {env} returned from step() a reward that is "
            f"not a finite scalar per environment: {problem}. "
            f"Received: reward={_describe(reward)}"
        )
    return array


def convert_flag(
    flag: Any, field: str, env: str, batch_shape: Tuple[int, ...] = ()
) -> Any:
    """`terminated` or `truncated` as a bool (a bool array of `batch_shape`
    for a vector env), or an error naming `env` and `field`.

    Integers 0 and 1 are accepted as False and True (gymnasium's checker
    only warns of them); floats, strings, None or a wrong shape are not.
    """
    if flag is True or flag is False:
        return flag
    if (
        type(flag) is np.ndarray
        and flag.dtype.kind == "b"
        and flag.shape == batch_shape
        and batch_shape
    ):
        return flag  # A vector env's flags: no copy, no more checks.
    array, problem = _array_of_shape(flag, tuple(batch_shape))
    error = ValueError
    if problem is None:
        kind = array.dtype.kind
        if kind == "b" or (
            kind in "iu" and ((array == 0) | (array == 1)).all()
        ):
            return (
                array.astype(bool, copy=False) if batch_shape else bool(array)
            )
        if kind in "iu":
            problem = "integers other than 0 and 1"
        else:
            error, problem = TypeError, f"dtype {array.dtype}"
    raise error(
        f"The environment {env} returned from step() a {field} flag that "
        f"is not a bool{' per environment' if batch_shape else ''}: "
        f"{problem}. Received: {field}={_describe(flag)}"
    )


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
            f"reset_result={_describe(result)}",
            old=False,
        )
    raise api_error(
        env,
        f"reset() returned {_kind(result)} instead of (observation, info) "
        "(the old API returns the observation alone)",
        f"reset_result={_describe(result)}",
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
    raise api_error(env, problem, f"step_result={_describe(result)}", old)


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


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 200:
        text = text[:200] + "..."
    return text

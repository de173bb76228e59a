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
bounds as the float32 limits. Dict and Tuple nest (observations only: the
policy takes one action tensor); other spaces (Text, Graph, Sequence, ...)
raise a TypeError.

`ObservationConverter` casts what `reset`/`step` return to the spec and
refuses, naming the environment and the field (`observation['pos'][1]`),
a nest that does not match, a wrong shape, a non-numeric dtype, a float
where integers are expected, an integer outside its bounds and a NaN
value. `convert_reward` refuses a non-scalar, non-numeric or non-finite
reward the same way. A broken environment then fails at the step that broke
the spec, not deep inside a network or tf-agents.
"""

from __future__ import annotations

from typing import Any
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
    """The environment's id (`env.spec.id`), else its class name."""
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return repr(spec.id)
    unwrapped = getattr(env, "unwrapped", env)
    name = type(unwrapped).__name__
    copies = getattr(unwrapped, "envs", None)
    if copies:
        name = f"{name} of {env_name(copies[0])}"
    return name


def _bounds(values: np.ndarray, dtype: type) -> np.ndarray:
    """Bounds in the spec dtype; a scalar when all entries are equal."""
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
    """
    spaces = gymnasium.spaces
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


class ObservationConverter:
    """Casts observations to their spec nest, checking them on the way.

    Args:
      spec: the observation spec nest (`space_to_spec`).
      env: a description of the environment for error messages.
      batch_shape: `()` for one environment, `(B,)` for a vector of them.
    """

    def __init__(self, spec: Any, env: str, batch_shape: Tuple[int, ...] = ()):
        self._spec = spec
        self._env = env
        self._batch_shape = tuple(batch_shape)

    def __call__(self, observation: Any, method: str = "step") -> Any:
        return self._convert(observation, self._spec, "observation", method)

    def _fail(self, error: type, field: str, method: str, why: str, value):
        raise error(
            f"The environment {self._env} returned from {method}() an "
            f"{field} that breaks its observation space: {why}. "
            f"Received: {field}={_describe(value)}"
        )

    def _convert(self, value: Any, spec: Any, field: str, method: str):
        if isinstance(spec, dict):
            if not isinstance(value, dict) or set(value) != set(spec):
                keys = sorted(value) if isinstance(value, dict) else None
                self._fail(
                    ValueError,
                    field,
                    method,
                    f"expected a dict with keys {sorted(spec)}, got "
                    f"{type(value).__name__} with keys {keys}",
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
        array = np.asarray(value)
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
            if np.any(array < spec.minimum) or np.any(array > spec.maximum):
                self._fail(
                    ValueError,
                    field,
                    method,
                    f"values outside [{spec.minimum}, {spec.maximum}]",
                    value,
                )
            return array.astype(spec.dtype, copy=False)
        array = array.astype(spec.dtype, copy=False)
        if np.isnan(array).any():
            self._fail(ValueError, field, method, "a NaN value", value)
        return array


def convert_reward(
    reward: Any, env: str, batch_shape: Tuple[int, ...] = ()
) -> np.ndarray:
    """The reward as float32 of `batch_shape`, or an error naming `env`."""
    array = np.asarray(reward)
    problem = None
    if array.shape != tuple(batch_shape):
        problem = f"shape {array.shape}, expected {tuple(batch_shape)}"
    elif array.dtype.kind not in "biuf":
        problem = f"dtype {array.dtype} is not a real number"
    else:
        array = array.astype(np.float32)
        bad = ~np.isfinite(array)
        if bad.any():
            problem = "a NaN or infinite value"
            if bad.ndim:
                problem += f" (sub-environments {np.flatnonzero(bad).tolist()})"
    if problem is not None:
        kind = TypeError if "dtype" in problem else ValueError
        raise kind(
            f"The environment {env} returned from step() a reward that is "
            f"not a finite scalar per environment: {problem}. "
            f"Received: reward={_describe(reward)}"
        )
    return array


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 200:
        text = text[:200] + "..."
    return text

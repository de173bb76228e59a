"""Checks of what an environment returns and receives, against its specs.

`ObservationConverter` casts what `reset`/`step` return to the spec
(`keras_gae.agents.space_types.space_to_spec`) and refuses, naming the
environment and the field (`observation['pos'][1]`), a nest that does not
match, something that is no array (a ragged list), a wrong shape, a
non-numeric dtype, a float where integers are expected, an integer outside
its bounds, and a float that is not finite: NaN, +inf or -inf, or a
float64 value beyond the float32 range. A Box with infinite bounds allows
any finite value; infinity itself is refused, and float values outside
finite Box bounds are let through (many environments overshoot their
declared box slightly). `convert_reward` refuses a non-scalar, non-numeric
or non-finite reward the same way, and `convert_flag` a `terminated` or
`truncated` that is not a bool (or an integer 0 or 1). For a vector of
environments the errors list the sub-environments at fault. A broken
environment then fails at the step that broke the spec, not deep inside a
network or tf-agents, and NaN or inf never reach the policy or the
normalization statistics. `ActionChecker` checks what goes the other way:
an action of the wrong shape, a float for an integer space (it would be
truncated), an integer outside the space or a NaN/inf Box action is
refused before `env.step`.

The checks follow the spec's dtype, whatever the space type: integer
specs hold integers within their bounds, float specs finite numbers. An
integer spec whose bounds are its dtype's whole range (an image's uint8
[0, 255]) skips the value check for arrays of that dtype, which cannot
break it: dtype and shape are still checked, each frame is not scanned.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Tuple

import numpy as np


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
        # id(integer leaf spec) -> whether its bounds are the dtype's range.
        self._full_ranges = {}


class ObservationConverter(_SpecChecker):
    """Casts observations to their spec nest, checking them on the way.

    Takes `_SpecChecker`'s arguments; `spec` is the observation spec nest.
    """

    def __call__(self, observation: Any, method: str = "step") -> Any:
        return self._convert(observation, self._spec, "observation", method)

    def _full_range(self, spec: Any) -> bool:
        """Whether integer `spec`'s bounds are its dtype's whole range."""
        cache = self._full_ranges
        if id(spec) not in cache:
            info = np.iinfo(spec.dtype)
            cache[id(spec)] = bool(
                np.all(spec.minimum <= info.min)
                and np.all(spec.maximum >= info.max)
            )
        return cache[id(spec)]

    def _fail(self, error: type, field: str, method: str, why: str, value):
        source = f"The environment {self._env} returned from {method}()"
        if self._caller is not None:
            source = f"{self._caller} was given, for {self._env},"
        raise error(
            f"{source} an {field} that breaks its observation space: "
            f"{why}. Received: {field}={describe(value)}"
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
            if array.dtype == spec.dtype and self._full_range(spec):
                # The dtype bounds every value already (uint8 frames of
                # an image space, [0, 255]): no pass over the pixels.
                return array
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
    (`space_types.space_to_spec(..., nested=False)`).
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
            f"Received: action={describe(action)}"
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
            f"Received: reward={describe(reward)}"
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
        f"{problem}. Received: {field}={describe(flag)}"
    )


def describe(value: Any) -> str:
    """`repr(value)` for error messages, cut after 200 characters."""
    text = repr(value)
    if len(text) > 200:
        text = text[:200] + "..."
    return text

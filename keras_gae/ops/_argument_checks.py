"""Checks of Python arguments: hyperparameters, options, counts, ids.

Each runs once, where the argument enters (a constructor, a public
function), and its message names the argument and ends with
`Received: name=...`, the Keras convention. Tensors are checked in
`_tensor_checks`; callers reach both through `_checks`.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Optional

import numpy as np


def check_bool(value: Any, name: str) -> bool:
    """A Python bool (0/1 and numpy bools refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def _checked_int(value: Any, name: str, kind: str, minimum: Optional[int]):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise TypeError(f"`{name}` must be {kind}. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(
            f"`{name}` must be >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def check_int(value: Any, name: str, *, minimum: Optional[int] = None) -> int:
    """A Python int (bools refused), at least `minimum` when given."""
    return _checked_int(value, name, "an int", minimum)


def check_positive_int(value: Any, name: str) -> int:
    """A Python int >= 1 (bools refused); errors name `name`."""
    return _checked_int(value, name, "a positive int", 1)


def check_index(value: Any, name: str, *, size: Optional[int] = None) -> int:
    """A Python int id in [0, size) (bools refused; `size` None: >= 0).

    For ids that index a space or vocabulary: token ids, stop ids, actions.
    """
    value = check_int(value, name, minimum=0)
    if size is not None and value >= size:
        raise ValueError(
            f"`{name}` must be < {size} (the size of the space it indexes). "
            f"Received: {name}={value!r}"
        )
    return value


def check_float(
    value: Any,
    name: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    inclusive: bool = True,
    allow_none: bool = False,
) -> Optional[float]:
    """A finite Python float within bounds (bools refused).

    `inclusive` applies to `minimum`; `maximum` is always inclusive.
    """
    if value is None and allow_none:
        return None
    numbers = (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers):
        kind = "None or a float" if allow_none else "a float"
        raise TypeError(f"`{name}` must be {kind}. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    if minimum is not None:
        too_small = value < minimum if inclusive else value <= minimum
        if too_small:
            relation = ">=" if inclusive else ">"
            raise ValueError(
                f"`{name}` must be {relation} {minimum}. "
                f"Received: {name}={value!r}"
            )
    if maximum is not None and value > maximum:
        raise ValueError(
            f"`{name}` must be <= {maximum}. Received: {name}={value!r}"
        )
    return value


def check_option(value: Any, name: str, options: tuple) -> Any:
    """`value` if it is one of `options`."""
    if value not in options:
        raise ValueError(
            f"`{name}` must be one of {options}. Received: {name}={value!r}"
        )
    return value


def check_kl_coef(value: Any, name: str) -> Any:
    """None, a float >= 0, or a KL controller (`value` and `update`)."""
    if value is None or isinstance(value, (int, float, np.number)):
        return check_float(value, name, minimum=0.0, allow_none=True)
    if not (hasattr(value, "value") and hasattr(value, "update")):
        raise TypeError(
            f"`{name}` must be None, a float >= 0 or a KL controller "
            "from keras_gae.losses.kl_control (an object with `value` "
            f"and `update`). Received: {name}={value!r}"
        )
    return value


def check_required(value: Any, name: str, why: str) -> None:
    """A TypeError naming `name` when a required input is None."""
    if value is None:
        raise TypeError(f"`{name}` is required: {why}. Received: {name}=None")

"""The policy head acting in each action space type's spec.

`keras_gae.agents.space_types` names one of these per space type; each
takes the tf-agents action spec and the head options of
`policy_head_for` (`action_bound`, `initial_log_std`), which only the Box
head reads:

* `categorical_head`: Discrete, `CategoricalPolicyHead(n)`;
* `bernoulli_head`: MultiBinary, `BernoulliPolicyHead(n)`;
* `multi_categorical_head`: MultiDiscrete,
  `MultiCategoricalPolicyHead(nvec)`;
* `gaussian_head`: Box vectors, `GaussianPolicyHead(D)` bounded by the box
  as `action_bound` says ("clip", "tanh", or None: unbounded).

Integer heads act in int64, as gymnasium specs do, and need actions
starting at 0 (`check_actions_start_at_zero`, which `KerasPolicy` uses
too). A Box bound at the float32 limit is how tf-agents stores an
infinite one, and is infinite here: "clip" leaves that side unclipped,
"tanh" refuses the box (it cannot squash into an unbounded interval).
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import numpy as np

from keras_gae.layers import BernoulliPolicyHead
from keras_gae.layers import CategoricalPolicyHead
from keras_gae.layers import GaussianPolicyHead
from keras_gae.layers import MultiCategoricalPolicyHead
from keras_gae.layers import PolicyHead


def check_actions_start_at_zero(action_spec: Any) -> None:
    """Integer actions must start at 0 in every entry.

    The discrete heads sample actions 0 .. `action_maximum` and
    trajectories store them unshifted, so a spec starting elsewhere
    (gymnasium `Discrete(n, start=1)`) would be acted in wrongly.

    Raises:
      ValueError: a minimum other than 0.
    """
    if np.any(np.asarray(action_spec.minimum) != 0):
        raise ValueError(
            "`action_spec` must start at 0: the policy heads sample integer "
            "actions 0 .. n - 1 and the trajectory stores them unshifted. "
            "Shift the environment's actions (e.g. gymnasium Discrete(n, "
            f"start=0)). Received: action_spec={action_spec!r}"
        )


def _integer_action_maximum(action_spec: Any) -> np.ndarray:
    """The spec's largest actions, shaped like one action; 1-D at most."""
    check_actions_start_at_zero(action_spec)
    shape = tuple(action_spec.shape)
    if len(shape) > 1:
        raise ValueError(
            "MultiDiscrete/MultiBinary actions must be 1-D. "
            f"Received: action_spec={action_spec!r}"
        )
    return np.broadcast_to(np.asarray(action_spec.maximum), shape)


def categorical_head(action_spec: Any, **options) -> PolicyHead:
    """Discrete: `CategoricalPolicyHead(maximum + 1)`; `options` unused."""
    maximum = _integer_action_maximum(action_spec)
    return CategoricalPolicyHead(int(maximum) + 1, action_dtype="int64")


def bernoulli_head(action_spec: Any, **options) -> PolicyHead:
    """MultiBinary: one Bernoulli per entry; `options` unused."""
    maximum = _integer_action_maximum(action_spec)
    return BernoulliPolicyHead(maximum.shape[0], action_dtype="int64")


def multi_categorical_head(action_spec: Any, **options) -> PolicyHead:
    """MultiDiscrete: `nvec = maximum + 1`; `options` unused."""
    maximum = _integer_action_maximum(action_spec)
    return MultiCategoricalPolicyHead(
        [int(h) + 1 for h in maximum], action_dtype="int64"
    )


def _box_bound(bound: Any, shape: tuple) -> np.ndarray:
    """A spec bound `shape`, float64, the float32 limits back to +/-inf."""
    bound = np.broadcast_to(np.asarray(bound, np.float64), shape)
    limit = float(np.finfo(np.float32).max)
    return np.where(np.abs(bound) >= limit, np.copysign(np.inf, bound), bound)


def gaussian_head(
    action_spec: Any,
    *,
    action_bound: Optional[str],
    initial_log_std: float,
) -> PolicyHead:
    """Box vectors: `GaussianPolicyHead(D)`, bounded as `action_bound`
    says (module docstring)."""
    shape = tuple(action_spec.shape)
    if len(shape) != 1:
        raise ValueError(
            f"Box actions must be a vector [D]. Received: action_spec="
            f"{action_spec!r}"
        )
    if action_bound is None:
        return GaussianPolicyHead(shape[0], initial_log_std=initial_log_std)
    return GaussianPolicyHead(
        shape[0],
        initial_log_std=initial_log_std,
        bound=action_bound,
        low=_box_bound(action_spec.minimum, shape),
        high=_box_bound(action_spec.maximum, shape),
    )

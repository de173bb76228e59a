"""The one dispatch from gymnasium space types to what is built on them.

`SPACE_TYPES` is a table: one `SpaceType` entry per kind of space, each
saying how its spaces become tf-agents specs, how an observation leaf of
its spec becomes float features (`keras_gae.agents.observation_features`)
and which policy head acts in it (`keras_gae.agents.action_heads`):

| entry | gymnasium space | spec dtype, shape, bounds |
|---|---|---|
| Image | uint8 `Box` of rank 3, bounds [0, 255] | uint8, its shape, [0, 255] |
| Discrete | `Discrete(n, start=s)` | int64, `()`, `[s, s + n - 1]` |
| MultiBinary | `MultiBinary(n)` | int64, its shape, `[0, 1]` |
| MultiDiscrete | `MultiDiscrete(nvec, start=s)` | int64, `nvec.shape`, |
| | | `[s, s + nvec - 1]` |
| Box | `Box(low, high)` | float32, `low.shape`, `[low, high]` |

| entry | observation encoding | policy head |
|---|---|---|
| Image | `NatureCNN`, 512 features | none (observations only) |
| Discrete | one-hot | `CategoricalPolicyHead` |
| MultiBinary | 0/1 floats | `BernoulliPolicyHead` |
| MultiDiscrete | one-hot per entry | `MultiCategoricalPolicyHead` |
| Box | flattened floats, normalized | `GaussianPolicyHead` |

`space_to_spec`, `ObservationEncoder` and `policy_head_for` all look
their space up here; nothing else branches on the space type. Dict and
Tuple spaces are nests of these (observations only: the policy takes one
action tensor), mapped entry by entry. The first entry that accepts a
space wins in `space_to_spec`, and the first that accepts a spec wins for
encodings and heads (the networks see tf-agents specs only), so a narrower
entry goes before a broader one: Discrete (integer scalars) before
MultiBinary (integer arrays in [0, 1]) before MultiDiscrete (any integer
array) before Box (anything else).

Adding a space type is one entry here plus its layer. An image Box, say,
is an entry placed first (its space is a Box, which the Box entry would
take, and its uint8 spec an integer array, which MultiDiscrete would
take) whose `accepts` takes uint8 Boxes of rank 3, whose `to_spec` keeps
uint8, whose `accepts_spec` takes uint8 specs of rank 3, whose `encoding`
returns `LeafEncoding(NatureCNN(...), size)` (a Keras layer, so actor and
critic share its weights) and whose `policy_head` is None (images are
observations, never actions). `tests/agents/test_space_types.py` adds a
Box of booleans that way. What
environments return and receive is checked against the spec by its dtype
(`keras_gae.agents.environment_checks`: integers within bounds, floats
finite), so a new entry needs nothing more there.

Bounds equal in every entry become a scalar; tf-agents stores infinite
Box bounds (and float64 bounds beyond the float32 range) as the float32
limits, and the Box head reads the float32 limits back as infinite.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable
from typing import Optional

import gymnasium
import numpy as np
import tensorflow as tf
from tf_agents.specs import array_spec

from keras_gae.agents import action_heads
from keras_gae.agents import image_observations
from keras_gae.agents import observation_features
from keras_gae.layers import PolicyHead

_spaces = gymnasium.spaces


@dataclasses.dataclass(frozen=True)
class SpaceType:
    """One kind of gymnasium space and everything built on it.

    Attributes:
      name: how errors name it (the gymnasium class name for the built-in
        entries).
      space_class: the gymnasium space class it takes.
      to_spec: `(space, name) -> BoundedArraySpec`, `name` the spec's.
      accepts_spec: whether a (tf-agents array or tensor) spec is of this
        type; the networks only see specs.
      encoding: `spec -> LeafEncoding`, how an observation of the spec
        becomes float features.
      policy_head: `(spec, *, action_bound, initial_log_std) ->
        PolicyHead`, the head acting in the spec; None for a space type
        that is never an action.
      accepts: whether a space of `space_class` is of this type (narrower
        entries than the whole class, e.g. image Boxes).
      env_action: `(space, action) -> action` the environment's `step`
        takes, from a checked action array of the spec; by default the
        array in the space's dtype.
    """

    name: str
    space_class: type
    to_spec: Callable[[gymnasium.Space, str], array_spec.BoundedArraySpec]
    accepts_spec: Callable[[Any], bool]
    encoding: Callable[[Any], observation_features.LeafEncoding]
    policy_head: Optional[Callable[..., PolicyHead]]
    accepts: Callable[[gymnasium.Space], bool] = lambda space: True
    env_action: Callable[[gymnasium.Space, np.ndarray], Any] = (
        lambda space, action: action.astype(space.dtype)
    )


def _bounds(values: Any, dtype: type) -> np.ndarray:
    """Bounds in the spec dtype; a scalar when all entries are equal."""
    # float64 bounds beyond the float32 range become infinite, as tf-agents
    # stores them (the float32 limits).
    with np.errstate(over="ignore"):
        values = np.asarray(values).astype(dtype)
    if values.size and np.all(values == values.flat[0]):
        return values.flat[0]
    return values


def _discrete_spec(space: Any, name: str) -> array_spec.BoundedArraySpec:
    start = int(space.start)
    return array_spec.BoundedArraySpec(
        shape=(),
        dtype=np.int64,
        minimum=start,
        maximum=start + int(space.n) - 1,
        name=name,
    )


def _multi_discrete_spec(space: Any, name: str):
    start = np.asarray(space.start, np.int64)
    return array_spec.BoundedArraySpec(
        shape=space.nvec.shape,
        dtype=np.int64,
        minimum=_bounds(start, np.int64),
        maximum=_bounds(start + space.nvec - 1, np.int64),
        name=name,
    )


def _multi_binary_spec(space: Any, name: str):
    return array_spec.BoundedArraySpec(
        shape=tuple(space.shape),
        dtype=np.int64,
        minimum=0,
        maximum=1,
        name=name,
    )


def _box_spec(space: Any, name: str) -> array_spec.BoundedArraySpec:
    return array_spec.BoundedArraySpec(
        shape=space.shape,
        dtype=np.float32,
        minimum=_bounds(space.low, np.float32),
        maximum=_bounds(space.high, np.float32),
        name=name,
    )


def _is_integer(spec: Any) -> bool:
    return tf.as_dtype(spec.dtype).is_integer


def _is_zero_one(spec: Any) -> bool:
    """An integer array spec whose entries are all 0 or 1 (MultiBinary)."""
    return (
        _is_integer(spec)
        and len(spec.shape) > 0
        and np.all(np.asarray(spec.minimum) == 0)
        and np.all(np.asarray(spec.maximum) == 1)
    )


SPACE_TYPES = (
    # First: an image space is a Box and its uint8 spec an integer array
    # (keras_gae.agents.image_observations).
    SpaceType(
        name="Image",
        space_class=_spaces.Box,
        to_spec=image_observations.image_spec,
        accepts_spec=image_observations.is_image_spec,
        encoding=image_observations.nature_cnn,
        policy_head=None,
        accepts=image_observations.is_image_space,
    ),
    SpaceType(
        name="Discrete",
        space_class=_spaces.Discrete,
        to_spec=_discrete_spec,
        accepts_spec=lambda spec: _is_integer(spec) and not len(spec.shape),
        encoding=observation_features.one_hot,
        policy_head=action_heads.categorical_head,
        # Some environments use a discrete action as a dict key.
        env_action=lambda space, action: int(action),
    ),
    SpaceType(
        name="MultiBinary",
        space_class=_spaces.MultiBinary,
        to_spec=_multi_binary_spec,
        accepts_spec=_is_zero_one,
        encoding=observation_features.zero_one_floats,
        policy_head=action_heads.bernoulli_head,
    ),
    SpaceType(
        name="MultiDiscrete",
        space_class=_spaces.MultiDiscrete,
        to_spec=_multi_discrete_spec,
        accepts_spec=_is_integer,
        encoding=observation_features.one_hot,
        policy_head=action_heads.multi_categorical_head,
    ),
    SpaceType(
        name="Box",
        space_class=_spaces.Box,
        to_spec=_box_spec,
        accepts_spec=lambda spec: not _is_integer(spec),
        encoding=observation_features.flat_floats,
        policy_head=action_heads.gaussian_head,
    ),
)


def _names(actions: bool) -> tuple:
    """The space classes `space_to_spec` takes, in table order.

    A class is listed where its last (broadest) entry stands: Box after
    MultiDiscrete, though the Image entry of uint8 Boxes comes first.
    """
    names = []
    for entry in reversed(SPACE_TYPES):
        if entry.policy_head is not None or not actions:
            names.append(entry.space_class.__name__)
    names = list(dict.fromkeys(names))[::-1]
    if not actions:
        names += ["Dict", "Tuple"]
    return tuple(names)


# The gymnasium spaces observations may be, and actions.
SUPPORTED_SPACES = _names(actions=False)
ACTION_SPACES = _names(actions=True)


def space_type_of(space: gymnasium.Space) -> Optional[SpaceType]:
    """The first entry of `SPACE_TYPES` taking `space`, else None."""
    for entry in SPACE_TYPES:
        if isinstance(space, entry.space_class) and entry.accepts(space):
            return entry
    return None


def env_action(space: gymnasium.Space, action: np.ndarray) -> Any:
    """`action`, checked against `space`'s spec, as one environment's
    `step` takes it: a Python int for Discrete, else an array of the
    space's dtype (the entry's `env_action`)."""
    return space_type_of(space).env_action(space, action)


def spec_type_of(spec: Any) -> SpaceType:
    """The first entry of `SPACE_TYPES` taking the array or tensor `spec`.

    Raises:
      TypeError: `spec` is no single spec, or no entry takes it.
    """
    if not hasattr(spec, "dtype") or not hasattr(spec, "shape"):
        raise TypeError(
            "Expected one array or tensor spec (a nest is encoded leaf by "
            f"leaf). Received: spec={spec!r}"
        )
    for entry in SPACE_TYPES:
        if entry.accepts_spec(spec):
            return entry
    raise TypeError(
        "No space type in keras_gae.agents.space_types.SPACE_TYPES takes "
        f"the spec. Received: spec={spec!r}"
    )


def space_to_spec(space: gymnasium.Space, name: str, *, nested: bool = True):
    """The `BoundedArraySpec` (or nest of them) of a gymnasium space.

    Args:
      space: the space.
      name: "observation" or "action", for the specs' names and errors.
      nested: whether Dict and Tuple spaces are allowed; False for
        actions, which also need a space type with a policy head.

    Raises:
      TypeError: a space not in `SUPPORTED_SPACES` (or, when `nested` is
        False, not in `ACTION_SPACES`).
      ValueError: a Dict or Tuple without entries.
    """
    if nested and isinstance(space, (_spaces.Dict, _spaces.Tuple)):
        if not space.spaces:
            raise ValueError(
                f"The {name} space {type(space).__name__} has no entries: "
                "an observation needs at least one array. "
                f"Received: {name}_space={space!r}"
            )
        if isinstance(space, _spaces.Dict):
            return {
                key: space_to_spec(sub, f"{name}_{key}")
                for key, sub in space.spaces.items()
            }
        return tuple(
            space_to_spec(sub, f"{name}_{index}")
            for index, sub in enumerate(space.spaces)
        )
    entry = space_type_of(space)
    if entry is None or (not nested and entry.policy_head is None):
        raise TypeError(
            f"The {name} space must be one of {_names(actions=not nested)}, "
            f"got {type(space).__name__}. Received: {name}_space={space!r}"
        )
    return entry.to_spec(space, name)


def policy_head_for(
    action_spec: Any,
    *,
    action_bound: Optional[str] = "clip",
    initial_log_std: float = 0.0,
) -> PolicyHead:
    """The policy head of the space type taking `action_spec`.

    Discrete (integer scalar) -> `CategoricalPolicyHead`; MultiBinary
    (integer vector in [0, 1]) -> `BernoulliPolicyHead`; MultiDiscrete ->
    `MultiCategoricalPolicyHead`; Box vector -> `GaussianPolicyHead` with
    `bound=action_bound` over the box ("clip", "tanh"), or unbounded
    (None). Integer heads act in int64, as gymnasium specs do; infinite
    Box sides stay unclipped with "clip" and are refused by "tanh"
    (`keras_gae.agents.action_heads`).

    Raises:
      TypeError: a spec whose space type is never an action.
      ValueError: integer actions not starting at 0, integer actions of
        more than one dimension, Box actions not 1-D,
        `action_bound="tanh"` with a Box unbounded in some dimension.
    """
    entry = spec_type_of(action_spec)
    if entry.policy_head is None:
        raise TypeError(
            f"{entry.name} spaces are observations only; actions must be "
            f"one of {_names(actions=True)}. "
            f"Received: action_spec={action_spec!r}"
        )
    return entry.policy_head(
        action_spec, action_bound=action_bound, initial_log_std=initial_log_std
    )

"""Default actor and critic networks sized from the environment's specs.

`ObservationEncoder` turns an observation nest (as `keras_gae.agents.spaces`
maps gymnasium spaces: Box, Discrete, MultiDiscrete, MultiBinary, nested in
Dict and Tuple) into one float vector per row, visiting the leaves in
`tf.nest.flatten` order (dict keys sorted):

* a float leaf `[N, ...]` is flattened to `[N, prod(shape)]`;
* an integer leaf with bounds `[lo, hi]` (Discrete, MultiDiscrete) is
  one-hot encoded per entry, `one_hot(x - lo, hi - lo + 1)`, entries
  concatenated; 0/1 leaves (MultiBinary) are used as floats.

The float leaves are concatenated first and, with `normalize=True`, pass
through one `ObservationNormalization` (running statistics, see
`keras_gae.agents.normalization`); the encodings of the integer leaves
follow. `MLPNetwork` is encoder -> Dense layers -> output layer.
`build_networks(time_step_spec.observation, action_spec)` returns an actor
(ending in the policy head `policy_head_for(action_spec)`) and a critic
that share one encoder, hence one set of normalization statistics.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gae.agents.normalization import ObservationNormalization
from keras_gae.layers import CategoricalPolicyHead
from keras_gae.layers import GaussianPolicyHead
from keras_gae.layers.bernoulli_policy_head import BernoulliPolicyHead
from keras_gae.layers.multi_categorical_policy_head import (
    MultiCategoricalPolicyHead,
)


def _leaf_info(spec: Any) -> dict:
    shape = tuple(int(d) for d in spec.shape)
    size = int(np.prod(shape)) if shape else 1
    dtype = tf.as_dtype(spec.dtype)
    if not dtype.is_integer:
        return {"kind": "float", "size": size}
    low = np.broadcast_to(np.asarray(spec.minimum, np.int64), shape).ravel()
    high = np.broadcast_to(np.asarray(spec.maximum, np.int64), shape).ravel()
    if shape == () and low.size == 0:
        low, high = np.asarray([spec.minimum]), np.asarray([spec.maximum])
    if np.all(low == 0) and np.all(high == 1) and shape:
        return {"kind": "binary", "size": size}
    return {
        "kind": "onehot",
        "size": size,
        "low": [int(v) for v in np.ravel(low)],
        "depth": [int(v) for v in np.ravel(high - low + 1)],
    }


class ObservationEncoder(keras.layers.Layer):
    """An observation nest as one float vector per row (module docstring).

    Args:
      observation_spec: the spec nest of ONE observation (tf-agents array
        or tensor specs, integer ones bounded).
      normalize: normalize the float leaves by running statistics.
    """

    def __init__(self, observation_spec: Any, normalize: bool = False, **kw):
        super().__init__(**kw)
        self._spec = observation_spec
        self._leaves = [
            _leaf_info(s) for s in tf.nest.flatten(observation_spec)
        ]
        float_size = sum(
            i["size"] for i in self._leaves if i["kind"] == "float"
        )
        self.normalization = None
        if normalize and float_size:
            self.normalization = ObservationNormalization(name="normalization")
            self.normalization.build((None, float_size))
        self.output_size = float_size + sum(
            i["size"] if i["kind"] != "onehot" else sum(i["depth"])
            for i in self._leaves
            if i["kind"] != "float"
        )

    @property
    def observation_spec(self) -> Any:
        return self._spec

    def build(self, input_shape: Any = None) -> None:
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (None, self.output_size)

    def _parts(self, observations: Any) -> tuple:
        leaves = tf.nest.flatten(observations)
        floats, others = [], []
        for value, info in zip(leaves, self._leaves):
            value = tf.convert_to_tensor(value)
            flat = tf.reshape(value, [-1, info["size"]])
            if info["kind"] == "float":
                floats.append(tf.cast(flat, tf.float32))
            elif info["kind"] == "binary":
                others.append(tf.cast(flat, tf.float32))
            else:
                flat = tf.cast(flat, tf.int32)
                for j, (low, depth) in enumerate(
                    zip(info["low"], info["depth"])
                ):
                    others.append(tf.one_hot(flat[:, j] - low, depth))
        return floats, others

    def float_features(self, observations: Any) -> Optional[tf.Tensor]:
        """The concatenated float leaves `[N, F]` (None without any)."""
        floats, _ = self._parts(observations)
        return tf.concat(floats, -1) if floats else None

    def update_statistics(self, observations: Any) -> None:
        """Adds observations `[..., obs]` to the normalization statistics."""
        if self.normalization is not None:
            self.normalization.update(self.float_features(observations))

    def call(self, observations: Any) -> tf.Tensor:
        floats, others = self._parts(observations)
        parts = []
        if floats:
            features = tf.concat(floats, -1)
            if self.normalization is not None:
                features = self.normalization(features)
            parts.append(features)
        return tf.concat(parts + others, -1)


def _orthogonal(gain: float) -> keras.initializers.Initializer:
    return keras.initializers.Orthogonal(gain=gain)


class MLPNetwork(keras.Model):
    """encoder -> Dense(size, activation) for each size -> output layer.

    The hidden kernels start orthogonal with gain sqrt(2) (biases zero),
    as in OpenAI Baselines' PPO and stable-baselines3; with the policy
    heads' orthogonal 0.01 and the critic's orthogonal 1 output
    (`build_networks`) the initial policy is near uniform and the initial
    values near 0.
    """

    def __init__(
        self,
        encoder: ObservationEncoder,
        hidden_sizes: Sequence[int],
        output: keras.layers.Layer,
        activation: str = "tanh",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.hidden = [
            keras.layers.Dense(
                int(size),
                activation=activation,
                kernel_initializer=_orthogonal(np.sqrt(2.0)),
            )
            for size in hidden_sizes
        ]
        self.output_layer = output

    def call(self, observations: Any, training: Any = None) -> tf.Tensor:
        x = self.encoder(observations)
        for layer in self.hidden:
            x = layer(x)
        return self.output_layer(x)


def policy_head_for(
    action_spec: Any,
    *,
    action_bound: Optional[str] = "clip",
    initial_log_std: float = 0.0,
) -> keras.layers.Layer:
    """The policy head for one action spec.

    Discrete (integer scalar) -> `CategoricalPolicyHead`; MultiBinary
    (integer vector in [0, 1]) -> `BernoulliPolicyHead`; MultiDiscrete ->
    `MultiCategoricalPolicyHead`; Box vector -> `GaussianPolicyHead` with
    `bound=action_bound` over the box ("clip", "tanh"), or unbounded
    (None). Integer heads act in int64, as gymnasium specs do.

    A Box bound at the float32 limit is how tf-agents stores an infinite
    one, and is infinite here: "clip" leaves that side unclipped, "tanh"
    refuses the box (it cannot squash into an unbounded interval).

    Raises:
      ValueError: integer actions not starting at 0, Box actions not 1-D,
        `action_bound="tanh"` with a Box unbounded in some dimension.
    """
    dtype = tf.as_dtype(action_spec.dtype)
    shape = tuple(action_spec.shape)
    if dtype.is_integer:
        low = np.broadcast_to(np.asarray(action_spec.minimum), shape)
        high = np.broadcast_to(np.asarray(action_spec.maximum), shape)
        if np.any(low != 0):
            raise ValueError(
                "Integer actions must start at 0 (gymnasium Discrete(n, "
                f"start=0)). Received: action_spec={action_spec!r}"
            )
        if not shape:
            return CategoricalPolicyHead(int(high) + 1, action_dtype="int64")
        if len(shape) != 1:
            raise ValueError(
                "MultiDiscrete/MultiBinary actions must be 1-D. "
                f"Received: action_spec={action_spec!r}"
            )
        if np.all(high == 1):
            return BernoulliPolicyHead(shape[0], action_dtype="int64")
        return MultiCategoricalPolicyHead(
            [int(h) + 1 for h in high], action_dtype="int64"
        )
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


def _box_bound(bound: Any, shape: tuple) -> np.ndarray:
    """A spec bound `shape`, float64, the float32 limits back to +/-inf."""
    bound = np.broadcast_to(np.asarray(bound, np.float64), shape)
    limit = float(np.finfo(np.float32).max)
    return np.where(np.abs(bound) >= limit, np.sign(bound) * np.inf, bound)


def build_networks(
    observation_spec: Any,
    action_spec: Any,
    *,
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_observations: bool = False,
    action_bound: str = "clip",
    initial_log_std: float = 0.0,
) -> tuple:
    """`(actor, critic)` MLPs sharing one `ObservationEncoder`, built."""
    encoder = ObservationEncoder(
        observation_spec, normalize=normalize_observations, name="encoder"
    )
    head = policy_head_for(
        action_spec, action_bound=action_bound, initial_log_std=initial_log_std
    )
    actor = MLPNetwork(encoder, hidden_sizes, head, activation, name="actor")
    critic = MLPNetwork(
        encoder,
        hidden_sizes,
        keras.layers.Dense(1, kernel_initializer=_orthogonal(1.0)),
        activation,
        name="critic",
    )
    return actor, critic

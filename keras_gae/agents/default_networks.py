"""Default actor and critic networks sized from the environment's specs.

`ObservationEncoder` turns an observation nest (as
`keras_gae.agents.space_types` maps gymnasium spaces: Box, Discrete,
MultiDiscrete, MultiBinary, nested in Dict and Tuple) into one float
vector per row, visiting the leaves in `tf.nest.flatten` order (dict keys
sorted) and encoding each as its space type's table entry says
(`keras_gae.agents.observation_features`):

* a float leaf `[N, ...]` (Box) is flattened to `[N, prod(shape)]`;
* an integer leaf with bounds `[lo, hi]` (Discrete, MultiDiscrete) is
  one-hot encoded per entry, `one_hot(x - lo, hi - lo + 1)`, entries
  concatenated; 0/1 leaves (MultiBinary) are used as floats.

The normalized features (the float leaves) are concatenated first and,
with `normalize=True`, pass through one `ObservationNormalization`
(running statistics, `keras_gae.agents.observation_normalization`); the
encodings of the other leaves follow. `MLPNetwork` is encoder -> Dense layers ->
output layer. `build_networks(time_step_spec.observation, action_spec)`
returns an actor (ending in the policy head `policy_head_for(action_spec)`)
and a critic that share one encoder, hence one set of normalization
statistics (and the weights of any leaf encoder that has some).
`SharedEncoderNetwork(actor, critic)` is the pair as one network that
computes the shared encoder once, for encoders with weights.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gae.agents.observation_normalization import ObservationNormalization
from keras_gae.agents.space_types import policy_head_for
from keras_gae.agents.space_types import spec_type_of


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
        specs = tf.nest.flatten(observation_spec)
        encodings = [spec_type_of(spec).encoding(spec) for spec in specs]
        self._shapes = [tuple(int(d) for d in spec.shape) for spec in specs]
        self._normalized = [encoding.normalized for encoding in encodings]
        # A list attribute: Keras tracks the encoders that are layers.
        self.leaf_encoders = [encoding.encode for encoding in encodings]
        float_size = sum(e.size for e in encodings if e.normalized)
        self.normalization = None
        if normalize and float_size:
            self.normalization = ObservationNormalization(name="normalization")
            self.normalization.build((None, float_size))
        self.output_size = sum(encoding.size for encoding in encodings)

    @property
    def observation_spec(self) -> Any:
        return self._spec

    @property
    def has_weights(self) -> bool:
        """Whether a leaf encoder is a layer with weights (a Nature CNN)."""
        return any(
            isinstance(encode, keras.layers.Layer)
            for encode in self.leaf_encoders
        )

    def build(self, input_shape: Any = None) -> None:
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (None, self.output_size)

    def _parts(self, observations: Any) -> tuple:
        """The features of the normalized leaves and of the others."""
        floats, others = [], []
        for value, shape, encode, normalized in zip(
            tf.nest.flatten(observations),
            self._shapes,
            self.leaf_encoders,
            self._normalized,
        ):
            value = tf.reshape(tf.convert_to_tensor(value), (-1,) + shape)
            (floats if normalized else others).append(encode(value))
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
        return self.from_features(self.encoder(observations))

    def from_features(self, features: tf.Tensor) -> tf.Tensor:
        """The layers after the encoder, on its output `features`."""
        x = features
        for layer in self.hidden:
            x = layer(x)
        return self.output_layer(x)


class SharedEncoderNetwork(keras.Model):
    """An actor and a critic `MLPNetwork` over one pass of their encoder.

    A network for `ActorCriticModel(shared=...)`: `call` returns
    `(actor params, critic value)`, the same function of the same weights
    as calling `actor` and `critic`, with the shared encoder computed
    once instead of twice. `keras_gae.agents.PPO` uses it where the
    encoder has weights of its own (the Nature CNN of image observations,
    whose passes dominate the cost of a step), as stable-baselines3
    shares its features extractor between the policy and value nets.

    Args:
      actor, critic: `MLPNetwork`s with the same `encoder`.

    Raises:
      ValueError: the two networks have different encoders.
    """

    def __init__(self, actor: MLPNetwork, critic: MLPNetwork, **kwargs):
        super().__init__(**kwargs)
        if actor.encoder is not critic.encoder:
            raise ValueError(
                "`actor` and `critic` must share one encoder (as "
                "`build_networks` builds them). Received: actor.encoder="
                f"{actor.encoder!r}, critic.encoder={critic.encoder!r}"
            )
        self.actor = actor
        self.critic = critic

    def build(self, input_shape: Any = None) -> None:
        # The networks build on their first call.
        self.built = True

    def call(self, observations: Any, training: Any = None) -> tuple:
        features = self.actor.encoder(observations)
        return (
            self.actor.from_features(features),
            self.critic.from_features(features),
        )


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

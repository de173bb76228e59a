"""Recurrent actor-critic networks: a Keras RNN cell between encoder and heads.

A recurrent policy carries a state from step to step of each environment
(docs/design.md, "Observations and policy state"). `RecurrentActorCritic`
is the `shared` network of an `ActorCriticModel` that makes it recurrent:

    features_t = encoder(s_t)                           [N, F]
    h_{t-1}    = 0 where an episode starts at t, else h_{t-1}
    out_t, h_t = cell(features_t, h_{t-1})              (LSTM, GRU, ...)
    params_t   = actor(out_t),  V(s_t) = critic(out_t)

one cell shared by actor and critic (a shared recurrent trunk). It runs a
whole sequence `[B, T, ...]` from each row's initial state, resetting
where `keras_gae._src.rollout_batch.episode_starts` says, or one step
`[B, ...]` from a given state: collection runs the same code with T = 1,
so training recomputes the log-probs and values it collected with.

Letters used in shapes: `B` rows (environments), `T` steps per row,
`N = B * T`, `U` a state tensor's size.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import keras
import tensorflow as tf

from keras_gae.models import objective


class SequenceInputs(NamedTuple):
    """What a recurrent model's `call` takes for whole rows.

    Attributes:
      observation: `[B, T, ...]` observations (a nest allowed).
      initial_state: the state nest before each row's first step,
        `[B, U]` tensors.
      episode_start: `[B, T]` bool, reset the state before these steps.
    """

    observation: Any
    initial_state: Any
    episode_start: tf.Tensor


def reset_state(state: Any, episode_start: tf.Tensor) -> Any:
    """`state` (a nest of `[B, U]`) with zeros in the rows that start."""
    keep = 1.0 - tf.cast(episode_start, tf.float32)[:, None]
    return tf.nest.map_structure(lambda x: x * tf.cast(keep, x.dtype), state)


def _state_sizes(cell: Any) -> list:
    sizes = cell.state_size
    return [
        int(s) for s in (sizes if isinstance(sizes, (list, tuple)) else [sizes])
    ]


@keras.saving.register_keras_serializable(package="keras_gae")
class RecurrentActorCritic(keras.layers.Layer):
    """encoder -> RNN cell (state reset at episode starts) -> actor, critic.

    See the module docstring for the computation. The state is a list of
    `[B, U]` float tensors, one per entry of the cell's `state_size`
    (LSTM: `(h, c)`; GRU: `(h,)`); a tuple, as tf-agents' replay buffers
    need.

    Example:

    ```
    network = RecurrentActorCritic(
        encoder=keras.layers.Dense(32, activation="tanh"),
        cell=keras.layers.LSTMCell(64),
        actor=keras.Sequential([keras_gae.layers.CategoricalPolicyHead(2)]),
        critic=keras.layers.Dense(1),
    )
    model = keras_gae.models.PPOModel(shared=network)
    ```

    Args:
      encoder: Keras layer, observations `[N, ...]` -> features `[N, F]`.
      cell: a Keras RNN cell (`keras.layers.LSTMCell`, `GRUCell`, ...):
        `cell(inputs, states) -> (output, new_states)`.
      actor: Keras layer, cell outputs -> the policy head's params (its
        PolicyHead inside, usually last).
      critic: Keras layer, cell outputs -> values `[N, 1]` or `[N]`.

    Raises:
      TypeError: a cell without `state_size`.
    """

    def __init__(
        self,
        encoder: keras.layers.Layer,
        cell: keras.layers.Layer,
        actor: keras.layers.Layer,
        critic: keras.layers.Layer,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not hasattr(cell, "state_size"):
            raise TypeError(
                "`cell` must be a Keras RNN cell with a `state_size` (e.g. "
                f"keras.layers.LSTMCell). Received: cell={cell!r}"
            )
        self.encoder = encoder
        self.cell = cell
        self.actor = actor
        self.critic = critic
        self.state_sizes = _state_sizes(cell)

    def initial_state(self, batch_size: Any) -> tuple:
        """The zero state of `batch_size` rows, float32 `[B, U]` tensors."""
        return tuple(tf.zeros([batch_size, size]) for size in self.state_sizes)

    def state_spec(self) -> tuple:
        """The `tf.TensorSpec`s of one row's state (no batch axis)."""
        return tuple(
            tf.TensorSpec([size], tf.float32, name=f"state_{index}")
            for index, size in enumerate(self.state_sizes)
        )

    def build(self, input_shape: Any = None) -> None:
        self.built = True

    def call(
        self,
        observations: Any,
        state: Optional[Any] = None,
        episode_start: Optional[tf.Tensor] = None,
        training: Any = None,
    ) -> tuple:
        """One step per row, or whole rows.

        Args:
          observations: `[B, ...]` (one step) when `episode_start` is None
            or `[B]`; `[B, T, ...]` with `episode_start` `[B, T]`.
          state: the state nest before the (first) step; None: zeros.
          episode_start: None (no reset), `[B]` or `[B, T]` bool.

        Returns:
          `(params, value, final_state)`: params `[N, P]` and values
          `[N, 1]` with time merged into the batch (`N = B` for one step),
          and the state after the last step.
        """
        sequence = episode_start is not None and episode_start.shape.rank == 2
        if not sequence:
            observations = tf.nest.map_structure(
                lambda x: tf.expand_dims(x, 1), observations
            )
            first = tf.nest.flatten(observations)[0]
            if episode_start is None:
                episode_start = tf.zeros(tf.shape(first)[:2], tf.bool)
            else:
                episode_start = tf.reshape(episode_start, [-1, 1])
        first = tf.nest.flatten(observations)[0]
        rows, steps = tf.shape(first)[0], tf.shape(first)[1]
        if state is None:
            state = self.initial_state(rows)
        state = tuple(tf.convert_to_tensor(x, tf.float32) for x in state)
        features = self.encoder(
            objective.merged_observations(observations), training=training
        )
        if not self.cell.built:
            self.cell.build(features.shape)
        features = tf.reshape(features, [rows, steps, features.shape[-1]])
        starts = tf.transpose(tf.convert_to_tensor(episode_start, tf.bool))

        def step(carry, inputs):
            _, previous = carry
            x, start = inputs
            output, new_state = self.cell(
                x, reset_state(previous, start), training=training
            )
            if not isinstance(new_state, (list, tuple)):
                new_state = [new_state]
            return output, tuple(new_state)

        zeros = tf.zeros([rows, self.state_sizes[0]], features.dtype)
        outputs, states = tf.scan(
            step,
            (tf.transpose(features, [1, 0, 2]), starts),
            initializer=(zeros, state),
        )
        final_state = tuple(x[-1] for x in states)
        # [T, B, U] -> [B * T, U], the merged order of the batch.
        outputs = tf.reshape(
            tf.transpose(outputs, [1, 0, 2]), [-1, outputs.shape[-1]]
        )
        params = self.actor(outputs, training=training)
        values = self.critic(outputs, training=training)
        return params, values, final_state

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("encoder", "cell", "actor", "critic"):
            config[key] = keras.saving.serialize_keras_object(
                getattr(self, key)
            )
        return config

    @classmethod
    def from_config(cls, config: dict) -> RecurrentActorCritic:
        config = dict(config)
        for key in ("encoder", "cell", "actor", "critic"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

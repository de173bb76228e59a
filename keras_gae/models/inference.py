"""What an actor-critic model computes outside training: `call` and `act`.

Letters used in shapes: `B` rows, `T` steps per row, `N = B * T` steps
after merging time into the batch.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import keras
import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.models import network_layout
from keras_gae.models import objective
from keras_gae.models.recurrent import RecurrentActorCritic
from keras_gae.models.recurrent import SequenceInputs


class ActionOutputs(NamedTuple):
    """What `ActorCriticModel.act` returns.

    Attributes:
      action: `[B, ...]` sampled (or greedy) actions, before the head's
        `postprocess_action` (store these in the rollout batch).
      log_prob: `[B]` float32 log pi(action | observation).
      value: `[B]` float32 V(observation).
      state: a recurrent model's state after this step (a tuple of
        `[B, U]`); None for a feed-forward model.
    """

    action: tf.Tensor
    log_prob: tf.Tensor
    value: tf.Tensor
    state: Any = None


class ActorCriticInference:
    """Mixin of `ActorCriticModel`: its forward pass and its policy.

    Networks (Keras 3 layers or models), in one of two layouts:

    * Separate: `actor` maps observations to the policy head's `params`
      (its PolicyHead is found inside it, usually as its last layer) and
      `critic` maps observations to values `[N, 1]` or `[N]`.
    * Shared trunk: `shared` maps observations to a pair `(params, value)`,
      e.g. a functional model with two outputs; its PolicyHead is found
      inside it. `actor` and `critic` stay None.

    `policy_head`, when given, is the PolicyHead that turns params into a
    distribution. If it is not a layer of `actor` (or `shared`), it is
    applied to their output, which then holds features rather than params.
    A network holding several PolicyHeads needs `policy_head` to say which
    one acts. The networks see observations with time merged into the
    batch, `[N, ...]` (a nest is allowed), so feed-forward networks work
    unchanged.

    Recurrent: `shared` a `keras_gae.models.recurrent.RecurrentActorCritic`.
    Training gives `call` a `SequenceInputs` (whole rows `[B, T, ...]`,
    each row's "initial_state" and the episode starts of the rollout
    batch); `call` on plain observations runs one step per row from the
    zero state; `act` takes and returns the state (`state`,
    `episode_start`), as collection carries it.

    `call(observations)` returns `(params, value)`: the head's float32
    params `[N, params_size]` and the critic's float32 value `[N]` (a
    trailing axis of size 1 is dropped). `distribution(params)` delegates to
    the head; `act(observations)` samples actions for collection.

    """

    def _set_networks(
        self, actor: Any, critic: Any, shared: Any, policy_head: Any
    ) -> None:
        """Checks the networks and finds the policy head (see above)."""
        self._networks = network_layout.resolve_networks(
            actor, critic, shared, policy_head
        )
        self.actor = actor
        self.critic = critic
        self.shared = shared
        self.policy_head = self._networks.policy_head

    @property
    def recurrent(self) -> bool:
        """Whether the model carries a state (a `RecurrentActorCritic`)."""
        return isinstance(self.shared, RecurrentActorCritic)

    def initial_state(self, batch_size: Any) -> Any:
        """The zero state of `batch_size` rows; None if feed-forward."""
        if not self.recurrent:
            return None
        return self.shared.initial_state(batch_size)

    def state_spec(self) -> Any:
        """One row's state spec (a tuple of `tf.TensorSpec`), or `()`."""
        return self.shared.state_spec() if self.recurrent else ()

    def call(self, observations: Any, training: Any = None) -> tuple:
        """`(params, value)`: float32 `[N, params_size]` and `[N]`."""
        params, values, _ = self._network_outputs(
            observations, None, None, training
        )
        return params, values

    def forward(
        self,
        observations: Any,
        state: Any = None,
        episode_start: Any = None,
        training: Any = None,
    ) -> tuple:
        """`call`'s `(params, value)` and the state after it.

        A recurrent model starts from `state` (None: zeros), resetting
        the rows where `episode_start` (`[B]`, or `[B, T]` for rows
        `[B, T, ...]`) is true, and returns the state after the last step;
        a feed-forward one ignores both and returns None as its state.
        """
        if not self.recurrent:
            params, values = self(observations, training=training)
            return params, values, None
        return self._network_outputs(
            observations, state, episode_start, training
        )

    def _network_outputs(
        self, observations: Any, state: Any, episode_start: Any, training: Any
    ) -> tuple:
        """The networks' `(params, value, state)` (see `forward`)."""
        final_state = None
        if self.recurrent:
            if isinstance(observations, SequenceInputs):
                observations, state, episode_start = observations
            params, values, final_state = self.shared(
                observations,
                state=state,
                episode_start=episode_start,
                training=training,
            )
        elif self.shared is not None:
            outputs = self.shared(observations, training=training)
            if not isinstance(outputs, (list, tuple)) or len(outputs) != 2:
                raise TypeError(
                    "`shared` must return a pair (params, value). "
                    f"Received: shared outputs={outputs!r}"
                )
            params, values = outputs
        else:
            params = self.actor(observations, training=training)
            values = self.critic(observations, training=training)
        if self._networks.apply_policy_head:
            params = self.policy_head(params)
        # keras.ops, so that Keras can also trace this call symbolically.
        if len(values.shape) >= 2 and values.shape[-1] == 1:
            values = keras.ops.squeeze(values, axis=-1)
        return (
            keras.ops.cast(params, "float32"),
            keras.ops.cast(values, "float32"),
            final_state,
        )

    def distribution(self, params: tf.Tensor) -> Any:
        """The policy head's tensorflow-probability distribution."""
        return self.policy_head.distribution(params)

    def act(
        self,
        observations: Any,
        *,
        deterministic: bool = False,
        seed: Any = None,
        state: Any = None,
        episode_start: Any = None,
    ) -> ActionOutputs:
        """Actions, their log-probabilities and values for collection.

        Args:
          observations: `[B, ...]` (or a nest) observations.
          deterministic: take the head's greedy action instead of sampling.
          seed: optional seed for `sample`: an int, or a shape-`[2]` int
            tensor for stateless (reproducible) sampling.
          state: a recurrent model's state before this step (None: zeros).
          episode_start: None or `[B]` bool, rows whose episode starts
            here (a recurrent model resets their state first).

        Returns:
          `ActionOutputs(action, log_prob, value, state)`. The action is
          the raw sample; send `policy_head.postprocess_action(action)` to
          the environment (it differs for a "clip" Gaussian head).
        """
        if self.recurrent and episode_start is not None:
            episode_start = tf.convert_to_tensor(episode_start, tf.bool)
        params, values, state = self.forward(
            observations, state, episode_start, training=False
        )
        distribution = self.distribution(params)
        if deterministic:
            actions = self.policy_head.greedy_action(params)
        else:
            actions = distribution.sample(seed=seed)
        log_probs = distribution.log_prob(actions)
        return ActionOutputs(
            action=actions,
            log_prob=tf.cast(log_probs, tf.float32),
            value=values,
            state=state,
        )

    def _network_inputs(self, batch: Any) -> Any:
        """What the networks see of a checked rollout batch.

        Feed-forward: its observations with time merged into the batch,
        `[N, ...]` (a nest allowed). Recurrent: `SequenceInputs` of whole
        rows.
        """
        observations = batch[rollout_batch.OBSERVATION]
        if self.recurrent:
            return SequenceInputs(
                observations,
                tuple(batch[rollout_batch.INITIAL_STATE]),
                rollout_batch.episode_starts(batch),
            )
        return objective.merged_observations(observations)

"""What an actor-critic model computes outside training: `call` and `act`.

Letters used in shapes: `B` rows, `T` steps per row, `N = B * T` steps
after merging time into the batch.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import keras
import tensorflow as tf

from keras_gae.models import network_layout
from keras_gae.models import objective


class ActionOutputs(NamedTuple):
    """What `ActorCriticModel.act` returns.

    Attributes:
      action: `[B, ...]` sampled (or greedy) actions, before the head's
        `postprocess_action` (store these in the rollout batch).
      log_prob: `[B]` float32 log pi(action | observation).
      value: `[B]` float32 V(observation).
    """

    action: tf.Tensor
    log_prob: tf.Tensor
    value: tf.Tensor


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
    unchanged; recurrent networks that need `[B, T, ...]` are not
    supported.

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

    def call(self, observations: Any, training: Any = None) -> tuple:
        """`(params, value)`: float32 `[N, params_size]` and `[N]`."""
        if self.shared is not None:
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
    ) -> ActionOutputs:
        """Actions, their log-probabilities and values for collection.

        Args:
          observations: `[B, ...]` (or a nest) observations.
          deterministic: take the head's greedy action instead of sampling.
          seed: optional seed for `sample`: an int, or a shape-`[2]` int
            tensor for stateless (reproducible) sampling.

        Returns:
          `ActionOutputs(action, log_prob, value)`. The action is the raw
          sample; send `policy_head.postprocess_action(action)` to the
          environment (it differs for a "clip" Gaussian head).
        """
        params, values = self(observations, training=False)
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
        )

    def _network_inputs(self, observations: Any) -> Any:
        """What the networks see of a batch's `[B, T, ...]` observations.

        Here time merged into the batch, `[N, ...]` (a nest allowed).
        """
        return objective.merged_observations(observations)

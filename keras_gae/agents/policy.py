"""A keras_gae actor-critic model as a tf-agents policy.

`KerasPolicy` wraps an `ActorCriticModel` (`PPOModel`, `A2CModel`) as a
`TFPolicy`, so tf-agents drivers can collect with it and
`policy_saver.PolicySaver` can export it. Each `action` call runs the model
once on the time step's observation and returns

* `action`: a sample of the policy head's distribution (or with
  `greedy=True` the head's greedy action), cast to the action spec's dtype;
* `info`: `{"log_prob": log pi(action | s), "value": V(s)}`, float32 of
  shape `[B]`, the two numbers `keras_gae.agents.trajectory_to_rollout_batch`
  needs from every time step (LAST ones included) to train PPO or A2C.

Bounded continuous actions. With a `GaussianPolicyHead(bound="clip")` the
policy returns (and the trajectory stores) the raw, unclipped Gaussian
sample: its recorded log-probability refers to it, and training recomputes
the log-probability of the same raw sample. The environment therefore
receives actions outside [low, high] now and then. gymnasium's Box
environments with bounded controls clip them on their side (Pendulum's
`step` clips the torque to [-2, 2], MountainCarContinuous the force); for an
environment that does not, clip inside the environment or use
`bound="tanh"`, whose samples lie inside the box. The policy never clips:
it is built with `clip=False`, since tf-agents' default clipping would
store clipped actions whose log-probability is not the recorded one.

Discrete actions. The discrete heads sample `0 .. action_maximum` in each
entry, so the policy checks that a discrete action spec starts at 0
(`action_heads.check_actions_start_at_zero`) and ends at the head's
`action_maximum`: `num_actions - 1` for a Categorical head (Discrete),
`nvec - 1` per dimension for a MultiCategorical one (MultiDiscrete), 1 for
a Bernoulli one (MultiBinary).
gymnasium `Discrete` spaces give int64 specs; the head's
integer actions (int32 by default) are cast to the spec's dtype.

Recurrent models (`model.recurrent`, keras_gae.models.recurrent). The
policy's `policy_state_spec` is the model's state (a tuple of `[U]` float32
specs), so a tf-agents driver carries it from step to step; before each
step the policy resets it to zeros where the time step is FIRST, and
`info` also holds that state, the one the step started from, under
"initial_state": the row's first one becomes the rollout batch's
"initial_state" (`trajectory_to_rollout_batch`).

Sampling. `seed` (as tf-agents passes it to `action`) goes to the
distribution's `sample`: an int seeds the stateful sampler (reproducible
together with `tf.random.set_seed`), a shape-`[2]` integer tensor samples
statelessly, so the same seed gives the same actions. Without a seed the
sampler follows TensorFlow's global seed.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from keras_gae._src import rollout_batch as rb
from keras_gae._src.dependencies import tfp
from keras_gae.agents import action_heads
from keras_gae.models import ActorCriticModel
from keras_gae.models.recurrent import reset_state

tfd = tfp.distributions

# Keys of `policy_info`, as `trajectory_to_rollout_batch` reads them: the
# rollout-batch keys they become.
LOG_PROB_KEY = rb.LOG_PROB
VALUE_KEY = rb.VALUE
STATE_KEY = rb.INITIAL_STATE


def policy_info_spec(state_spec: Any = ()) -> dict:
    """The `info_spec` of `KerasPolicy`: scalar float32 log-prob and value.

    With a recurrent model's `state_spec`, also the state each step
    started from (module docstring).
    """
    spec = {
        LOG_PROB_KEY: tf.TensorSpec([], tf.float32, name=LOG_PROB_KEY),
        VALUE_KEY: tf.TensorSpec([], tf.float32, name=VALUE_KEY),
    }
    if state_spec:
        spec[STATE_KEY] = state_spec
    return spec


def _check_discrete_spec(action_spec: Any, head: Any) -> None:
    """The spec must span the head's actions, 0 .. `action_maximum`."""
    action_heads.check_actions_start_at_zero(action_spec)
    expected = getattr(head, "action_maximum", None)
    if expected is None:  # A head of the user's without a known range.
        return
    maximum = np.asarray(action_spec.maximum)
    expected = np.asarray(expected)
    if maximum.shape and expected.shape and maximum.shape != expected.shape:
        mismatch = True
    else:
        mismatch = np.any(maximum != expected)
    if mismatch:
        raise ValueError(
            f"`action_spec` spans actions 0 .. {maximum} but the policy "
            f"head samples 0 .. {expected} ({head.valid_action_range}). "
            f"Received: action_spec={action_spec!r}"
        )


class KerasPolicy(tf_policy.TFPolicy):
    """A keras_gae actor-critic model as a tf-agents `TFPolicy`.

    See the module docstring for what `action` returns and records, how
    bounded continuous actions are handled, and seeding.

    `distribution(time_step)` returns the head's distribution (its dtype
    set to the action spec's for a Categorical head), or with `greedy=True`
    a `Deterministic` distribution at the greedy action. Its `info` holds
    V(s) and the log-probability of the greedy action (`distribution` draws
    no action of its own).

    The time step's observation, `[B, ...]` (or a nest of such), is
    passed to the model as is (with the state, for a recurrent one). It
    is run once at construction on zero observations to build it and to
    check that its actions fit `action_spec`.

    Args:
      model: a keras_gae `ActorCriticModel` (e.g. `PPOModel`).
      time_step_spec: the environment's `TimeStep` spec.
      action_spec: the environment's action spec, one `BoundedTensorSpec`.
      greedy: act with the head's greedy (mode) action instead of sampling,
        for evaluation.
      name: name of the policy (a `tf.Module`).

    Raises:
      TypeError: `model` not an `ActorCriticModel`, `greedy` not a bool,
        a nested action spec.
      ValueError: model actions whose shape does not match `action_spec`,
        a discrete spec not of the form 0 .. num_actions - 1.
    """

    def __init__(
        self,
        model: ActorCriticModel,
        time_step_spec: ts.TimeStep,
        action_spec: tensor_spec.BoundedTensorSpec,
        *,
        greedy: bool = False,
        name: Optional[str] = None,
    ):
        if not isinstance(model, ActorCriticModel):
            raise TypeError(
                "`model` must be a keras_gae ActorCriticModel (e.g. "
                f"PPOModel). Received: model={model!r}"
            )
        if not isinstance(greedy, bool):
            raise TypeError(
                f"`greedy` must be a bool. Received: greedy={greedy!r}"
            )
        action_spec = tensor_spec.from_spec(action_spec)
        if not isinstance(action_spec, tf.TypeSpec):
            raise TypeError(
                "`action_spec` must be a single tensor or array spec (nested "
                "action specs are not supported). "
                f"Received: action_spec={action_spec!r}"
            )
        if action_spec.dtype.is_integer:
            _check_discrete_spec(action_spec, model.policy_head)
        state_spec = model.state_spec()
        super().__init__(
            time_step_spec,
            action_spec,
            policy_state_spec=state_spec,
            info_spec=policy_info_spec(state_spec),
            # Stored actions must be the sampled ones (module docstring).
            clip=False,
            name=name,
        )
        self._model = model
        self._greedy = greedy
        self._check_model_actions()
        # `variables()` (tf.Module's, which TFPolicy does not let a subclass
        # override) finds tf.Variables in attributes; a Keras 3 model is no
        # tf.Module and its variables hold their tf.Variable as `value`.
        self._model_variables = [variable.value for variable in model.variables]

    @property
    def model(self) -> ActorCriticModel:
        """The wrapped keras_gae model."""
        return self._model

    @property
    def greedy(self) -> bool:
        """Whether the policy takes greedy actions instead of sampling."""
        return self._greedy

    def _check_model_actions(self) -> None:
        observation = tensor_spec.zero_spec_nest(
            self.time_step_spec.observation, outer_dims=(1,)
        )
        action = self._model.act(observation, deterministic=True).action
        expected = tf.TensorShape([1]).concatenate(self.action_spec.shape)
        if not action.shape.is_compatible_with(expected):
            raise ValueError(
                f"The model's actions have shape {tuple(action.shape[1:])} "
                f"per observation, the action spec "
                f"{tuple(self.action_spec.shape)}. "
                f"Received: action_spec={self.action_spec!r}"
            )

    def _cast_action(self, action: tf.Tensor) -> tf.Tensor:
        return tf.cast(action, self.action_spec.dtype)

    def _start_state(self, time_step: ts.TimeStep, policy_state: Any) -> Any:
        """The state this step starts from: zeros where it is FIRST."""
        return reset_state(tuple(policy_state), time_step.is_first())

    def _action(
        self,
        time_step: ts.TimeStep,
        policy_state: Any,
        seed: Optional[Any] = None,
    ) -> policy_step.PolicyStep:
        state = None
        if self._model.recurrent:
            state = self._start_state(time_step, policy_state)
        outputs = self._model.act(
            time_step.observation,
            deterministic=self._greedy,
            seed=seed,
            state=state,
        )
        info = {
            LOG_PROB_KEY: tf.cast(outputs.log_prob, tf.float32),
            VALUE_KEY: tf.cast(outputs.value, tf.float32),
        }
        if state is not None:
            info[STATE_KEY] = state
            policy_state = outputs.state
        return policy_step.PolicyStep(
            self._cast_action(outputs.action), policy_state, info
        )

    def _distribution(
        self, time_step: ts.TimeStep, policy_state: Any
    ) -> policy_step.PolicyStep:
        state = None
        if self._model.recurrent:
            state = self._start_state(time_step, policy_state)
        params, value, next_state = self._model.forward(
            time_step.observation, state, training=False
        )
        distribution = self._model.distribution(params)
        greedy_action = self._model.policy_head.greedy_action(params)
        info = {
            LOG_PROB_KEY: tf.cast(
                distribution.log_prob(greedy_action), tf.float32
            ),
            VALUE_KEY: tf.cast(value, tf.float32),
        }
        if state is not None:
            info[STATE_KEY] = state
            policy_state = next_state
        if self._greedy:
            distribution = tfd.Deterministic(self._cast_action(greedy_action))
            event_rank = self.action_spec.shape.rank
            if event_rank:
                distribution = tfd.Independent(
                    distribution, reinterpreted_batch_ndims=event_rank
                )
        elif (
            distribution.dtype != self.action_spec.dtype
            and "dtype" in distribution.parameters
        ):
            # A Categorical head's int32 actions for an int64 spec.
            distribution = distribution.copy(dtype=self.action_spec.dtype)
        return policy_step.PolicyStep(distribution, policy_state, info)

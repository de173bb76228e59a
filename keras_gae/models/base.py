"""The actor-critic training model that PPO and A2C share.

`ActorCriticModel` is a `tf.keras.Model` whose `train_step` takes one rollout
batch (the DESIGN.md table, batch-major `[B, T, ...]`), computes GAE inside
the compiled step, normalizes the advantages, and applies one gradient step
on the policy, value, entropy (and optional KL) losses. Subclasses choose the
policy loss: `PPOModel` the clipped surrogate, `A2CModel` the plain policy
gradient.

Letters used in shapes: `B` rows (environments or generated sequences),
`T` steps per row, `N = B * T` steps after merging time into the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae.layers.gae import GeneralizedAdvantageEstimation
from keras_gae.layers.normalization import AdvantageNormalization
from keras_gae.layers.policy_heads import PolicyHead
from keras_gae.ops import _checks
from keras_gae.ops import gae as gae_ops
from keras_gae.ops import masked
from keras_gae.ops import policy_losses

VALUE_LOSS_TYPES = policy_losses.VALUE_LOSS_TYPES
KL_ESTIMATORS = policy_losses.KL_ESTIMATORS

# Keys of a rollout batch (DESIGN.md). "advantage" and "return" replace the
# GAE inputs when the batch carries precomputed targets (`step_dataset`).
_ALWAYS_REQUIRED = ("observation", "action", "log_prob", "value")
_GAE_REQUIRED = ("reward", "bootstrap_value")
_GAE_OPTIONAL = ("terminated", "truncated", "truncation_value")
_PRECOMPUTED = ("advantage", "return")
_OPTIONAL = ("mask", "ref_log_prob")
BATCH_KEYS = (
    _ALWAYS_REQUIRED + _GAE_REQUIRED + _GAE_OPTIONAL + _PRECOMPUTED + _OPTIONAL
)


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or Inf loss or gradient and stopped.

    The update of the failing step was not applied (nor that of any later
    step in the same `steps_per_execution` group), so the model's weights
    and optimizer state are those from before that step.
    """


class _PreparedBatch(NamedTuple):
    """A checked rollout batch ready for the loss (internal)."""

    observations: Any
    actions: tf.Tensor
    advantages: tf.Tensor
    returns: tf.Tensor
    old_values: tf.Tensor
    old_log_probs: tf.Tensor
    ref_log_probs: Optional[tf.Tensor]
    mask: Optional[tf.Tensor]
    count: tf.Tensor
    statistics: dict


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


def _check_float(
    value: Any,
    name: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    inclusive: bool = True,
    allow_none: bool = False,
) -> Optional[float]:
    """A Python float hyperparameter within bounds; errors name `name`."""
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


def _check_option(value: Any, name: str, options: tuple) -> Any:
    if value not in options:
        raise ValueError(
            f"`{name}` must be one of {options}. Received: {name}={value!r}"
        )
    return value


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def _check_kl_coef(value: Any, name: str) -> Any:
    """None, a float >= 0, or a KL controller (`value` and `update`)."""
    if value is None or isinstance(value, (int, float, np.number)):
        return _check_float(value, name, minimum=0.0, allow_none=True)
    if not (hasattr(value, "value") and hasattr(value, "update")):
        raise TypeError(
            f"`{name}` must be None, a float >= 0 or a KL controller "
            "from keras_gae.losses.kl_control (an object with `value` "
            f"and `update`). Received: {name}={value!r}"
        )
    return value


def _policy_heads_inside(network: tf.keras.layers.Layer) -> list:
    """The distinct PolicyHead layers of `network` (itself included)."""
    candidates = [network] + list(network.submodules)
    heads = []
    for module in candidates:
        if isinstance(module, PolicyHead) and all(
            module is not head for head in heads
        ):
            heads.append(module)
    return heads


def _serialize(obj: Any) -> Any:
    if obj is None:
        return None
    return tf.keras.saving.serialize_keras_object(obj)


def _deserialize(config: Any, custom_objects: Any = None) -> Any:
    if config is None:
        return None
    return tf.keras.saving.deserialize_keras_object(
        config, custom_objects=custom_objects
    )


def _merge_time(tensor: tf.Tensor) -> tf.Tensor:
    """`[B, T, ...]` -> `[B * T, ...]`."""
    inner = tensor.shape[2:]
    if inner.is_fully_defined():
        return tf.reshape(tensor, [-1] + inner.as_list())
    return tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], 0))


def _gradient_values(gradient: Any) -> tf.Tensor:
    if isinstance(gradient, tf.IndexedSlices):
        return gradient.values
    return gradient


def _all_finite(tensors: list) -> tf.Tensor:
    if not tensors:
        return tf.constant(True)
    return tf.reduce_all(
        tf.stack(
            [
                tf.reduce_all(tf.math.is_finite(_gradient_values(t)))
                for t in tensors
            ]
        )
    )


def _global_moments(tensors: list, mask: Optional[tf.Tensor]) -> list:
    """(mean, variance) of each tensor over the valid steps of all replicas.

    Two passes (means, then centred squares), each one all-reduce under a
    strategy with several replicas.
    """
    context = tf.distribute.get_replica_context()

    def global_sums(values):
        sums = [masked.masked_sum_and_count(v, mask) for v in values]
        stacked = tf.stack([total for total, _ in sums] + [sums[0][1]])
        if context is not None and context.num_replicas_in_sync > 1:
            stacked = context.all_reduce(tf.distribute.ReduceOp.SUM, stacked)
        return tf.unstack(stacked)

    *totals, count = global_sums(tensors)
    means = [tf.math.divide_no_nan(total, count) for total in totals]
    *squares, _ = global_sums(
        [tf.square(t - m) for t, m in zip(tensors, means)]
    )
    variances = [tf.math.divide_no_nan(square, count) for square in squares]
    return list(zip(means, variances))


class _Unwrapped:
    """Hides variables from `merge_call`, which would unwrap mirrored ones.

    The optimizer must see the mirrored variables themselves when it runs
    again in each replica (the LossScaleOptimizer does the same).
    """

    def __init__(self, value: list):
        self.value = value


def _apply_gradients_if(
    optimizer: Any, should_apply: tf.Tensor, grads: list, variables: list
) -> None:
    """`optimizer.apply_gradients` when `should_apply`, else nothing.

    The gradients are already summed across replicas and `should_apply` is
    the same on every replica. A `tf.cond` whose branch calls `merge_call`
    (as `apply_gradients` does under a MirroredStrategy) is not allowed in a
    replica context, so under such a strategy the condition is taken in the
    cross-replica context and the update re-enters the replicas, as Keras'
    LossScaleOptimizer does for its skipped steps.
    """

    def apply(grads, wrapped):
        optimizer.apply_gradients(
            zip(grads, wrapped.value), experimental_aggregate_gradients=False
        )

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(
            should_apply,
            lambda: apply(grads, _Unwrapped(variables)),
            lambda: None,
        )
        return

    def cross_replica(distribution, should_apply, grads, wrapped):
        should_apply = distribution.experimental_local_results(should_apply)[0]

        def apply_in_replicas():
            distribution.extended.call_for_each_replica(
                apply, args=(grads, wrapped)
            )

        tf.cond(should_apply, apply_in_replicas, lambda: None)

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(should_apply, grads, _Unwrapped(variables))
    )


class ActorCriticModel(tf.keras.Model):
    r"""Base of the actor-critic training models (`PPOModel`, `A2CModel`).

    Networks, in one of two layouts:

    * Separate: `actor` maps observations to the policy head's `params`
      (its PolicyHead is found inside it, usually as its last layer) and
      `critic` maps observations to values `[N, 1]` or `[N]`.
    * Shared trunk: `shared` maps observations to a pair `(params, value)`,
      e.g. a functional model with two outputs; its PolicyHead is found
      inside it. `actor` and `critic` stay None.

    `policy_head`, when given, is the PolicyHead that turns params into a
    distribution. If it is not a layer of `actor` (or `shared`), it is
    applied to their output, which then holds features rather than params:
    `actor` (or the first output of `shared`) is a torso. A network holding
    several PolicyHeads needs `policy_head` to say which one acts.

    The networks see observations with time merged into the batch,
    `[N, ...]` with N = B * T (a nest of observations is allowed), so
    feed-forward networks (Dense, Conv2D) work unchanged; recurrent
    networks that need `[B, T, ...]` are not supported.

    `call(observations)` returns `(params, value)`: the head's float32
    params `[N, params_size]` and the critic's float32 value `[N]` (a
    trailing axis of size 1 is dropped). `distribution(params)` delegates to
    the head; `act(observations)` samples actions for collection.

    Training (`fit` over rollout batches, `train_step`): each element of
    the dataset is one rollout batch (a dict, batch-major, keys below), e.g.
    from `keras_gae.models.rollout_dataset` (a dict of arrays with
    `batch_size` works too: Keras then slices rows). The step

    1. computes GAE with the `GeneralizedAdvantageEstimation` layer
       (Schulman et al. 2015, arXiv:1506.02438), in float32, unless the batch
       carries precomputed "advantage" and "return" (see
       `keras_gae.models.step_dataset`);
    2. normalizes the advantages over valid steps (and across replicas
       under a tf.distribute strategy) when `normalize_advantages`;
    3. evaluates the current networks on every step and minimizes

           loss = policy_loss + value_coef * value_loss
                  + entropy_coef * entropy_loss + kl_coef * kl_penalty
                  + regularization losses,

       with `entropy_loss = -mean H` (an entropy bonus) and `kl_penalty` a
       k-estimate of KL(pi || pi_ref) (`keras_gae.ops.policy_losses`), all
       masked means over valid steps in float32;
    4. clips the gradients to a global norm of `max_grad_norm` (after
       summing them across replicas) and applies them, unless the loss or a
       gradient is NaN or Inf (see "Non-finite losses").

    Rollout batch keys (`[B, T]` unless noted; DESIGN.md has the episode
    semantics):

    * "observation": `[B, T, ...]` (or a nest of such), s_t.
    * "action": `[B, T, ...]`, a_t as sampled (before postprocessing).
    * "log_prob": log pi_old(a_t | s_t) recorded at collection.
    * "value": V_old(s_t) recorded at collection.
    * "reward", "bootstrap_value" (`[B]`): GAE inputs, with the optional
      "terminated", "truncated", "truncation_value".
    * "advantage", "return": precomputed targets instead of the GAE inputs
      (when both are present the GAE inputs are not read).
    * "mask": optional validity of each step; masked steps enter neither the
      normalization nor the losses nor the metrics.
    * "ref_log_prob": log pi_ref(a_t | s_t) of a frozen reference policy, for
      the KL penalty (only with `kl_coef`). Without it the penalty is taken
      against the behaviour policy's "log_prob" (PPO's adaptive-KL variant,
      Schulman et al. 2017, arXiv:1707.06347, section 4).

    Metrics (Mean trackers in `metrics`, reset every epoch by Keras; each
    step weighted by its number of valid steps): "loss", "policy_loss",
    "value_loss", "entropy" (mean entropy, not its loss), "approx_kl" (the k3
    estimate of KL(pi_old || pi), Schulman 2020), "clip_fraction" (PPO),
    "value_clip_fraction", "explained_variance" (1 - Var[R - V_old] / Var[R]
    over valid steps, 0 when Var[R] = 0), "advantage_mean" and
    "advantage_std" (of the advantages before normalization), and with a KL
    penalty "kl_penalty" and "kl_coef".

    Distribution: under a tf.distribute strategy every replica's loss is its
    sum over valid steps divided by the global number of valid steps, so
    the summed gradients equal those of one device on the global batch.

    Mixed precision: build the networks and the model under a
    `mixed_float16` (or `mixed_bfloat16`) global policy; GAE,
    normalization, distributions and losses stay in float32. Under
    `mixed_float16`, `compile` wraps the optimizer in a LossScaleOptimizer
    as Keras does and the step scales the loss; steps whose scaled
    gradients overflow are skipped by the loss scale optimizer as usual and
    do not count as failures.

    Non-finite losses: a step whose loss (or, without loss scaling, a
    gradient) is NaN or Inf applies no update, nor does any later step of
    the same execution (`steps_per_execution`); `fit` (and
    `train_on_batch`) then raises `NonFiniteLossError` before any callback
    sees the step, so the weights, the optimizer state and the files of
    `ModelCheckpoint` are those from before the failing step. The check
    uses no graph assertion, so it works with `jit_compile=True`.

    Args:
      actor: Keras layer or model, observations -> params (or features when
        `policy_head` is applied on top). None with `shared`.
      critic: Keras layer or model, observations -> values `[N, 1]` or
        `[N]`. None with `shared`.
      shared: Keras layer or model, observations -> `(params, value)`.
      policy_head: the `PolicyHead`; see above.
      gamma: discount in [0, 1].
      lambda_: GAE lambda in [0, 1].
      value_coef: weight of the value loss, >= 0.
      entropy_coef: weight of the entropy loss, >= 0.
      value_clip: None, or c >= 0: clip the new value to within c of the
        recorded one ("max" form of `value_loss`).
      value_loss_type: "squared" (0.5 * e^2) or "huber".
      huber_delta: delta > 0 of the Huber value loss.
      normalize_advantages: whether to normalize advantages per batch.
      max_grad_norm: None, or the global gradient norm > 0 to clip to.
      kl_coef: None (no KL penalty), a float >= 0, or a KL controller from
        `keras_gae.losses.kl_control`: the step reads its coefficient, then
        calls `update(kl_penalty, n_steps)` with the global batch's KL
        penalty and number of valid steps. Create a controller in the
        strategy's scope; its coefficient variable is part of the model's
        weights (and checkpoints).
      kl_estimator: "k1", "k2" or "k3", the estimator of the KL penalty.
      gae_implementation: "auto", "scan" or "xla"; see
        `keras_gae.ops.generalized_advantage_estimation`.
      **kwargs: `tf.keras.Model` arguments (`name`, ...).

    Raises:
      ValueError: an argument out of range or an unknown option (naming
        the argument), an inconsistent choice of networks, no (or an
        ambiguous) PolicyHead; at training, a malformed rollout batch.
      TypeError: an argument of the wrong type.
    """

    # Metrics every model reports, in this order; subclasses add theirs.
    _POLICY_METRICS: tuple = ("approx_kl",)

    def __init__(
        self,
        actor: Optional[tf.keras.layers.Layer] = None,
        critic: Optional[tf.keras.layers.Layer] = None,
        *,
        shared: Optional[tf.keras.layers.Layer] = None,
        policy_head: Optional[PolicyHead] = None,
        gamma: float = 0.99,
        lambda_: float = 0.95,
        value_coef: float = 0.5,
        entropy_coef: float = 0.0,
        value_clip: Optional[float] = None,
        value_loss_type: str = "squared",
        huber_delta: float = 1.0,
        normalize_advantages: bool = True,
        max_grad_norm: Optional[float] = None,
        kl_coef: Any = None,
        kl_estimator: str = "k3",
        gae_implementation: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.gamma = _check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
        self.lambda_ = _check_float(
            lambda_, "lambda_", minimum=0.0, maximum=1.0
        )
        self.value_coef = _check_float(value_coef, "value_coef", minimum=0.0)
        self.entropy_coef = _check_float(
            entropy_coef, "entropy_coef", minimum=0.0
        )
        self.value_clip = _check_float(
            value_clip, "value_clip", minimum=0.0, allow_none=True
        )
        self.value_loss_type = _check_option(
            value_loss_type, "value_loss_type", VALUE_LOSS_TYPES
        )
        self.huber_delta = _check_float(
            huber_delta, "huber_delta", minimum=0.0, inclusive=False
        )
        self.normalize_advantages = _check_bool(
            normalize_advantages, "normalize_advantages"
        )
        self.max_grad_norm = _check_float(
            max_grad_norm,
            "max_grad_norm",
            minimum=0.0,
            inclusive=False,
            allow_none=True,
        )
        self.kl_coef = _check_kl_coef(kl_coef, "kl_coef")
        self.kl_estimator = _check_option(
            kl_estimator, "kl_estimator", KL_ESTIMATORS
        )
        self.gae_implementation = _check_option(
            gae_implementation, "gae_implementation", gae_ops.IMPLEMENTATIONS
        )
        self._set_networks(actor, critic, shared, policy_head)

        # float32 even under a mixed-precision policy (the layers' default).
        self.gae = GeneralizedAdvantageEstimation(
            self.gamma,
            self.lambda_,
            implementation=self.gae_implementation,
            name="gae",
        )
        self.advantage_normalization = (
            AdvantageNormalization(name="advantage_normalization")
            if self.normalize_advantages
            else None
        )
        self._create_trackers()

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _create_trackers(self) -> None:
        # Untracked, so that metric state stays out of `weights` and of the
        # checkpoints; `metrics` lists them for Keras to reset.
        self._trackers = {
            name: tf.keras.metrics.Mean(name=name) for name in self.metric_names
        }
        # Counts failed steps; a positive count also blocks the updates of
        # the remaining steps of the same execution.
        self._nonfinite_steps = tf.keras.metrics.Sum(name="nonfinite_steps")

    # Construction.

    def _set_networks(
        self,
        actor: Any,
        critic: Any,
        shared: Any,
        policy_head: Any,
    ) -> None:
        named = {"actor": actor, "critic": critic, "shared": shared}
        for name, network in named.items():
            if network is not None and not isinstance(
                network, tf.keras.layers.Layer
            ):
                raise TypeError(
                    f"`{name}` must be a Keras layer or model. "
                    f"Received: {name}={network!r}"
                )
        if policy_head is not None and not isinstance(policy_head, PolicyHead):
            raise TypeError(
                "`policy_head` must be a keras_gae PolicyHead (e.g. "
                "CategoricalPolicyHead). "
                f"Received: policy_head={policy_head!r}"
            )
        if shared is not None:
            if actor is not None or critic is not None:
                raise ValueError(
                    "Pass either `shared` (a network returning (params, "
                    "value)) or `actor` and `critic`, not both. Received: "
                    f"actor={actor!r}, critic={critic!r}, shared={shared!r}"
                )
            policy_network, network_name = shared, "shared"
        else:
            for name in ("actor", "critic"):
                if named[name] is None:
                    raise ValueError(
                        f"`{name}` is required unless `shared` is given. "
                        f"Received: {name}=None"
                    )
            policy_network, network_name = actor, "actor"

        heads = _policy_heads_inside(policy_network)
        if policy_head is None:
            if len(heads) != 1:
                found = "no PolicyHead" if not heads else f"{len(heads)} heads"
                raise ValueError(
                    f"`{network_name}` holds {found}; end it with a "
                    "PolicyHead (e.g. CategoricalPolicyHead) or pass "
                    "`policy_head=` (applied to its output). "
                    f"Received: {network_name}={policy_network!r}"
                )
            policy_head = heads[0]
            apply_head = False
        elif any(policy_head is head for head in heads):
            apply_head = False
        elif heads:
            raise ValueError(
                f"`policy_head` is not among the PolicyHeads of "
                f"`{network_name}`, which already holds {len(heads)}; pass "
                "one of those, or a torso without a head. "
                f"Received: policy_head={policy_head!r}"
            )
        else:
            apply_head = True
        self.actor = actor
        self.critic = critic
        self.shared = shared
        self.policy_head = policy_head
        self._apply_policy_head = apply_head

    @property
    def metric_names(self) -> tuple:
        """Names of the metrics `train_step` returns, in order."""
        names = (
            ("loss", "policy_loss", "value_loss", "entropy")
            + self._POLICY_METRICS
            + (
                "value_clip_fraction",
                "explained_variance",
                "advantage_mean",
                "advantage_std",
            )
        )
        if self.kl_coef is not None:
            names += ("kl_penalty", "kl_coef")
        return names

    @property
    def metrics(self) -> list:
        return [self._trackers[name] for name in self.metric_names] + [
            self._nonfinite_steps
        ]

    # Inference.

    def call(self, observations: Any, training: Any = None) -> tuple:
        """`(params, value)` for observations with any leading batch dims.

        Args:
          observations: `[N, ...]` (or a nest), what the networks accept.
          training: passed to the networks.

        Returns:
          `(params, value)`: float32 head params `[N, params_size]` and float32
          values `[N]` (the critic's trailing axis of size 1 dropped).
        """
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
        if self._apply_policy_head:
            params = self.policy_head(params)
        values = tf.convert_to_tensor(values)
        if values.shape.rank is not None and values.shape.rank >= 2:
            if values.shape[-1] == 1:
                values = tf.squeeze(values, axis=-1)
        return tf.cast(params, tf.float32), tf.cast(values, tf.float32)

    def distribution(self, params: tf.Tensor) -> Any:
        """The policy head's tfp distribution for `params`."""
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

    def compute_advantages(self, batch: Mapping) -> tuple:
        """GAE `(advantages, returns)`, `[B, T]` float32, for a rollout batch.

        Uses the model's `gae` layer (its gamma and lambda_); reads
        "reward", "value", "bootstrap_value" and the optional "terminated",
        "truncated", "truncation_value" and "mask".
        """
        keys = ("reward", "value", "bootstrap_value") + _GAE_OPTIONAL
        inputs = {key: batch[key] for key in keys + ("mask",) if key in batch}
        return self.gae(inputs)

    # Training. The helpers below are plain TensorFlow without Python
    # control flow on tensors; `do_not_convert` spares them (and the layers
    # and ops they call) AutoGraph's conversion, which dominated the time
    # to trace a train step. The networks themselves, called from
    # `train_step`, are converted as usual.

    @tf.autograph.experimental.do_not_convert
    def _check_batch(self, data: Any) -> dict:
        if isinstance(data, tuple) and len(data) == 1:
            # `train_on_batch(batch)` and `evaluate(batch)` pass `(batch,)`.
            (data,) = data
        if not isinstance(data, Mapping):
            raise TypeError(
                "Each element `fit` trains on must be one rollout batch: a "
                f"dict with keys among {list(BATCH_KEYS)}. "
                f"Received: batch={data!r}"
            )
        batch = dict(data)
        unknown = sorted(key for key in batch if key not in BATCH_KEYS)
        if unknown:
            raise ValueError(
                f"The rollout batch has unknown key(s) {unknown}; accepted "
                f"keys are {list(BATCH_KEYS)}. "
                f"Received: batch keys={sorted(batch)}"
            )
        precomputed = [key for key in _PRECOMPUTED if key in batch]
        if len(precomputed) == 1:
            raise ValueError(
                'A rollout batch carries both "advantage" and "return" or '
                f"neither. Received: batch keys={sorted(batch)}"
            )
        required = _ALWAYS_REQUIRED + (() if precomputed else _GAE_REQUIRED)
        missing = [key for key in required if key not in batch]
        if missing:
            raise ValueError(
                f"The rollout batch is missing key(s) {missing}. "
                f"Received: batch keys={sorted(batch)}"
            )
        if "ref_log_prob" in batch and self.kl_coef is None:
            raise ValueError(
                'The rollout batch carries "ref_log_prob" but the model has '
                "no KL penalty to use it; pass `kl_coef`. "
                f"Received: kl_coef=None, batch keys={sorted(batch)}"
            )
        reference_key = "advantage" if precomputed else "reward"
        for key in (reference_key, "log_prob", "value"):
            batch[key] = _checks.convert_float(batch[key], f'batch["{key}"]')
        reference = batch[reference_key]
        _checks.check_rank(reference, 2, f'batch["{reference_key}"]', "[B, T]")
        per_step = ("log_prob", "value", "return", "ref_log_prob", "mask")
        per_step += _GAE_OPTIONAL + ("reward",)
        for key in per_step:
            if key in batch and key != reference_key:
                tensor = tf.convert_to_tensor(batch[key])
                if not tensor.shape.is_compatible_with(reference.shape):
                    raise ValueError(
                        f'batch["{key}"] must have the shape [B, T] of '
                        f'batch["{reference_key}"] {tuple(reference.shape)}. '
                        f"Received: batch[{key!r}]={_checks.describe(tensor)}"
                    )
        leading = reference.shape[:2]
        for key in ("observation", "action"):
            for leaf in tf.nest.flatten(batch[key]):
                leaf = tf.convert_to_tensor(leaf)
                if leaf.shape.rank is not None and (
                    leaf.shape.rank < 2
                    or not leaf.shape[:2].is_compatible_with(leading)
                ):
                    raise ValueError(
                        f'batch["{key}"] must be [B, T, ...] with the '
                        f"[B, T] = {tuple(leading)} of "
                        f'batch["{reference_key}"]. '
                        f"Received: batch[{key!r}]={_checks.describe(leaf)}"
                    )
        return batch

    @tf.autograph.experimental.do_not_convert
    def _prepare(self, batch: dict, training: bool) -> _PreparedBatch:
        """Targets, statistics and time-merged inputs of a checked batch."""
        mask = batch.get("mask")
        if mask is not None:
            mask = _checks.convert_flag(mask, 'batch["mask"]')
        if "advantage" in batch:
            advantages = tf.cast(batch["advantage"], tf.float32)
            returns = _checks.convert_float(batch["return"], 'batch["return"]')
            returns = tf.cast(returns, tf.float32)
            if mask is not None:
                zeros = tf.zeros_like(advantages)
                advantages = tf.where(mask, advantages, zeros)
        else:
            advantages, returns = self.compute_advantages(batch)
            advantages = tf.cast(advantages, tf.float32)
            returns = tf.cast(returns, tf.float32)
        advantages = tf.stop_gradient(advantages)
        returns = tf.stop_gradient(returns)
        old_values = tf.cast(batch["value"], tf.float32)

        (mean, variance), (_, returns_variance), (_, residual_variance) = (
            _global_moments([advantages, returns, returns - old_values], mask)
        )
        statistics = {
            "advantage_mean": mean,
            "advantage_std": tf.sqrt(variance),
            "explained_variance": tf.where(
                returns_variance > 0,
                1.0
                - tf.math.divide_no_nan(residual_variance, returns_variance),
                tf.zeros([]),
            ),
        }
        if self.advantage_normalization is not None:
            advantages = self.advantage_normalization(
                advantages, mask=mask, training=training
            )
        if mask is None:
            count = tf.cast(tf.size(advantages), tf.float32)
        else:
            count = tf.reduce_sum(tf.cast(mask, tf.float32))
        ref_log_probs = batch.get("ref_log_prob")
        if ref_log_probs is not None:
            ref_log_probs = _checks.convert_float(
                ref_log_probs, 'batch["ref_log_prob"]'
            )
            ref_log_probs = tf.cast(ref_log_probs, tf.float32)
        return _PreparedBatch(
            observations=tf.nest.map_structure(
                lambda x: _merge_time(tf.convert_to_tensor(x)),
                batch["observation"],
            ),
            actions=_merge_time(tf.convert_to_tensor(batch["action"])),
            advantages=advantages,
            returns=returns,
            old_values=old_values,
            old_log_probs=tf.cast(batch["log_prob"], tf.float32),
            ref_log_probs=ref_log_probs,
            mask=mask,
            count=count,
            statistics=statistics,
        )

    def _policy_loss(
        self,
        log_probs: tf.Tensor,
        old_log_probs: tf.Tensor,
        advantages: tf.Tensor,
        mask: Optional[tf.Tensor],
    ) -> dict:
        """The policy loss and its metrics; subclasses implement it.

        Returns:
          A dict with "policy_loss" and every name in `_POLICY_METRICS`.
        """
        raise NotImplementedError

    def _kl_coefficient(self) -> tf.Tensor:
        if isinstance(self.kl_coef, float):
            return tf.constant(self.kl_coef, tf.float32)
        return tf.cast(self.kl_coef.value, tf.float32)

    @tf.autograph.experimental.do_not_convert
    def _loss_terms(
        self, prepared: _PreparedBatch, params: tf.Tensor, values: tf.Tensor
    ) -> dict:
        """The losses and metrics on this replica (masked means, float32).

        "loss" includes the regularization losses, also returned alone
        under "regularization".
        """
        if values.shape.rank is not None and values.shape.rank != 1:
            raise ValueError(
                "The critic must return one value per observation, [N] or "
                f"[N, 1] for N observations, got shape {tuple(values.shape)} "
                f"after dropping a trailing 1. Received: critic={self.critic!r}"
            )
        shape = tf.shape(prepared.advantages)
        mask = prepared.mask
        distribution = self.distribution(params)
        actions = prepared.actions
        if actions.dtype != distribution.dtype:
            actions = tf.cast(actions, distribution.dtype)
        log_probs = distribution.log_prob(actions)
        log_probs = tf.reshape(tf.cast(log_probs, tf.float32), shape)
        entropy = tf.cast(distribution.entropy(), tf.float32)
        entropy = tf.reshape(entropy, shape)
        values = tf.reshape(values, shape)

        results = self._policy_loss(
            log_probs, prepared.old_log_probs, prepared.advantages, mask
        )
        value_outputs = policy_losses.value_loss(
            values,
            prepared.returns,
            old_values=(
                prepared.old_values if self.value_clip is not None else None
            ),
            clip_range=self.value_clip,
            loss_type=self.value_loss_type,
            huber_delta=self.huber_delta,
            mask=mask,
        )
        entropy_loss = policy_losses.entropy_loss(entropy, mask=mask)
        loss = (
            results["policy_loss"]
            + self.value_coef * value_outputs.loss
            + self.entropy_coef * entropy_loss
        )
        results.update(prepared.statistics)
        results.update(
            value_loss=value_outputs.loss,
            entropy=-entropy_loss,
            value_clip_fraction=value_outputs.clip_fraction,
        )
        if self.kl_coef is not None:
            ref_log_probs = prepared.ref_log_probs
            if ref_log_probs is None:
                ref_log_probs = prepared.old_log_probs
            kl_penalty = policy_losses.kl_penalty_loss(
                log_probs, ref_log_probs, estimator=self.kl_estimator, mask=mask
            )
            coefficient = self._kl_coefficient()
            loss += coefficient * kl_penalty
            results.update(kl_penalty=kl_penalty, kl_coef=coefficient)
        regularization = tf.zeros([])
        if self.losses:
            regularization = tf.add_n(
                [tf.cast(term, tf.float32) for term in self.losses]
            )
        results["loss"] = loss + regularization
        results["regularization"] = regularization
        return results

    @tf.autograph.experimental.do_not_convert
    def _replica_objective(self, results: dict, count: tf.Tensor) -> tuple:
        """This replica's share of the global loss, and its weight.

        Every masked mean becomes a sum over this replica's valid steps
        divided by the global number of valid steps, so the gradients summed
        over replicas are those of the global batch; regularization is
        split evenly.

        Returns:
          `(loss, weight)`.
        """
        context = tf.distribute.get_replica_context()
        num_replicas = context.num_replicas_in_sync
        regularization = results["regularization"]
        data_loss = results["loss"] - regularization
        if num_replicas == 1:
            return results["loss"], tf.ones([])
        global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        weight = tf.math.divide_no_nan(count, global_count)
        return data_loss * weight + regularization / num_replicas, weight

    @tf.autograph.experimental.do_not_convert
    def _apply_update(
        self,
        tape: tf.GradientTape,
        loss: tf.Tensor,
        tape_loss: tf.Tensor,
        halted: tf.Tensor,
    ) -> None:
        """Gradients, all-reduce, clipping and the guarded update."""
        context = tf.distribute.get_replica_context()
        num_replicas = context.num_replicas_in_sync
        optimizer = self.optimizer
        scaling = isinstance(
            optimizer, tf.keras.mixed_precision.LossScaleOptimizer
        )
        variables = self.trainable_variables
        gradients = tape.gradient(tape_loss, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        gradients = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        if scaling:
            gradients = optimizer.get_unscaled_gradients(gradients)
        if num_replicas > 1:
            gradients = context.all_reduce(
                tf.distribute.ReduceOp.SUM, gradients
            )
        if self.max_grad_norm is not None:
            gradients, _ = tf.clip_by_global_norm(gradients, self.max_grad_norm)

        finite = tf.math.is_finite(loss)
        if num_replicas > 1:
            failures = context.all_reduce(
                tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32)
            )
            finite = failures == 0
        if scaling and optimizer.dynamic:
            # Overflowing scaled gradients are the loss scale's business: it
            # skips such steps itself. NaN gradients make it skip the steps
            # this model refuses.
            apply = tf.logical_and(finite, tf.logical_not(halted))
            gradients = [tf.convert_to_tensor(g) for g in gradients]
            nan = tf.constant(np.nan, tf.float32)
            gradients = [
                tf.where(apply, g, tf.fill(tf.shape(g), nan)) for g in gradients
            ]
            optimizer.apply_gradients(
                zip(gradients, variables),
                experimental_aggregate_gradients=False,
            )
        else:
            if scaling:
                optimizer = optimizer.inner_optimizer
            finite = tf.logical_and(finite, _all_finite(gradients))
            apply = tf.logical_and(finite, tf.logical_not(halted))
            _apply_gradients_if(optimizer, apply, gradients, variables)
        self._nonfinite_steps.update_state(
            tf.cast(tf.logical_not(finite), tf.float32)
        )

    @tf.autograph.experimental.do_not_convert
    def _update_kl_controller(
        self, kl_penalty: tf.Tensor, count: tf.Tensor, weight: tf.Tensor
    ) -> None:
        """Feeds the controller the global batch's KL and number of steps."""
        context = tf.distribute.get_replica_context()
        if context.num_replicas_in_sync > 1:
            kl_penalty, count = context.all_reduce(
                tf.distribute.ReduceOp.SUM, [kl_penalty * weight, count]
            )
        self.kl_coef.update(tf.stop_gradient(kl_penalty), count)

    @tf.autograph.experimental.do_not_convert
    def _update_trackers(self, results: dict, count: tf.Tensor) -> dict:
        for name in self.metric_names:
            self._trackers[name].update_state(
                results[name], sample_weight=count
            )
        return {
            name: self._trackers[name].result() for name in self.metric_names
        }

    def train_step(self, data: Any) -> dict:
        """One gradient step on one rollout batch; returns the metrics."""
        batch = self._check_batch(data)
        halted = self._nonfinite_steps.result() > 0
        prepared = self._prepare(batch, training=True)
        with tf.GradientTape() as tape:
            params, values = self(prepared.observations, training=True)
            results = self._loss_terms(prepared, params, values)
            loss, weight = self._replica_objective(results, prepared.count)
            tape_loss = loss
            if isinstance(
                self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer
            ):
                tape_loss = self.optimizer.get_scaled_loss(loss)
        self._apply_update(tape, loss, tape_loss, halted)
        if self.kl_coef is not None and not isinstance(self.kl_coef, float):
            self._update_kl_controller(
                results["kl_penalty"], prepared.count, weight
            )
        return self._update_trackers(results, prepared.count)

    def test_step(self, data: Any) -> dict:
        """The losses and metrics of one rollout batch, without an update."""
        batch = self._check_batch(data)
        prepared = self._prepare(batch, training=False)
        params, values = self(prepared.observations, training=False)
        results = self._loss_terms(prepared, params, values)
        return self._update_trackers(results, prepared.count)

    def make_train_function(self, force: bool = False) -> Any:
        """Keras' train function, followed by the non-finite-step check.

        The check runs in Python after every execution, before `fit` hands
        the logs to the callbacks.
        """
        if self.train_function is not None and not force:
            return self.train_function
        train_function = super().make_train_function(force=force)

        def checked_train_function(iterator):
            logs = train_function(iterator)
            self._raise_if_nonfinite()
            return logs

        self.train_function = checked_train_function
        return checked_train_function

    def _raise_if_nonfinite(self) -> None:
        if self._nonfinite_steps.result().numpy() > 0:
            raise NonFiniteLossError(
                "Training stopped: the loss or a gradient is NaN or Inf. The "
                "failing step's update was not applied, so the weights are "
                f"those after {int(self.optimizer.iterations.numpy())} "
                "optimizer updates. Look for non-finite rewards, values or "
                "observations in the rollout batch, or lower the learning "
                "rate."
            )

    # Serialization.

    def get_config(self) -> dict:
        config = super().get_config()
        kl_coef = self.kl_coef
        if kl_coef is not None and not isinstance(kl_coef, float):
            kl_coef = _serialize(kl_coef)
        if self._apply_policy_head:
            policy_head = _serialize(self.policy_head)
        else:
            # A head inside the network is restored with it; its name picks
            # it out when the network holds several.
            network = self.actor if self.shared is None else self.shared
            several = len(_policy_heads_inside(network)) > 1
            policy_head = self.policy_head.name if several else None
        config.update(
            {
                "name": self.name,
                "actor": _serialize(self.actor),
                "critic": _serialize(self.critic),
                "shared": _serialize(self.shared),
                "policy_head": policy_head,
                "gamma": self.gamma,
                "lambda_": self.lambda_,
                "value_coef": self.value_coef,
                "entropy_coef": self.entropy_coef,
                "value_clip": self.value_clip,
                "value_loss_type": self.value_loss_type,
                "huber_delta": self.huber_delta,
                "normalize_advantages": self.normalize_advantages,
                "max_grad_norm": self.max_grad_norm,
                "kl_coef": kl_coef,
                "kl_estimator": self.kl_estimator,
                "gae_implementation": self.gae_implementation,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> Any:
        config = dict(config)
        for key in ("actor", "critic", "shared"):
            config[key] = _deserialize(config.get(key), custom_objects)
        head = config.get("policy_head")
        if isinstance(head, str):
            network = config["shared"] or config["actor"]
            by_name = {h.name: h for h in _policy_heads_inside(network)}
            config["policy_head"] = by_name[head]
        else:
            config["policy_head"] = _deserialize(head, custom_objects)
        if isinstance(config.get("kl_coef"), dict):
            config["kl_coef"] = _deserialize(config["kl_coef"], custom_objects)
        return cls(**config)

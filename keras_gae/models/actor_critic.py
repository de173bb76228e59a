"""The actor-critic training model that PPO and A2C share.

Letters used in shapes: `B` rows (environments or generated sequences),
`T` steps per row, `N = B * T` steps after merging time into the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import NamedTuple
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.layers import PolicyHead
from keras_gae.layers.gae import GeneralizedAdvantageEstimation
from keras_gae.layers.normalization import AdvantageNormalization
from keras_gae.models import network_layout as networks_lib
from keras_gae.models import training_step
from keras_gae.ops import _checks
from keras_gae.ops import gae as gae_ops
from keras_gae.ops import kl
from keras_gae.ops import value_losses

_HYPERPARAMETERS = (
    "gamma",
    "lambda_",
    "value_coef",
    "entropy_coef",
    "value_clip",
    "value_loss_type",
    "huber_delta",
    "normalize_advantages",
    "max_grad_norm",
    "kl_estimator",
    "gae_implementation",
)


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


class ActorCriticModel(training_step.RolloutTraining, keras.Model):
    r"""Base of the actor-critic training models (`PPOModel`, `A2CModel`).

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

    Training (`fit` over rollout batches): each element of the dataset is
    one rollout batch (a dict, batch-major; docs/design.md, "Rollout
    batch"), e.g. from `keras_gae.models.rollout_dataset`. Such a dataset
    shuffles itself, so `fit` passes Keras `shuffle=False` for a dataset
    unless told otherwise (Keras would ignore it with a warning). The step

    1. computes GAE with the `GeneralizedAdvantageEstimation` layer
       (Schulman et al. 2015, arXiv:1506.02438), in float32, unless the batch
       carries precomputed "advantage" and "return" (`step_dataset`);
    2. normalizes the advantages over valid steps (and across replicas
       under a tf.distribute strategy) when `normalize_advantages`;
    3. evaluates the current networks on every step and minimizes

           loss = policy_loss + value_coef * value_loss
                  + entropy_coef * entropy_loss + kl_coef * kl_penalty
                  + regularization losses,

       with `entropy_loss = -mean H` (an entropy bonus) and `kl_penalty` a
       k-estimate of KL(pi || pi_ref), all masked means over valid steps in
       float32. The penalty is taken against "ref_log_prob" when the batch
       has it, else against the behaviour policy's "log_prob" (PPO's
       adaptive-KL variant, Schulman et al. 2017, arXiv:1707.06347, s. 4);
    4. clips the gradients to a global norm of `max_grad_norm` (after
       summing them across replicas) and applies them, unless the loss or a
       gradient is NaN or Inf (see "Non-finite losses").

    Masked steps ("mask" false) enter neither the normalization nor the
    losses nor the metrics. Metrics (Mean trackers, reset every epoch,
    each step weighted by its number of valid steps): "loss",
    "policy_loss", "value_loss", "entropy", "approx_kl" (k3 estimate of
    KL(pi_old || pi)), "clip_fraction" (PPO), "value_clip_fraction",
    "explained_variance", "advantage_mean" and "advantage_std" (before
    normalization), and with a KL penalty "kl_penalty" and "kl_coef".

    Distribution: under a tf.distribute strategy (Mirrored or
    MultiWorkerMirrored) every replica's loss is its sum over valid steps
    divided by the global number of valid steps and its regularization
    losses divided by the number of replicas, so the summed gradients
    equal those of one device on the global batch.

    Mixed precision: build the networks and the model under a
    `mixed_float16` (or `mixed_bfloat16`) global policy; GAE,
    normalization, distributions and losses stay in float32. Under
    `mixed_float16`, `compile` wraps the optimizer in Keras'
    LossScaleOptimizer and the step scales the loss; steps whose scaled
    gradients overflow are skipped by the loss scale as usual and do not
    count as failures.

    Non-finite losses: a step whose loss (or, without loss scaling, a
    gradient) is NaN or Inf applies no update, nor does any later step of
    the same execution (`steps_per_execution`); `fit` (and
    `train_on_batch`) then raises `NonFiniteLossError` before any callback
    sees the step, so the weights, the optimizer state and the files of
    `ModelCheckpoint` are those from before the failing step. The check
    uses no graph assertion, so it works with `jit_compile=True`.

    Example:

    ```python
    import keras
    import keras_gae

    actor = keras.Sequential([
        keras.layers.Dense(64, activation="tanh"),
        keras_gae.layers.CategoricalPolicyHead(2),
    ])
    critic = keras.Sequential([
        keras.layers.Dense(64, activation="tanh"),
        keras.layers.Dense(1),
    ])
    model = keras_gae.models.PPOModel(actor, critic, gamma=0.99)
    model.compile(optimizer=keras.optimizers.Adam(3e-4))
    ```

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
        `keras_gae.losses` (`FixedKLController`, `AdaptiveKLController`):
        the step reads its coefficient, then calls `update(kl_penalty,
        n_steps)` with the global batch's KL penalty and number of valid
        steps. Create a controller in the strategy's scope; its coefficient
        variable is part of the model's weights (and checkpoints).
      kl_estimator: "k1", "k2" or "k3", the estimator of the KL penalty.
      gae_implementation: one of `keras_gae.ops.IMPLEMENTATIONS`; see
        `keras_gae.ops.generalized_advantage_estimation`.
      **kwargs: `keras.Model` arguments (`name`, ...).

    Raises:
      ValueError: an argument out of range or an unknown option (naming
        the argument), an inconsistent choice of networks, no (or an
        ambiguous) PolicyHead; at training, a malformed rollout batch.
      TypeError: an argument of the wrong type, a network that is not a
        Keras 3 layer (a tf-keras one included).
    """

    # Metrics every model reports, in this order; subclasses add theirs.
    _POLICY_METRICS: tuple = ("approx_kl",)

    def __init__(
        self,
        actor: Optional[keras.layers.Layer] = None,
        critic: Optional[keras.layers.Layer] = None,
        *,
        shared: Optional[keras.layers.Layer] = None,
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
        check = _checks.check_float
        self.gamma = check(gamma, "gamma", minimum=0.0, maximum=1.0)
        self.lambda_ = check(lambda_, "lambda_", minimum=0.0, maximum=1.0)
        self.value_coef = check(value_coef, "value_coef", minimum=0.0)
        self.entropy_coef = check(entropy_coef, "entropy_coef", minimum=0.0)
        self.value_clip = check(
            value_clip, "value_clip", minimum=0.0, allow_none=True
        )
        self.value_loss_type = _checks.check_option(
            value_loss_type, "value_loss_type", value_losses.VALUE_LOSS_TYPES
        )
        self.huber_delta = check(
            huber_delta, "huber_delta", minimum=0.0, inclusive=False
        )
        self.normalize_advantages = _checks.check_bool(
            normalize_advantages, "normalize_advantages"
        )
        self.max_grad_norm = check(
            max_grad_norm,
            "max_grad_norm",
            minimum=0.0,
            inclusive=False,
            allow_none=True,
        )
        self.kl_coef = _checks.check_kl_coef(kl_coef, "kl_coef")
        self.kl_estimator = _checks.check_option(
            kl_estimator, "kl_estimator", kl.KL_ESTIMATORS
        )
        self.gae_implementation = _checks.check_option(
            gae_implementation, "gae_implementation", gae_ops.IMPLEMENTATIONS
        )
        self._networks = networks_lib.resolve_networks(
            actor, critic, shared, policy_head
        )
        self.actor = actor
        self.critic = critic
        self.shared = shared
        self.policy_head = self._networks.policy_head

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
        # Neither layer's weights depend on the input shape; built now, the
        # model holds no unbuilt state once its networks are built. Both
        # see `[B, T]` tensors of sizes unknown yet, which `summary()`
        # shows as their output shapes.
        self.gae.build(None)
        if self.advantage_normalization is not None:
            self.advantage_normalization.build((None, None))
        self._create_trackers()

    # Inference.

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

    def compute_advantages(self, batch: Mapping) -> tuple:
        """GAE `(advantages, returns)`, `[B, T]` float32, for a rollout batch.

        Uses the model's `gae` layer (its gamma and lambda_) on the batch's
        GAE inputs (`keras_gae.layers.GeneralizedAdvantageEstimation`).
        """
        inputs = {
            key: batch[key]
            for key in rollout_batch.GAE_ARGUMENTS
            if key in batch
        }
        return self.gae(inputs)

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

    # Serialization.

    def get_config(self) -> dict:
        config = super().get_config()
        kl_coef = self.kl_coef
        if kl_coef is not None and not isinstance(kl_coef, float):
            kl_coef = networks_lib.serialize(kl_coef)
        config.update(
            {
                "name": self.name,
                "actor": networks_lib.serialize(self.actor),
                "critic": networks_lib.serialize(self.critic),
                "shared": networks_lib.serialize(self.shared),
                "policy_head": networks_lib.policy_head_config(self._networks),
                "kl_coef": kl_coef,
            }
        )
        config.update({key: getattr(self, key) for key in _HYPERPARAMETERS})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> Any:
        config = dict(config)
        for key in ("actor", "critic", "shared"):
            config[key] = networks_lib.deserialize(
                config.get(key), custom_objects
            )
        config["policy_head"] = networks_lib.restore_policy_head(
            config.get("policy_head"),
            config["shared"] or config["actor"],
            custom_objects,
        )
        if isinstance(config.get("kl_coef"), dict):
            config["kl_coef"] = networks_lib.deserialize(
                config["kl_coef"], custom_objects
            )
        return cls(**config)

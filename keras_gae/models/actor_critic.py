"""The actor-critic training model that PPO and A2C share.

Letters used in shapes: `B` rows (environments or generated sequences),
`T` steps per row, `N = B * T` steps after merging time into the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.layers import PolicyHead
from keras_gae.layers.generalized_advantage_estimation import (
    GeneralizedAdvantageEstimation,
)
from keras_gae.layers.normalization import AdvantageNormalization
from keras_gae.models import network_layout
from keras_gae.models import objective
from keras_gae.models import optimization
from keras_gae.models.fit_hooks import FitHooks
from keras_gae.models.inference import ActorCriticInference
from keras_gae.ops import _checks
from keras_gae.ops import gae as gae_ops
from keras_gae.ops import kl
from keras_gae.ops import policy_losses
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


class ActorCriticModel(ActorCriticInference, FitHooks, keras.Model):
    r"""Base of the actor-critic training models (`PPOModel`, `A2CModel`).

    Networks (Keras 3 layers or models): `actor` and `critic`, or one
    `shared` network returning `(params, value)`, with a PolicyHead inside
    the policy network or given as `policy_head`; `call(observations)`
    returns `(params [N, params_size], value [N])` and `act` samples
    actions (`keras_gae.models.inference.ActorCriticInference` tells how).

    Training (`fit` over rollout batches): each element of the dataset is
    one rollout batch (a dict, batch-major; docs/design.md, "Rollout
    batch"), e.g. from `keras_gae.models.rollout_dataset`, which shuffles
    itself: `fit` passes Keras `shuffle=False` for a dataset unless told
    otherwise. `train_step` computes GAE (Schulman et al. 2015,
    arXiv:1506.02438) in float32 unless the batch carries "advantage" and
    "return" (`step_dataset`), normalizes the advantages over valid steps
    (across replicas too) when `normalize_advantages`, evaluates the
    networks on every step and minimizes

        loss = policy_loss + value_coef * value_loss
               + entropy_coef * entropy_loss + kl_coef * kl_penalty
               + regularization losses,

    with `entropy_loss = -mean H` (an entropy bonus) and `kl_penalty` a
    k-estimate of KL(pi || pi_ref) against "ref_log_prob" when the batch
    has it, else the behaviour policy's "log_prob" (PPO's adaptive-KL
    variant, Schulman et al. 2017, arXiv:1707.06347, s. 4), all masked
    means in float32; the gradients, summed across replicas, are clipped
    to a global norm of `max_grad_norm`.

    Masked steps ("mask" false) enter neither the normalization nor the
    losses nor the metrics (`FitHooks` lists them).

    Distribution: under a Mirrored or MultiWorkerMirrored strategy the
    summed gradients equal one device's on the global batch
    (`keras_gae.models.objective.replica_objective`).

    Mixed precision and non-finite steps (which raise
    `NonFiniteLossError` before any callback sees them):
    `keras_gae.models.fit_hooks.FitHooks`.

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
        # Neither layer's weights depend on the input shape; built now, the
        # model holds no unbuilt state once its networks are built. Both
        # see `[B, T]` tensors of sizes unknown yet, which `summary()`
        # shows as their output shapes.
        self.gae.build(None)
        if self.advantage_normalization is not None:
            self.advantage_normalization.build((None, None))
        self._create_trackers()

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

    # Training: the update `fit` runs on each rollout batch. PPO and A2C
    # share it; they differ in `_policy_loss` only.

    def train_step(self, data: Any) -> dict:
        """One update on one rollout batch; returns the metrics."""
        batch = self._check_batch(data)
        halted = self._halted()
        # 1. Targets (GAE advantages and returns, normalized advantages)
        #    and the networks' inputs, time merged into the batch.
        prepared = self._prepare(batch, training=True)
        with tf.GradientTape() as tape:
            # 2. Forward pass of the current networks over every step.
            params, values = self(prepared.observations, training=True)
            # 3. Policy, value and entropy losses (KL penalty, weights'
            #    regularization), this replica's share of the global loss.
            results = self._loss_terms(prepared, params, values)
            loss, weight = objective.replica_objective(results, prepared.count)
            tape_loss = optimization.scaled_loss(self.optimizer, loss)
        # 4. Optimizer step: gradients summed over replicas and clipped,
        #    applied unless non-finite or the batch was refused.
        finite, problems = optimization.guarded_update(
            self.optimizer,
            tape,
            self.trainable_variables,
            loss,
            tape_loss,
            halted,
            self.max_grad_norm,
            prepared.count,
            prepared.problems,
        )
        self._record_failures(finite, problems)
        if self.kl_coef is not None and not isinstance(self.kl_coef, float):
            objective.update_kl_controller(
                self.kl_coef, results["kl_penalty"], prepared.count, weight
            )
        return self._update_trackers(results, prepared.count)

    def test_step(self, data: Any) -> dict:
        """The losses and metrics of one rollout batch, without an update."""
        batch = self._check_batch(data)
        prepared = self._prepare(batch, training=False)
        params, values = self(prepared.observations, training=False)
        results = self._loss_terms(prepared, params, values)
        return self._update_trackers(results, prepared.count)

    @tf.autograph.experimental.do_not_convert
    def _prepare(self, batch: dict, training: bool) -> objective.PreparedBatch:
        """Step 1: targets, their statistics and inputs of a checked batch.

        GAE runs unless the batch carries precomputed "advantage" and
        "return"; the statistics are taken before normalization.
        """
        mask = objective.batch_mask(batch)
        if rollout_batch.ADVANTAGE in batch:
            advantages, returns = objective.precomputed_targets(batch, mask)
        else:
            advantages, returns = self.compute_advantages(batch)
        advantages = tf.stop_gradient(tf.cast(advantages, tf.float32))
        returns = tf.stop_gradient(tf.cast(returns, tf.float32))
        old_values = tf.cast(batch[rollout_batch.VALUE], tf.float32)
        statistics = objective.target_statistics(
            advantages, returns, old_values, mask
        )
        if self.advantage_normalization is not None:
            advantages = self.advantage_normalization(
                advantages, mask=mask, training=training
            )
        actions, bad_actions = objective.checked_actions(
            self.policy_head, batch[rollout_batch.ACTION], mask
        )
        return objective.PreparedBatch(
            observations=self._network_inputs(batch),
            actions=actions,
            advantages=advantages,
            returns=returns,
            old_values=old_values,
            old_log_probs=tf.cast(batch[rollout_batch.LOG_PROB], tf.float32),
            ref_log_probs=objective.reference_log_probs(batch),
            mask=mask,
            count=objective.valid_count(advantages, mask),
            statistics=statistics,
            problems=tf.stack([bad_actions, objective.nonbinary_flags(batch)]),
        )

    @tf.autograph.experimental.do_not_convert
    def _loss_terms(
        self,
        prepared: objective.PreparedBatch,
        params: tf.Tensor,
        values: tf.Tensor,
    ) -> dict:
        """Step 3: losses and metrics on this replica (float32 masked means).

        "loss" includes the regularization losses, also returned alone
        under "regularization".
        """
        objective.check_values(values, self.critic)
        mask = prepared.mask
        shape = tf.shape(prepared.advantages)
        log_probs, entropy = objective.log_probs_and_entropy(
            self.distribution(params), prepared.actions, shape
        )
        results = self._policy_loss(
            log_probs, prepared.old_log_probs, prepared.advantages, mask
        )
        value = value_losses.value_loss(
            tf.reshape(values, shape),
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
        loss = results["policy_loss"] + (
            self.value_coef * value.loss + self.entropy_coef * entropy_loss
        )
        results.update(prepared.statistics)
        results.update(
            value_loss=value.loss,
            entropy=-entropy_loss,
            value_clip_fraction=value.clip_fraction,
        )
        if self.kl_coef is not None:
            ref_log_probs = prepared.ref_log_probs
            if ref_log_probs is None:
                ref_log_probs = prepared.old_log_probs
            kl_penalty = kl.kl_penalty_loss(
                log_probs, ref_log_probs, estimator=self.kl_estimator, mask=mask
            )
            coefficient = objective.kl_coefficient(self.kl_coef)
            loss += coefficient * kl_penalty
            results.update(kl_penalty=kl_penalty, kl_coef=coefficient)
        regularization = objective.regularization_loss(self.losses)
        results.update(
            loss=loss + regularization, regularization=regularization
        )
        return results

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
        config["name"] = self.name
        config.update(network_layout.config_entries(self._networks))
        config["kl_coef"] = network_layout.serialize_kl_coef(self.kl_coef)
        config.update({key: getattr(self, key) for key in _HYPERPARAMETERS})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> Any:
        return cls(**network_layout.restored_entries(config, custom_objects))

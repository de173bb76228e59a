"""A2C: the plain policy gradient on the actor-critic training model."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_gae.models.actor_critic import ActorCriticModel
from keras_gae.ops import kl
from keras_gae.ops import policy_losses


@keras.saving.register_keras_serializable(package="keras_gae")
class A2CModel(ActorCriticModel):
    r"""Advantage actor-critic (synchronous A3C) with GAE, trained by `fit`.

    The policy loss is the policy gradient with the GAE advantage as
    baseline-corrected return (Mnih et al. 2016, arXiv:1602.01783; Schulman
    et al. 2015, arXiv:1506.02438):

        policy_loss = -mean_t log pi(a_t | s_t) * A_t,

    see `keras_gae.ops.policy_losses.policy_gradient_loss`. Being on-policy,
    A2C takes one gradient step per rollout: fit it with `epochs=1` over
    `rollout_dataset(batch, num_minibatches=1)`. The update is
    `ActorCriticModel.train_step` (prepare the batch with GAE, forward
    pass, policy + value + entropy losses, optimizer step; `PPOModel`
    lists it), with `_policy_loss` below as its policy loss; "approx_kl"
    reports the k3 estimate of KL(pi_old || pi), which grows when the
    batch is reused.

    Args:
      actor, critic: see `ActorCriticModel`.
      **kwargs: the `ActorCriticModel` arguments (A2C implementations often
        pass `normalize_advantages=False`).
    """

    _POLICY_METRICS = ("approx_kl",)

    def _policy_loss(
        self,
        log_probs: tf.Tensor,
        old_log_probs: tf.Tensor,
        advantages: tf.Tensor,
        mask: Optional[tf.Tensor],
    ) -> dict:
        loss = policy_losses.policy_gradient_loss(
            log_probs, advantages, mask=mask
        )
        # KL(pi_old || pi) with samples from pi_old: the k3 estimator with
        # pi_old in the role of the sampling policy.
        approx_kl = kl.kl_penalty_loss(
            old_log_probs,
            tf.stop_gradient(log_probs),
            estimator="k3",
            mask=mask,
        )
        return {"policy_loss": loss, "approx_kl": approx_kl}

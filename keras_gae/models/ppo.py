"""PPO: the clipped surrogate objective on the actor-critic training model."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_gae.models.actor_critic import ActorCriticModel
from keras_gae.ops import _checks
from keras_gae.ops import policy_losses


@keras.saving.register_keras_serializable(package="keras_gae")
class PPOModel(ActorCriticModel):
    r"""Proximal Policy Optimization with GAE, trained by `fit`.

    The policy loss is PPO's clipped surrogate (Schulman et al. 2017,
    arXiv:1707.06347, eq. 7), with r_t = pi(a_t | s_t) / pi_old(a_t | s_t):

        L_t = min(r_t * A_t, clip(r_t, 1 - eps_low, 1 + eps_high) * A_t),
        policy_loss = -mean_t L_t,

    and optionally the dual clip max(L_t, c * A_t) for A_t < 0 (Ye et al.
    2020, arXiv:1912.09729); see `keras_gae.ops.policy_losses.ppo_clip_loss`.

    One update (`ActorCriticModel.train_step`, shared with A2C):

    1. prepare the batch (`_prepare`): GAE advantages and returns, their
       statistics, the normalized advantages, time merged into the batch;
    2. forward pass: `params, values = self(observations)`;
    3. losses (`_loss_terms`): `_policy_loss` below, plus value_coef times
       the value loss and entropy_coef times the entropy loss (and the KL
       penalty), masked means over valid steps;
    4. optimizer step (`optimization.guarded_update`): gradients summed
       over replicas, clipped to `max_grad_norm`, applied when finite.

    Metrics, distribution, mixed precision and the non-finite guard are
    `ActorCriticModel`'s.

    `fit` over a dataset of rollout batches runs one gradient step per
    element; with `keras_gae.models.rollout_dataset(batch,
    num_minibatches=K)` and `epochs=E`, that is E PPO epochs of K
    minibatches over one rollout:

        model = PPOModel(actor, critic, clip_ratio=0.2)
        model.compile(optimizer=keras.optimizers.Adam(3e-4))
        model.fit(rollout_dataset(batch, num_minibatches=4), epochs=10)

    Metrics: those of `ActorCriticModel`, with "approx_kl" and
    "clip_fraction" from the clipped loss.

    Args:
      actor, critic: see `ActorCriticModel`.
      clip_ratio: eps > 0 of the clip, for either bound not given (so < 1
        unless `clip_ratio_low` is given).
      clip_ratio_low: None or eps_low in (0, 1): the ratio's lower bound is
        1 - eps_low.
      clip_ratio_high: None or eps_high > 0: the upper bound is 1 + eps_high.
      dual_clip: None or c > 1.
      **kwargs: the `ActorCriticModel` arguments.

    Raises:
      ValueError: an argument out of range (naming it).
      TypeError: an argument of the wrong type.
    """

    _POLICY_METRICS = ("approx_kl", "clip_fraction")

    def __init__(
        self,
        actor: Optional[keras.layers.Layer] = None,
        critic: Optional[keras.layers.Layer] = None,
        *,
        clip_ratio: float = 0.2,
        clip_ratio_low: Optional[float] = None,
        clip_ratio_high: Optional[float] = None,
        dual_clip: Optional[float] = None,
        **kwargs,
    ):
        clip_ratio = _checks.check_float(
            clip_ratio, "clip_ratio", minimum=0.0, inclusive=False
        )
        clip_ratio_low = _checks.check_float(
            clip_ratio_low,
            "clip_ratio_low",
            minimum=0.0,
            maximum=1.0,
            inclusive=False,
            allow_none=True,
        )
        if clip_ratio_low is None and clip_ratio >= 1.0:
            raise ValueError(
                "`clip_ratio` must be < 1 when `clip_ratio_low` is not given: "
                "it is then the lower clip too, and 1 - clip_ratio must stay "
                "positive. Pass clip_ratio_low (< 1) for a wider upper clip. "
                f"Received: clip_ratio={clip_ratio!r}"
            )
        if clip_ratio_low == 1.0:
            raise ValueError(
                "`clip_ratio_low` must be < 1 (the lower bound 1 - "
                f"clip_ratio_low must stay positive). "
                f"Received: clip_ratio_low={clip_ratio_low!r}"
            )
        clip_ratio_high = _checks.check_float(
            clip_ratio_high,
            "clip_ratio_high",
            minimum=0.0,
            inclusive=False,
            allow_none=True,
        )
        dual_clip = _checks.check_float(
            dual_clip,
            "dual_clip",
            minimum=1.0,
            inclusive=False,
            allow_none=True,
        )
        super().__init__(actor, critic, **kwargs)
        self.clip_ratio = clip_ratio
        self.clip_ratio_low = clip_ratio_low
        self.clip_ratio_high = clip_ratio_high
        self.dual_clip = dual_clip

    def _policy_loss(
        self,
        log_probs: tf.Tensor,
        old_log_probs: tf.Tensor,
        advantages: tf.Tensor,
        mask: Optional[tf.Tensor],
    ) -> dict:
        outputs = policy_losses.ppo_clip_loss(
            log_probs,
            old_log_probs,
            advantages,
            clip_ratio=self.clip_ratio,
            clip_ratio_low=self.clip_ratio_low,
            clip_ratio_high=self.clip_ratio_high,
            dual_clip=self.dual_clip,
            mask=mask,
        )
        return {
            "policy_loss": outputs.loss,
            "approx_kl": outputs.approx_kl,
            "clip_fraction": outputs.clip_fraction,
        }

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "clip_ratio": self.clip_ratio,
                "clip_ratio_low": self.clip_ratio_low,
                "clip_ratio_high": self.clip_ratio_high,
                "dual_clip": self.dual_clip,
            }
        )
        return config

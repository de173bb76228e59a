"""Pure TensorFlow math, time-major `[T, B]`: no Keras, no tf-agents."""

from keras_gae.ops.gae import IMPLEMENTATIONS
from keras_gae.ops.gae import GAEOutputs
from keras_gae.ops.gae import generalized_advantage_estimation
from keras_gae.ops.kl import KL_ESTIMATORS
from keras_gae.ops.kl import kl_divergence_estimate
from keras_gae.ops.kl import kl_penalty_loss
from keras_gae.ops.masked import joint_masked_moments
from keras_gae.ops.masked import masked_mean
from keras_gae.ops.masked import masked_moments
from keras_gae.ops.masked import masked_sum_and_count
from keras_gae.ops.masked import masked_whiten
from keras_gae.ops.policy_losses import PPOLossOutputs
from keras_gae.ops.policy_losses import entropy_loss
from keras_gae.ops.policy_losses import policy_gradient_loss
from keras_gae.ops.policy_losses import ppo_clip_loss
from keras_gae.ops.returns import discounted_returns
from keras_gae.ops.returns import n_step_returns
from keras_gae.ops.returns import td_lambda_returns
from keras_gae.ops.returns import temporal_difference_errors
from keras_gae.ops.value_losses import VALUE_CLIP_MODES
from keras_gae.ops.value_losses import VALUE_LOSS_TYPES
from keras_gae.ops.value_losses import ValueLossOutputs
from keras_gae.ops.value_losses import value_loss

__all__ = [
    "IMPLEMENTATIONS",
    "KL_ESTIMATORS",
    "VALUE_CLIP_MODES",
    "VALUE_LOSS_TYPES",
    "GAEOutputs",
    "PPOLossOutputs",
    "ValueLossOutputs",
    "discounted_returns",
    "entropy_loss",
    "generalized_advantage_estimation",
    "joint_masked_moments",
    "kl_divergence_estimate",
    "kl_penalty_loss",
    "masked_mean",
    "masked_moments",
    "masked_sum_and_count",
    "masked_whiten",
    "n_step_returns",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "td_lambda_returns",
    "temporal_difference_errors",
    "value_loss",
]

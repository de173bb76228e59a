"""Keras Loss classes wrapping keras_gae.ops, and KL coefficient control."""

from keras_gae.losses.kl_control import AdaptiveKLController
from keras_gae.losses.kl_control import FixedKLController
from keras_gae.losses.policy_losses import EntropyLoss
from keras_gae.losses.policy_losses import KLPenaltyLoss
from keras_gae.losses.policy_losses import PolicyGradientLoss
from keras_gae.losses.policy_losses import PPOClipLoss
from keras_gae.losses.policy_losses import ValueLoss

__all__ = [
    "AdaptiveKLController",
    "EntropyLoss",
    "FixedKLController",
    "KLPenaltyLoss",
    "PPOClipLoss",
    "PolicyGradientLoss",
    "ValueLoss",
]

"""Keras Loss classes wrapping keras_gae.ops, and KL coefficient control."""

from keras_gae.losses.kl_control import AdaptiveKLController
from keras_gae.losses.kl_control import FixedKLController
from keras_gae.losses.loss_classes import EntropyLoss
from keras_gae.losses.loss_classes import KLPenaltyLoss
from keras_gae.losses.loss_classes import PolicyGradientLoss
from keras_gae.losses.loss_classes import PPOClipLoss
from keras_gae.losses.loss_classes import ValueLoss

__all__ = [
    "AdaptiveKLController",
    "EntropyLoss",
    "FixedKLController",
    "KLPenaltyLoss",
    "PPOClipLoss",
    "PolicyGradientLoss",
    "ValueLoss",
]

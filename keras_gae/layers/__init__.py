"""Keras layers wrapping the ops: batch-major `[B, T]` at the Keras edge."""

from keras_gae.layers.gae import GeneralizedAdvantageEstimation
from keras_gae.layers.normalization import AdvantageNormalization
from keras_gae.layers.policy_heads import CategoricalPolicyHead
from keras_gae.layers.policy_heads import GaussianPolicyHead
from keras_gae.layers.policy_heads import PolicyHead
from keras_gae.layers.policy_heads import SquashedGaussian

__all__ = [
    "AdvantageNormalization",
    "CategoricalPolicyHead",
    "GaussianPolicyHead",
    "GeneralizedAdvantageEstimation",
    "PolicyHead",
    "SquashedGaussian",
]

"""Keras layers wrapping the ops: batch-major `[B, T]` at the Keras edge."""

from keras_gae.layers.bernoulli_policy_head import BernoulliPolicyHead
from keras_gae.layers.categorical_policy_head import CategoricalPolicyHead
from keras_gae.layers.gaussian_policy_head import GaussianPolicyHead
from keras_gae.layers.generalized_advantage_estimation import (
    GeneralizedAdvantageEstimation,
)
from keras_gae.layers.multi_categorical_policy_head import (
    MultiCategoricalPolicyHead,
)
from keras_gae.layers.nature_cnn import NatureCNN
from keras_gae.layers.normalization import AdvantageNormalization
from keras_gae.layers.policy_head import PolicyHead
from keras_gae.layers.squashed_gaussian import SquashedGaussian

__all__ = [
    "AdvantageNormalization",
    "BernoulliPolicyHead",
    "CategoricalPolicyHead",
    "GaussianPolicyHead",
    "GeneralizedAdvantageEstimation",
    "MultiCategoricalPolicyHead",
    "NatureCNN",
    "PolicyHead",
    "SquashedGaussian",
]

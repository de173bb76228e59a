"""The policy heads, under the module path they had before the split.

Each head now lives in its own module (`policy_head`, `categorical_policy_head`,
`gaussian_policy_head`, `squashed_gaussian`); import them from
`keras_gae.layers`.
"""

from keras_gae.layers.categorical_policy_head import CategoricalPolicyHead
from keras_gae.layers.gaussian_policy_head import GaussianPolicyHead
from keras_gae.layers.policy_head import PolicyHead
from keras_gae.layers.squashed_gaussian import SquashedGaussian

__all__ = [
    "CategoricalPolicyHead",
    "GaussianPolicyHead",
    "PolicyHead",
    "SquashedGaussian",
]

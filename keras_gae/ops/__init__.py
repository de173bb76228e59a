"""Pure TensorFlow math, time-major `[T, B]`: no Keras, no tf-agents."""

from keras_gae.ops.gae import IMPLEMENTATIONS
from keras_gae.ops.gae import GAEOutputs
from keras_gae.ops.gae import generalized_advantage_estimation
from keras_gae.ops.masked import masked_mean
from keras_gae.ops.masked import masked_moments
from keras_gae.ops.masked import masked_sum_and_count
from keras_gae.ops.masked import masked_whiten
from keras_gae.ops.returns import discounted_returns
from keras_gae.ops.returns import n_step_returns
from keras_gae.ops.returns import td_lambda_returns
from keras_gae.ops.returns import temporal_difference_errors

__all__ = [
    "IMPLEMENTATIONS",
    "GAEOutputs",
    "discounted_returns",
    "generalized_advantage_estimation",
    "masked_mean",
    "masked_moments",
    "masked_sum_and_count",
    "masked_whiten",
    "n_step_returns",
    "td_lambda_returns",
    "temporal_difference_errors",
]

"""The GAE op as a Keras layer reading a batch-major rollout batch.

Reference: Schulman, Moritz, Levine, Jordan, Abbeel (2015), "High-Dimensional
Continuous Control Using Generalized Advantage Estimation", arXiv:1506.02438.

Letters used in shapes: `B` is the batch size (environments or generated
sequences), `T` the number of time steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.layers import _precision
from keras_gae.ops import _checks
from keras_gae.ops import gae as gae_ops

# The keys without which GAE cannot run; the other `GAE_ARGUMENTS` keys are
# optional, and every other rollout-batch key is accepted and left unread.
_REQUIRED = (
    rollout_batch.REWARD,
    rollout_batch.VALUE,
    rollout_batch.BOOTSTRAP_VALUE,
)


@keras.saving.register_keras_serializable(package="keras_gae")
class GeneralizedAdvantageEstimation(keras.layers.Layer):
    r"""Computes GAE advantages and critic targets from a rollout batch.

    With V_{t+1} = V(s_{t+1}) (Schulman et al. 2015, arXiv:1506.02438):

        delta_t = r_t + gamma * (1 - terminated_t) * V_{t+1} - V(s_t)
        A_t = delta_t + gamma * lambda_ * (1 - end_t) * A_{t+1},  A_T = 0,
        end_t = terminated_t or truncated_t,
        returns_t = A_t + V(s_t).

    The layer wraps `keras_gae.ops.generalized_advantage_estimation`, which
    defines the episode-boundary semantics (terminated, truncated with
    `truncation_value`, mask; docs/design.md, "Episode boundaries"). It has
    no weights.

    Precision: the layer's dtype is float32 unless `dtype` is given, so under
    a `mixed_float16` or `mixed_bfloat16` global policy it still computes and
    returns float32 (half-precision float inputs are cast up; a discounted
    sum over hundreds of steps loses too many bits in half precision). Pass
    `dtype="float64"` to compute in float64. Half-precision dtypes are
    rejected.

    Call arguments:
      inputs: a rollout batch (docs/design.md, "Rollout batch"), batch-major
        (`[B, T]`) unless `time_major=True` (then `[T, B]`). The layer reads:
        * "reward": `[B, T]` float r_t.
        * "value": `[B, T]` float V(s_t).
        * "bootstrap_value": `[B]` float V(s_T) after the last step.
        * "terminated", "truncated": optional `[B, T]` bool-like flags.
        * "truncation_value": optional `[B, T]` float V(s_{t+1}) read where
          "truncated" is set.
        * "mask": optional `[B, T]` bool-like validity of each row.
        The other rollout-batch keys ("observation", "action", "log_prob",
        "ref_log_prob", "advantage", "return") are accepted and ignored, so
        a whole rollout batch may be passed; any other key is an error.

    Returns:
      `(advantages, returns)`, both shaped like "reward", in the layer's
      dtype, gradients stopped. Masked rows have advantage 0 and return
      V(s_t).

    Args:
      gamma: discount, a Python float in [0, 1].
      lambda_: GAE lambda, a Python float in [0, 1].
      time_major: whether the inputs and outputs are `[T, B]` (True) or
        `[B, T]` (False, the rollout-batch layout).
      implementation: one of `keras_gae.ops.IMPLEMENTATIONS`; see
        `keras_gae.ops.generalized_advantage_estimation`.
      check_numerics: if True, NaN or Inf in a float input raises an
        InvalidArgumentError naming it.
      **kwargs: base Layer arguments (`name`, `dtype`, ...).

    Raises:
      ValueError: gamma or lambda_ outside [0, 1], unknown `implementation`,
        a half-precision `dtype`; at the call, missing or unknown keys and
        the op's rank/shape errors.
      TypeError: non-float gamma/lambda_, non-bool `time_major` or
        `check_numerics`; at the call, `inputs` not a dict.

    Example:

    ```python
    import numpy as np
    import keras_gae

    batch = {
        "reward": np.ones((2, 3), "float32"),
        "value": np.zeros((2, 3), "float32"),
        "bootstrap_value": np.full((2,), 4.0, "float32"),
        "terminated": np.array([[0, 0, 0], [0, 0, 1]], bool),
    }
    gae = keras_gae.layers.GeneralizedAdvantageEstimation(
        gamma=0.5, lambda_=0.5
    )
    advantages, returns = gae(batch)
    # advantages == [[1.4375, 1.75, 3.0], [1.3125, 1.25, 1.0]]
    ```
    """

    def __init__(
        self,
        gamma: float = 0.99,
        lambda_: float = 0.95,
        time_major: bool = False,
        implementation: str = "auto",
        check_numerics: bool = False,
        **kwargs,
    ):
        gamma = _checks.check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
        lambda_ = _checks.check_float(
            lambda_, "lambda_", minimum=0.0, maximum=1.0
        )
        _checks.check_bool(time_major, "time_major")
        _checks.check_option(
            implementation, "implementation", gae_ops.IMPLEMENTATIONS
        )
        _checks.check_bool(check_numerics, "check_numerics")
        super().__init__(**_precision.float32_by_default(kwargs))
        _precision.check_not_half(self, "a discounted sum")
        self.gamma = gamma
        self.lambda_ = lambda_
        self.time_major = time_major
        self.implementation = implementation
        self.check_numerics = check_numerics

    def _arguments(self, inputs: Any) -> dict:
        """The op's keyword arguments, read from the rollout batch."""
        inputs = rollout_batch.check_keys(inputs, "inputs")
        missing = [key for key in _REQUIRED if key not in inputs]
        if missing:
            raise ValueError(
                f"`inputs` is missing the key(s) {missing}; GAE needs "
                f"{list(_REQUIRED)}. Received: inputs with keys "
                f"{sorted(inputs)}"
            )
        return {
            argument: inputs.get(key)
            for key, argument in rollout_batch.GAE_ARGUMENTS.items()
        }

    def call(self, inputs: Mapping) -> tuple:
        arguments = self._arguments(inputs)
        try:
            outputs = gae_ops.generalized_advantage_estimation(
                gamma=self.gamma,
                lambda_=self.lambda_,
                time_major=self.time_major,
                implementation=self.implementation,
                check_numerics=self.check_numerics,
                **arguments,
            )
        except (TypeError, ValueError) as error:
            # The op names its arguments, not the rollout-batch keys.
            renamed = ", ".join(
                f"inputs[{key!r}] as `{argument}`"
                for key, argument in rollout_batch.GAE_ARGUMENTS.items()
                if key != argument
            )
            raise type(error)(
                f"{type(self).__name__} '{self.name}' passes {renamed}: {error}"
            ) from error
        # Float64 inputs to a float32 layer are cast down by autocast; the op
        # returns float32 for float32 and half inputs, so cast only to align
        # with an explicit float64 dtype.
        advantages = tf.cast(outputs.advantages, self.compute_dtype)
        returns = tf.cast(outputs.returns, self.compute_dtype)
        return advantages, returns

    def compute_output_shape(self, input_shape: Any) -> tuple:
        """`(shape, shape)`, the shape of "reward".

        Args:
          input_shape: the rollout batch's shapes, a dict with at least
            "reward"; or None (a layer built without shapes, as the
            training models build theirs), which gives `(None, None)`:
            `[B, T]` (or `[T, B]`) of unknown sizes.
        """
        if input_shape is None:
            shape = (None, None)
        elif (
            isinstance(input_shape, Mapping)
            and rollout_batch.REWARD in input_shape
        ):
            shape = tuple(input_shape[rollout_batch.REWARD])
        else:
            raise ValueError(
                "`input_shape` must be the rollout batch's shapes, a dict "
                f'with a "{rollout_batch.REWARD}" key, or None. '
                f"Received: input_shape={input_shape!r}"
            )
        return shape, shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "gamma": self.gamma,
                "lambda_": self.lambda_,
                "time_major": self.time_major,
                "implementation": self.implementation,
                "check_numerics": self.check_numerics,
            }
        )
        return config

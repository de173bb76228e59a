"""The GAE op as a Keras layer reading a batch-major rollout batch.

Reference: Schulman, Moritz, Levine, Jordan, Abbeel (2015), "High-Dimensional
Continuous Control Using Generalized Advantage Estimation", arXiv:1506.02438.

Letters used in shapes: `B` is the batch size (environments or generated
sequences), `T` the number of time steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from keras_gae.ops import gae as gae_ops

_HALF_DTYPES = ("float16", "bfloat16")

# Rollout-batch key -> argument of `generalized_advantage_estimation`.
_REQUIRED_KEYS = {
    "reward": "rewards",
    "value": "values",
    "bootstrap_value": "bootstrap_value",
}
_OPTIONAL_KEYS = {
    "terminated": "terminated",
    "truncated": "truncated",
    "truncation_value": "truncation_values",
    "mask": "mask",
}
# Rollout-batch keys GAE does not read; accepted so that a whole rollout batch
# can be passed in.
_UNUSED_KEYS = ("observation", "action", "log_prob")


def _check_unit_interval(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"`{name}` must be a Python float in [0, 1]. "
            f"Received: {name}={value!r}"
        )
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(
            f"`{name}` must lie in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class GeneralizedAdvantageEstimation(tf.keras.layers.Layer):
    r"""Computes GAE advantages and critic targets from a rollout batch.

    With V_{t+1} = V(s_{t+1}) (Schulman et al. 2015, arXiv:1506.02438):

        delta_t = r_t + gamma * (1 - terminated_t) * V_{t+1} - V(s_t)
        A_t = delta_t + gamma * lambda_ * (1 - end_t) * A_{t+1},  A_T = 0,
        end_t = terminated_t or truncated_t,
        returns_t = A_t + V(s_t).

    The layer wraps `keras_gae.ops.generalized_advantage_estimation`, which
    defines the episode-boundary semantics (terminated, truncated with
    `truncation_value`, mask). It has no weights.

    Precision: the layer's dtype is float32 unless `dtype` is given, so under
    a `mixed_float16` or `mixed_bfloat16` global policy it still computes and
    returns float32 (half-precision float inputs are cast up; a discounted
    sum over hundreds of steps loses too many bits in half precision). Pass
    `dtype="float64"` to compute in float64. Half-precision dtypes are
    rejected.

    Call arguments:
      inputs: a dict holding the rollout-batch keys below, batch-major
        (`[B, T]`) unless `time_major=True` (then `[T, B]`):
        * "reward": `[B, T]` float r_t.
        * "value": `[B, T]` float V(s_t).
        * "bootstrap_value": `[B]` float V(s_T) after the last step.
        * "terminated", "truncated": optional `[B, T]` bool-like flags.
        * "truncation_value": optional `[B, T]` float V(s_{t+1}) read where
          "truncated" is set.
        * "mask": optional `[B, T]` bool-like validity of each row.
        "observation", "action" and "log_prob" are accepted and ignored, so
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
      implementation: "auto", "scan" or "xla"; see
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
    """

    INPUT_KEYS = tuple(_REQUIRED_KEYS) + tuple(_OPTIONAL_KEYS)

    def __init__(
        self,
        gamma: float = 0.99,
        lambda_: float = 0.95,
        time_major: bool = False,
        implementation: str = "auto",
        check_numerics: bool = False,
        **kwargs,
    ):
        self.gamma = _check_unit_interval(gamma, "gamma")
        self.lambda_ = _check_unit_interval(lambda_, "lambda_")
        if not isinstance(time_major, bool):
            raise TypeError(
                "`time_major` must be a bool. "
                f"Received: time_major={time_major!r}"
            )
        if implementation not in gae_ops.IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` must be one of {gae_ops.IMPLEMENTATIONS}. "
                f"Received: implementation={implementation!r}"
            )
        if not isinstance(check_numerics, bool):
            raise TypeError(
                "`check_numerics` must be a bool. "
                f"Received: check_numerics={check_numerics!r}"
            )
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if self.compute_dtype in _HALF_DTYPES:
            raise ValueError(
                "GeneralizedAdvantageEstimation computes in float32 or "
                "float64; a discounted sum in half precision loses too many "
                "bits. Leave `dtype` unset (float32) under mixed precision. "
                f"Received: dtype={kwargs['dtype']!r}"
            )
        self.time_major = time_major
        self.implementation = implementation
        self.check_numerics = check_numerics

    def _arguments(self, inputs: Any) -> dict:
        if not isinstance(inputs, Mapping):
            raise TypeError(
                "`inputs` must be a dict with the rollout-batch keys "
                f"{list(self.INPUT_KEYS)}. Received: inputs={inputs!r}"
            )
        missing = [key for key in _REQUIRED_KEYS if key not in inputs]
        if missing:
            raise ValueError(
                f"`inputs` is missing the key(s) {missing}; GAE needs "
                f"{list(_REQUIRED_KEYS)}. Received: inputs with keys "
                f"{sorted(inputs)}"
            )
        unknown = [
            key
            for key in inputs
            if key not in self.INPUT_KEYS and key not in _UNUSED_KEYS
        ]
        if unknown:
            raise ValueError(
                f"`inputs` has unknown key(s) {sorted(unknown)}; accepted "
                f"keys are {list(self.INPUT_KEYS)} (and the unused "
                f"rollout-batch keys {list(_UNUSED_KEYS)}). Received: inputs "
                f"with keys {sorted(inputs)}"
            )
        keys = {**_REQUIRED_KEYS, **_OPTIONAL_KEYS}
        return {arg: inputs.get(key) for key, arg in keys.items()}

    def call(self, inputs: Mapping) -> tuple:
        arguments = self._arguments(inputs)
        try:
            outputs = gae_ops.generalized_advantage_estimation(
                arguments.pop("rewards"),
                arguments.pop("values"),
                arguments.pop("bootstrap_value"),
                gamma=self.gamma,
                lambda_=self.lambda_,
                time_major=self.time_major,
                implementation=self.implementation,
                check_numerics=self.check_numerics,
                **arguments,
            )
        except (TypeError, ValueError) as error:
            # The op names its arguments, not the rollout-batch keys.
            raise type(error)(
                f"{type(self).__name__} '{self.name}' passes "
                "inputs['reward'] as `rewards`, inputs['value'] as `values` "
                "and inputs['truncation_value'] as `truncation_values`: "
                f"{error}"
            ) from error
        # Float64 inputs to a float32 layer are cast down by autocast; the op
        # returns float32 for float32 and half inputs, so cast only to align
        # with an explicit float64 dtype.
        advantages = tf.cast(outputs.advantages, self.compute_dtype)
        returns = tf.cast(outputs.returns, self.compute_dtype)
        return advantages, returns

    def compute_output_shape(self, input_shape: Mapping) -> tuple:
        shape = tf.TensorShape(input_shape["reward"])
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

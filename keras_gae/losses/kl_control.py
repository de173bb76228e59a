"""Controllers of the KL penalty coefficient beta.

The coefficient lives in a non-trainable `tf.Variable` (`coef`), so it is
saved with a `tf.train.Checkpoint` (or with a Keras model that holds the
controller as an attribute) and can be updated inside a compiled train step.
Under a `tf.distribute` strategy, create the controller in the strategy's
scope and pass every replica the same, already all-reduced KL: the update
is applied once, from the first replica.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import numpy as np
import tensorflow as tf


def _check_number(value: Any, name: str, *, positive: bool) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"`{name}` must be a Python float. Received: {name}={value!r}"
        )
    value = float(value)
    if not np.isfinite(value) or value < 0.0 or (positive and value == 0.0):
        relation = "finite and > 0" if positive else "finite and >= 0"
        raise ValueError(
            f"`{name}` must be {relation}. Received: {name}={value!r}"
        )
    return value


class _KLController(tf.Module):
    """Holds beta in a non-trainable variable; subclasses define `update`."""

    def __init__(self, initial_value: float, name: Optional[str]):
        super().__init__(name=name)
        with self.name_scope:
            self.coef = tf.Variable(
                initial_value,
                trainable=False,
                dtype=tf.float32,
                name="kl_coef",
                # Every replica sees the same KL; keep one replica's update.
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )

    @property
    def value(self) -> tf.Tensor:
        """The current coefficient beta, a float32 scalar."""
        return tf.convert_to_tensor(self.coef)

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class FixedKLController(_KLController):
    """A constant KL coefficient beta, with the adaptive controller's API.

    Args:
      kl_coef: beta >= 0.
      name: the module name.
    """

    def __init__(self, kl_coef: float, name: str = "fixed_kl_controller"):
        self.kl_coef = _check_number(kl_coef, "kl_coef", positive=False)
        super().__init__(self.kl_coef, name=name)

    def update(self, current_kl: Any, n_steps: Any) -> tf.Tensor:
        """Leaves beta unchanged and returns it.

        Args:
          current_kl: the measured KL (unused; same signature as
            `AdaptiveKLController.update`).
          n_steps: steps since the last update (unused).

        Returns:
          beta, a float32 scalar.
        """
        del current_kl, n_steps
        return self.value

    def get_config(self) -> dict:
        return {"kl_coef": self.kl_coef, "name": self.name}


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class AdaptiveKLController(_KLController):
    """Adapts beta so the measured KL tracks a target KL.

    Ziegler et al. 2019, "Fine-Tuning Language Models from Human
    Preferences", arXiv:1909.08593: after a batch of `n_steps` steps with
    measured KL,

        e = clip(KL / target_kl - 1, -0.2, 0.2)
        beta <- beta * (1 + e * n_steps / horizon)

    so beta grows while the KL is above target and shrinks while it is
    below, by at most a factor (1 +- 0.2 n_steps / horizon) per update.

    Args:
      init_kl_coef: initial beta > 0.
      target_kl: the KL to track, > 0.
      horizon: > 0, the number of steps over which the proportional error is
        corrected (larger is slower).
      name: the module name.
    """

    def __init__(
        self,
        init_kl_coef: float,
        target_kl: float,
        horizon: float,
        name: str = "adaptive_kl_controller",
    ):
        self.init_kl_coef = _check_number(
            init_kl_coef, "init_kl_coef", positive=True
        )
        self.target_kl = _check_number(target_kl, "target_kl", positive=True)
        self.horizon = _check_number(horizon, "horizon", positive=True)
        super().__init__(self.init_kl_coef, name=name)

    def update(self, current_kl: Any, n_steps: Any) -> tf.Tensor:
        """Applies one update from the measured KL and returns the new beta.

        Works eagerly and inside a `tf.function`.

        Args:
          current_kl: the KL measured over the last batch, a scalar (float
            or tensor).
          n_steps: the number of steps in that batch (int, float or scalar
            tensor).

        Returns:
          The updated beta, a float32 scalar.
        """
        current_kl = tf.cast(current_kl, tf.float32)
        n_steps = tf.cast(n_steps, tf.float32)
        error = tf.clip_by_value(current_kl / self.target_kl - 1.0, -0.2, 0.2)
        multiplier = 1.0 + error * n_steps / self.horizon
        # A variable in a plain context, a tensor in a replica context.
        updated = self.coef.assign(self.coef * multiplier)
        return tf.convert_to_tensor(updated)

    def get_config(self) -> dict:
        return {
            "init_kl_coef": self.init_kl_coef,
            "target_kl": self.target_kl,
            "horizon": self.horizon,
            "name": self.name,
        }

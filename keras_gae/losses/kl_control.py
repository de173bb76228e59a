"""Controllers of the KL penalty coefficient beta.

A controller is a Keras layer that is never called: it holds beta in one
non-trainable float32 weight, `coef`. A Keras model holding a controller as
an attribute (as `keras_gae.models.PPOModel` does with its `kl_coef`) lists
`coef` among its `non_trainable_weights`, so it is saved in `.keras` files,
`.weights.h5` files and `tf.train.Checkpoint`s with the model, and `update`
assigns it inside a compiled train step. Under a `tf.distribute` strategy,
create the controller in the strategy's scope (`coef` is then mirrored) and
pass every replica the same, already all-reduced KL: the update is applied
from the first replica (`aggregation="only_first_replica"`).
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae.ops import _checks


class _KLController(keras.layers.Layer):
    """Base class: beta in a non-trainable weight; subclasses define `update`.

    Args:
      initial_value: beta's initial value.
      name: the layer name.
      **kwargs: base Layer arguments.
    """

    def __init__(
        self, initial_value: float, name: Optional[str] = None, **kwargs
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.coef = self.add_weight(
            name="kl_coef",
            shape=(),
            initializer=keras.initializers.Constant(initial_value),
            dtype="float32",
            trainable=False,
            autocast=False,
            # Every replica sees the same KL; keep one replica's update.
            aggregation="only_first_replica",
        )
        self.built = True

    @property
    def value(self) -> tf.Tensor:
        """The current coefficient beta, a float32 scalar."""
        return tf.convert_to_tensor(self.coef)

    def update(self, current_kl: Any, n_steps: Any) -> tf.Tensor:
        """Updates beta from the measured KL and returns the new beta."""
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="keras_gae")
class FixedKLController(_KLController):
    """A constant KL coefficient beta, with the adaptive controller's API.

    Args:
      kl_coef: beta >= 0.
      name: the layer name.
      **kwargs: base Layer arguments.

    Example:

    ```python
    import keras_gae

    controller = keras_gae.losses.FixedKLController(0.05)
    controller.update(current_kl=0.3, n_steps=256)  # 0.05, unchanged
    ```
    """

    def __init__(
        self, kl_coef: float, name: str = "fixed_kl_controller", **kwargs
    ):
        self.kl_coef = _checks.check_float(kl_coef, "kl_coef", minimum=0.0)
        super().__init__(self.kl_coef, name=name, **kwargs)

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
        config = super().get_config()
        config.update({"kl_coef": self.kl_coef})
        return config


@keras.saving.register_keras_serializable(package="keras_gae")
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
      name: the layer name.
      **kwargs: base Layer arguments.

    Example:

    ```python
    import keras_gae

    controller = keras_gae.losses.AdaptiveKLController(
        init_kl_coef=0.1, target_kl=6.0, horizon=10_000
    )
    # The KL is twice the target: e = 0.2, beta = 0.1 * (1 + 0.2 * 0.0256).
    controller.update(current_kl=12.0, n_steps=256)  # 0.100512
    # With model.kl_controller = controller, beta is one of the model's
    # non-trainable weights and is saved with it.
    ```
    """

    def __init__(
        self,
        init_kl_coef: float,
        target_kl: float,
        horizon: float,
        name: str = "adaptive_kl_controller",
        **kwargs,
    ):
        positive = {"minimum": 0.0, "inclusive": False}
        self.init_kl_coef = _checks.check_float(
            init_kl_coef, "init_kl_coef", **positive
        )
        self.target_kl = _checks.check_float(target_kl, "target_kl", **positive)
        self.horizon = _checks.check_float(horizon, "horizon", **positive)
        super().__init__(self.init_kl_coef, name=name, **kwargs)

    def update(self, current_kl: Any, n_steps: Any) -> tf.Tensor:
        """Applies one update from the measured KL and returns the new beta.

        Works eagerly and inside a `tf.function` (also in a replica context
        of a strategy; see the module docstring).

        beta is a saved weight, so nothing that cannot update it reaches
        it. A NaN `current_kl` measures nothing (the training models refuse
        such a step with `NonFiniteLossError`): beta stays as it was, in
        every mode. A NaN, infinite or negative `n_steps` is a wrong
        argument: a ValueError naming it when called eagerly, beta
        unchanged inside a compiled function. An infinite KL is above any
        target and raises beta by the largest factor.

        Args:
          current_kl: the KL measured over the last batch, a scalar (float
            or tensor).
          n_steps: the number of steps in that batch, >= 0 (int, float or
            scalar tensor).

        Returns:
          The updated beta, a float32 scalar.

        Raises:
          ValueError: eagerly, for an `n_steps` as above.
        """
        current_kl = tf.cast(current_kl, tf.float32)
        n_steps = tf.cast(n_steps, tf.float32)
        kl_usable = tf.logical_not(tf.math.is_nan(current_kl))
        steps_usable = tf.logical_and(
            tf.math.is_finite(n_steps), n_steps >= 0.0
        )
        if tf.executing_eagerly() and not bool(steps_usable):
            raise ValueError(
                "`n_steps` must be finite and >= 0. "
                f"Received: n_steps={float(n_steps)!r}"
            )
        error = tf.clip_by_value(current_kl / self.target_kl - 1.0, -0.2, 0.2)
        multiplier = 1.0 + error * n_steps / self.horizon
        updated = tf.where(
            tf.logical_and(kl_usable, steps_usable),
            self.value * multiplier,
            self.value,
        )
        self.coef.assign(updated)
        return updated

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "init_kl_coef": self.init_kl_coef,
                "target_kl": self.target_kl,
                "horizon": self.horizon,
            }
        )
        return config

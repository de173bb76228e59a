"""`RewardNormalization`: rewards scaled by the running return's std.

The layer scales training rewards by the running standard deviation of
the discounted return, as stable-baselines3's `VecNormalize` does
(Engstrom et al. 2020, arXiv:2005.12729, "reward scaling"):

    R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t,
    r'_t = clip(r_t / sqrt(Var[R] + epsilon), -clip, clip),

where Var[R] is the variance of all returns seen so far, kept with
keras_gae's one parallel-moments rule (`keras_gae._src.running_moments`).
Its statistics and the B running returns are non-trainable weights, so
they are part of the model: checkpointed with it and saved with
`save_weights`. It only changes what the model trains on: episode returns
are logged from the environment's rewards, in its units. Attach it to the
model before the model is built (`attach_reward_normalization`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_gae._src import running_moments
from keras_gae.ops import _checks

REWARD_NORMALIZATION_ATTRIBUTE = "reward_normalization"


@keras.saving.register_keras_serializable(package="keras_gae")
class RewardNormalization(keras.layers.Layer):
    """Scales rewards by the running std of the discounted return.

    See the module docstring. The return accumulator of each of the B
    environments is a weight too, so a resumed run continues it.

    Args:
      num_envs: B, the environments the rewards come from.
      gamma: the discount of the return R_t, in [0, 1].
      epsilon: added to the variance, > 0.
      clip: scaled rewards are clipped to [-clip, clip], > 0.
      **kwargs: base Layer arguments.
    """

    def __init__(
        self,
        num_envs: int,
        gamma: float = 0.99,
        epsilon: float = 1e-8,
        clip: float = 10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_envs = _checks.check_positive_int(num_envs, "num_envs")
        self.gamma = _checks.check_float(
            gamma, "gamma", minimum=0.0, maximum=1.0
        )
        self.epsilon = _checks.check_float(
            epsilon, "epsilon", minimum=0.0, inclusive=False
        )
        self.clip = _checks.check_float(
            clip, "clip", minimum=0.0, inclusive=False
        )
        self.returns = self.add_weight(
            shape=(self.num_envs,),
            initializer="zeros",
            trainable=False,
            name="returns",
        )
        self.return_mean = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="return_mean"
        )
        self.return_variance = self.add_weight(
            shape=(),
            initializer="ones",
            trainable=False,
            name="return_variance",
        )
        self.count = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="count"
        )
        self.built = True

    def call(self, reward: Any) -> Any:
        """Scales `reward` by the current statistics (no update)."""
        scale = keras.ops.rsqrt(self.return_variance + self.epsilon)
        return keras.ops.clip(
            keras.ops.cast(reward, "float32") * scale, -self.clip, self.clip
        )

    def update_and_scale(
        self, reward: tf.Tensor, ended: tf.Tensor, mask: tf.Tensor
    ) -> tf.Tensor:
        """Updates the statistics with a rollout `[B, T]`, then scales it.

        `update_returns`, then the returns' moments combined into the
        running ones, then `call`.

        Args:
          reward: `[B, T]` float rewards in the environment's units.
          ended: `[B, T]` bool, the row's transition ends the episode
            (terminated or truncated).
          mask: `[B, T]` bool, valid rows (boundary rows excluded).

        Raises:
          ValueError: `reward` whose rows are not the layer's B.
          tf.errors.InvalidArgumentError: a NaN or Inf reward on a valid
            row; the statistics and returns keep their values.
        """
        returns = self.update_returns(reward, ended, mask)
        running_moments.absorb_rows(self._moments(), returns)
        return self(reward)

    def update_returns(
        self, reward: tf.Tensor, ended: tf.Tensor, mask: tf.Tensor
    ) -> tf.Tensor:
        """Advances the B running returns R_t by a rollout `[B, T]`.

        Only the per-environment returns change, not the statistics: a
        rollout worker keeps its environments' returns, the learner merges
        the workers' `return_moments` (`keras_gae.distributed`).

        Args: as `update_and_scale`'s.

        Returns:
          The returns R_t of the valid rows, `[N]` float32.

        Raises: as `update_and_scale`.
        """
        reward = tf.cast(reward, tf.float32)
        rows = reward.shape[0] if reward.shape.rank else None
        if rows is not None and rows != self.num_envs:
            raise ValueError(
                "RewardNormalization: `reward` must have one row per "
                f"environment, num_envs={self.num_envs}. "
                f"Received: reward.shape={reward.shape}"
            )
        checked = tf.debugging.check_numerics(
            tf.where(mask, reward, tf.zeros_like(reward)),
            "RewardNormalization: `reward` holds NaN or Inf on a valid "
            "row; the statistics were not updated",
        )
        reward = tf.where(mask, checked, reward)

        # A forward running sum carried across rollouts (the return so
        # far), not the backward reward-to-go of `ops.returns`.
        def step(carry, inputs):
            previous, _ = carry
            r, end, valid = inputs
            value = tf.where(valid, previous * self.gamma + r, previous)
            return tf.where(end, tf.zeros_like(value), value), value

        time_major = (
            tf.transpose(reward),
            tf.transpose(ended),
            tf.transpose(mask),
        )
        carried, returns = tf.scan(
            step,
            time_major,
            initializer=(self.returns.value, self.returns.value),
        )
        self.returns.assign(carried[-1])
        return tf.boolean_mask(tf.transpose(returns), mask)

    def absorb_moments(self, count: Any, mean: Any, variance: Any) -> None:
        """Combines returns' moments into the statistics (`running_moments`).

        The learner's side of `update_returns`: the moments of the returns
        all workers saw in a round, merged, update the statistics as the
        returns themselves would.

        Args:
          count: the number of returns, >= 0.
          mean: their mean.
          variance: their (population) variance.
        """
        running_moments.absorb_moments(
            self._moments(),
            tuple(tf.cast(x, tf.float32) for x in (count, mean, variance)),
        )

    def _moments(self) -> tuple:
        """The running moments' weights, as `running_moments` takes them."""
        return (self.count, self.return_mean, self.return_variance)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_envs=self.num_envs,
            gamma=self.gamma,
            epsilon=self.epsilon,
            clip=self.clip,
        )
        return config


def attach_reward_normalization(model: keras.Model, layer: Any) -> Any:
    """Sets `model.reward_normalization`; before the model is built.

    Its weights then belong to the model (checkpoints, `save_weights`);
    `RolloutCollector` scales the rollouts' rewards with it.
    """
    if not isinstance(layer, RewardNormalization):
        raise TypeError(
            f"`layer` must be a RewardNormalization. Received: layer={layer!r}"
        )
    if model.built:
        raise ValueError(
            "Attach reward normalization before the model is built (first "
            f"called). Received: model={model.name!r} (built)"
        )
    setattr(model, REWARD_NORMALIZATION_ATTRIBUTE, layer)
    return layer

"""Running observation and reward statistics as Keras layers.

Both layers keep their statistics as non-trainable weights, so they are
part of the model: checkpointed with it, saved with `save_weights`, and
exported with it (the SavedModel then takes raw observations).

`ObservationNormalization` normalizes features by running moments,

    y = clip((x - mean) / sqrt(var + epsilon), -clip, clip),

updated by `update(x)` with the parallel-moments rule (Chan, Golub and
LeVeque 1979) over all rows seen so far:

    n' = n + m,  mean' = mean + delta * m / n',
    var' = (var * n + var_b * m + delta^2 * n * m / n') / n',

with `delta = mean_b - mean` for a batch of m rows of mean `mean_b` and
variance `var_b`. Before the first update it is the identity (mean 0, var
1). `RolloutCollector` updates every `ObservationNormalization` inside the
model from the previous rollout's observations at the start of each
collection, so each rollout is collected and trained under the same
statistics (the recorded log-probabilities stay those of the policy being
trained).

`RewardNormalization` scales training rewards by the running standard
deviation of the discounted return, as stable-baselines3's `VecNormalize`
does (Engstrom et al. 2020, arXiv:2005.12729, "reward scaling"):

    R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t,
    r'_t = clip(r_t / sqrt(Var[R] + epsilon), -clip, clip).

It only changes what the model trains on: episode returns are logged from
the environment's rewards, in its units. Attach it to the model before the
model is built (`attach_reward_normalization`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_gae.ops import _checks

REWARD_NORMALIZATION_ATTRIBUTE = "reward_normalization"


def combine_moments(first: Any, second: Any) -> tuple:
    """The moments of two sets of rows together (the parallel rule).

    The rule of the module docstring (Chan, Golub and LeVeque 1979), with
    set `a` the running statistics and `b` the new rows, or `a` and `b` the
    rows two workers saw: the result equals the moments of the rows of
    both. A set of 0 rows leaves the other's moments as they are.

    Args:
      first: `(count, mean, variance)` of set `a`: a scalar count and
        means and (population) variances of one shape, as tensors or
        arrays of one float dtype.
      second: `(count, mean, variance)` of set `b`, of the same shapes.

    Returns:
      `(count, mean, variance)` of both sets, as tensors.
    """
    count_a, mean_a, variance_a = first
    count_b, mean_b, variance_b = second
    total = count_a + count_b
    delta = mean_b - mean_a
    fraction = count_b / tf.maximum(total, 1.0)
    m2 = (
        variance_a * count_a
        + variance_b * count_b
        + tf.square(delta) * count_a * fraction
    )
    keep = count_b > 0
    mean = tf.where(keep, mean_a + delta * fraction, mean_a)
    variance = tf.where(keep, m2 / tf.maximum(total, 1.0), variance_a)
    return total, mean, variance


def _absorb(mean: Any, variance: Any, count: Any, x: tf.Tensor) -> None:
    """Adds the rows of `x` `[N, ...]` to running moment variables."""
    batch_mean, batch_variance = tf.nn.moments(x, axes=[0])
    batch_count = tf.cast(tf.shape(x)[0], tf.float32)
    _assign_moments(
        mean,
        variance,
        count,
        (batch_count, batch_mean, batch_variance),
    )


def _assign_moments(mean: Any, variance: Any, count: Any, moments) -> None:
    """Combines `moments` `(count, mean, variance)` into the variables."""
    total, new_mean, new_variance = combine_moments(
        (count.value, mean.value, variance.value), moments
    )
    mean.assign(new_mean)
    variance.assign(new_variance)
    count.assign(total)


@keras.saving.register_keras_serializable(package="keras_gae")
class ObservationNormalization(keras.layers.Layer):
    """Normalizes features `[..., D]` by running mean and variance.

    Args:
      epsilon: added to the variance, > 0.
      clip: normalized values are clipped to [-clip, clip], > 0.
      **kwargs: base Layer arguments.
    """

    def __init__(self, epsilon: float = 1e-8, clip: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _checks.check_float(
            epsilon, "epsilon", minimum=0.0, inclusive=False
        )
        self.clip = _checks.check_float(
            clip, "clip", minimum=0.0, inclusive=False
        )

    def build(self, input_shape: Any) -> None:
        size = input_shape[-1]
        if size is None:
            raise ValueError(
                "ObservationNormalization needs a known last dimension. "
                f"Received: input_shape={input_shape}"
            )
        self.mean = self.add_weight(
            shape=(size,), initializer="zeros", trainable=False, name="mean"
        )
        self.variance = self.add_weight(
            shape=(size,), initializer="ones", trainable=False, name="variance"
        )
        self.count = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="count"
        )
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        inputs = keras.ops.cast(inputs, "float32")
        scale = keras.ops.rsqrt(self.variance + self.epsilon)
        return keras.ops.clip(
            (inputs - self.mean) * scale, -self.clip, self.clip
        )

    def update_statistics(self, inputs: Any) -> None:
        """`update` for `RolloutCollector`: the layer's own inputs."""
        self.update(inputs)

    def update(self, inputs: Any) -> None:
        """Adds the rows of `inputs` `[..., D]` to the running moments.

        Raises:
          ValueError: `inputs` whose last dimension is not D.
          tf.errors.InvalidArgumentError: `inputs` holding NaN or Inf; the
            statistics keep their values (one such row would make them,
            and every later output, NaN for good).
        """
        size = self.mean.shape[0]
        x = tf.cast(inputs, tf.float32)
        if x.shape.rank is not None and x.shape[-1] not in (None, size):
            raise ValueError(
                f"ObservationNormalization.update: `inputs` must end in the "
                f"layer's {size} features. Received: inputs.shape={x.shape}"
            )
        x = tf.debugging.check_numerics(
            tf.reshape(x, [-1, size]),
            "ObservationNormalization.update: `inputs` holds NaN or Inf; the "
            "statistics were not updated",
        )
        _absorb(self.mean, self.variance, self.count, x)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(epsilon=self.epsilon, clip=self.clip)
        return config


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
        _absorb(self.return_mean, self.return_variance, self.count, returns)
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
        """Combines returns' moments into the statistics (`combine_moments`).

        The learner's side of `update_returns`: the moments of the returns
        all workers saw in a round, merged, update the statistics as the
        returns themselves would.

        Args:
          count: the number of returns, >= 0.
          mean: their mean.
          variance: their (population) variance.
        """
        _assign_moments(
            self.return_mean,
            self.return_variance,
            self.count,
            tuple(tf.cast(x, tf.float32) for x in (count, mean, variance)),
        )

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

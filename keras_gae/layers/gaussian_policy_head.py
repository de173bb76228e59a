"""Continuous (Box) actions: a diagonal Gaussian with a learned log-std."""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence
from typing import Union

import keras
import numpy as np
import tensorflow as tf

from keras_gae.layers import policy_head
from keras_gae.layers.squashed_gaussian import SquashedGaussian
from keras_gae.layers.squashed_gaussian import unbounded_dimensions
from keras_gae.ops import _checks

tfd = policy_head.tfd
BOUNDS = (None, "tanh", "clip")


def _bound_array(
    value: Union[float, Sequence[float]], name: str, action_dim: int
) -> np.ndarray:
    try:
        if np.asarray(value).dtype.kind not in "iuf":
            raise TypeError(f"dtype {np.asarray(value).dtype}")
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be a float or a sequence of {action_dim} floats. "
            f"Received: {name}={value!r}"
        ) from error
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != action_dim):
        raise ValueError(
            f"`{name}` must be a float or a sequence of action_dim="
            f"{action_dim} floats, got shape {array.shape}. "
            f"Received: {name}={value!r}"
        )
    if np.isnan(array).any():
        raise ValueError(
            f"`{name}` must not be NaN. Received: {name}={value!r}"
        )
    return np.broadcast_to(array, [action_dim]).copy()


@keras.saving.register_keras_serializable(package="keras_gae")
class GaussianPolicyHead(policy_head.PolicyHead):
    r"""Continuous (Box) actions: a diagonal Gaussian with learned log-std.

        mean = features @ W + b,
        log_std = clip(w_log_std, min_log_std, max_log_std),   shape [D],
        params = concat([mean, broadcast(log_std)], -1),   shape [..., 2 D].

    The log-std is a trainable weight independent of the state (Schulman et
    al. 2017, arXiv:1707.06347, section 6.1); clipping keeps it in
    [min_log_std, max_log_std] (no gradient past the clip).

    `bound` chooses how actions respect the box [low, high]:

    * None: `tfd.Independent(tfd.Normal(mean, exp(log_std)), 1)`; `low` and
      `high` must not be given.
    * "tanh": `SquashedGaussian`: y = c + h * tanh(u), u ~ N(mean, std),
      c = (high + low) / 2, h = (high - low) / 2. `log_prob` includes the
      log-det-Jacobian; `entropy()` is the upper bound H[N] + sum log h (no
      closed form exists; see `SquashedGaussian`); the greedy action is the
      squashed mean c + h * tanh(mean).
    * "clip": the distribution is the unbounded Gaussian; the environment
      receives `postprocess_action(a) = clip(a, low, high)`. `log_prob` and
      the stored action are those of the unclipped sample (the usual PPO
      convention, e.g. stable-baselines3); the greedy action is
      clip(mean, low, high). An infinite `low` or `high` leaves that side
      unclipped.

    "tanh" needs a finite box: a dimension with an infinite side (or one at
    the float32 limit, how tf-agents stores an infinite Box bound), or
    wider than float32 holds, would give infinite actions and NaN
    log-probs, and is refused when the head is made; use "clip" or None
    for such a box.

    Event shape is `[action_dim]`; batch shape the leading dims of params.

    Args:
      action_dim: D, the number of action dimensions, >= 1.
      initial_log_std: initial value of every log-std entry, in
        [min_log_std, max_log_std].
      min_log_std: lower clip of the log-std.
      max_log_std: upper clip of the log-std, > min_log_std.
      bound: None, "tanh" or "clip".
      low: lower bound of the box (a float or D floats, not NaN; finite
        with "tanh", possibly -inf with "clip"); required by, and only
        allowed with, a bound.
      high: upper bound, > low elementwise (possibly inf with "clip").
      kernel_initializer: initializer of W; default `Orthogonal(gain=0.01)`.
      bias_initializer: initializer of b.
      **kwargs: base Layer arguments.

    Call arguments:
      features: `[..., F]` float features.

    Returns:
      params `[..., 2 * action_dim]` (mean, then log-std).

    Raises:
      ValueError: action_dim < 1, min_log_std >= max_log_std,
        initial_log_std outside the clip range, unknown bound, low/high
        missing with a bound or given without one, low >= high, NaN or
        wrongly shaped low/high, an unbounded box with "tanh".
      TypeError: wrong argument types.

    Example:

    ```python
    import keras
    import numpy as np
    import keras_gae

    head = keras_gae.layers.GaussianPolicyHead(
        2, bound="tanh", low=-1.0, high=1.0
    )
    actor = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="tanh"), head]
    )
    params = actor(np.zeros((3, 4), "float32"))  # [3, 4]: mean, log-std
    distribution = head.distribution(params)
    action = distribution.sample()  # [3, 2], inside [-1, 1]
    log_prob = distribution.log_prob(action)  # [3]
    ```
    """

    def __init__(
        self,
        action_dim: int,
        initial_log_std: float = 0.0,
        min_log_std: float = -5.0,
        max_log_std: float = 2.0,
        bound: Optional[str] = None,
        low: Optional[Union[float, Sequence[float]]] = None,
        high: Optional[Union[float, Sequence[float]]] = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.action_dim = _checks.check_positive_int(action_dim, "action_dim")
        self.initial_log_std = _checks.check_float(
            initial_log_std, "initial_log_std"
        )
        self.min_log_std = _checks.check_float(min_log_std, "min_log_std")
        self.max_log_std = _checks.check_float(max_log_std, "max_log_std")
        if not self.min_log_std < self.max_log_std:
            raise ValueError(
                "`min_log_std` must be < `max_log_std`. "
                f"Received: min_log_std={min_log_std!r}, "
                f"max_log_std={max_log_std!r}"
            )
        if not self.min_log_std <= self.initial_log_std <= self.max_log_std:
            raise ValueError(
                "`initial_log_std` must lie in [min_log_std, max_log_std] = "
                f"[{min_log_std}, {max_log_std}]. "
                f"Received: initial_log_std={initial_log_std!r}"
            )
        self.bound = _checks.check_option(bound, "bound", BOUNDS)
        self._low, self._high = self._check_box(bound, low, high)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or policy_head.default_kernel_initializer()
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.mean_layer = keras.layers.Dense(
            self.action_dim,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="mean",
        )

    def _check_box(self, bound: Optional[str], low: Any, high: Any) -> tuple:
        if bound is None:
            if low is not None or high is not None:
                raise ValueError(
                    "`low` and `high` are only used with `bound` 'tanh' or "
                    "'clip'; pass a bound or leave them None. "
                    f"Received: bound=None, low={low!r}, high={high!r}"
                )
            return None, None
        if low is None or high is None:
            raise ValueError(
                f"`bound={bound!r}` needs both `low` and `high`. "
                f"Received: low={low!r}, high={high!r}"
            )
        low_array = _bound_array(low, "low", self.action_dim)
        high_array = _bound_array(high, "high", self.action_dim)
        if not np.all(low_array < high_array):
            raise ValueError(
                "`low` must be < `high` in every action dimension. "
                f"Received: low={low!r}, high={high!r}"
            )
        unbounded = unbounded_dimensions(low_array, high_array)
        if bound == "tanh" and unbounded:
            raise ValueError(
                "`bound='tanh'`: tanh squashing needs a finite box; action "
                f"dimensions {unbounded} are unbounded (an infinite `low` or "
                "`high`, or a box wider than float32 holds), where the "
                "squashed actions and their log-probs would not be finite; "
                "use bound='clip' or None. "
                f"Received: bound='tanh', low={low!r}, high={high!r}"
            )
        return low_array, high_array

    @property
    def low(self) -> Optional[np.ndarray]:
        """Lower bound `[action_dim]` (None without a bound)."""
        return None if self._low is None else self._low.copy()

    @property
    def high(self) -> Optional[np.ndarray]:
        """Upper bound `[action_dim]` (None without a bound)."""
        return None if self._high is None else self._high.copy()

    @property
    def params_size(self) -> int:
        return 2 * self.action_dim

    def build(self, input_shape: Any) -> None:
        self.mean_layer.build(input_shape)
        self.log_std = self.add_weight(
            name="log_std",
            shape=[self.action_dim],
            initializer=keras.initializers.Constant(self.initial_log_std),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, features: tf.Tensor) -> tf.Tensor:
        mean = self.mean_layer(features)
        log_std = tf.clip_by_value(
            tf.cast(self.log_std, mean.dtype),
            self.min_log_std,
            self.max_log_std,
        )
        log_std = tf.broadcast_to(log_std, tf.shape(mean))
        return policy_head.float32_params(tf.concat([mean, log_std], axis=-1))

    def _split(self, params: tf.Tensor) -> tuple:
        params = policy_head.check_params(params, self.params_size)
        mean, log_std = tf.split(params, 2, axis=-1)
        return mean, log_std

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        mean, log_std = self._split(params)
        scale = tf.exp(log_std)
        if self.bound == "tanh":
            return SquashedGaussian(
                mean,
                scale,
                self._low.astype(mean.dtype.as_numpy_dtype),
                self._high.astype(mean.dtype.as_numpy_dtype),
            )
        return tfd.Independent(
            tfd.Normal(loc=mean, scale=scale), reinterpreted_batch_ndims=1
        )

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        mean, _ = self._split(params)
        if self.bound == "tanh":
            return self.distribution(params).mode()
        return self.postprocess_action(mean)

    def postprocess_action(self, action: tf.Tensor) -> tf.Tensor:
        """clip(action, low, high) with bound="clip", else the identity."""
        if self.bound != "clip":
            return action
        action = tf.convert_to_tensor(action)
        dtype = action.dtype.as_numpy_dtype
        return tf.clip_by_value(
            action, self._low.astype(dtype), self._high.astype(dtype)
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "action_dim": self.action_dim,
                "initial_log_std": self.initial_log_std,
                "min_log_std": self.min_log_std,
                "max_log_std": self.max_log_std,
                "bound": self.bound,
                "low": None if self._low is None else self._low.tolist(),
                "high": None if self._high is None else self._high.tolist(),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config

"""Policy heads: a layer maps features to one parameter tensor, from which
the head builds a tensorflow_probability action distribution.

Keeping the layer output a single float tensor (`params`) keeps Keras models
and SavedModel signatures simple; `distribution(params)` is plain Python on
top of it. Leading dimensions of `features` (e.g. `[B]` or `[B, T]`) become
the distribution's batch shape.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence
from typing import Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_gae.ops import _checks

tfb = tfp.bijectors
tfd = tfp.distributions

_HALF_DTYPES = (tf.float16, tf.bfloat16)
BOUNDS = (None, "tanh", "clip")


def _default_kernel_initializer() -> tf.keras.initializers.Initializer:
    # Small initial outputs: a near-uniform (or near-zero-mean) initial
    # policy, the usual PPO choice (Andrychowicz et al. 2020,
    # arXiv:2006.05990, "What Matters In On-Policy RL", section 3.2).
    return tf.keras.initializers.Orthogonal(gain=0.01)


def _python_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"`{name}` must be a Python float. Received: {name}={value!r}"
        )
    return float(value)


def _check_params(params: Any, size: int) -> tf.Tensor:
    params = tf.convert_to_tensor(params)
    if not params.dtype.is_floating:
        raise TypeError(
            "`params` must be a floating-point tensor (the head's output). "
            f"Received: params={_checks.describe(params)}"
        )
    if params.shape.rank == 0:
        raise ValueError(
            f"`params` must have rank >= 1 with last dimension {size}. "
            f"Received: params={_checks.describe(params)}"
        )
    last = params.shape[-1] if params.shape.rank is not None else None
    if last is not None and last != size:
        raise ValueError(
            f"`params` must have last dimension {size} for this head, got "
            f"{last}. Received: params={_checks.describe(params)}"
        )
    return params


def _float_params(params: tf.Tensor) -> tf.Tensor:
    # Log-probabilities and entropies in half precision are too coarse for
    # probability ratios; mixed-precision heads return float32 params.
    if params.dtype in _HALF_DTYPES:
        return tf.cast(params, tf.float32)
    return params


class SquashedGaussian(tfd.TransformedDistribution):
    r"""A diagonal Gaussian squashed by tanh into the box [low, high].

    With u ~ N(loc, diag(scale^2)) of event shape `[D]`,
    c = (high + low) / 2 and h = (high - low) / 2,

        y = c + h * tanh(u),
        log p(y) = log N(u; loc, scale) - sum_d [log h_d + log(1 - tanh^2 u_d)],
        u = atanh((y - c) / h)

    (the change of variables of Haarnoja et al. 2018, arXiv:1801.01290,
    appendix C, with the rescaling to [low, high]). `log_prob` evaluates an
    action within a relative 1e-6 (1e-12 in float64) of a bound at that
    distance, so actions that rounded onto a bound keep a finite log-prob.

    `entropy()` has no closed form. It returns the upper bound
    H[N(loc, scale)] + sum_d log h_d (log(1 - tanh^2) <= 0), which differs
    from the true entropy by E[sum_d log(1 - tanh^2 u_d)] and has the same
    gradient with respect to `scale` as the base Gaussian entropy. For an
    unbiased estimate use `-log_prob(sample())`.

    `mode()` is the squashed mean c + h * tanh(loc) (the mode of u pushed
    through the squash; not the mode of y in general).
    """

    def __init__(
        self,
        loc: Any,
        scale: Any,
        low: Any,
        high: Any,
        validate_args: bool = False,
        name: str = "SquashedGaussian",
    ):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            loc = tf.convert_to_tensor(loc)
            dtype = loc.dtype
            low = tf.cast(low, dtype)
            high = tf.cast(high, dtype)
            self._center = (high + low) / 2.0
            self._half_range = (high - low) / 2.0
            super().__init__(
                distribution=tfd.Independent(
                    tfd.Normal(loc=loc, scale=tf.cast(scale, dtype)),
                    reinterpreted_batch_ndims=1,
                ),
                bijector=tfb.Chain(
                    [
                        tfb.Shift(self._center),
                        tfb.Scale(self._half_range),
                        tfb.Tanh(),
                    ]
                ),
                validate_args=validate_args,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            loc=tfp.util.ParameterProperties(event_ndims=1),
            scale=tfp.util.ParameterProperties(
                event_ndims=1,
                default_constraining_bijector_fn=(
                    lambda: tfb.Softplus(low=np.finfo(np.float32).tiny)
                ),
            ),
            low=tfp.util.ParameterProperties(event_ndims=1),
            high=tfp.util.ParameterProperties(event_ndims=1),
        )

    @property
    def loc(self) -> tf.Tensor:
        """Mean of the Gaussian before the squash."""
        return self.distribution.distribution.loc

    @property
    def scale(self) -> tf.Tensor:
        """Standard deviation of the Gaussian before the squash."""
        return self.distribution.distribution.scale

    def _unsquash(self, y: tf.Tensor) -> tuple:
        """(u, z = tanh(u)) for an action y, z kept inside (-1, 1)."""
        margin = 1e-12 if self.dtype == tf.float64 else 1e-6
        z = (tf.cast(y, self.dtype) - self._center) / self._half_range
        z = tf.clip_by_value(z, -1.0 + margin, 1.0 - margin)
        return tf.atanh(z), z

    def _log_prob(self, y, **kwargs):
        u, z = self._unsquash(y)
        log_det_jacobian = tf.reduce_sum(
            tf.math.log(self._half_range) + tf.math.log1p(-tf.square(z)),
            axis=-1,
        )
        return self.distribution.log_prob(u) - log_det_jacobian

    def _prob(self, y, **kwargs):
        return tf.exp(self._log_prob(y))

    def _entropy(self, **kwargs):
        return self.distribution.entropy() + tf.reduce_sum(
            tf.math.log(self._half_range), axis=-1
        )

    def _mode(self, **kwargs):
        return self._center + self._half_range * tf.tanh(self.loc)


class PolicyHead(tf.keras.layers.Layer):
    """Base class of policy heads.

    A head is a Keras layer whose `call(features)` returns one float tensor
    `params` of shape `[..., params_size]` (float32 when the layer computes in
    float16/bfloat16), plus methods that turn `params` into actions:

    * `distribution(params)`: a tensorflow_probability distribution with
      batch shape `params.shape[:-1]`.
    * `greedy_action(params)`: the deterministic action, ready for the
      environment (already passed through `postprocess_action`).
    * `postprocess_action(action)`: maps a sampled action to the one sent to
      the environment (identity unless a subclass says otherwise). It is
      idempotent. Log-probabilities always refer to the action *before*
      postprocessing, i.e. a sample of `distribution(params)`.

    Subclasses implement `call`, `params_size`, `distribution` and
    `greedy_action`.
    """

    @property
    def params_size(self) -> int:
        """Size of the last dimension of `params`."""
        raise NotImplementedError

    def call(self, features: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """The action distribution for `params` `[..., params_size]`."""
        raise NotImplementedError

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        """The greedy (mode) action for `params` `[..., params_size]`."""
        raise NotImplementedError

    def postprocess_action(self, action: tf.Tensor) -> tf.Tensor:
        """The action sent to the environment for a sampled `action`."""
        return action


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class CategoricalPolicyHead(PolicyHead):
    r"""Discrete actions: a Dense layer to logits, a Categorical distribution.

        params = logits = features @ W + b,   pi(a | s) = softmax(logits)_a.

    Args:
      num_actions: number of discrete actions, >= 1.
      kernel_initializer: initializer of W; default
        `Orthogonal(gain=0.01)` (near-uniform initial policy).
      bias_initializer: initializer of b.
      action_dtype: integer dtype of actions, "int32" or "int64" (gymnasium
        `Discrete` spaces use int64).
      **kwargs: base Layer arguments.

    Call arguments:
      features: `[..., F]` float features.

    Returns:
      logits `[..., num_actions]`. `distribution(params)` is
      `tfd.Categorical(logits=params)` with batch shape `[...]` and event
      shape `[]`; `greedy_action(params)` the argmax.

    Raises:
      ValueError: num_actions < 1, unknown action_dtype.
      TypeError: non-int num_actions.
    """

    def __init__(
        self,
        num_actions: int,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        action_dtype: str = "int32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_actions = _checks.check_positive_int(
            num_actions, "num_actions"
        )
        if action_dtype not in ("int32", "int64", tf.int32, tf.int64):
            raise ValueError(
                '`action_dtype` must be "int32" or "int64". '
                f"Received: action_dtype={action_dtype!r}"
            )
        self.action_dtype = tf.as_dtype(action_dtype).name
        self.kernel_initializer = tf.keras.initializers.get(
            kernel_initializer or _default_kernel_initializer()
        )
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)
        self.logits_layer = tf.keras.layers.Dense(
            self.num_actions,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="logits",
        )

    @property
    def params_size(self) -> int:
        return self.num_actions

    def build(self, input_shape: Any) -> None:
        self.logits_layer.build(input_shape)
        super().build(input_shape)

    def call(self, features: tf.Tensor) -> tf.Tensor:
        return _float_params(self.logits_layer(features))

    def distribution(self, params: tf.Tensor) -> tfd.Categorical:
        params = _check_params(params, self.params_size)
        return tfd.Categorical(logits=params, dtype=self.action_dtype)

    def greedy_action(self, params: tf.Tensor) -> tf.Tensor:
        params = _check_params(params, self.params_size)
        return tf.argmax(params, axis=-1, output_type=self.action_dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_actions": self.num_actions,
                "kernel_initializer": tf.keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": tf.keras.initializers.serialize(
                    self.bias_initializer
                ),
                "action_dtype": self.action_dtype,
            }
        )
        return config


def _bound_array(
    value: Union[float, Sequence[float]], name: str, action_dim: int
) -> np.ndarray:
    try:
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
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    return np.broadcast_to(array, [action_dim]).copy()


@tf.keras.saving.register_keras_serializable(package="keras_gae")
class GaussianPolicyHead(PolicyHead):
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
      clip(mean, low, high).

    Event shape is `[action_dim]`; batch shape the leading dims of params.

    Args:
      action_dim: D, the number of action dimensions, >= 1.
      initial_log_std: initial value of every log-std entry, in
        [min_log_std, max_log_std].
      min_log_std: lower clip of the log-std.
      max_log_std: upper clip of the log-std, > min_log_std.
      bound: None, "tanh" or "clip".
      low: lower bound of the box (a float or D floats, finite); required
        by, and only allowed with, a bound.
      high: upper bound, > low elementwise.
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
        missing with a bound or given without one, low >= high, non-finite
        or wrongly shaped low/high.
      TypeError: wrong argument types.
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
        self.initial_log_std = _python_float(initial_log_std, "initial_log_std")
        self.min_log_std = _python_float(min_log_std, "min_log_std")
        self.max_log_std = _python_float(max_log_std, "max_log_std")
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
        if bound not in BOUNDS:
            raise ValueError(
                f"`bound` must be one of {BOUNDS}. Received: bound={bound!r}"
            )
        self.bound = bound
        self._low, self._high = self._check_box(bound, low, high)
        self.kernel_initializer = tf.keras.initializers.get(
            kernel_initializer or _default_kernel_initializer()
        )
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)
        self.mean_layer = tf.keras.layers.Dense(
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
            initializer=tf.keras.initializers.Constant(self.initial_log_std),
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
        return _float_params(tf.concat([mean, log_std], axis=-1))

    def _split(self, params: tf.Tensor) -> tuple:
        params = _check_params(params, self.params_size)
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
                "kernel_initializer": tf.keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": tf.keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config

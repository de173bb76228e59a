"""A diagonal Gaussian squashed by tanh into a box, as a tfp distribution."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_gae._src.dependencies import tfp

tfb = tfp.bijectors
tfd = tfp.distributions


def unbounded_dimensions(low: Any, high: Any, dtype: Any = np.float32) -> list:
    """The dimensions of the box [low, high] tanh cannot squash into: a NaN
    or infinite side (or one at the `dtype` limit, how tf-agents stores an
    infinite bound), or a width beyond the `dtype` range."""
    limit = float(np.finfo(dtype).max)
    low = np.asarray(low, np.float64)
    high = np.asarray(high, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        width = high.astype(dtype) - low.astype(dtype)
        finite = (np.abs(low) < limit) & (np.abs(high) < limit)
        finite = finite & np.isfinite(width)
    return np.flatnonzero(np.broadcast_to(~finite, width.shape)).tolist()


def _check_box(low: Any, high: Any, event_size: Any, dtype: Any) -> None:
    """Refuses a static box tanh cannot squash into (class docstring)."""
    low_value, high_value = (
        tf.get_static_value(value) if tf.is_tensor(value) else value
        for value in (low, high)
    )
    if low_value is None or high_value is None:
        return  # Known only when the graph runs.
    received = f"Received: low={low!r}, high={high!r}"
    try:
        low_value = np.asarray(low_value, np.float64)
        high_value = np.asarray(high_value, np.float64)
        shape = np.broadcast_shapes(
            low_value.shape, high_value.shape, (event_size or 1,)
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            "SquashedGaussian: `low` and `high` must be floats that broadcast "
            f"to the event shape [{event_size}] of `loc` ({error}). {received}"
        ) from error
    if event_size is not None and shape != (event_size,):
        raise ValueError(
            "SquashedGaussian: `low` and `high` must broadcast to the event "
            f"shape [{event_size}] of `loc`, got shape {shape}. {received}"
        )
    low_value = np.broadcast_to(low_value, shape)
    high_value = np.broadcast_to(high_value, shape)
    unbounded = unbounded_dimensions(low_value, high_value, dtype)
    if unbounded:
        raise ValueError(
            "SquashedGaussian needs a finite box: dimensions "
            f"{unbounded} are NaN, infinite or wider than "
            f"{np.dtype(dtype).name} holds. {received}"
        )
    if not np.all(low_value < high_value):
        raise ValueError(
            f"SquashedGaussian needs low < high in every dimension. {received}"
        )


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

    `GaussianPolicyHead(bound="tanh")` builds one from its params.

    `low` and `high` given as Python or NumPy values (or constant tensors)
    are checked when the distribution is made: they must broadcast to the
    event shape `[D]` of `loc`, hold no NaN, be finite (inside the range of
    `loc`'s dtype, box width included) and satisfy low < high, else a
    ValueError names them; tanh cannot squash into an unbounded interval.

    Example:

    ```python
    import numpy as np
    import keras_gae

    distribution = keras_gae.layers.SquashedGaussian(
        loc=np.zeros([2]), scale=np.ones([2]), low=[-1.0, 0.0], high=1.0
    )
    action = distribution.sample(5)  # [5, 2], inside the box
    distribution.log_prob(action)  # [5]
    distribution.mode()  # [0.0, 0.5], the squashed mean
    ```
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
            _check_box(low, high, loc.shape[-1], dtype.as_numpy_dtype)
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

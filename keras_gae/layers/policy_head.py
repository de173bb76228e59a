"""The policy-head base class and the helpers its subclasses share.

A head is a layer mapping features to one parameter tensor, from which it
builds a tensorflow_probability action distribution. Keeping the layer output
a single float tensor (`params`) keeps Keras functional models and SavedModel
signatures simple, and keeps distributions out of `call`: Keras 3 runs `call`
on symbolic KerasTensors when a functional model is built, and a
tensorflow_probability distribution cannot be built on those.
`distribution(params)` is plain Python on top of real tensors. Leading
dimensions of `features` (e.g. `[B]` or `[B, T]`) become the distribution's
batch shape.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src.dependencies import tfp
from keras_gae.layers import _precision
from keras_gae.ops import _checks

tfd = tfp.distributions


def default_kernel_initializer() -> keras.initializers.Initializer:
    """Orthogonal(gain=0.01): small initial outputs.

    A near-uniform (or near-zero-mean) initial policy, the usual PPO choice
    (Andrychowicz et al. 2020, arXiv:2006.05990, "What Matters In On-Policy
    RL", section 3.2).
    """
    return keras.initializers.Orthogonal(gain=0.01)


def float32_params(params: tf.Tensor) -> tf.Tensor:
    """`params` in float32 when the head computes in half precision."""
    if params.dtype.name in _precision.HALF_DTYPES:
        return tf.cast(params, tf.float32)
    return params


def check_params(params: Any, size: int) -> tf.Tensor:
    """`params` as a float tensor whose last dimension is `size`."""
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


class PolicyHead(keras.layers.Layer):
    """Base class of policy heads.

    A head is a Keras layer whose `call(features)` returns one float tensor
    `params` of shape `[..., params_size]` (float32 when the layer computes in
    float16/bfloat16: log-probabilities and entropies in half precision are
    too coarse for probability ratios), plus methods that turn `params` into
    actions:

    * `distribution(params)`: a tensorflow_probability distribution with
      batch shape `params.shape[:-1]`.
    * `greedy_action(params)`: the deterministic action, ready for the
      environment (already passed through `postprocess_action`).
    * `postprocess_action(action)`: maps a sampled action to the one sent to
      the environment (identity unless a subclass says otherwise). It is
      idempotent. Log-probabilities always refer to the action *before*
      postprocessing, i.e. a sample of `distribution(params)`.

    Subclasses implement `call` (passing its result through
    `float32_params`), `params_size`, `distribution` and `greedy_action`.

    Example:

    ```python
    import tensorflow as tf
    import keras_gae
    from keras_gae._src.dependencies import tfp

    class DeterministicHead(keras_gae.layers.PolicyHead):
        # One action dimension whose distribution is a point mass.

        @property
        def params_size(self):
            return 1

        def call(self, features):
            return tf.reduce_mean(features, axis=-1, keepdims=True)

        def distribution(self, params):
            return tfp.distributions.Independent(
                tfp.distributions.Deterministic(params), 1
            )

        def greedy_action(self, params):
            return params

    head = DeterministicHead()
    params = head(tf.ones([2, 3]))  # [2, 1]
    head.distribution(params).sample()  # [[1.0], [1.0]]
    ```
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

    def invalid_actions(self, actions: tf.Tensor) -> Optional[tf.Tensor]:
        """Where `actions` lie outside this head's action space.

        A bool tensor shaped like `actions`, or None when every value is a
        possible action (the default). Training models refuse a step whose
        valid rows hold such actions, naming `valid_action_range`.
        """
        del actions
        return None

    @property
    def valid_action_range(self) -> str:
        """The action space, in words, for error messages."""
        return "any value"

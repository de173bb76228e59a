"""`FusedAdam`: Keras' Adam with each variable's update as one TensorFlow op.

Keras 3's `Adam.update_step` builds its update from about 35 small
operations per variable (casts, powers, the two moment updates, the
step), all of which a traced training step must create, optimize and
run. `FusedAdam` computes the same update (Kingma & Ba 2015,
arXiv:1412.6980, with Keras' placement of epsilon):

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m <- m + (1 - beta_1) * (g - m)
    v <- v + (1 - beta_2) * (g^2 - v)
    w <- w - alpha * m / (sqrt(v) + epsilon)

with TensorFlow's `ResourceApplyAdam` kernel, one op per variable (it also
compiles under XLA). It keeps `keras.optimizers.Adam`'s arguments, variables
and checkpoints (the two are interchangeable in a checkpoint); `amsgrad=True`
runs Keras' own update. `keras_gae.agents.PPO` and `examples/train_ppo.py`
train with it; a model compiled with `keras.optimizers.Adam` trains the
same, up to float32 rounding.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import keras
import tensorflow as tf

from keras_gae._src import private_apis


def _scalar(value: Any, dtype: tf.DType) -> tf.Tensor:
    # A Python float straight to `dtype` (`tf.cast` would round it to
    # float32 first).
    if tf.is_tensor(value) or isinstance(value, keras.Variable):
        return tf.cast(value, dtype)
    return tf.constant(value, dtype)


class _Coefficients(NamedTuple):
    """An update's scalars, computed once for all variables.

    float32, or float64 when a variable is float64.
    """

    learning_rate: tf.Tensor
    beta_1_power: tf.Tensor
    beta_2_power: tf.Tensor
    beta_1: tf.Tensor
    beta_2: tf.Tensor
    epsilon: tf.Tensor


@keras.saving.register_keras_serializable(package="keras_gae")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose per-variable update is one fused op.

    Takes `keras.optimizers.Adam`'s arguments (learning rate or schedule,
    `beta_1`, `beta_2`, `epsilon`, `amsgrad`, clipping, weight decay,
    gradient accumulation, ...) and holds the same variables. Only the
    update of one variable from its gradient differs: TensorFlow's
    `ResourceApplyAdam` instead of Keras' composite of small operations,
    with the learning rate and the powers of the betas computed once per
    update rather than once per variable. A traced training step gets
    smaller: faster to trace, optimize and run. With `amsgrad=True` it is
    Keras' Adam.

    Example:

    ```python
    model.compile(optimizer=keras_gae.optimizers.FusedAdam(3e-4))
    ```
    """

    def _coefficients(
        self, learning_rate: Any, dtype: tf.DType = tf.float32
    ) -> _Coefficients:
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = _scalar(self.beta_1, dtype)
        beta_2 = _scalar(self.beta_2, dtype)
        return _Coefficients(
            tf.cast(learning_rate, dtype),
            tf.pow(beta_1, step),
            tf.pow(beta_2, step),
            beta_1,
            beta_2,
            _scalar(self.epsilon, dtype),
        )

    def _backend_update_step(
        self, grads: list, trainable_variables: list, learning_rate: Any
    ) -> None:
        # A private Keras hook (keras_gae/_src/private_apis.py): the one
        # place that sees every variable of an update at once.
        if not self.amsgrad:
            # Handed to every variable's `update_step` (through the
            # strategy's per-replica update, which passes nests along).
            # In float64 when a variable is (then cast per variable).
            wide = any(v.dtype == tf.float64 for v in trainable_variables)
            learning_rate = self._coefficients(
                learning_rate, tf.float64 if wide else tf.float32
            )
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(
        self, gradient: Any, variable: Any, learning_rate: Any
    ) -> None:
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        coefficients = learning_rate
        if not isinstance(coefficients, _Coefficients):
            coefficients = self._coefficients(learning_rate, variable.dtype)
        momentum, velocity = private_apis.adam_slots(self, variable)
        if isinstance(variable, keras.Variable):
            variable = variable.value
        dtype = variable.dtype

        def cast(x):
            return x if x.dtype == dtype else tf.cast(x, dtype)

        def constant(x, value):
            # Straight from the Python float where the dtypes differ (a
            # cast would round twice).
            return x if x.dtype == dtype else _scalar(value, dtype)

        # Under a distribution strategy this runs once per replica's copy
        # of the variable, where `.handle` of a mirrored slot variable is
        # that replica's copy.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.value.handle,
            v=velocity.value.handle,
            beta1_power=cast(coefficients.beta_1_power),
            beta2_power=cast(coefficients.beta_2_power),
            lr=cast(coefficients.learning_rate),
            beta1=constant(coefficients.beta_1, self.beta_1),
            beta2=constant(coefficients.beta_2, self.beta_2),
            epsilon=constant(coefficients.epsilon, self.epsilon),
            grad=cast(tf.convert_to_tensor(gradient)),
        )

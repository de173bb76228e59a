"""Keras `Loss` classes around the policy, value, entropy and KL losses.

Each class is a thin wrapper of a function in `keras_gae.ops` for use in
`model.compile(loss=...)`, built the way Keras' own `LossFunctionWrapper`
(keras/src/losses/losses.py) builds its losses: one wrapper
(`MaskedMeanLossWrapper`) holds the function and its
keyword arguments and serializes those arguments, and each class only names
them. Keras calls a loss as
`loss(y_true, y_pred, sample_weight)`; here:

  * `y_pred` is the model output the loss differentiates (new log-probs,
    values, entropy), any per-step shape such as `[B, T]` or `[B]`.
  * `y_true` carries the data recorded at collection. Where a loss needs two
    such tensors, they are stacked on a new last axis:
    `y_true.shape == y_pred.shape + (2,)`, in the order each class documents
    (a single-output Keras model cannot take a dict as its target).
  * `sample_weight` is the mask: steps with weight 0 are left out, every
    other finite weight counts as 1, and a NaN or Inf weight makes the
    loss NaN. Its axes line up with `y_pred`'s leading
    axes and broadcast over the rest, so a `[B]` weight masks whole rows of
    a `[B, T]` output. Losses are means over valid steps, not weighted
    means, exactly as the functions compute.

The result is always that scalar mean, so these classes take no `reduction`.
Under a `tf.distribute` strategy it is divided by the number of replicas,
as Keras 3's own mean losses are (each replica's gradient is then summed),
and `fit` multiplies it back for the reported loss. The clipping diagnostics
(`clip_fraction`, `approx_kl`) are not returned by a Keras loss; call the
functions for them.

The tensors are not cast to a loss dtype: the functions compute in float32,
or float64 when an input is float64 (half-precision inputs are computed in
float32).

A NaN or Inf at a valid step makes the loss NaN or Inf, never a finite
number (see `keras_gae.ops.policy_losses`). Keras' own `fit` applies the
update such a loss gives (`keras.callbacks.TerminateOnNaN` stops training
only after it); the keras_gae training models refuse the step instead.
With `check_numerics=True` a class raises an InvalidArgumentError at the
call, naming the function's argument the tensor feeds (`log_probs` for
`y_pred`, `advantages`, `old_log_probs`, `returns`, ... for the parts of
`y_true`).
"""

from __future__ import annotations

from typing import Optional

import keras

from keras_gae import ops
from keras_gae.losses.masked_mean_loss import MaskedMeanLossWrapper
from keras_gae.losses.masked_mean_loss import check_hyperparameter
from keras_gae.losses.masked_mean_loss import unstack_targets
from keras_gae.ops import _checks

# The functions in Keras' (y_true, y_pred) convention, unpacking y_true.


def _ppo_clip(y_true, y_pred, mask=None, **kwargs):
    advantages, old_log_probs = unstack_targets(
        y_true, y_pred, ("advantages", "old_log_probs")
    )
    return ops.ppo_clip_loss(
        y_pred, old_log_probs, advantages, mask=mask, **kwargs
    ).loss


def _policy_gradient(y_true, y_pred, mask=None, **kwargs):
    return ops.policy_gradient_loss(y_pred, y_true, mask=mask, **kwargs)


def _value(y_true, y_pred, mask=None, **kwargs):
    if y_true.shape.rank == y_pred.shape.rank:
        if kwargs["clip_range"] is not None:
            raise ValueError(
                "`y_true` must stack (returns, old_values) on a new last "
                "axis when `clip_range` is set: shape y_pred.shape + (2,) "
                f"= {tuple(y_pred.shape.concatenate([2]))}, got "
                f"{tuple(y_true.shape)}. "
                f"Received: y_true={_checks.describe(y_true)}"
            )
        returns, old_values = y_true, None
    else:
        returns, old_values = unstack_targets(
            y_true, y_pred, ("returns", "old_values")
        )
    return ops.value_loss(
        y_pred, returns, old_values=old_values, mask=mask, **kwargs
    ).loss


def _entropy(y_true, y_pred, mask=None, **kwargs):
    del y_true  # The entropy needs no target.
    return ops.entropy_loss(y_pred, mask=mask, **kwargs)


def _kl_penalty(y_true, y_pred, mask=None, **kwargs):
    return ops.kl_penalty_loss(y_pred, y_true, mask=mask, **kwargs)


@keras.saving.register_keras_serializable(package="keras_gae")
class PPOClipLoss(MaskedMeanLossWrapper):
    """PPO's clipped surrogate loss; see `keras_gae.ops.ppo_clip_loss`.

    Packing:
      y_true: `y_pred.shape + (2,)`: advantages and old log-probs stacked on
        the last axis, `tf.stack([advantages, old_log_probs], axis=-1)`.
      y_pred: log pi(a_t | s_t) under the current policy, e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      clip_ratio: eps >= 0 for the bounds not given below.
      clip_ratio_low: eps_low >= 0 or None (`clip_ratio`).
      clip_ratio_high: eps_high >= 0 or None (`clip_ratio`).
      dual_clip: c > 1 (Ye et al. 2020, arXiv:1912.09729) or None.
      name: the loss name.
      check_numerics: whether NaN or Inf at a valid step, or a loss that
        overflows, raises an error (see `keras_gae.ops.ppo_clip_loss`).

    Example:

    ```python
    import numpy as np
    import keras_gae

    loss = keras_gae.losses.PPOClipLoss(clip_ratio=0.2)
    advantages = np.array([[1.0, -1.0]], "float32")
    old_log_probs = np.log(np.array([[0.5, 0.5]], "float32"))
    log_probs = np.log(np.array([[0.9, 0.3]], "float32"))
    y_true = np.stack([advantages, old_log_probs], axis=-1)  # [1, 2, 2]
    loss(y_true, log_probs, sample_weight=np.array([[1.0, 1.0]]))
    # -mean(min(r * A, clip(r, 0.8, 1.2) * A)) = -(1.2 - 0.8) / 2 = -0.2
    ```

    In `model.compile(loss={"log_prob": PPOClipLoss()})` the model's
    "log_prob" output is `y_pred` and its target is the stacked `y_true`.
    """

    def __init__(
        self,
        clip_ratio: float = 0.2,
        clip_ratio_low: Optional[float] = None,
        clip_ratio_high: Optional[float] = None,
        dual_clip: Optional[float] = None,
        name: str = "ppo_clip_loss",
        check_numerics: bool = False,
    ):
        super().__init__(
            _ppo_clip,
            name=name,
            clip_ratio=check_hyperparameter(
                clip_ratio, "clip_ratio", minimum=0.0
            ),
            clip_ratio_low=check_hyperparameter(
                clip_ratio_low, "clip_ratio_low", minimum=0.0, allow_none=True
            ),
            clip_ratio_high=check_hyperparameter(
                clip_ratio_high,
                "clip_ratio_high",
                minimum=0.0,
                allow_none=True,
            ),
            dual_clip=check_hyperparameter(
                dual_clip,
                "dual_clip",
                minimum=1.0,
                inclusive=False,
                allow_none=True,
            ),
            check_numerics=check_numerics,
        )


@keras.saving.register_keras_serializable(package="keras_gae")
class PolicyGradientLoss(MaskedMeanLossWrapper):
    """-mean(log pi * A); see `keras_gae.ops.policy_gradient_loss`.

    Packing:
      y_true: the advantages, shaped like `y_pred`.
      y_pred: log pi(a_t | s_t), e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      name: the loss name.
      check_numerics: whether NaN or Inf at a valid step raises an error.

    Example:

    ```python
    import numpy as np
    import keras_gae

    loss = keras_gae.losses.PolicyGradientLoss()
    advantages = np.array([[2.0, 1.0, 5.0]], "float32")
    log_probs = np.array([[-1.0, -0.5, -3.0]], "float32")
    loss(advantages, log_probs, sample_weight=np.array([[1.0, 1.0, 0.0]]))
    # -(2 * -1 + 1 * -0.5) / 2 = 1.25: the third step is masked out.
    ```
    """

    def __init__(
        self, name: str = "policy_gradient_loss", check_numerics: bool = False
    ):
        super().__init__(
            _policy_gradient, name=name, check_numerics=check_numerics
        )


@keras.saving.register_keras_serializable(package="keras_gae")
class ValueLoss(MaskedMeanLossWrapper):
    """The critic's (clipped) regression loss; see `keras_gae.ops.value_loss`.

    Packing:
      y_true: the returns shaped like `y_pred`, or, needed with `clip_range`,
        `y_pred.shape + (2,)`: returns and old values stacked on the last
        axis, `tf.stack([returns, old_values], axis=-1)`.
      y_pred: the critic's values V(s_t), e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      clip_range: c >= 0 or None for no value clipping.
      clip_mode: "max" (PPO2's max of clipped and unclipped losses) or
        "clamp" (the clipped prediction's loss only).
      loss_type: "squared" (0.5 * e^2) or "huber".
      huber_delta: delta > 0 for the Huber loss.
      name: the loss name.
      check_numerics: whether NaN or Inf at a valid step, or a loss that
        overflows, raises an error.

    Example:

    ```python
    import numpy as np
    import keras_gae

    loss = keras_gae.losses.ValueLoss(clip_range=0.2)
    returns = np.array([[1.0, 0.0]], "float32")
    old_values = np.array([[0.0, 0.0]], "float32")
    values = np.array([[0.5, 0.0]], "float32")
    loss(np.stack([returns, old_values], axis=-1), values)
    # mean(max(0.5 * 0.5**2, 0.5 * 0.8**2), 0) = 0.16
    ```
    """

    def __init__(
        self,
        clip_range: Optional[float] = None,
        clip_mode: str = "max",
        loss_type: str = "squared",
        huber_delta: float = 1.0,
        name: str = "value_loss",
        check_numerics: bool = False,
    ):
        super().__init__(
            _value,
            name=name,
            clip_range=check_hyperparameter(
                clip_range, "clip_range", minimum=0.0, allow_none=True
            ),
            clip_mode=_checks.check_option(
                clip_mode, "clip_mode", ops.VALUE_CLIP_MODES
            ),
            loss_type=_checks.check_option(
                loss_type, "loss_type", ops.VALUE_LOSS_TYPES
            ),
            huber_delta=check_hyperparameter(
                huber_delta, "huber_delta", minimum=0.0, inclusive=False
            ),
            check_numerics=check_numerics,
        )


@keras.saving.register_keras_serializable(package="keras_gae")
class EntropyLoss(MaskedMeanLossWrapper):
    """-mean(entropy), an entropy bonus; see `keras_gae.ops.entropy_loss`.

    Packing:
      y_true: ignored. Keras applies a loss only to outputs that have a
        target, so pass any tensor, e.g. zeros shaped like `y_pred`.
      y_pred: the policy's per-step entropy, e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Weight it with `loss_weights` in `compile` (the entropy coefficient).

    Args:
      name: the loss name.
      check_numerics: whether NaN or Inf at a valid step raises an error.

    Example:

    ```python
    import numpy as np
    import keras_gae

    loss = keras_gae.losses.EntropyLoss()
    entropy = np.array([[0.5, 1.5]], "float32")
    loss(np.zeros_like(entropy), entropy)  # -1.0
    ```
    """

    def __init__(
        self, name: str = "entropy_loss", check_numerics: bool = False
    ):
        super().__init__(_entropy, name=name, check_numerics=check_numerics)


@keras.saving.register_keras_serializable(package="keras_gae")
class KLPenaltyLoss(MaskedMeanLossWrapper):
    """KL(pi || pi_ref) penalty; see `keras_gae.ops.kl_penalty_loss`.

    Packing:
      y_true: the reference policy's log pi_ref(a_t | s_t), shaped like
        `y_pred`.
      y_pred: log pi(a_t | s_t) of actions sampled from pi, e.g. `[B, T]`.
      sample_weight: optional mask of valid steps (0 = left out).

    Args:
      estimator: one of `keras_gae.ops.KL_ESTIMATORS` ("k1", "k2", "k3"),
        see `keras_gae.ops.kl_divergence_estimate`.
      name: the loss name.
      check_numerics: whether NaN or Inf at a valid step, or a loss that
        overflows, raises an error.

    Example:

    ```python
    import numpy as np
    import keras_gae

    loss = keras_gae.losses.KLPenaltyLoss(estimator="k1")
    ref_log_probs = np.array([[-1.0, -2.0]], "float32")
    log_probs = np.array([[-0.5, -2.0]], "float32")
    loss(ref_log_probs, log_probs)  # mean(log pi - log pi_ref) = 0.25
    ```
    """

    def __init__(
        self,
        estimator: str = "k3",
        name: str = "kl_penalty_loss",
        check_numerics: bool = False,
    ):
        super().__init__(
            _kl_penalty,
            name=name,
            estimator=_checks.check_option(
                estimator, "estimator", ops.KL_ESTIMATORS
            ),
            check_numerics=check_numerics,
        )

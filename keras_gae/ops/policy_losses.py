"""Policy, value, entropy and KL losses of advantage-based policy training.

Every per-step input may have any shape (`[B, T]`, `[T, B]`, `[N]`, ...) as
long as all per-step inputs of one call share it. An optional `mask` of the
same shape (bool-like: bool, or integers/floats where nonzero means valid)
selects the valid steps. Every reduction is a mean over valid steps (0 when
there are none), and masked steps are replaced by zeros before any math, so
NaN or Inf padding reaches neither the loss nor its gradients.

Results are float32 (float64 if any float input is float64; float16 and
bfloat16 inputs are computed in float32). Targets and data recorded at
collection (advantages, old log-probs, returns, old values, reference
log-probs) are stop_gradient'ed: gradients reach only the current policy's
log-probs, values and entropy.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional
from typing import Sequence
from typing import Tuple

import numpy as np
import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import masked

VALUE_CLIP_MODES = ("max", "clamp")
VALUE_LOSS_TYPES = ("squared", "huber")
KL_ESTIMATORS = ("k1", "k2", "k3")


class PPOLossOutputs(NamedTuple):
    """What `ppo_clip_loss` returns; every field is a scalar.

    Attributes:
      loss: the clipped surrogate loss to minimize.
      clip_fraction: fraction of valid steps whose gradient the clip cuts.
      approx_kl: estimate of KL(pi_old || pi), without gradient.
    """

    loss: tf.Tensor
    clip_fraction: tf.Tensor
    approx_kl: tf.Tensor


class ValueLossOutputs(NamedTuple):
    """What `value_loss` returns; every field is a scalar.

    Attributes:
      loss: the (clipped) value regression loss to minimize.
      clip_fraction: fraction of valid steps whose gradient the clip cuts
        (0 without value clipping).
    """

    loss: tf.Tensor
    clip_fraction: tf.Tensor


def _per_step_inputs(
    named: Sequence[Tuple[str, Any]], mask: Any
) -> Tuple[list, Optional[tf.Tensor]]:
    """Checks per-step inputs, casts them to one dtype, zeroes masked steps.

    The first input is the reference the others' shapes must match.

    Returns:
      `(tensors, mask)`: the float tensors in input order and the bool mask
      (None when no mask is given).
    """
    tensors = [_checks.convert_float(value, name) for name, value in named]
    reference_name, reference = named[0][0], tensors[0]
    assertions = []
    for (name, _), tensor in zip(named[1:], tensors[1:]):
        assertions.extend(
            _checks.check_same_shape(tensor, reference, name, reference_name)
        )
    if mask is not None:
        mask = _checks.convert_flag(mask, "mask")
        assertions.extend(
            _checks.check_same_shape(mask, reference, "mask", reference_name)
        )
    dtype = _checks.compute_dtype(*tensors)
    tensors = [tf.cast(tensor, dtype) for tensor in tensors]
    if mask is not None:
        # Replacing (not multiplying) keeps NaN padding out of the gradients.
        tensors = [tf.where(mask, t, tf.zeros_like(t)) for t in tensors]
    if assertions:
        with tf.control_dependencies(assertions):
            tensors[0] = tf.identity(tensors[0])
    return tensors, mask


def _scalar_parameter(
    value: Any,
    name: str,
    dtype: tf.DType,
    *,
    minimum: float,
    inclusive: bool,
) -> Tuple[tf.Tensor, list]:
    """Converts a scalar hyperparameter and checks it against `minimum`.

    Python numbers and constant tensors are checked when the graph is built;
    other tensors (a tf.Variable holding a schedule) get a graph assertion.

    Returns:
      `(tensor, assertions)`.
    """
    relation = ">=" if inclusive else ">"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a float {relation} {minimum}, not a bool. "
            f"Received: {name}={value!r}"
        )
    if isinstance(value, (int, float, np.integer, np.floating)):
        # Straight to the computation dtype: through float32 first, 0.1
        # would come out as 0.10000000149 in a float64 loss.
        value = float(value)
        tensor = tf.constant(value, dtype)
    else:
        tensor = _to_tensor(value, name)
    return _check_minimum(tensor, value, name, dtype, minimum, inclusive)


def _to_tensor(value: Any, name: str) -> tf.Tensor:
    try:
        tensor = tf.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be a float or a scalar float tensor. "
            f"Received: {name}={_checks.describe(value)}"
        ) from error
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(
            f"`{name}` must be a float or a scalar float tensor, got dtype "
            f"{tensor.dtype.name}. Received: {name}={_checks.describe(value)}"
        )
    if tensor.shape.rank is not None and tensor.shape.rank != 0:
        raise ValueError(
            f"`{name}` must be a scalar. "
            f"Received: {name}={_checks.describe(value)}"
        )
    return tensor


def _check_minimum(
    tensor: tf.Tensor,
    value: Any,
    name: str,
    dtype: tf.DType,
    minimum: float,
    inclusive: bool,
) -> Tuple[tf.Tensor, list]:
    relation = ">=" if inclusive else ">"
    tensor = tf.cast(tensor, dtype)
    static = tf.get_static_value(tensor)
    if static is not None:
        valid = static >= minimum if inclusive else static > minimum
        if not valid:
            raise ValueError(
                f"`{name}` must be {relation} {minimum}. "
                f"Received: {name}={_checks.describe(value)}"
            )
        return tensor, []
    bound = tf.constant(minimum, dtype)
    check = (
        tf.debugging.assert_greater_equal
        if inclusive
        else tf.debugging.assert_greater
    )
    return tensor, [
        check(tensor, bound, message=f"`{name}` must be {relation} {minimum}.")
    ]


def _check_option(value: Any, name: str, options: Tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(
            f"`{name}` must be one of {options}. Received: {name}={value!r}"
        )


def _after(assertions: list, tensor: tf.Tensor) -> tf.Tensor:
    """`tensor`, computed only after the graph assertions pass."""
    if not assertions:
        return tensor
    with tf.control_dependencies(assertions):
        return tf.identity(tensor)


def _fraction(condition: tf.Tensor, mask: Optional[tf.Tensor], dtype):
    return masked.masked_mean(tf.cast(condition, dtype), mask)


def ppo_clip_loss(
    log_probs: Any,
    old_log_probs: Any,
    advantages: Any,
    *,
    clip_ratio: Any = 0.2,
    clip_ratio_low: Any = None,
    clip_ratio_high: Any = None,
    dual_clip: Any = None,
    mask: Any = None,
) -> PPOLossOutputs:
    r"""PPO's clipped surrogate loss, with optional asymmetric and dual clip.

    With the probability ratio r_t = exp(log_probs_t - old_log_probs_t),
    advantages A_t, eps_low = `clip_ratio_low` and eps_high =
    `clip_ratio_high` (both `clip_ratio` when None), the objective to maximize
    is (Schulman et al. 2017, arXiv:1707.06347, eq. 7)

        L_t = min(r_t * A_t, clip(r_t, 1 - eps_low, 1 + eps_high) * A_t).

    Dual clip (Ye et al. 2020, arXiv:1912.09729) with c = `dual_clip` > 1
    also bounds the objective from below where the advantage is negative, so
    a step whose ratio has grown large cannot dominate the update:

        L_t = max(L_t, c * A_t)   where A_t < 0.

    The loss is the masked mean of -L_t.

    `clip_fraction` is the fraction of valid steps where a clipped branch is
    active, i.e. where the clip makes the step's gradient zero:
    (A_t > 0 and r_t > 1 + eps_high) or (A_t < 0 and r_t < 1 - eps_low), or,
    with dual clip, (A_t < 0 and r_t > c). Ratios exactly on a bound count as
    not clipped (the clipped and unclipped terms are equal there and the
    gradient is taken from the unclipped one); steps with A_t = 0 are never
    clipped.

    `approx_kl` is the masked mean of the k3 estimator (Schulman 2020,
    "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html)
    (r_t - 1) - log r_t: an unbiased, non-negative estimate of
    KL(pi_old || pi) from actions sampled by pi_old. It carries no gradient.

    Args:
      log_probs: per-step float log pi(a_t | s_t) under the current policy,
        any shape (e.g. `[B, T]`).
      old_log_probs: log pi_old(a_t | s_t) recorded at collection, same shape.
        Gradient stopped.
      advantages: A_t, same shape (usually normalized). Gradient stopped.
      clip_ratio: eps >= 0, used for whichever of the two bounds is not given.
      clip_ratio_low: eps_low >= 0 or None (`clip_ratio`).
      clip_ratio_high: eps_high >= 0 or None (`clip_ratio`).
      dual_clip: c > 1, or None for no dual clip.
      mask: optional bool-like validity of each step, same shape.

    The clip parameters are Python floats or scalar tensors (e.g. a
    tf.Variable holding a schedule).

    Returns:
      `PPOLossOutputs(loss, clip_fraction, approx_kl)`, scalars.

    Raises:
      ValueError: mismatched shapes (naming both arguments), a negative clip
        ratio, `dual_clip` <= 1, a non-scalar parameter.
      TypeError: non-float per-step inputs, a non-bool-like mask.
    """
    with tf.name_scope("ppo_clip_loss"):
        (log_probs, old_log_probs, advantages), mask = _per_step_inputs(
            [
                ("log_probs", log_probs),
                ("old_log_probs", old_log_probs),
                ("advantages", advantages),
            ],
            mask,
        )
        dtype = log_probs.dtype
        ratio_parameters = [("clip_ratio", clip_ratio)]
        for name, value in (
            ("clip_ratio_low", clip_ratio_low),
            ("clip_ratio_high", clip_ratio_high),
        ):
            # A bound left as None is clip_ratio, checked under its own name.
            if value is not None:
                ratio_parameters.append((name, value))
        checked = {}
        assertions = []
        for name, value in ratio_parameters:
            checked[name], more = _scalar_parameter(
                value, name, dtype, minimum=0.0, inclusive=True
            )
            assertions += more
        low = checked.get("clip_ratio_low", checked["clip_ratio"])
        high = checked.get("clip_ratio_high", checked["clip_ratio"])
        if dual_clip is not None:
            dual_clip, more = _scalar_parameter(
                dual_clip, "dual_clip", dtype, minimum=1.0, inclusive=False
            )
            assertions += more
        log_probs = _after(assertions, log_probs)

        old_log_probs = tf.stop_gradient(old_log_probs)
        advantages = tf.stop_gradient(advantages)
        log_ratio = log_probs - old_log_probs
        ratio = tf.exp(log_ratio)
        lower = 1.0 - low
        upper = 1.0 + high
        clipped_ratio = tf.clip_by_value(ratio, lower, upper)
        # The unclipped term comes first: on ties (ratio inside the bounds)
        # tf.maximum sends the gradient to its first argument.
        losses = tf.maximum(-ratio * advantages, -clipped_ratio * advantages)
        clipped = tf.logical_or(
            tf.logical_and(advantages > 0, ratio > upper),
            tf.logical_and(advantages < 0, ratio < lower),
        )
        if dual_clip is not None:
            negative = advantages < 0
            # On a tie (ratio == c) tf.minimum also favours its first input.
            losses = tf.where(
                negative,
                tf.minimum(losses, -dual_clip * advantages),
                losses,
            )
            clipped = tf.logical_or(
                clipped, tf.logical_and(negative, ratio > dual_clip)
            )
        loss = masked.masked_mean(losses, mask)
        clip_fraction = _fraction(clipped, mask, dtype)
        log_ratio = tf.stop_gradient(log_ratio)
        approx_kl = masked.masked_mean(
            tf.math.expm1(log_ratio) - log_ratio, mask
        )
        return PPOLossOutputs(
            loss=loss, clip_fraction=clip_fraction, approx_kl=approx_kl
        )


def policy_gradient_loss(
    log_probs: Any, advantages: Any, *, mask: Any = None
) -> tf.Tensor:
    """The policy-gradient loss of A2C / REINFORCE with a baseline.

        loss = -mean_t(log pi(a_t | s_t) * A_t)

    over valid steps, whose gradient is the policy-gradient estimate
    (Williams 1992; Mnih et al. 2016, arXiv:1602.01783).

    Args:
      log_probs: per-step float log pi(a_t | s_t), any shape.
      advantages: A_t, same shape. Gradient stopped.
      mask: optional bool-like validity of each step, same shape.

    Returns:
      The scalar loss.

    Raises:
      ValueError: mismatched shapes (naming both arguments).
      TypeError: non-float inputs, a non-bool-like mask.
    """
    with tf.name_scope("policy_gradient_loss"):
        (log_probs, advantages), mask = _per_step_inputs(
            [("log_probs", log_probs), ("advantages", advantages)], mask
        )
        return masked.masked_mean(
            -log_probs * tf.stop_gradient(advantages), mask
        )


def _regression_loss(
    errors: tf.Tensor, loss_type: str, huber_delta: tf.Tensor
) -> tf.Tensor:
    if loss_type == "squared":
        return 0.5 * tf.square(errors)
    absolute = tf.abs(errors)
    quadratic = tf.minimum(absolute, huber_delta)
    return 0.5 * tf.square(quadratic) + huber_delta * (absolute - quadratic)


def value_loss(
    values: Any,
    returns: Any,
    *,
    old_values: Any = None,
    clip_range: Any = None,
    clip_mode: str = "max",
    loss_type: str = "squared",
    huber_delta: Any = 1.0,
    mask: Any = None,
) -> ValueLossOutputs:
    """The critic's regression loss, with optional PPO-style value clipping.

    With the error e = V(s_t) - R_t, the per-step loss l(e) is
    `loss_type`:

        "squared": l(e) = 0.5 * e^2
        "huber":   l(e) = 0.5 * e^2                          if |e| <= delta
                          delta * (|e| - 0.5 * delta)        otherwise

    (delta = `huber_delta`; both agree for |e| <= delta). With `clip_range`
    c, the prediction may not move further than c from the value recorded at
    collection: V_clip = V_old + clip(V - V_old, -c, c), and `clip_mode`
    selects

        "max":   max(l(V - R), l(V_clip - R))  (the PPO2 baselines form)
        "clamp": l(V_clip - R)                 (only the clipped prediction)

    The loss is the masked mean of the per-step loss.

    `clip_fraction` is the fraction of valid steps where the clip makes the
    step's gradient zero: for "max", steps where l(V_clip - R) is strictly
    larger than l(V - R) (which needs |V - V_old| > c); for "clamp", steps
    where |V - V_old| > c. It is 0 without `clip_range`.

    Args:
      values: per-step float critic predictions V(s_t), any shape.
      returns: R_t, the regression targets, same shape. Gradient stopped.
      old_values: V_old(s_t) recorded at collection, same shape; needed with
        `clip_range`, not read without it. Gradient stopped.
      clip_range: c >= 0 (float or scalar tensor), or None for no clipping.
      clip_mode: "max" or "clamp", see above.
      loss_type: "squared" or "huber".
      huber_delta: delta > 0 for the Huber loss.
      mask: optional bool-like validity of each step, same shape.

    Returns:
      `ValueLossOutputs(loss, clip_fraction)`, scalars.

    Raises:
      ValueError: mismatched shapes (naming both arguments), unknown
        `clip_mode` or `loss_type`, `clip_range` < 0, `huber_delta` <= 0,
        `clip_range` without `old_values`.
      TypeError: non-float inputs, a non-bool-like mask.
    """
    _check_option(clip_mode, "clip_mode", VALUE_CLIP_MODES)
    _check_option(loss_type, "loss_type", VALUE_LOSS_TYPES)
    if clip_range is not None and old_values is None:
        raise ValueError(
            "`old_values` is required with `clip_range`: the clip keeps the "
            "prediction within clip_range of the values recorded at "
            f"collection. Received: old_values=None, clip_range={clip_range!r}"
        )
    with tf.name_scope("value_loss"):
        named = [("values", values), ("returns", returns)]
        if clip_range is not None:
            named.append(("old_values", old_values))
        tensors, mask = _per_step_inputs(named, mask)
        values, returns = tensors[0], tf.stop_gradient(tensors[1])
        dtype = values.dtype
        delta, assertions = _scalar_parameter(
            huber_delta, "huber_delta", dtype, minimum=0.0, inclusive=False
        )
        unclipped_losses = _regression_loss(values - returns, loss_type, delta)
        if clip_range is None:
            loss = masked.masked_mean(
                _after(assertions, unclipped_losses), mask
            )
            return ValueLossOutputs(
                loss=loss, clip_fraction=tf.zeros([], dtype)
            )
        clip_range, more = _scalar_parameter(
            clip_range, "clip_range", dtype, minimum=0.0, inclusive=True
        )
        assertions += more
        old_values = tf.stop_gradient(tensors[2])
        change = values - old_values
        clipped_values = old_values + tf.clip_by_value(
            change, -clip_range, clip_range
        )
        clipped_losses = _regression_loss(
            clipped_values - returns, loss_type, delta
        )
        if clip_mode == "max":
            # Unclipped first: tf.maximum sends a tie's gradient to it.
            losses = tf.maximum(unclipped_losses, clipped_losses)
            clipped = clipped_losses > unclipped_losses
        else:
            losses = clipped_losses
            clipped = tf.abs(change) > clip_range
        loss = masked.masked_mean(_after(assertions, losses), mask)
        return ValueLossOutputs(
            loss=loss, clip_fraction=_fraction(clipped, mask, dtype)
        )


def entropy_loss(entropy: Any, *, mask: Any = None) -> tf.Tensor:
    """Negative mean entropy, so `coef * entropy_loss` is an entropy bonus.

        loss = -mean_t H(pi(. | s_t))

    over valid steps (Mnih et al. 2016, arXiv:1602.01783): minimizing it
    raises the policy's entropy and discourages early collapse.

    Args:
      entropy: per-step float entropy of the current policy, any shape.
      mask: optional bool-like validity of each step, same shape.

    Returns:
      The scalar loss.

    Raises:
      ValueError: a mask whose shape differs from `entropy`'s.
      TypeError: non-float entropy, a non-bool-like mask.
    """
    with tf.name_scope("entropy_loss"):
        (entropy,), mask = _per_step_inputs([("entropy", entropy)], mask)
        return -masked.masked_mean(entropy, mask)


def kl_divergence_estimate(
    log_probs: Any,
    ref_log_probs: Any,
    *,
    estimator: str = "k1",
    mask: Any = None,
) -> tf.Tensor:
    """Per-step Monte Carlo estimates of KL(p || q) from actions drawn from p.

    p is the current policy (which sampled the actions, `log_probs`), q the
    reference policy (`ref_log_probs`). With log r = log q - log p
    (Schulman 2020, "Approximating KL Divergence",
    http://joschu.net/blog/kl-approx.html):

        "k1": -log r = log p - log q         (unbiased, high variance, any sign)
        "k2": 0.5 * (log r)^2                (biased, low variance, >= 0)
        "k3": (r - 1) - log r                (unbiased, low variance, >= 0)

    Their gradients with respect to `log_probs` differ from the gradient of
    the true KL; choose the estimator with that in mind when the estimate is
    used as a loss.

    Args:
      log_probs: per-step float log p(a_t | s_t), any shape.
      ref_log_probs: log q(a_t | s_t), same shape. Gradient stopped.
      estimator: "k1", "k2" or "k3".
      mask: optional bool-like validity of each step, same shape.

    Returns:
      The per-step estimates, same shape as `log_probs`; 0 on masked steps.

    Raises:
      ValueError: mismatched shapes (naming both arguments), unknown
        `estimator`.
      TypeError: non-float inputs, a non-bool-like mask.
    """
    _check_option(estimator, "estimator", KL_ESTIMATORS)
    with tf.name_scope("kl_divergence_estimate"):
        (log_probs, ref_log_probs), mask = _per_step_inputs(
            [("log_probs", log_probs), ("ref_log_probs", ref_log_probs)],
            mask,
        )
        log_ratio = tf.stop_gradient(ref_log_probs) - log_probs
        if estimator == "k1":
            return -log_ratio
        if estimator == "k2":
            return 0.5 * tf.square(log_ratio)
        return tf.math.expm1(log_ratio) - log_ratio


def kl_penalty_loss(
    log_probs: Any,
    ref_log_probs: Any,
    *,
    estimator: str = "k3",
    mask: Any = None,
) -> tf.Tensor:
    """Masked mean of `kl_divergence_estimate`: a KL(pi || pi_ref) penalty.

        loss = mean_t k(log_probs_t, ref_log_probs_t)

    over valid steps, with k the chosen estimator (see
    `kl_divergence_estimate`; "k3" by default, the unbiased non-negative
    one). Scale it with a coefficient, e.g. from `AdaptiveKLController`.

    Args:
      log_probs: per-step float log pi(a_t | s_t), actions drawn from pi,
        any shape.
      ref_log_probs: log pi_ref(a_t | s_t), same shape. Gradient stopped.
      estimator: "k1", "k2" or "k3".
      mask: optional bool-like validity of each step, same shape.

    Returns:
      The scalar loss.

    Raises:
      ValueError: mismatched shapes (naming both arguments), unknown
        `estimator`.
      TypeError: non-float inputs, a non-bool-like mask.
    """
    with tf.name_scope("kl_penalty_loss"):
        estimates = kl_divergence_estimate(
            log_probs, ref_log_probs, estimator=estimator, mask=mask
        )
        return masked.masked_mean(estimates, mask)

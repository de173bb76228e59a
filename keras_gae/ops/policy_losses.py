"""Policy, value, entropy and KL losses of advantage-based policy training.

Every per-step input may have any shape (`[B, T]`, `[T, B]`, `[N]`, ...) as
long as all per-step inputs of one call share it. An optional `mask` of the
same shape (bool-like: bool, or integers/floats where nonzero means valid)
selects the valid steps. Every reduction is a mean over valid steps (0 when
there are none), and masked steps are replaced by zeros before any math, so
NaN or Inf padding reaches neither the loss nor its gradients.

Non-finite inputs: a NaN or Inf input at a valid step makes the loss NaN or
Inf, never a finite number (so a training step refuses it, see
`keras_gae.models.NonFiniteLossError`); PPO's clip, which would otherwise
turn an infinite ratio into a finite loss, makes such a step NaN. A loss
may also be Inf from finite inputs where its true value exceeds the float
range (see `ppo_clip_loss`). With `check_numerics=True` a NaN or Inf input
at a valid step raises an InvalidArgumentError naming the input, and a loss
that overflows anyway raises one naming the function; inside an
XLA-compiled function, where XLA drops the check, it warns instead.

Results are float32 (float64 if any float input is float64; float16 and
bfloat16 inputs are computed in float32). Targets and data recorded at
collection (advantages, old log-probs, returns, old values, reference
log-probs) are stop_gradient'ed: gradients reach only the current policy's
log-probs, values and entropy.

This module holds the policy's losses; the critic's loss is in
`value_losses` and the KL terms in `kl` (all of them are in
`keras_gae.ops`).
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import _loss_inputs
from keras_gae.ops import kl
from keras_gae.ops import masked

__all__ = [
    "PPOLossOutputs",
    "entropy_loss",
    "policy_gradient_loss",
    "ppo_clip_loss",
]


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
    check_numerics: bool = False,
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

    Non-finite and huge log-ratios: a valid step whose log-ratio
    log_probs_t - old_log_probs_t is NaN or +-Inf (a NaN or infinite
    log-prob, including log 0 = -Inf, or a difference beyond the float
    range) makes `loss` NaN (and `approx_kl` NaN or Inf). A finite
    log-ratio, however large, gives the exact objective where the clip
    bounds it, with a zero gradient: for A_t >= 0 (-L_t is -(1 + eps_high)
    * A_t or 0) and, with dual clip, for A_t < 0 (-L_t = -c * A_t). Where
    nothing bounds it, A_t < 0 without dual clip, -L_t = r_t * |A_t| is
    standard PPO's unbounded penalty: when it exceeds the float range (a
    log-ratio above about 88.7 in float32) the loss is +Inf, the overflowed
    true value, not a clamped one. Use `dual_clip` to bound it.
    `approx_kl`, a diagnostic without gradient, overflows to +Inf at such
    log-ratios whatever the advantage.

    Args:
      log_probs: per-step float log pi(a_t | s_t) under the current policy,
        any shape (e.g. `[B, T]`).
      old_log_probs: log pi_old(a_t | s_t) recorded at collection, same shape.
        Gradient stopped.
      advantages: A_t, same shape (usually normalized). Gradient stopped.
      clip_ratio: eps >= 0, used for whichever of the two bounds is not given
        (< 1 when it sets the lower bound).
      clip_ratio_low: eps_low in [0, 1) or None (`clip_ratio`).
      clip_ratio_high: eps_high >= 0 or None (`clip_ratio`).
      dual_clip: c > 1, or None for no dual clip.
      mask: optional bool-like validity of each step, same shape.
      check_numerics: if True, NaN or Inf in a per-step input at a valid
        step raises an InvalidArgumentError naming the input, and a loss
        that overflows (see above) one naming `ppo_clip_loss`.

    The clip parameters are Python floats or scalar tensors (e.g. a
    tf.Variable holding a schedule).

    Returns:
      `PPOLossOutputs(loss, clip_fraction, approx_kl)`, scalars.

    Raises:
      ValueError: mismatched shapes (naming both arguments), a negative clip
        ratio, `dual_clip` <= 1, a non-scalar parameter.
      TypeError: non-float per-step inputs, a non-bool-like mask, a
        non-bool `check_numerics`.
      InvalidArgumentError: with `check_numerics`, see above.
    """
    with tf.name_scope("ppo_clip_loss"):
        (log_probs, old_log_probs, advantages), mask = (
            _loss_inputs.per_step_inputs(
                [
                    ("log_probs", log_probs),
                    ("old_log_probs", old_log_probs),
                    ("advantages", advantages),
                ],
                mask,
                check_numerics,
                "ppo_clip_loss",
            )
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
            checked[name], more = _checks.convert_scalar_parameter(
                value, name, dtype, minimum=0.0, inclusive=True
            )
            assertions += more
        low_name = (
            "clip_ratio_low" if "clip_ratio_low" in checked else ("clip_ratio")
        )
        low = checked[low_name]
        high = checked.get("clip_ratio_high", checked["clip_ratio"])
        static_low = tf.get_static_value(low)
        if static_low is not None and static_low >= 1.0:
            # 1 - eps_low <= 0 would switch the lower clip off silently.
            raise ValueError(
                f"`{low_name}` sets the lower bound 1 - {low_name} of the "
                "ratio and must be < 1 (pass clip_ratio_low as well to use "
                f"a clip_ratio >= 1 for the upper bound only). "
                f"Received: {low_name}={float(static_low)!r}"
            )
        if dual_clip is not None:
            dual_clip, more = _checks.convert_scalar_parameter(
                dual_clip, "dual_clip", dtype, minimum=1.0, inclusive=False
            )
            assertions += more
        log_probs = _loss_inputs.after(assertions, log_probs)

        old_log_probs = tf.stop_gradient(old_log_probs)
        advantages = tf.stop_gradient(advantages)
        log_ratio = log_probs - old_log_probs
        lower = 1.0 - low
        upper = 1.0 + high
        # Where the clip bounds the objective (A >= 0 above `upper`; with
        # dual clip A < 0 above c), every larger ratio gives the same loss
        # and a zero gradient: capping the log-ratio above the bound keeps
        # exp() from overflowing, whose gradient 0 * Inf would be NaN.
        bound = upper if dual_clip is None else tf.maximum(upper, dual_clip)
        capped = tf.minimum(log_ratio, tf.math.log(bound) + 1.0)
        if dual_clip is None:
            capped = tf.where(advantages < 0, log_ratio, capped)
        ratio = tf.exp(capped)
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
        # A NaN or Inf log-ratio is no ratio, and the clip would make a
        # finite loss of it: such a step's loss is NaN.
        losses = tf.where(
            tf.math.is_finite(log_ratio),
            losses,
            tf.constant(float("nan"), dtype),
        )
        loss = _loss_inputs.checked_loss(
            masked.masked_mean(losses, mask),
            check_numerics,
            "ppo_clip_loss",
            "exp(log_probs - old_log_probs) * advantages at a step with a "
            "negative advantage, which only dual_clip bounds",
        )
        clip_fraction = _loss_inputs.fraction(clipped, mask, dtype)
        # Not finite either for a NaN or Inf log-ratio (Inf - Inf or -1 + Inf).
        log_ratio = tf.stop_gradient(log_ratio)
        approx_kl = masked.masked_mean(
            kl.estimate_from_log_ratio(log_ratio, "k3"), mask
        )
        return PPOLossOutputs(
            loss=loss, clip_fraction=clip_fraction, approx_kl=approx_kl
        )


def policy_gradient_loss(
    log_probs: Any,
    advantages: Any,
    *,
    mask: Any = None,
    check_numerics: bool = False,
) -> tf.Tensor:
    """The policy-gradient loss of A2C / REINFORCE with a baseline.

        loss = -mean_t(log pi(a_t | s_t) * A_t)

    over valid steps, whose gradient is the policy-gradient estimate
    (Williams 1992; Mnih et al. 2016, arXiv:1602.01783). A NaN or Inf
    log-prob (log 0 = -Inf included) or advantage at a valid step makes the
    loss NaN or Inf.

    Args:
      log_probs: per-step float log pi(a_t | s_t), any shape.
      advantages: A_t, same shape. Gradient stopped.
      mask: optional bool-like validity of each step, same shape.
      check_numerics: if True, NaN or Inf in an input at a valid step
        raises an InvalidArgumentError naming the input.

    Returns:
      The scalar loss.

    Raises:
      ValueError: mismatched shapes (naming both arguments).
      TypeError: non-float inputs, a non-bool-like mask, a non-bool
        `check_numerics`.
    """
    with tf.name_scope("policy_gradient_loss"):
        (log_probs, advantages), mask = _loss_inputs.per_step_inputs(
            [("log_probs", log_probs), ("advantages", advantages)],
            mask,
            check_numerics,
            "policy_gradient_loss",
        )
        return masked.masked_mean(
            -log_probs * tf.stop_gradient(advantages), mask
        )


def entropy_loss(
    entropy: Any, *, mask: Any = None, check_numerics: bool = False
) -> tf.Tensor:
    """Negative mean entropy, so `coef * entropy_loss` is an entropy bonus.

        loss = -mean_t H(pi(. | s_t))

    over valid steps (Mnih et al. 2016, arXiv:1602.01783): minimizing it
    raises the policy's entropy and discourages early collapse. A NaN or
    Inf entropy at a valid step makes the loss NaN or Inf.

    Args:
      entropy: per-step float entropy of the current policy, any shape.
      mask: optional bool-like validity of each step, same shape.
      check_numerics: if True, NaN or Inf entropy at a valid step raises
        an InvalidArgumentError naming `entropy`.

    Returns:
      The scalar loss.

    Raises:
      ValueError: a mask whose shape differs from `entropy`'s.
      TypeError: non-float entropy, a non-bool-like mask, a non-bool
        `check_numerics`.
    """
    with tf.name_scope("entropy_loss"):
        (entropy,), mask = _loss_inputs.per_step_inputs(
            [("entropy", entropy)], mask, check_numerics, "entropy_loss"
        )
        return -masked.masked_mean(entropy, mask)

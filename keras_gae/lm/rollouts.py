"""Token-level rollout batches for language-model policy training.

A generated sequence is an episode whose steps are its response tokens: the
state s_t is the text so far, `tokens[:t]`, the action a_t is the next token
`tokens[t]`, and a scorer rates the whole sequence once it ends. The
functions here turn sampled sequences into the rollout batch of DESIGN.md,
batch-major with one row per sequence and one step per token position.

Letters used in shapes: `B` sequences, `L` token positions per row (prompt
and response together).

Token/transition alignment (every per-token array is `[B, L]`, aligned with
`tokens`): position t holds the transition s_t --tokens[t]--> s_{t+1} with
s_t = tokens[:t], so

* `log_probs[b, t]` = log pi(tokens[b, t] | tokens[b, :t]), read from the
  model's logits at position t - 1;
* `values[b, t]` = V(s_t) = V(tokens[b, :t]), the value head at position
  t - 1 (the state *before* token t is chosen);
* `bootstrap_value[b]` = V(tokens[b, :L]), the value head at position L - 1
  (the state after the last token).

Entries at prompt and padding positions are never read (they may hold
anything, NaN included). `keras_gae.lm.generate` returns its log-probs and
values in this alignment for the generated positions.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import tensorflow as tf

from keras_gae.ops import _checks
from keras_gae.ops import gae
from keras_gae.ops import policy_losses


def _convert_tokens(tokens: Any) -> tf.Tensor:
    tokens = tf.convert_to_tensor(tokens)
    if not tokens.dtype.is_integer:
        raise TypeError(
            "`tokens` must be an integer tensor of token ids, got dtype "
            f"{tokens.dtype.name}. Received: tokens={_checks.describe(tokens)}"
        )
    _checks.check_rank(tokens, 2, "tokens", "[B, L]")
    return tokens


def _check_token_id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"`{name}` must be a Python int token id. "
            f"Received: {name}={value!r}"
        )
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")
    return value


def _prompt_lengths(prompt_length: Any, tokens: tf.Tensor) -> tf.Tensor:
    """`[B, 1]` int32 start of the response in each row."""
    length = tf.convert_to_tensor(prompt_length)
    if not length.dtype.is_integer:
        raise TypeError(
            "`prompt_length` must be an int or an integer tensor of shape "
            f"[B]. Received: prompt_length={_checks.describe(prompt_length)}"
        )
    if length.shape.rank is not None and length.shape.rank > 1:
        raise ValueError(
            "`prompt_length` must be a scalar or have shape [B]. "
            f"Received: prompt_length={_checks.describe(prompt_length)}"
        )
    if length.shape.rank == 1 and not length.shape.is_compatible_with(
        tokens.shape[:1]
    ):
        raise ValueError(
            "`prompt_length` must have shape [B] matching `tokens` "
            f"{tuple(tokens.shape)}. "
            f"Received: prompt_length={_checks.describe(prompt_length)}"
        )
    static = tf.get_static_value(length)
    if static is not None and (static < 0).any():
        raise ValueError(
            "`prompt_length` must be >= 0. "
            f"Received: prompt_length={_checks.describe(prompt_length)}"
        )
    length = tf.cast(length, tf.int32)
    return tf.broadcast_to(
        tf.reshape(length, [-1, 1]), [tf.shape(tokens)[0], 1]
    )


def response_mask(
    tokens: Any,
    prompt_length: Any,
    eos_id: int,
    *,
    pad_id: Optional[int] = None,
) -> tf.Tensor:
    """Which token positions are response tokens (actions of the policy).

    Position t of row b is valid when t >= prompt_length[b] and no EOS (and,
    with `pad_id`, no padding token) occurs among the response tokens before
    t. The first EOS itself is valid: choosing it is the policy's last
    action. Prompt positions (left padding included) and everything after the
    first EOS are invalid. With `pad_id`, the response also ends before the
    first `pad_id` token that precedes any EOS (a row that stopped at its own
    length limit, right-padded); when `pad_id == eos_id` the token counts as
    EOS.

    Args:
      tokens: `[B, L]` integer token ids, prompt then response.
      prompt_length: int or `[B]` integer tensor: the position where each
        row's response starts (for left-padded prompts of common width P,
        pass P).
      eos_id: the end-of-sequence token id.
      pad_id: optional padding token id.

    Returns:
      `[B, L]` bool mask.

    Raises:
      TypeError: non-integer tokens, ids or prompt lengths.
      ValueError: wrong ranks, negative ids or prompt lengths.
    """
    with tf.name_scope("response_mask"):
        tokens = _convert_tokens(tokens)
        eos_id = _check_token_id(eos_id, "eos_id")
        if pad_id is not None:
            pad_id = _check_token_id(pad_id, "pad_id")
        start = _prompt_lengths(prompt_length, tokens)
        positions = tf.range(tf.shape(tokens)[1])[tf.newaxis, :]
        in_response = positions >= start
        stop = tf.equal(tokens, tf.cast(eos_id, tokens.dtype))
        if pad_id is not None and pad_id != eos_id:
            is_pad = tf.equal(tokens, tf.cast(pad_id, tokens.dtype))
            # A padding token ends the response but is not part of it.
            stops_before = tf.logical_and(in_response, is_pad)
        else:
            stops_before = tf.zeros_like(in_response)
        stop = tf.logical_and(in_response, tf.logical_or(stop, stops_before))
        # Number of stop tokens strictly before each position.
        stops_so_far = tf.cumsum(
            tf.cast(stop, tf.int32), axis=1, exclusive=True
        )
        valid = tf.logical_and(in_response, tf.equal(stops_so_far, 0))
        return tf.logical_and(valid, tf.logical_not(stops_before))


def _last_valid(mask: tf.Tensor) -> tf.Tensor:
    """`[B, L]` bool: True at the last True of each row (none if all False)."""
    length = tf.shape(mask)[1]
    reversed_index = tf.argmax(
        tf.reverse(tf.cast(mask, tf.int32), axis=[1]),
        axis=1,
        output_type=tf.int32,
    )
    last = tf.one_hot(length - 1 - reversed_index, length, dtype=tf.int32)
    any_valid = tf.reduce_any(mask, axis=1, keepdims=True)
    return tf.logical_and(tf.cast(last, tf.bool), any_valid)


def token_rewards(
    scores: Any,
    log_probs: Any,
    ref_log_probs: Any,
    mask: Any,
    *,
    kl_coef: Any,
    estimator: str = "k1",
) -> tuple:
    """Per-token rewards: a KL penalty at every token, the score at the end.

    With k_t the per-token estimate of KL(pi || pi_ref) (see
    `keras_gae.ops.kl_divergence_estimate`) and t_b the last valid position
    of row b,

        r_t = -kl_coef * k_t + [t == t_b] * score_b

    (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
    Preferences", arXiv:1909.08593; Ouyang et al. 2022, arXiv:2203.02155).

    Args:
      scores: `[B]` float sequence scores from the scorer.
      log_probs: `[B, L]` float log pi(a_t | s_t) of the sampling policy.
      ref_log_probs: `[B, L]` float log pi_ref(a_t | s_t).
      mask: `[B, L]` bool-like validity (e.g. `response_mask`).
      kl_coef: float >= 0 or a scalar tensor (e.g. a KL controller's
        `value`).
      estimator: "k1", "k2" or "k3".

    Returns:
      `(rewards, kl)`, both `[B, L]`, 0 on invalid positions (whatever the
      inputs hold there). A row without valid positions gets no score.

    Raises:
      ValueError: mismatched shapes, unknown estimator, negative kl_coef.
      TypeError: non-float inputs, non-bool-like mask.
    """
    with tf.name_scope("token_rewards"):
        if isinstance(kl_coef, (int, float)) and not isinstance(kl_coef, bool):
            if not kl_coef >= 0:
                raise ValueError(
                    f"`kl_coef` must be >= 0. Received: kl_coef={kl_coef!r}"
                )
        mask = _checks.convert_flag(mask, "mask")
        _checks.check_rank(mask, 2, "mask", "[B, L]")
        kl = policy_losses.kl_divergence_estimate(
            log_probs, ref_log_probs, estimator=estimator, mask=mask
        )
        scores = _checks.convert_float(scores, "scores")
        _checks.check_rank(scores, 1, "scores", "[B]")
        if not scores.shape.is_compatible_with(mask.shape[:1]):
            raise ValueError(
                "`scores` must have shape [B] matching `mask` "
                f"{tuple(mask.shape)}. "
                f"Received: scores={_checks.describe(scores)}"
            )
        dtype = _checks.compute_dtype(kl, scores)
        kl = tf.cast(kl, dtype)
        scores = tf.cast(scores, dtype)
        kl_coef = tf.cast(kl_coef, dtype)
        at_end = _last_valid(mask)
        final = tf.where(at_end, scores[:, tf.newaxis], tf.zeros_like(kl))
        rewards = tf.where(mask, -kl_coef * kl + final, tf.zeros_like(kl))
        return rewards, kl


def sequence_kl(kl: Any, mask: Any) -> tf.Tensor:
    """Mean over sequences of the summed per-token KL: the measured KL.

        KL = (1 / B) * sum_b sum_t mask_bt * k_bt

    This is the quantity an `AdaptiveKLController` tracks (Ziegler et al.
    2019), fed with `n_steps = B`.

    Args:
      kl: `[B, L]` float per-token KL estimates (from `token_rewards`).
      mask: `[B, L]` bool-like validity.

    Returns:
      A scalar of kl's dtype.
    """
    with tf.name_scope("sequence_kl"):
        kl = _checks.convert_float(kl, "kl")
        mask = _checks.convert_flag(mask, "mask")
        safe = tf.where(mask, kl, tf.zeros_like(kl))
        return tf.reduce_mean(tf.reduce_sum(safe, axis=1))


def sequence_rollout_batch(
    tokens: Any,
    prompt_length: Any,
    log_probs: Any,
    ref_log_probs: Any,
    values: Any,
    scores: Any,
    *,
    eos_id: int,
    kl_coef: Any,
    estimator: str = "k1",
    bootstrap_value: Any = None,
    whiten_rewards: bool = False,
    pad_id: Optional[int] = None,
) -> dict:
    """The rollout batch (DESIGN.md) of a batch of generated sequences.

    Steps are token positions, batch-major `[B, L]`, aligned as the module
    docstring says: position t is the transition s_t = tokens[:t]
    --tokens[t]--> s_{t+1}, `values[:, t]` = V(s_t), `log_probs[:, t]` =
    log pi(tokens[t] | s_t), `bootstrap_value` = V(tokens[:, :L]).

    * "mask": `response_mask(tokens, prompt_length, eos_id, pad_id=pad_id)`.
    * "terminated": True at each row's EOS token: the sequence is over, the
      state after it is terminal (no bootstrap).
    * "truncated": True at the last valid token of a row that has valid
      tokens but no EOS (it hit the generation limit): the state after it is
      not terminal and bootstraps from `bootstrap_value[b]`, also written to
      "truncation_value" at that position, so it is read correctly whether
      or not the truncation is at the row's end (position L - 1).
    * "reward": `token_rewards` (KL penalty at every token, score on the last
      valid token), then, with `whiten_rewards`, scaled by the inverse
      standard deviation over valid tokens (mean kept, as `masked_whiten`
      with `shift_mean=False`).
    * "observation" and "action": `tokens` (a causal model reads s_t from the
      row at position t - 1); "log_prob" and "value" as given. Invalid
      positions of every float entry are set to 0, so NaN there never
      reaches GAE (a terminated step multiplies V(s_{t+1}) by 0, which would
      keep a NaN).

    Compute advantages with `sequence_advantages` or let a keras_gae model's
    train_step do it (gamma is usually 1 for language models).

    Args:
      tokens: `[B, L]` integer token ids.
      prompt_length: int or `[B]` integers, where each response starts.
      log_probs: `[B, L]` float log pi_old(a_t | s_t) recorded at sampling.
      ref_log_probs: `[B, L]` float log pi_ref(a_t | s_t).
      values: `[B, L]` float V_old(s_t).
      scores: `[B]` float sequence scores.
      eos_id: the end-of-sequence token id.
      kl_coef: float >= 0 or a scalar tensor, the KL penalty coefficient.
      estimator: the per-token KL estimator, "k1", "k2" or "k3".
      bootstrap_value: `[B]` float V of the state after each row's last
        valid token (the value head at position L - 1 for a row that runs to
        the end), required when a row is truncated; None means every row
        must end with EOS (checked: an InvalidArgumentError otherwise, never
        a silent V = 0).
      whiten_rewards: whether to rescale the rewards over valid tokens.
      pad_id: optional padding token id (see `response_mask`).

    Returns:
      A dict with keys "observation", "action", "reward", "terminated",
      "truncated", "log_prob", "value", "bootstrap_value",
      "truncation_value", "mask".

    Raises:
      ValueError, TypeError: as the functions it calls; a non-bool
        `whiten_rewards`.
    """
    if not isinstance(whiten_rewards, bool):
        raise TypeError(
            "`whiten_rewards` must be a bool. "
            f"Received: whiten_rewards={whiten_rewards!r}"
        )
    with tf.name_scope("sequence_rollout_batch"):
        tokens = _convert_tokens(tokens)
        mask = response_mask(tokens, prompt_length, eos_id, pad_id=pad_id)
        values = _checks.convert_float(values, "values")
        _checks.check_rank(values, 2, "values", "[B, L]")
        assertions = _checks.check_same_shape(
            values, tokens, "values", "tokens"
        )
        rewards, _ = token_rewards(
            scores,
            log_probs,
            ref_log_probs,
            mask,
            kl_coef=kl_coef,
            estimator=estimator,
        )
        dtype = _checks.compute_dtype(rewards, values)
        rewards = tf.cast(rewards, dtype)
        if whiten_rewards:
            rewards = whiten_advantages(rewards, mask, shift_mean=False)
        zeros = tf.zeros_like(rewards)
        values = tf.where(mask, tf.cast(values, dtype), zeros)
        log_probs = _checks.convert_float(log_probs, "log_probs")
        log_probs = tf.where(mask, log_probs, tf.zeros_like(log_probs))

        at_end = _last_valid(mask)
        is_eos = tf.equal(tokens, tf.cast(eos_id, tokens.dtype))
        terminated = tf.logical_and(at_end, is_eos)
        truncated = tf.logical_and(at_end, tf.logical_not(is_eos))
        if bootstrap_value is None:
            assertions.append(
                tf.debugging.assert_equal(
                    tf.reduce_any(truncated),
                    False,
                    message=(
                        "`bootstrap_value` is None but a row ends without "
                        "EOS (truncated at the generation limit); pass the "
                        "value head's V(s_L) as `bootstrap_value`."
                    ),
                )
            )
            bootstrap_value = tf.zeros_like(rewards[:, 0])
        else:
            bootstrap_value = _checks.convert_float(
                bootstrap_value, "bootstrap_value"
            )
            _checks.check_rank(bootstrap_value, 1, "bootstrap_value", "[B]")
            if not bootstrap_value.shape.is_compatible_with(tokens.shape[:1]):
                raise ValueError(
                    "`bootstrap_value` must have shape [B] matching `tokens` "
                    f"{tuple(tokens.shape)}. Received: bootstrap_value="
                    f"{_checks.describe(bootstrap_value)}"
                )
            bootstrap_value = tf.cast(bootstrap_value, dtype)
        truncation_value = tf.where(
            truncated, bootstrap_value[:, tf.newaxis] + zeros, zeros
        )
        with tf.control_dependencies(assertions):
            rewards = tf.identity(rewards)
        return {
            "observation": tokens,
            "action": tokens,
            "reward": rewards,
            "terminated": terminated,
            "truncated": truncated,
            "log_prob": log_probs,
            "value": values,
            "bootstrap_value": bootstrap_value,
            "truncation_value": truncation_value,
            "mask": mask,
        }


def sequence_advantages(
    batch: dict,
    *,
    gamma: Any = 1.0,
    lambda_: Any = 0.95,
) -> gae.GAEOutputs:
    """Token-level GAE of a `sequence_rollout_batch`, batch-major `[B, L]`.

    Calls `keras_gae.ops.generalized_advantage_estimation` with the batch's
    "reward", "value", "bootstrap_value", "terminated", "truncated",
    "truncation_value" and "mask" (`time_major=False`): the same targets a
    keras_gae model's train_step computes from the batch.

    Args:
      batch: a dict from `sequence_rollout_batch`.
      gamma: discount in [0, 1] (1 is usual for language models).
      lambda_: GAE lambda in [0, 1].

    Returns:
      `GAEOutputs(advantages, returns)`, `[B, L]`, advantage 0 on invalid
      positions.
    """
    return gae.generalized_advantage_estimation(
        batch["reward"],
        batch["value"],
        batch["bootstrap_value"],
        gamma=gamma,
        lambda_=lambda_,
        terminated=batch["terminated"],
        truncated=batch["truncated"],
        truncation_values=batch["truncation_value"],
        mask=batch["mask"],
        time_major=False,
    )


def whiten_advantages(
    advantages: Any,
    mask: Any,
    *,
    shift_mean: bool = True,
    epsilon: float = 1e-8,
) -> tf.Tensor:
    """Whitens over valid tokens: (x - mean) / sqrt(var + epsilon).

    mean and var (population) are taken over the valid elements only;
    invalid elements come out as 0 and never enter the statistics, NaN or
    Inf included. With `shift_mean=False` the mean is added back (only the
    scale changes), as `keras_gae.ops.masked_whiten` does.

    Under a tf.distribute strategy (a replica context with more than one
    replica) the statistics cover the global batch: each replica stacks its
    local [sum x, sum x^2, N] and one `all_reduce(SUM)` combines them. var
    is clipped at 0 against rounding. Statistics are formed in float32 (or
    float64 for float64 input), also for half-precision input.

    Args:
      advantages: `[B, L]` (any shape) float tensor.
      mask: bool-like tensor of the same shape.
      shift_mean: whether the output has mean 0 (True) or keeps the mean.
      epsilon: float > 0 added to the variance.

    Returns:
      The whitened tensor, advantages' shape, in the statistics' dtype.

    Raises:
      TypeError: non-float advantages, non-bool-like mask, non-bool
        shift_mean.
      ValueError: mismatched shapes.
    """
    if not isinstance(shift_mean, bool):
        raise TypeError(
            f"`shift_mean` must be a bool. Received: shift_mean={shift_mean!r}"
        )
    with tf.name_scope("whiten_advantages"):
        advantages = _checks.convert_float(advantages, "advantages")
        mask = _checks.convert_flag(mask, "mask")
        assertions = _checks.check_same_shape(
            mask, advantages, "mask", "advantages"
        )
        dtype = _checks.compute_dtype(advantages)
        x = tf.where(mask, tf.cast(advantages, dtype), tf.zeros([], dtype))
        statistics = tf.stack(
            [
                tf.reduce_sum(x),
                tf.reduce_sum(tf.square(x)),
                tf.reduce_sum(tf.cast(mask, dtype)),
            ]
        )
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            statistics = context.all_reduce(
                tf.distribute.ReduceOp.SUM, statistics
            )
        with tf.control_dependencies(assertions):
            total, squares, count = tf.unstack(statistics)
        mean = tf.math.divide_no_nan(total, count)
        variance = tf.maximum(
            tf.math.divide_no_nan(squares, count) - tf.square(mean), 0.0
        )
        whitened = (x - mean) * tf.math.rsqrt(variance + epsilon)
        if not shift_mean:
            whitened += mean
        return tf.where(mask, whitened, tf.zeros_like(whitened))

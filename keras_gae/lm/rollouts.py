"""Token-level rollout batches for language-model policy training.

A generated sequence is an episode whose steps are its response tokens: the
state s_t is the text so far, `tokens[:t]`, the action a_t is the next token
`tokens[t]`, and a scorer rates the whole sequence once it ends. The
functions here turn sampled sequences into the rollout batch of
docs/design.md ("Rollout batch"), batch-major with one row per sequence and
one step per token position.

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
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_gae._src import rollout_batch as rb
from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.lm import advantages as advantages_lib
from keras_gae.lm import rewards as rewards_lib
from keras_gae.ops import _checks
from keras_gae.ops import gae


class SequenceRollout(NamedTuple):
    """What `CausalLMPPOModel.collect` returns.

    Attributes:
      batch: the rollout batch dict of `keras_gae.lm.sequence_rollout_batch`
        (`[B, L]` per token), ready for `fit` (e.g. through
        `keras_gae.models.rollout_dataset`).
      scores: `[B]` float32 scorer outputs.
      kl: scalar float32 `sequence_kl`: mean over rows of the summed
        per-token KL to the reference (0 without a reference).
      kl_coef: scalar float32, the KL reward coefficient the batch used.
      response_length: `[B]` int32 number of response tokens (EOS
        included).
      done: `[B]` bool, whether the row ended with EOS.
    """

    batch: dict
    scores: tf.Tensor
    kl: tf.Tensor
    kl_coef: tf.Tensor
    response_length: tf.Tensor
    done: tf.Tensor


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
        tokens = _tokens.convert_tokens(tokens)
        eos_id = _checks.check_index(eos_id, "eos_id")
        if pad_id is not None:
            pad_id = _checks.check_index(pad_id, "pad_id")
        start = _tokens.prompt_lengths(prompt_length, tokens)
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
    mask: Any = None,
    stop_token_ids: Any = None,
) -> dict:
    """The rollout batch (docs/design.md) of a batch of generated sequences.

    Steps are token positions, batch-major `[B, L]`, aligned as the module
    docstring says: position t is the transition s_t = tokens[:t]
    --tokens[t]--> s_{t+1}, `values[:, t]` = V(s_t), `log_probs[:, t]` =
    log pi(tokens[t] | s_t), `bootstrap_value` = V(tokens[:, :L]).

    * "mask": `mask` when given (e.g. from `keras_gae.lm.generate`, which
      knows where a row hit its length limit), else
      `response_mask(tokens, prompt_length, eos_id, pad_id=pad_id)`.
    * "terminated": True at each row's EOS (or other stop) token: the
      sequence is over, the state after it is terminal (no bootstrap).
    * "truncated": True at the last valid token of a row that has valid
      tokens but no EOS (it hit the generation limit): the state after it is
      not terminal and bootstraps from `bootstrap_value[b]`, also written to
      "truncation_value" at that position, so it is read correctly whether
      or not the truncation is at the row's end (position L - 1).
    * "reward": `keras_gae.lm.token_rewards` (KL penalty at every token,
      score on the last valid token), then, with `whiten_rewards`, scaled
      by the inverse standard deviation over valid tokens (mean kept:
      `whiten_advantages` with `shift_mean=False`).
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
        a silent V = 0). Read only for truncated rows (0 in the batch for
        the others).
      whiten_rewards: whether to rescale the rewards over valid tokens.
      pad_id: optional padding token id (see `response_mask`).
      mask: optional `[B, L]` bool-like response mask.
      stop_token_ids: optional more ids that end a row like `eos_id`.

    Returns:
      A dict with keys "observation", "action", "reward", "terminated",
      "truncated", "log_prob", "value", "bootstrap_value",
      "truncation_value", "mask".

    Raises:
      ValueError, TypeError: as the functions it calls; a non-bool
        `whiten_rewards`; NaN or Inf where they are read: `log_probs`,
        `ref_log_probs` and `values` at valid positions, a score of a row
        with valid positions, `bootstrap_value` of a truncated row.
    """
    whiten_rewards = _checks.check_bool(whiten_rewards, "whiten_rewards")
    with tf.name_scope("sequence_rollout_batch"):
        tokens = _tokens.convert_tokens(tokens)
        if mask is None:
            mask = response_mask(tokens, prompt_length, eos_id, pad_id=pad_id)
        else:
            mask = _checks.convert_flag(mask, "mask")
            _checks.check_rank(mask, 2, "mask", "[B, L]")
            shape_checks = _checks.check_same_shape(
                mask, tokens, "mask", "tokens"
            )
            with tf.control_dependencies(shape_checks):
                mask = tf.identity(mask)
        values = _checks.convert_float(values, "values")
        _checks.check_rank(values, 2, "values", "[B, L]")
        assertions = _checks.check_same_shape(
            values, tokens, "values", "tokens"
        )
        with tf.control_dependencies(assertions):
            values = _input_checks.check_finite(
                values, "values", "at valid positions", mask=mask
            )
        rewards, _ = rewards_lib.token_rewards(
            scores,
            log_probs,
            ref_log_probs,
            mask,
            kl_coef=kl_coef,
            estimator=estimator,
        )
        dtype = _checks.compute_dtype(rewards, values)
        log_probs = _checks.convert_float(log_probs, "log_probs")
        if bootstrap_value is not None:
            bootstrap_value, batch_assertions = _checks.convert_batch_vector(
                bootstrap_value, "bootstrap_value", tokens, 0, "tokens"
            )
            assertions += batch_assertions
            bootstrap_value = tf.cast(bootstrap_value, dtype)
        with tf.control_dependencies(assertions):
            rewards = tf.identity(rewards)
        return assemble_batch(
            tokens,
            mask,
            tf.cast(rewards, dtype),
            log_probs,
            tf.cast(values, dtype),
            bootstrap_value,
            eos_id=eos_id,
            stop_token_ids=_input_checks.stop_ids(stop_token_ids),
            whiten_rewards=whiten_rewards,
        )


def assemble_batch(
    tokens: tf.Tensor,
    mask: tf.Tensor,
    rewards: tf.Tensor,
    log_probs: tf.Tensor,
    values: tf.Tensor,
    bootstrap_value: Optional[tf.Tensor],
    *,
    eos_id: int,
    stop_token_ids: tuple,
    whiten_rewards: bool,
) -> dict:
    """`sequence_rollout_batch`'s dict from checked tensors.

    Package-internal: `sequence_rollout_batch` checks its arguments and
    `CausalLMPPOModel.collect` passes `generate`'s checked outputs, so
    nothing is converted or checked here but `bootstrap_value` where a
    row reads it. `tokens [B, L]` integer, `mask [B, L]` bool, `rewards`
    (`shaped_rewards`) and `values` `[B, L]` of one float dtype,
    `log_probs [B, L]` float, `bootstrap_value [B]` of the rewards' dtype
    or None (then no row may be truncated: an assertion), the stop ids a
    tuple of ints.
    """
    if whiten_rewards:
        rewards = advantages_lib.whiten_valid(
            rewards, mask, shift_mean=False, epsilon=1e-8
        )
    zeros = tf.zeros_like(rewards)
    values = tf.where(mask, values, zeros)
    log_probs = tf.where(mask, log_probs, tf.zeros_like(log_probs))

    at_end = _tokens.last_valid(mask)
    is_eos = tf.equal(tokens, tf.cast(eos_id, tokens.dtype))
    for stop_id in stop_token_ids:
        is_eos |= tf.equal(tokens, tf.cast(stop_id, tokens.dtype))
    terminated = tf.logical_and(at_end, is_eos)
    truncated = tf.logical_and(at_end, tf.logical_not(is_eos))
    if bootstrap_value is None:
        no_truncation = tf.debugging.assert_equal(
            tf.reduce_any(truncated),
            False,
            message=(
                "`bootstrap_value` is None but a row ends without "
                "EOS (truncated at the generation limit); pass the "
                "value head's V(s_L) as `bootstrap_value`."
            ),
        )
        with tf.control_dependencies([no_truncation]):
            rewards = tf.identity(rewards)
        bootstrap_value = tf.zeros_like(rewards[:, 0])
    else:
        # Read only where a row is truncated; 0 elsewhere, as at
        # every other position nothing reads.
        bootstraps = tf.reduce_any(truncated, axis=1)
        bootstrap_value = _input_checks.check_finite(
            bootstrap_value,
            "bootstrap_value",
            "for rows truncated at the length limit",
            mask=bootstraps,
        )
        bootstrap_value = tf.where(
            bootstraps, bootstrap_value, tf.zeros_like(bootstrap_value)
        )
    truncation_value = tf.where(
        truncated, bootstrap_value[:, tf.newaxis] + zeros, zeros
    )
    return {
        rb.OBSERVATION: tokens,
        rb.ACTION: tokens,
        rb.REWARD: rewards,
        rb.TERMINATED: terminated,
        rb.TRUNCATED: truncated,
        rb.LOG_PROB: log_probs,
        rb.VALUE: values,
        rb.BOOTSTRAP_VALUE: bootstrap_value,
        rb.TRUNCATION_VALUE: truncation_value,
        rb.MASK: mask,
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
    missing = [key for key in rb.GAE_ARGUMENTS if key not in batch]
    if missing:
        raise ValueError(
            f"`batch` is missing key(s) {missing} of a "
            "sequence_rollout_batch. "
            f"Received: batch keys={sorted(batch)}"
        )
    arguments = {
        argument: batch[key] for key, argument in rb.GAE_ARGUMENTS.items()
    }
    return gae.generalized_advantage_estimation(
        **arguments, gamma=gamma, lambda_=lambda_, time_major=False
    )

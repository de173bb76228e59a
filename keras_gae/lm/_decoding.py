"""The compiled sampling loop behind `keras_gae.lm.generate`.

Rows are packed: row b holds its `p_b` prompt tokens in columns
[0, p_b), then up to N new tokens, then the fill id, in a `[B, W]` buffer
(W = P + N). Loop step t reads the model at column t and writes column
t + 1: the prompt itself where t + 1 < p_b (keras-hub's way of decoding
ragged prompts), a sampled token where p_b <= t + 1 < p_b + N. A causal
model sees each row exactly as it would see that row alone.

Letters used in shapes: `B` rows, `P` prompt width, `N` new tokens, `W`
buffer width P + N, `V` vocabulary size.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_gae.lm import sampling
from keras_gae.ops import _checks


class LoopSettings(NamedTuple):
    """Python settings of one traced loop (part of the trace key)."""

    max_new_tokens: int
    temperature: float
    top_k: Optional[int]
    top_p: Optional[float]
    min_p: Optional[float]
    repetition_penalty: Optional[float]
    vocab_size: Optional[int]
    stop_ids: tuple
    fill_id: int
    cached: bool


def seed_pair(seed: Optional[int]) -> tf.Tensor:
    """`[2]` int64 stateless seed of the loop (folded with the step
    index): `[seed, 0]`, or drawn from TensorFlow's global generator when
    `seed` is None."""
    if seed is None:
        return tf.random.uniform(
            [2], minval=0, maxval=2**31 - 1, dtype=tf.int64
        )
    seed = _checks.check_int(seed, "seed")
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"`seed` must fit in int64. Received: seed={seed!r}")
    return tf.constant([seed, 0], tf.int64)


def split_model_outputs(outputs: Any) -> tuple:
    """`(logits, values or None)`, float32, from logits or a pair."""
    values = None
    if isinstance(outputs, (tuple, list)):
        if len(outputs) != 2:
            raise ValueError(
                "`model` must return logits or a pair (logits, values). "
                f"Received: {len(outputs)} outputs"
            )
        logits, values = outputs
    else:
        logits = outputs
    if values is not None:
        values = tf.cast(values, tf.float32)
        if values.shape.rank == 3:
            values = tf.squeeze(values, axis=-1)
    return tf.cast(logits, tf.float32), values


def _is_stop(tokens: tf.Tensor, stop_ids: tuple) -> tf.Tensor:
    stop = tf.zeros_like(tokens, tf.bool)
    for stop_id in stop_ids:
        stop = tf.logical_or(stop, tf.equal(tokens, stop_id))
    return stop


def decode(
    prompt: tf.Tensor,
    prompt_length: tf.Tensor,
    seed: tf.Tensor,
    model: Any,
    settings: LoopSettings,
) -> tuple:
    """`(tokens [B, W], log_probs [B, N], values [B, N + 1] or None,
    mask [B, N], done [B])` for packed `prompt [B, P]`.

    `model` is either a cached policy (`seed_cache(prompt [B, P], W) ->
    cache` after a pass over the prompt columns, `call_with_cache(tokens
    [B, 1], cache, index) -> (logits [B, 1, V], values [B, 1] or None,
    cache)`, `has_values`) when `settings.cached`, or a callable mapping
    `[B, L]` tokens to logits or `(logits, values)`, rerun on the whole
    buffer each step.
    """
    n = settings.max_new_tokens
    batch = tf.shape(prompt)[0]
    width = tf.shape(prompt)[1] + n
    fill = tf.cast(settings.fill_id, prompt.dtype)
    tokens = tf.concat([prompt, tf.fill([batch, n], fill)], axis=1)
    prompt_length = tf.cast(prompt_length, tf.int32)
    if settings.cached:
        cache = model.seed_cache(prompt, tokens.shape[1] or width)
        has_values = bool(model.has_values)
    else:
        # Traced only for whether values come out; the executed graph
        # drops it.
        _, values = split_model_outputs(model(tokens))
        has_values = values is not None
        cache = tf.zeros([])
    last_index = n if has_values else n - 1
    start = tf.reduce_min(prompt_length) - 1
    end = tf.reduce_max(prompt_length) + last_index - 1
    columns = tf.range(width)[tf.newaxis, :]
    new_columns = tf.range(n + 1)[tf.newaxis, :]
    penalize = settings.repetition_penalty is not None
    seen = tf.zeros([])
    if penalize:
        # [B, V]: the tokens in columns before the loop's first step.
        before = tf.cast(columns < start, tf.int32)
        seen = (
            tf.reduce_max(
                tf.one_hot(tokens, settings.vocab_size, dtype=tf.int32)
                * before[:, :, tf.newaxis],
                axis=1,
            )
            > 0
        )

    def model_step(t, tokens, cache):
        if settings.cached:
            logits, values, cache = model.call_with_cache(
                tf.gather(tokens, t[tf.newaxis], axis=1), cache, t
            )
            logits = tf.cast(logits[:, 0], tf.float32)
            if values is not None:
                values = tf.cast(values[:, 0], tf.float32)
            return logits, values, cache
        logits, values = split_model_outputs(model(tokens))
        if values is not None:
            values = values[:, t]
        return logits[:, t], values, cache

    def body(t, tokens, cache, stopped, log_probs, values, seen):
        step_logits, step_values, cache = model_step(t, tokens, cache)
        if penalize:
            # The row's tokens so far: columns 0 ... t (packed, no padding).
            seen = seen | tf.cast(
                tf.one_hot(tokens[:, t], settings.vocab_size, dtype=tf.int32),
                tf.bool,
            )
        new_index = t + 1 - prompt_length
        sampling_now = (new_index >= 0) & (new_index < n) & ~stopped
        token, log_prob = sampling.sample_step(
            step_logits,
            tf.random.experimental.stateless_fold_in(seed, t),
            temperature=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            min_p=settings.min_p,
            repetition_penalty=settings.repetition_penalty,
            seen=seen,
        )
        token = tf.cast(token, tokens.dtype)
        write = tf.equal(columns, t + 1) & sampling_now[:, tf.newaxis]
        tokens = tf.where(write, token[:, tf.newaxis], tokens)
        at_new = tf.equal(new_columns, new_index[:, tf.newaxis])
        record = at_new[:, :n] & sampling_now[:, tf.newaxis]
        log_probs = tf.where(record, log_prob[:, tf.newaxis], log_probs)
        if has_values:
            bootstrap = tf.equal(new_index, n) & ~stopped
            record = at_new & (sampling_now | bootstrap)[:, tf.newaxis]
            values = tf.where(record, step_values[:, tf.newaxis], values)
        stopped = stopped | (sampling_now & _is_stop(token, settings.stop_ids))
        return t + 1, tokens, cache, stopped, log_probs, values, seen

    def keep_going(t, tokens, cache, stopped, log_probs, values, seen):
        del tokens, cache, log_probs, values, seen
        # Once every row has stopped or passed its last step, the loop ends.
        pending = ~stopped & (t + 1 - prompt_length <= last_index)
        return (t <= end) & tf.reduce_any(pending)

    state = tf.while_loop(
        keep_going,
        body,
        (
            start,
            tokens,
            cache,
            tf.zeros([batch], tf.bool),
            tf.zeros([batch, n], tf.float32),
            tf.zeros([batch, n + 1], tf.float32),
            seen,
        ),
    )
    _, tokens, _, stopped, log_probs, values, _ = state
    index = prompt_length[:, tf.newaxis] + tf.range(n)[tf.newaxis, :]
    generated = tf.gather(tokens, index, batch_dims=1)
    stops_before = tf.cumsum(
        tf.cast(_is_stop(generated, settings.stop_ids), tf.int32),
        axis=1,
        exclusive=True,
    )
    mask = tf.equal(stops_before, 0)
    return tokens, log_probs, values if has_values else None, mask, stopped


def gather_values(
    values: tf.Tensor,
    prompt_length: tf.Tensor,
    mask: tf.Tensor,
    done: tf.Tensor,
) -> tf.Tensor:
    """`[B, N + 1]` V before each new token and after the last one.

    `values [B, W]` are a full pass's values per column; new token j of row
    b is chosen in the state read at column p_b + j - 1. Zero after a
    row's stop token, and in the last column for rows that stopped.
    """
    n = tf.shape(mask)[1]
    index = prompt_length[:, tf.newaxis] - 1 + tf.range(n + 1)[tf.newaxis]
    gathered = tf.gather(tf.cast(values, tf.float32), index, batch_dims=1)
    valid = tf.concat([mask, ~done[:, tf.newaxis]], axis=1)
    return tf.where(valid, gathered, tf.zeros_like(gathered))

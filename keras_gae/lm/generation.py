"""Sampling from a Keras causal language model in a compiled loop.

Letters used in shapes: `B` sequences, `P` prompt positions, `N` new tokens,
`V` vocabulary size.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae._src import dependencies
from keras_gae.lm import _tokens
from keras_gae.ops import _checks


class GenerationOutputs(NamedTuple):
    """What `generate` returns.

    Attributes:
      tokens: `[B, P + N]` the prompt followed by the generated tokens;
        positions after a row's EOS hold `eos_id`.
      log_probs: `[B, N]` float32 log pi(token | prefix) of each generated
        token under softmax(logits / temperature); 0 after a row's EOS.
      values: `[B, N + 1]` float32 V(prefix) before each generated token,
        then V of the whole row (the bootstrap value); 0 after a row's EOS
        (and in the last column for rows that ended with EOS). None without
        a value head.
      mask: `[B, N]` bool, True for generated tokens up to and including the
        row's first EOS.
      done: `[B]` bool, whether the row produced EOS.
    """

    tokens: tf.Tensor
    log_probs: tf.Tensor
    values: Optional[tf.Tensor]
    mask: tf.Tensor
    done: tf.Tensor


def _forward(model: Callable, value_head: Optional[Callable], tokens):
    """`(logits [B, L, V], values [B, L] or None)` in float32."""
    outputs = model(tokens)
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
    if value_head is not None:
        values = value_head(tokens)
    if values is not None:
        values = tf.cast(values, tf.float32)
        if values.shape.rank == 3:
            values = tf.squeeze(values, axis=-1)
    return tf.cast(logits, tf.float32), values


@tf.function(autograph=False, reduce_retracing=True)
def _generate_loop(
    prompt_tokens,
    seed,
    model,
    value_head,
    max_new_tokens,
    temperature,
    top_k,
    eos_id,
):
    batch = tf.shape(prompt_tokens)[0]
    prompt_length = tf.shape(prompt_tokens)[1]
    total = prompt_length + max_new_tokens
    fill = 0 if eos_id is None else eos_id
    tokens = tf.concat(
        [
            prompt_tokens,
            tf.fill(
                [batch, max_new_tokens], tf.cast(fill, prompt_tokens.dtype)
            ),
        ],
        axis=1,
    )
    positions = tf.range(total)[tf.newaxis, :]
    # Traced only to learn the vocabulary size and whether the model gives
    # values; its result is unused, so the executed graph drops it.
    probe_logits, probe_values = _forward(model, value_head, tokens)
    has_values = probe_values is not None
    vocab_size = probe_logits.shape[-1]
    if vocab_size is not None:
        if eos_id is not None:
            _checks.check_index(eos_id, "eos_id", size=vocab_size)
        if top_k is not None and top_k > vocab_size:
            raise ValueError(
                f"`top_k` must be <= the vocabulary size {vocab_size} of "
                f"the model's logits. Received: top_k={top_k!r}"
            )

    new_positions = tf.range(max_new_tokens)[tf.newaxis, :]

    def body(step, tokens, finished, log_probs, values):
        # The whole fixed-length buffer is recomputed every step: a causal
        # model's output at position t does not depend on later positions.
        logits, step_values = _forward(model, value_head, tokens)
        last = prompt_length + step - 1
        step_logits = logits[:, last, :] / temperature
        log_distribution = tf.nn.log_softmax(step_logits)
        sample_logits = step_logits
        if top_k is not None:
            kth = tf.math.top_k(step_logits, k=top_k).values[:, -1:]
            sample_logits = tf.where(
                step_logits < kth,
                tf.constant(-np.inf, step_logits.dtype),
                step_logits,
            )
        step_seed = tf.random.experimental.stateless_fold_in(seed, step)
        sampled = tf.random.stateless_categorical(
            sample_logits, 1, step_seed, dtype=tf.int64
        )[:, 0]
        log_prob = tf.gather(log_distribution, sampled, batch_dims=1)
        active = tf.logical_not(finished)
        sampled = tf.cast(sampled, tokens.dtype)
        sampled = tf.where(active, sampled, tf.cast(fill, tokens.dtype))
        column = tf.equal(new_positions, step)
        log_probs = tf.where(
            column, tf.where(active, log_prob, 0.0)[:, tf.newaxis], log_probs
        )
        if has_values:
            value = tf.where(active, step_values[:, last], 0.0)
            values = tf.where(column, value[:, tf.newaxis], values)
        tokens = tf.where(
            tf.equal(positions, prompt_length + step),
            sampled[:, tf.newaxis],
            tokens,
        )
        if eos_id is not None:
            is_eos = tf.equal(sampled, tf.cast(eos_id, sampled.dtype))
            finished = tf.logical_or(finished, tf.logical_and(active, is_eos))
        return step + 1, tokens, finished, log_probs, values

    def keep_going(step, tokens, finished, log_probs, values):
        del tokens, log_probs, values
        # Stops early once every row has produced EOS.
        return tf.logical_and(
            step < max_new_tokens, tf.logical_not(tf.reduce_all(finished))
        )

    zeros = tf.zeros([batch, max_new_tokens], tf.float32)
    _, tokens, finished, log_probs, values = tf.while_loop(
        keep_going,
        body,
        (tf.constant(0), tokens, tf.zeros([batch], tf.bool), zeros, zeros),
    )
    generated = tokens[:, prompt_length:]
    if eos_id is None:
        mask = tf.ones_like(generated, tf.bool)
    else:
        is_eos = tf.equal(generated, tf.cast(eos_id, generated.dtype))
        eos_before = tf.cumsum(
            tf.cast(is_eos, tf.int32), axis=1, exclusive=True
        )
        mask = tf.equal(eos_before, 0)
    if not has_values:
        return tokens, log_probs, None, mask, finished
    _, final_values = _forward(model, value_head, tokens)
    final = tf.where(finished, 0.0, final_values[:, total - 1])
    values = tf.concat([values, final[:, tf.newaxis]], axis=1)
    return tokens, log_probs, values, mask, finished


def generate(
    model: Callable,
    prompt_tokens: Any,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    eos_id: Optional[int] = None,
    seed: Optional[int] = None,
    value_head: Optional[Callable] = None,
) -> GenerationOutputs:
    """Samples up to `max_new_tokens` tokens from a causal language model.

    At step i (0-based) the next token is drawn from
    softmax(logits[:, P + i - 1] / temperature), restricted to the `top_k`
    largest logits when `top_k` is given, where logits = model(tokens) on
    the buffer holding the prompt and the tokens drawn so far. The recorded
    log-prob is that of the drawn token under the full temperature-adjusted
    distribution softmax(logits / temperature) (not renormalized over the
    top-k set): the policy a trainer recomputes from the same logits.

    The loop is a `tf.while_loop` inside a `tf.function` (traced once per
    model, settings and prompt signature). Each step reruns the model on
    the whole fixed-length `[B, P + N]` buffer (no key/value cache): N model
    calls of length P + N, which keeps every shape static. The model must
    be causal: its output at position t may depend only on positions <= t
    (the not-yet-generated positions hold `eos_id`, or 0 without one).
    Left-padded prompts are the model's business (attention masks,
    positions).

    Sampling is stateless (`tf.random.stateless_categorical` with the seed
    folded with the step index): the same seed, model and prompt give the
    same tokens. A row stops updating after its first EOS: later tokens are
    `eos_id`, their log-probs and values 0; the loop ends early once every
    row is done.

    Values: when `model` returns `(logits, values)` or `value_head` is given
    (`value_head(tokens)` -> `[B, L]` or `[B, L, 1]`, `value_head` wins),
    `values[:, i]` = V(tokens[:, :P + i]) is the value at position
    P + i - 1, the state before token i is chosen, and `values[:, N]` is
    V of the full row (0 for rows that ended with EOS): the alignment
    `keras_gae.lm.sequence_rollout_batch` expects, with
    `bootstrap_value = values[:, N]`.

    Args:
      model: a callable (a Keras 3 model) mapping `[B, L]` token ids to
        logits `[B, L, V]`, or to `(logits, values)`.
      prompt_tokens: `[B, P]` integer token ids, P >= 1.
      max_new_tokens: N >= 1.
      temperature: float > 0 (use `top_k=1` for greedy decoding).
      top_k: optional int >= 1.
      eos_id: optional end-of-sequence id >= 0; without it every row runs N
        steps.
      seed: optional int; None draws one from TensorFlow's global generator
        (reproducible under `tf.random.set_seed` or
        `keras.utils.set_random_seed`).
      value_head: optional callable giving values per position.

    Returns:
      `GenerationOutputs(tokens, log_probs, values, mask, done)`.

    Raises:
      ValueError: non-positive max_new_tokens, temperature or top_k; a
        negative eos_id; eos_id or top_k beyond the model's vocabulary; an
        empty prompt; a model returning more than two outputs.
      TypeError: non-integer prompt tokens, wrongly typed settings, a
        tf-keras (Keras 2) model or value head.
    """
    for name, network in (("model", model), ("value_head", value_head)):
        # Any callable will do, but a Keras 2 network gets the message that
        # keras_gae runs on Keras 3.
        if dependencies.is_keras2_object(network):
            dependencies.check_layer(network, name)
    max_new_tokens = _checks.check_positive_int(
        max_new_tokens, "max_new_tokens"
    )
    temperature = _checks.check_float(
        temperature, "temperature", minimum=0.0, inclusive=False
    )
    if top_k is not None:
        top_k = _checks.check_positive_int(top_k, "top_k")
    if eos_id is not None:
        eos_id = _checks.check_index(eos_id, "eos_id")
    if seed is not None:
        seed = _checks.check_int(seed, "seed")
    prompt_tokens = _tokens.convert_tokens(
        prompt_tokens, "prompt_tokens", "[B, P]"
    )
    if prompt_tokens.shape[1] == 0:
        raise ValueError(
            "`prompt_tokens` must hold at least one token per row (P >= 1): "
            "the first new token is predicted from the last prompt position. "
            f"Received: prompt_tokens={_checks.describe(prompt_tokens)}"
        )
    if seed is None:
        seed_pair = tf.random.uniform(
            [2], minval=0, maxval=2**31 - 1, dtype=tf.int64
        )
    else:
        seed_pair = tf.constant([seed, 0], tf.int64)
    tokens, log_probs, values, mask, done = _generate_loop(
        prompt_tokens,
        seed_pair,
        model,
        value_head,
        max_new_tokens,
        temperature,
        top_k,
        eos_id,
    )
    return GenerationOutputs(
        tokens=tokens, log_probs=log_probs, values=values, mask=mask, done=done
    )

"""Reading a causal language model's outputs as per-step policy and value.

One network pass over a row `tokens [B, L]` gives every step's policy and
value: the state s_t = tokens[:t] is read at position t - 1 (the alignment
of `keras_gae.lm.rollouts`), so

    log pi(tokens[t] | tokens[:t])
        = log_softmax(logits[t - 1] / tau)[tokens[t]],
    V(tokens[:t]) = values[t - 1].

Letters used in shapes: `B` sequences, `L` token positions per row, `V`
vocabulary size.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.ops import _checks


def shift_to_states(x: tf.Tensor) -> tf.Tensor:
    """`out[:, t] = x[:, t - 1]`, zeros at t = 0 (no state reads there)."""
    paddings = [[0, 0], [1, 0]] + [[0, 0]] * (x.shape.rank - 2)
    return tf.pad(x[:, :-1], paddings)


def split_outputs(outputs: Any) -> tuple:
    """`(logits [B, L, V], values [B, L])` from a network's output pair."""
    if not isinstance(outputs, (list, tuple)) or len(outputs) != 2:
        raise TypeError(
            "The language model must return a pair (logits [B, L, V], "
            f"values [B, L] or [B, L, 1]). Received: outputs={outputs!r}"
        )
    logits, values = outputs
    values = tf.convert_to_tensor(values)
    if values.shape.rank == 3 and values.shape[-1] == 1:
        values = tf.squeeze(values, axis=-1)
    return tf.convert_to_tensor(logits), values


def causal_log_probs(
    logits: Any, tokens: Any, *, temperature: float = 1.0
) -> tf.Tensor:
    """Log-probabilities of each row's tokens from one causal-model pass.

        out[b, t] = log_softmax(logits[b, t - 1] / temperature)[tokens[b, t]]

    for t >= 1, and 0 at t = 0 (the first token has no prefix to be
    predicted from). This is the `log_probs` alignment of
    `keras_gae.lm.sequence_rollout_batch`.

    Args:
      logits: `[B, L, V]` float logits of a causal model on `tokens`.
      tokens: `[B, L]` integer token ids.
      temperature: float > 0 dividing the logits (as in
        `keras_gae.lm.generate`).

    Returns:
      `[B, L]` float32 log-probabilities.

    Raises:
      ValueError: wrong ranks, tokens of another [B, L] than the logits,
        ids outside [0, V), non-positive temperature.
      TypeError: non-float logits, non-integer tokens.
    """
    temperature = _checks.check_float(
        temperature, "temperature", minimum=0.0, inclusive=False
    )
    with tf.name_scope("causal_log_probs"):
        logits = _checks.convert_float(logits, "logits")
        _checks.check_rank(logits, 3, "logits", "[B, L, V]")
        tokens = _tokens.convert_tokens(tokens)
        if not tokens.shape.is_compatible_with(logits.shape[:2]):
            raise ValueError(
                "`tokens` must have shape [B, L] matching `logits` "
                f"{tuple(logits.shape)}. "
                f"Received: tokens={_checks.describe(tokens)}"
            )
        if logits.shape[-1] is not None:
            tokens = _input_checks.check_token_ids(
                tokens, logits.shape[-1], "tokens"
            )
        log_distribution = tf.nn.log_softmax(
            tf.cast(logits[:, :-1], tf.float32) / temperature
        )
        gathered = tf.gather(
            log_distribution,
            tf.cast(tokens[:, 1:], tf.int32),
            batch_dims=2,
        )
        return tf.pad(gathered, [[0, 0], [1, 0]])

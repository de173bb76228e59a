"""Checks of what enters `keras_gae.lm`: ids against the vocabulary and
the positions of the network that reads them, and data that must be finite.

Each check raises a ValueError or TypeError naming the argument when it
runs eagerly; inside a graph (a `tf.function` around `generate`, a
SavedModel signature) it is an assertion the checked tensor depends on.

Letters used in shapes: `B` rows, `L` token positions, `V` vocabulary size.
"""

from __future__ import annotations

import sys
from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Optional
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gae._src import private_apis
from keras_gae.ops import _checks


def stop_ids(stop_token_ids: Any, vocab_size: Optional[int] = None) -> tuple:
    """`stop_token_ids` as a tuple of ints in [0, vocab_size) (None: ())."""
    if stop_token_ids is None:
        return ()
    if isinstance(stop_token_ids, (int, bool, np.integer)) or not isinstance(
        stop_token_ids, Sequence
    ):
        raise TypeError(
            "`stop_token_ids` must be a sequence of ints. "
            f"Received: stop_token_ids={stop_token_ids!r}"
        )
    return tuple(
        _checks.check_index(i, "stop_token_ids", size=vocab_size)
        for i in stop_token_ids
    )


def _with_assertion(x: tf.Tensor, ok: tf.Tensor, message: str) -> tf.Tensor:
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return tf.identity(x)


def _per_row(flags: tf.Tensor) -> tf.Tensor:
    """`[B]` whether any of row b's flags (any rank >= 1) is set."""
    if flags.shape.rank == 1:
        return flags
    return tf.reduce_any(tf.reshape(flags, [tf.shape(flags)[0], -1]), axis=1)


def _rows(bad: tf.Tensor) -> list:
    """The first rows (at most 8) of a `[B]` flag vector that are set."""
    return np.flatnonzero(np.asarray(bad)).tolist()[:8]


def check_token_ids(
    tokens: tf.Tensor,
    vocab_size: int,
    name: str,
    mask: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """`tokens` (integer ids) if every id (where `mask`) is in [0, V)."""
    outside = tf.logical_or(tokens < 0, tokens >= vocab_size)
    if mask is not None:
        outside = tf.logical_and(outside, mask)
    ok = tf.logical_not(tf.reduce_any(outside))
    message = (
        f"`{name}` must hold ids in [0, {vocab_size}) (the model's "
        "vocabulary): an embedding reads them."
    )
    if not tf.executing_eagerly():
        return _with_assertion(tokens, ok, message)
    if not bool(ok):
        ids = sorted(set(tf.boolean_mask(tokens, outside).numpy().tolist()))
        rows = _rows(_per_row(outside))
        raise ValueError(
            f"{message} Received: {name} with ids {ids[:8]} in rows {rows}"
        )
    return tokens


def check_finite(
    values: tf.Tensor,
    name: str,
    what: str,
    source: Any = None,
    mask: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """`values [B, ...]` if finite (where `mask`); else an error naming
    `name`: the argument holding `what`, or, with `source`, the callable
    that gave them."""
    bad = tf.logical_not(tf.math.is_finite(values))
    if mask is not None:
        bad = tf.logical_and(bad, mask)
    bad = _per_row(bad)
    ok = tf.logical_not(tf.reduce_any(bad))
    if source is None:
        message = f"`{name}` must be finite: NaN or Inf {what}{{rows}}."
        received = _checks.describe(values)
    else:
        message = (
            f"`{name}` gave NaN or Inf {what}{{rows}}; they must be finite."
        )
        received = repr(source)
    if not tf.executing_eagerly():
        return _with_assertion(values, ok, message.format(rows=""))
    if not bool(ok):
        rows = f" in rows {_rows(bad)}"
        raise ValueError(
            f"{message.format(rows=rows)} Received: {name}={received}"
        )
    return values


def token_values(
    values: Any, tokens: tf.Tensor, name: str, source: Any
) -> tf.Tensor:
    """float32 `[B, L]` values of `tokens [B, L]` from `[B, L]` or
    `[B, L, 1]`; a ValueError naming `name` for any other shape."""
    values = tf.cast(values, tf.float32)
    if values.shape.rank == 3 and values.shape[-1] == 1:
        values = tf.squeeze(values, axis=-1)
    if not values.shape.is_compatible_with(tokens.shape):
        raise ValueError(
            f"`{name}` must give values [B, L] (or [B, L, 1]), one per "
            f"token; it gave {tuple(values.shape)} for tokens "
            f"{tuple(tokens.shape)}. Received: {name}={source!r}"
        )
    return values


def check_prompt_mask_runs(
    prompt_mask: tf.Tensor, message: Callable[[list], str]
) -> tf.Tensor:
    """`prompt_mask [B, P]` if each row's True values are one run (the
    padding is on the left or right only); `message(rows)` otherwise."""
    starts = tf.logical_and(prompt_mask[:, 1:], ~prompt_mask[:, :-1])
    runs = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1) + tf.cast(
        prompt_mask[:, 0], tf.int32
    )
    split = runs > 1
    ok = tf.logical_not(tf.reduce_any(split))
    if not tf.executing_eagerly():
        return _with_assertion(prompt_mask, ok, message([]))
    if not bool(ok):
        raise ValueError(message(_rows(split)))
    return prompt_mask


class NetworkLimits(NamedTuple):
    """What the ids a network reads must fit: None where unknown."""

    vocab_size: Optional[int]
    max_positions: Optional[int]


def _declared_positions(model: Any) -> Optional[int]:
    """The fewest positions a (sub)layer declares: keras-hub backbones'
    (and `CausalLMPolicy`'s) `max_sequence_length`, keras-hub
    `PositionEmbedding`'s `sequence_length`."""
    keras_hub = sys.modules.get("keras_hub")  # Not imported: none in use.
    position_embedding = (
        keras_hub.layers.PositionEmbedding if keras_hub is not None else ()
    )
    layers = (
        private_apis.flatten_layers(model)
        if isinstance(model, keras.layers.Layer)
        else [model]
    )
    limits = []
    for layer in layers:
        limit = getattr(layer, "max_sequence_length", None)
        if isinstance(layer, position_embedding):
            limit = layer.sequence_length
        if isinstance(limit, (int, np.integer)) and not isinstance(limit, bool):
            limits.append(int(limit))
    return min(limits, default=None)


def _probe(model: Any, dtype: tf.DType, name: str) -> NetworkLimits:
    """Runs `model` once on two equal tokens, eagerly, for the size of its
    logits and the rows of its positional embedding tables.

    A table the model gathers from at different rows for the same token at
    positions 0 and 1 is indexed by position (a `keras.layers.Embedding`
    of positions); its gradient names the rows read (IndexedSlices), on any
    device (an index past the table fails on CPU, reads zeros on GPU).
    """
    tokens = tf.zeros([1, 2], dtype)
    if isinstance(model, keras.layers.Layer) and not model.built:
        model(tokens)  # Creates the weights the tape then watches.
    with tf.GradientTape() as tape:
        for weight in getattr(model, "weights", ()):
            if isinstance(weight, keras.Variable) and "float" in weight.dtype:
                tape.watch(weight.value)
        outputs = model(tokens)
        values = None
        if isinstance(outputs, (tuple, list)):
            if len(outputs) != 2:
                raise ValueError(
                    f"`{name}` must return logits or a pair (logits, "
                    f"values); it returned {len(outputs)} outputs. "
                    f"Received: {name}={model!r}"
                )
            outputs, values = outputs
        logits = tf.convert_to_tensor(outputs)
        if logits.shape.rank != 3:
            raise ValueError(
                f"`{name}` must map token rows [B, L] to logits [B, L, V] "
                "(or a pair (logits, values)); it gave logits of shape "
                f"{tuple(logits.shape)} for tokens of shape (1, 2). "
                f"Received: {name}={model!r}"
            )
        if values is not None:
            token_values(values, tokens, name, model)
        target = (
            tf.cast(logits, tf.float32) if logits.dtype.is_floating else None
        )
    limits = []
    variables = tape.watched_variables()
    if target is not None and variables:
        try:
            gradients = tape.gradient(target, variables)
        except LookupError:  # An op without a gradient: no tables seen.
            gradients = [None] * len(variables)
        for variable, gradient in zip(variables, gradients):
            if isinstance(gradient, tf.IndexedSlices):
                if len(np.unique(gradient.indices.numpy())) > 1:
                    limits.append(int(variable.shape[0]))
    return NetworkLimits(int(logits.shape[-1]), min(limits, default=None))


def network_limits(
    model: Any, cached: bool, dtype: tf.DType, name: str
) -> NetworkLimits:
    """`(vocab_size, max_positions)` of a network that reads token rows.

    A cached policy (`CausalLMPolicy`) says both (`vocab_size`,
    `max_sequence_length`); any other model is run once on two tokens,
    eagerly, for its logits' last dimension and positional embedding
    tables (eagerly only: not while `generate` is traced), and its layers
    are searched for declared limits (a keras-hub backbone inside it).
    """
    declared = _declared_positions(model)
    if cached:
        vocab_size = getattr(model, "vocab_size", None)
        return NetworkLimits(vocab_size, declared)
    if tf.executing_eagerly():
        probed = _probe(model, dtype, name)
    else:
        # Run outside the graph being traced. Tapes record nothing there,
        # so a traced `generate` sees declared positions only.
        with tf.init_scope():
            probed = _probe(model, dtype, name)
    positions = [p for p in (declared, probed.max_positions) if p is not None]
    return NetworkLimits(probed.vocab_size, min(positions, default=None))

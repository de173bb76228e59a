"""Sampling from a causal language model in a compiled, KV-cached loop.

Letters used in shapes: `B` rows (prompts times `num_samples`), `P` prompt
width, `N` new tokens, `W = P + N`, `V` vocabulary size.
"""

from __future__ import annotations

import weakref
from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Optional
from typing import Sequence

import tensorflow as tf

from keras_gae._src import dependencies
from keras_gae.lm import _decoding
from keras_gae.lm import _tokens
from keras_gae.lm import causal_lm_policy
from keras_gae.ops import _checks


class GenerationOutputs(NamedTuple):
    """What `generate` returns.

    Rows are packed: row b holds its `prompt_length[b]` prompt tokens in
    columns [0, p_b) (left padding removed), its new tokens from column p_b
    on, then the fill id (the first stop id, else `pad_id`, else 0). New
    token j of row b is `tokens[b, p_b + j]`.

    Attributes:
      tokens: `[B, P + N]` packed rows.
      log_probs: `[B, N]` float32 log pi(new token j | prefix) under
        softmax(logits / temperature); 0 where `mask` is False.
      values: `[B, N + 1]` float32 V(prefix) before each new token, then V
        of the whole row (the bootstrap value); 0 after a row's stop token
        (and in the last column for rows that stopped). None without a
        value function.
      mask: `[B, N]` bool, True for new tokens up to and including the
        row's first stop token.
      done: `[B]` bool, whether the row produced a stop token.
      prompt_length: `[B]` int32 p_b, where each row's response starts.
    """

    tokens: tf.Tensor
    log_probs: tf.Tensor
    values: Optional[tf.Tensor]
    mask: tf.Tensor
    done: tf.Tensor
    prompt_length: Optional[tf.Tensor] = None


_decode_graph = tf.function(
    _decoding.decode, autograph=False, reduce_retracing=True
)
_decode_xla = tf.function(
    _decoding.decode, autograph=False, reduce_retracing=True, jit_compile=True
)
_POLICIES = weakref.WeakKeyDictionary()


def as_cached_policy(model: Any) -> Any:
    """`model` itself when it decodes with a cache; a keras-hub CausalLM
    wrapped (once, without a value head) in a `CausalLMPolicy`; else None."""
    if causal_lm_policy.has_cache_protocol(model):
        return model
    if causal_lm_policy.is_keras_hub_causal_lm(model):
        if model not in _POLICIES:
            _POLICIES[model] = causal_lm_policy.CausalLMPolicy(
                model, value_head=None
            )
        return _POLICIES[model]
    return None


def pack_prompts(prompt_tokens: tf.Tensor, prompt_mask: tf.Tensor) -> tuple:
    """`(packed [B, P], lengths [B] int32)`: each row's valid tokens first,
    in order (left or right padding removed)."""
    order = tf.argsort(
        tf.cast(tf.logical_not(prompt_mask), tf.int32), axis=1, stable=True
    )
    packed = tf.gather(prompt_tokens, order, batch_dims=1)
    lengths = tf.reduce_sum(tf.cast(prompt_mask, tf.int32), axis=1)
    return packed, lengths


def _stop_ids(eos_id: Any, stop_token_ids: Any) -> tuple:
    ids = []
    if eos_id is not None:
        ids.append(_checks.check_index(eos_id, "eos_id"))
    if stop_token_ids is not None:
        if isinstance(stop_token_ids, (int, bool)) or not isinstance(
            stop_token_ids, Sequence
        ):
            raise TypeError(
                "`stop_token_ids` must be a sequence of ints. "
                f"Received: stop_token_ids={stop_token_ids!r}"
            )
        ids += [
            _checks.check_index(i, "stop_token_ids") for i in stop_token_ids
        ]
    return tuple(dict.fromkeys(ids))


def _check_ids_in_vocabulary(
    policy: Any,
    prompt: tf.Tensor,
    prompt_mask: tf.Tensor,
    stop_ids: tuple,
    top_k: Optional[int],
    pad_id: Optional[int],
    has_eos: bool,
) -> None:
    vocab_size = getattr(policy, "vocab_size", None)
    if vocab_size is None:
        return
    for index, stop_id in enumerate(stop_ids):
        if stop_id >= vocab_size:
            name = "eos_id" if has_eos and not index else "stop_token_ids"
            raise ValueError(
                f"`{name}` must be < the vocabulary size {vocab_size}. "
                f"Received: {name}={stop_id!r}"
            )
    if pad_id is not None and pad_id >= vocab_size:
        raise ValueError(
            f"`pad_id` must be < the vocabulary size {vocab_size}. "
            f"Received: pad_id={pad_id!r}"
        )
    if top_k is not None and top_k > vocab_size:
        raise ValueError(
            f"`top_k` must be <= the vocabulary size {vocab_size} of "
            f"the model's logits. Received: top_k={top_k!r}"
        )
    if tf.executing_eagerly():
        ids = tf.boolean_mask(prompt, prompt_mask).numpy()
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(
                f"`prompt_tokens` must hold ids in [0, {vocab_size}) (the "
                "model's vocabulary). Received: prompt_tokens with ids in "
                f"[{ids.min()}, {ids.max()}]"
            )


def generate(
    model: Callable,
    prompt_tokens: Any,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    eos_id: Optional[int] = None,
    stop_token_ids: Optional[Sequence[int]] = None,
    prompt_mask: Any = None,
    pad_id: Optional[int] = None,
    num_samples: int = 1,
    seed: Optional[int] = None,
    value_head: Optional[Callable] = None,
    jit_compile: bool = False,
) -> GenerationOutputs:
    """Samples up to `max_new_tokens` tokens per row from a causal LM.

    New token j of row b is drawn from softmax(logits / temperature) at the
    row's previous position, restricted to the `top_k` largest logits and
    then to the top-p nucleus (Holtzman et al. 2020, arXiv:1904.09751) when
    given. The recorded log-prob is that of the drawn token under the full
    softmax(logits / temperature) (not renormalized over the kept set): the
    policy a trainer recomputes from the same logits.

    Models:

    * a `keras_gae.lm.CausalLMPolicy` (a keras-hub CausalLM with a value
      head or critic), or any object with its cache protocol
      (`seed_cache`, `call_with_cache`, `has_values`, `vocab_size`):
      decoded with the key/value cache, one one-token model call per step
      after one pass over the prompts;
    * a keras-hub `CausalLM` (GPT2CausalLM, GemmaCausalLM, LlamaCausalLM,
      ...): wrapped in a `CausalLMPolicy` without values, cached;
    * any other callable mapping `[B, L]` ids to logits `[B, L, V]` or to
      `(logits, values)`: the documented fallback without a cache, which
      reruns the model on the whole `[B, W]` buffer each step (N calls of
      length W). It must be causal.

    The loop is a `tf.while_loop` in a `tf.function` (XLA-compiled with
    `jit_compile=True`), traced once per model, settings and prompt
    signature; it ends early once every row has stopped.

    Prompts of different lengths: pass `prompt_mask` (True at prompt
    tokens) or `pad_id`; rows may be left- (or right-) padded. Each row is
    packed to start at column 0 (see `GenerationOutputs`) and decoded
    step by step through the longer prompts (keras-hub's own scheme), so
    every row gets the same tokens, log-probs and values as the row alone
    at batch size 1 (positions start at 0 with no padding to mask).
    Sampling noise depends on the row's index in the batch, so sampled
    (not greedy) tokens differ from a batch-of-one run.

    `num_samples` n: each prompt is repeated n times, rows b * n ... b * n
    + n - 1 being prompt b's group (the `[G, n]` layout of the group
    advantage estimators).

    Sampling is stateless (the seed folded with the step index): the same
    seed, model and prompts give the same tokens, cached or not.

    Values: `values[:, j]` = V(prefix before new token j), `values[:, N]`
    = V of the whole row, from the model's values, or from `value_head`
    (`value_head(tokens)` -> `[B, L]` or `[B, L, 1]`, one pass after
    decoding; it wins).

    Args:
      model: see above.
      prompt_tokens: `[B0, P]` integer ids, P >= 1.
      max_new_tokens: N >= 1.
      temperature: float > 0 (use `top_k=1` for greedy decoding).
      top_k: optional int in [1, V].
      top_p: optional float in (0, 1].
      eos_id: optional stop id (the fill id after a stop).
      stop_token_ids: optional more stop ids.
      prompt_mask: optional `[B0, P]` bool-like, True at prompt tokens.
      pad_id: optional padding id: `prompt_mask = prompt_tokens != pad_id`
        when `prompt_mask` is None.
      num_samples: n >= 1 completions per prompt (B = B0 * n).
      seed: optional int; None draws one from TensorFlow's global generator.
      value_head: optional callable giving values per position.
      jit_compile: XLA-compile the loop.

    Returns:
      `GenerationOutputs(tokens, log_probs, values, mask, done,
      prompt_length)`.

    Raises:
      ValueError: non-positive max_new_tokens, temperature, top_k or
        num_samples; top_p outside (0, 1]; ids (prompt tokens, stop ids,
        pad id) outside the vocabulary; top_k above it; a prompt row
        without tokens; P + N above the model's maximum sequence length.
      TypeError: non-integer prompt tokens, wrongly typed settings, a
        tf-keras (Keras 2) model or value head.
    """
    for name, network in (("model", model), ("value_head", value_head)):
        if dependencies.is_keras2_object(network):
            dependencies.check_layer(network, name)
    n = _checks.check_positive_int(max_new_tokens, "max_new_tokens")
    temperature = _checks.check_float(
        temperature, "temperature", minimum=0.0, inclusive=False
    )
    if top_k is not None:
        top_k = _checks.check_positive_int(top_k, "top_k")
    if top_p is not None:
        top_p = _checks.check_float(
            top_p, "top_p", minimum=0.0, maximum=1.0, inclusive=False
        )
    stop_ids = _stop_ids(eos_id, stop_token_ids)
    if pad_id is not None:
        pad_id = _checks.check_index(pad_id, "pad_id")
    num_samples = _checks.check_positive_int(num_samples, "num_samples")
    jit_compile = _checks.check_bool(jit_compile, "jit_compile")
    if seed is not None:
        seed = _checks.check_int(seed, "seed")
    prompt = _tokens.convert_tokens(prompt_tokens, "prompt_tokens", "[B, P]")
    if prompt.shape[1] == 0:
        raise ValueError(
            "`prompt_tokens` must hold at least one token per row (P >= 1): "
            "the first new token is predicted from the last prompt position. "
            f"Received: prompt_tokens={_checks.describe(prompt)}"
        )
    if prompt_mask is not None:
        prompt_mask = _checks.convert_flag(prompt_mask, "prompt_mask")
        tf.debugging.assert_equal(
            tf.shape(prompt_mask),
            tf.shape(prompt),
            message="`prompt_mask` must have the shape of `prompt_tokens`.",
        )
    elif pad_id is not None:
        prompt_mask = tf.not_equal(prompt, tf.cast(pad_id, prompt.dtype))
    else:
        prompt_mask = tf.ones_like(prompt, tf.bool)
    policy = as_cached_policy(model)
    _check_ids_in_vocabulary(
        policy if policy is not None else model,
        prompt,
        prompt_mask,
        stop_ids,
        top_k,
        pad_id,
        eos_id is not None,
    )
    max_length = getattr(policy, "max_sequence_length", None)
    width = prompt.shape[1]
    if max_length is not None and width is not None and width + n > max_length:
        raise ValueError(
            f"The prompt width {prompt.shape[1]} plus `max_new_tokens` must "
            f"be <= the model's maximum sequence length {max_length}. "
            f"Received: max_new_tokens={n}"
        )
    packed, lengths = pack_prompts(prompt, prompt_mask)
    if tf.executing_eagerly() and int(tf.reduce_min(lengths)) < 1:
        raise ValueError(
            "Every prompt row must hold at least one token. "
            f"Received: prompt_mask with row lengths {lengths.numpy()}"
        )
    if num_samples > 1:
        packed = tf.repeat(packed, num_samples, axis=0)
        lengths = tf.repeat(lengths, num_samples, axis=0)
    if seed is None:
        seed_pair = tf.random.uniform(
            [2], minval=0, maxval=2**31 - 1, dtype=tf.int64
        )
    else:
        seed_pair = tf.constant([seed, 0], tf.int64)
    if value_head is None and policy is not None:
        value_head = policy.post_hoc_value_function()
    fill = stop_ids[0] if stop_ids else (pad_id or 0)
    settings = _decoding.LoopSettings(
        max_new_tokens=n,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        stop_ids=stop_ids,
        fill_id=fill,
        cached=policy is not None,
        has_eos=eos_id is not None,
    )
    decode = _decode_xla if jit_compile else _decode_graph
    tokens, log_probs, values, mask, done = decode(
        packed,
        lengths,
        seed_pair,
        policy if policy is not None else model,
        settings,
    )
    if value_head is not None:
        full_values = tf.cast(value_head(tokens), tf.float32)
        if full_values.shape.rank == 3:
            full_values = tf.squeeze(full_values, axis=-1)
        values = _decoding.gather_values(full_values, lengths, mask, done)
    return GenerationOutputs(
        tokens=tokens,
        log_probs=log_probs,
        values=values,
        mask=mask,
        done=done,
        prompt_length=lengths,
    )

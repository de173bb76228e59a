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
from keras_gae.lm import _input_checks
from keras_gae.lm import _prompt_packing
from keras_gae.lm import _tokens
from keras_gae.lm import causal_lm_policy
from keras_gae.lm import sampling
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
      response_mask: `[B, P + N]` bool in the layout of `tokens`: True at
        column p_b + j where `mask[b, j]`. What scorers get, here and in
        `CausalLMPPOModel.collect`.
    """

    tokens: tf.Tensor
    log_probs: tf.Tensor
    values: Optional[tf.Tensor]
    mask: tf.Tensor
    done: tf.Tensor
    prompt_length: Optional[tf.Tensor] = None
    response_mask: Optional[tf.Tensor] = None


# Traced per prompt signature (static shapes: one XLA program per buffer
# width); `_prompt_packing.prompt_bucket` keeps the widths few.
_decode_graph = tf.function(
    _decoding.decode, autograph=False, reduce_retracing=False
)
_decode_xla = tf.function(
    _decoding.decode, autograph=False, reduce_retracing=False, jit_compile=True
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


def generate(
    model: Callable,
    prompt_tokens: Any,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    min_p: Optional[float] = None,
    repetition_penalty: Optional[float] = None,
    eos_id: Optional[int] = None,
    stop_token_ids: Optional[Sequence[int]] = None,
    prompt_mask: Any = None,
    pad_id: Optional[int] = None,
    num_samples: int = 1,
    seed: Optional[int] = None,
    value_head: Optional[Callable] = None,
    jit_compile: bool = True,
) -> GenerationOutputs:
    """Samples up to `max_new_tokens` tokens per row from a causal LM.

    New token j of row b is drawn from softmax(logits / temperature) at the
    row's previous position, after the repetition penalty, restricted to
    the `top_k` largest logits, then to the top-p nucleus (Holtzman et al.
    2020, arXiv:1904.09751), then to the min-p set, when given (Hugging
    Face's order). The recorded log-prob is that of the drawn token under
    the plain softmax(logits / temperature) (no penalty, not renormalized
    over the kept set): the policy a trainer recomputes from the same
    logits.

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
    tokens; rows left- or right-padded) or `pad_id` (left padding). Each
    row is
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
      min_p: optional float in (0, 1]: keep the tokens whose probability
        is at least `min_p` times the most likely one's (after top-k and
        top-p; Hugging Face's `min_p`).
      repetition_penalty: optional float > 0: the logits of the tokens
        already in the row (its prompt, not its padding, and its new
        tokens so far) are divided by it where positive and multiplied
        where negative before sampling (Hugging Face's
        `repetition_penalty`; 1.0 changes nothing).
      eos_id: optional stop id (the fill id after a stop).
      stop_token_ids: optional more stop ids.
      prompt_mask: optional `[B0, P]` bool-like, True at prompt tokens.
      pad_id: optional padding id. Without `prompt_mask`, the pad ids
        before a row's first other id are its (left) padding; a pad id
        after that is a prompt token. Right-padded prompts need
        `prompt_mask`.
      num_samples: n >= 1 completions per prompt (B = B0 * n).
      seed: optional int; None draws one from TensorFlow's global generator.
      value_head: optional callable giving values per position.
      jit_compile: XLA-compile the loop (the default: the cache is then
        written in place; see docs/benchmarks.md for the first call's
        compile time against the per-token gain).

    Returns:
      `GenerationOutputs(tokens, log_probs, values, mask, done,
      prompt_length)`.

    Checks: ids (prompt tokens under `prompt_mask`, stop ids, pad id) and
    `top_k` against the vocabulary, the size of the model's logits (a
    model without a cache is run once on two tokens for it); P + N against
    the model's positions where it has a limit: a keras-hub backbone's
    `max_sequence_length` (also inside a plain Keras model), a keras-hub
    `PositionEmbedding`, or a `keras.layers.Embedding` the model indexes by
    position (seen in that run). Padding ids are never read. The sampled
    steps' logits and the values must be finite.

    Raises:
      ValueError: non-positive max_new_tokens, temperature, top_k,
        repetition_penalty or num_samples; top_p or min_p outside
        (0, 1]; ids (prompt tokens, stop ids, pad id) outside the
        vocabulary; top_k above it; a prompt row without tokens (only
        pad ids), or whose `prompt_mask` is not one run; P + N above the model's
        positions; a seed outside int64; NaN or Inf (or only -Inf) logits
        at a sampled step, NaN or Inf values (naming `model` or
        `value_head`).
      TypeError: non-integer prompt tokens, wrongly typed settings, a
        model or value head that is not callable, or a tf-keras (Keras 2)
        one.
    """
    return sample(
        model,
        prompt_tokens,
        network_name="model",
        vocab_size=None,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        eos_id=eos_id,
        stop_token_ids=stop_token_ids,
        prompt_mask=prompt_mask,
        pad_id=pad_id,
        num_samples=num_samples,
        seed=seed,
        value_head=value_head,
        jit_compile=jit_compile,
    )


def sample(
    model: Callable,
    prompt_tokens: Any,
    *,
    network_name: str,
    vocab_size: Optional[int],
    max_new_tokens: int,
    temperature: float,
    top_k: Optional[int],
    top_p: Optional[float],
    eos_id: Optional[int],
    stop_token_ids: Optional[Sequence[int]],
    prompt_mask: Any,
    pad_id: Optional[int],
    num_samples: int,
    seed: Optional[int],
    value_head: Optional[Callable],
    jit_compile: bool,
    min_p: Optional[float] = None,
    repetition_penalty: Optional[float] = None,
) -> GenerationOutputs:
    """`generate` for `model` passed as `network_name` (in messages), whose
    logits must have `vocab_size` entries when it is given."""
    for name, network in ((network_name, model), ("value_head", value_head)):
        if network is not None and not callable(network):
            raise TypeError(
                f"`{name}` must be a callable mapping token rows [B, L] "
                f"to logits [B, L, V]. Received: {name}={network!r}"
            )
        if dependencies.is_keras2_object(network):
            dependencies.check_layer(network, name)
    n = _checks.check_positive_int(max_new_tokens, "max_new_tokens")
    temperature, top_k, top_p, min_p, repetition_penalty = (
        sampling.check_options(
            temperature, top_k, top_p, min_p, repetition_penalty
        )
    )
    if eos_id is not None:
        eos_id = _checks.check_index(eos_id, "eos_id")
    stop_ids = _input_checks.stop_ids(stop_token_ids)
    stop_ids = tuple(
        dict.fromkeys(((eos_id,) if eos_id is not None else ()) + stop_ids)
    )
    if pad_id is not None:
        pad_id = _checks.check_index(pad_id, "pad_id")
    num_samples = _checks.check_positive_int(num_samples, "num_samples")
    jit_compile = _checks.check_bool(jit_compile, "jit_compile")
    seed_pair = _decoding.seed_pair(seed)
    prompt = _tokens.convert_tokens(prompt_tokens, "prompt_tokens", "[B, P]")
    if prompt.shape[1] == 0:
        raise ValueError(
            "`prompt_tokens` must hold at least one token per row (P >= 1): "
            "the first new token is predicted from the last prompt position. "
            f"Received: prompt_tokens={_checks.describe(prompt)}"
        )
    prompt_mask = _prompt_packing.convert_prompt_mask(
        prompt, prompt_mask, pad_id
    )
    policy = as_cached_policy(model)
    network = policy if policy is not None else model
    limits = _input_checks.network_limits(
        network, policy is not None, prompt.dtype, network_name
    )
    if limits.vocab_size is not None:
        if vocab_size is not None and vocab_size != limits.vocab_size:
            raise ValueError(
                f"`vocab_size` must equal the size of the `{network_name}`'s "
                f"logits, {limits.vocab_size}. Received: "
                f"vocab_size={vocab_size}"
            )
        _tokens.check_vocabulary(
            limits.vocab_size, eos_id, stop_ids, pad_id, top_k
        )
        prompt = _input_checks.check_token_ids(
            prompt, limits.vocab_size, "prompt_tokens", prompt_mask
        )
    if repetition_penalty is not None and limits.vocab_size is None:
        raise ValueError(
            f"`repetition_penalty` needs the size of the `{network_name}`'s "
            "logits, which could not be read from it. "
            f"Received: repetition_penalty={repetition_penalty!r}"
        )
    if limits.max_positions is not None:
        prompt = _prompt_packing.check_positions(
            prompt, n, limits.max_positions
        )
    fill = stop_ids[0] if stop_ids else (pad_id or 0)
    packed, lengths = _prompt_packing.pack_prompts(prompt, prompt_mask, fill)
    if tf.executing_eagerly() and int(tf.reduce_min(lengths)) < 1:
        raise ValueError(
            "Every prompt row must hold at least one token. "
            f"Received: prompt_mask with row lengths {lengths.numpy()}"
        )
    width = packed.shape[1]
    if policy is not None and width is not None:
        # A few prompt widths, so that a new one rarely traces (and
        # compiles) the loop again; the extra columns are never read.
        bucket = _prompt_packing.prompt_bucket(width, n, limits.max_positions)
        packed = tf.pad(
            packed, [[0, 0], [0, bucket - width]], constant_values=fill
        )
    if num_samples > 1:
        packed = tf.repeat(packed, num_samples, axis=0)
        lengths = tf.repeat(lengths, num_samples, axis=0)
    values_from = network_name
    if value_head is None and policy is not None:
        value_head = policy.post_hoc_value_function()
    elif value_head is not None:
        values_from = "value_head"
    settings = _decoding.LoopSettings(
        max_new_tokens=n,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        vocab_size=limits.vocab_size,
        stop_ids=stop_ids,
        fill_id=fill,
        cached=policy is not None,
    )
    decode = _decode_xla if jit_compile else _decode_graph
    tokens, log_probs, values, mask, done = decode(
        packed, lengths, seed_pair, network, settings
    )
    if width is not None:
        tokens = tokens[:, : width + n]
    # A sampled step's log-prob is NaN exactly when its logits had no
    # distribution (NaN, +Inf, or -Inf everywhere).
    scaled = (
        "logits"
        if temperature == 1.0
        else (f"logits / temperature (temperature={temperature!r})")
    )
    log_probs = _input_checks.check_finite(
        log_probs, network_name, f"{scaled} at a sampled step", source=model
    )
    source = value_head if values_from == "value_head" else model
    if value_head is not None:
        full_values = _input_checks.token_values(
            value_head(tokens), tokens, values_from, source
        )
        values = _decoding.gather_values(full_values, lengths, mask, done)
    if values is not None:
        values = _input_checks.check_finite(
            values, values_from, "values", source=source
        )
    response_mask = (
        _tokens.spread_response(
            tf.cast(mask, tf.int32), lengths, tf.shape(tokens)[1]
        )
        > 0
    )
    return GenerationOutputs(
        tokens=tokens,
        log_probs=log_probs,
        values=values,
        mask=mask,
        done=done,
        prompt_length=lengths,
        response_mask=response_mask,
    )

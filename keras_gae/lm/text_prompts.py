"""Prompts as text: a keras-hub tokenizer in, decoded completions out.

Letters used in shapes: `B` rows, `P` prompt width, `W` packed row width
(prompt then response, as `keras_gae.lm.generate` returns them).
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae.ops import _checks


class PromptTokenizer(NamedTuple):
    """A keras-hub tokenizer and whether prompts start with its start id.

    Attributes:
      tokenizer: a keras-hub `Tokenizer` (`tokenizer(strings)` gives ids,
        `detokenize(ids)` strings).
      start_token_id: prepended to every prompt (a `CausalLMPreprocessor`
        with `add_start_token`, as its `generate_preprocess` does), or None.
    """

    tokenizer: Any
    start_token_id: Optional[int]


def prompt_tokenizer(source: Any, name: str = "tokenizer") -> PromptTokenizer:
    """The tokenizer that turns prompts into the model's token ids.

    `source` is one of (the first that applies):

    * a keras-hub `Tokenizer` (`GPT2Tokenizer`, `LlamaTokenizer`, ...):
      prompts are its ids, nothing prepended;
    * a keras-hub `CausalLMPreprocessor`: its tokenizer, with its start
      token when `add_start_token` (keras-hub's `generate_preprocess`);
    * a keras-hub `CausalLM` built with a preprocessor, a
      `keras_gae.lm.CausalLMPolicy` wrapping one, or a model whose
      `network` is such a policy (`CausalLMPPOModel`): that preprocessor.

    Args:
      source: the tokenizer, preprocessor or model.
      name: the argument named in errors.

    Returns:
      A `PromptTokenizer`.

    Raises:
      TypeError: `source` is none of these, or a model without a
        preprocessor (build the CausalLM with one, or pass the tokenizer).
    """
    import keras_hub  # The text path needs keras-hub; the rest does not.

    kinds = (keras_hub.tokenizers.Tokenizer, keras_hub.models.Preprocessor)
    seen = source
    # A CausalLMPPOModel -> its network (a CausalLMPolicy) -> its keras-hub
    # CausalLM -> its preprocessor.
    for attribute in ("network", "causal_lm", "preprocessor"):
        if isinstance(seen, kinds):
            break
        inner = getattr(seen, attribute, None)
        if inner is not None:
            seen = inner
    if isinstance(seen, keras_hub.tokenizers.Tokenizer):
        return PromptTokenizer(seen, None)
    tokenizer = getattr(seen, "tokenizer", None)
    if isinstance(seen, keras_hub.models.Preprocessor) and isinstance(
        tokenizer, keras_hub.tokenizers.Tokenizer
    ):
        start = None
        if getattr(seen, "add_start_token", False):
            start = getattr(tokenizer, "start_token_id", None)
        return PromptTokenizer(tokenizer, start)
    raise TypeError(
        f"`{name}` must be a keras-hub Tokenizer, a CausalLMPreprocessor, "
        "or a model whose keras-hub CausalLM was built with a preprocessor "
        "(a CausalLM built with `preprocessor=None` has no tokenizer: "
        f"pass one as `tokenizer`). Received: {name}={source!r}"
    )


def convert_strings(texts: Any, name: str) -> list:
    """A list of Python strings from a list, tuple, or rank-1 array or
    tensor of strings (one string alone is refused: TRL's prompts are a
    batch)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"`{name}` must be a list of strings, one per row, not one "
            f"string. Received: {name}={texts!r}"
        )
    if isinstance(texts, tf.Tensor):
        texts = texts.numpy()
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise ValueError(
                f"`{name}` must be one string per row (rank 1). "
                f"Received: {name} of shape {texts.shape}"
            )
        texts = texts.tolist()
    if not isinstance(texts, (list, tuple)):
        raise TypeError(
            f"`{name}` must be a list of strings. Received: {name}={texts!r}"
        )
    converted = []
    for row, text in enumerate(texts):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise TypeError(
                f"`{name}` must hold strings; row {row} is {text!r}. "
                f"Received: {name}={_checks.describe(texts)}"
            )
        converted.append(text)
    if not converted:
        raise ValueError(f"`{name}` must not be empty. Received: {name}=[]")
    return converted


def _id_lists(ids: Any, tokenizer: Any) -> list:
    """The tokenizer's output as one list of ints per string."""
    if isinstance(ids, tf.RaggedTensor):
        return ids.to_list()
    if isinstance(ids, (tf.Tensor, np.ndarray)):
        # A dense result is padded to the tokenizer's `sequence_length`:
        # padding and real ids could not be told apart.
        raise TypeError(
            "`tokenizer` must give one list of ids per string (build it "
            "without `sequence_length`); it gave a dense "
            f"{tuple(ids.shape)} array. Received: tokenizer={tokenizer!r}"
        )
    return [list(map(int, row)) for row in ids]


def encode_prompts(
    tokenizer: Any, prompts: Any, *, name: str = "prompts"
) -> tuple:
    """Token ids of text prompts, left-padded, and their mask.

    Each prompt becomes its tokenizer ids (after the start id of a
    preprocessor that adds one); rows are left-padded to the longest with
    the tokenizer's pad id (0 without one). The mask, not the pad id,
    says which positions are prompt tokens, so a prompt may hold the pad
    id (GPT-2 pads with id 0, a real token).

    Args:
      tokenizer: what `prompt_tokenizer` accepts, or a `PromptTokenizer`.
      prompts: B strings.
      name: the argument named in errors.

    Returns:
      `(prompt_tokens [B, P] int32, prompt_mask [B, P] bool)`, the inputs
      of `keras_gae.lm.generate` and `CausalLMPPOModel.collect`.

    Raises:
      TypeError: prompts that are not strings, a tokenizer that is none of
        the above or gives padded (dense) ids.
      ValueError: no prompts, or a prompt without any token (naming the
        rows).

    Example:

    ```python
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    tokens, mask = encode_prompts(tokenizer, ["the cat", "a"])
    out = keras_gae.lm.generate(policy, tokens, prompt_mask=mask,
                                max_new_tokens=8)
    ```
    """
    if not isinstance(tokenizer, PromptTokenizer):
        tokenizer = prompt_tokenizer(tokenizer)
    prompts = convert_strings(prompts, name)
    rows = _id_lists(tokenizer.tokenizer(prompts), tokenizer.tokenizer)
    if tokenizer.start_token_id is not None:
        rows = [[tokenizer.start_token_id] + row for row in rows]
    empty = [row for row, ids in enumerate(rows) if not ids]
    if empty:
        raise ValueError(
            f"`{name}` in rows {empty} gave no tokens (an empty string, or "
            "characters outside the tokenizer's vocabulary). "
            f"Received: {name}={[prompts[row] for row in empty]!r}"
        )
    width = max(len(ids) for ids in rows)
    pad = getattr(tokenizer.tokenizer, "pad_token_id", None) or 0
    tokens = np.full([len(rows), width], pad, np.int32)
    mask = np.zeros([len(rows), width], bool)
    for row, ids in enumerate(rows):
        tokens[row, width - len(ids) :] = ids
        mask[row, width - len(ids) :] = True
    return tf.constant(tokens), tf.constant(mask)


def decode_completions(tokenizer: Any, tokens: Any, mask: Any) -> list:
    """The text of each row's response tokens.

    Row b's text is the detokenized `tokens[b][mask[b]]` without the
    tokenizer's special tokens (EOS, padding, ...), as keras-hub's
    `generate_postprocess` and TRL (`skip_special_tokens=True`) do.

    Args:
      tokenizer: what `prompt_tokenizer` accepts, or a `PromptTokenizer`.
      tokens: `[B, W]` integer ids.
      mask: `[B, W]` bool-like, True at response tokens.

    Returns:
      B strings.

    Raises:
      ValueError: tokens and mask of different shapes, or not rank 2.
    """
    if not isinstance(tokenizer, PromptTokenizer):
        tokenizer = prompt_tokenizer(tokenizer)
    tokens = np.asarray(tokens)
    mask = np.asarray(mask).astype(bool)
    if tokens.ndim != 2 or mask.shape != tokens.shape:
        raise ValueError(
            "`tokens` and `mask` must both be [B, W]. Received: "
            f"tokens of shape {tokens.shape}, mask of shape {mask.shape}"
        )
    special = set(getattr(tokenizer.tokenizer, "special_token_ids", ()) or ())
    rows = [
        [int(i) for i in row[keep] if int(i) not in special]
        for row, keep in zip(tokens, mask)
    ]
    texts = tokenizer.tokenizer.detokenize(rows)
    if isinstance(texts, (tf.Tensor, np.ndarray)):
        texts = np.asarray(texts).reshape([-1]).tolist()
    return [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]

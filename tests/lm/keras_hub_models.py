"""Tiny keras-hub causal LMs with random weights (nothing downloaded)."""

import keras
import keras_hub

VOCAB = 13
MAX_LENGTH = 32


def gpt2(seed=0, vocab=VOCAB, max_length=MAX_LENGTH, **kwargs):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocab,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=max_length,
        dropout=0.0,
        **kwargs,
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def llama(seed=0, vocab=VOCAB):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=vocab,
        num_layers=2,
        num_query_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        num_key_value_heads=1,
    )
    return keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)


def gemma(seed=0, vocab=VOCAB):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=vocab,
        num_layers=2,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
        intermediate_dim=32,
        head_dim=8,
    )
    return keras_hub.models.GemmaCausalLM(backbone, preprocessor=None)


BUILDERS = {"gpt2": gpt2, "llama": llama, "gemma": gemma}


def full_logits(causal_lm, tokens):
    """keras-hub's own uncached forward pass (the independent reference)."""
    import numpy as np

    tokens = np.asarray(tokens)
    return np.asarray(
        causal_lm({"token_ids": tokens, "padding_mask": np.ones_like(tokens)}),
        np.float64,
    )

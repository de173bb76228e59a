"""keras-hub tokenizers from vocabularies written here (nothing downloaded)
and tiny causal LMs that carry them."""

import io

import keras
import keras_hub
import sentencepiece

END = "<|endoftext|>"
# GPT-2's byte-level alphabet maps the printable ASCII characters to
# themselves and the space to "Ġ".
_PRINTABLE = [chr(c) for c in range(ord("!"), ord("~") + 1)]
MERGES = ["Ġ t", "t h", "Ġt h", "a t", "Ġ c", "Ġc at"]


def gpt2_vocabulary():
    vocabulary = {END: 0}
    for piece in _PRINTABLE + ["Ġ"]:
        vocabulary[piece] = len(vocabulary)
    for merge in MERGES:
        vocabulary[merge.replace(" ", "")] = len(vocabulary)
    return vocabulary


def gpt2_tokenizer():
    return keras_hub.models.GPT2Tokenizer(
        vocabulary=gpt2_vocabulary(), merges=list(MERGES)
    )


SENTENCES = [
    "the cat sat on the mat",
    "a dog ran to the park",
    "two plus two is four",
    "what is the answer",
]


def llama_tokenizer():
    """A SentencePiece word model trained on `SENTENCES`, in memory."""
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_writer=proto,
        vocab_size=20,
        model_type="WORD",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="<pad>",
        unk_piece="<unk>",
        bos_piece="<s>",
        eos_piece="</s>",
        minloglevel=2,
    )
    return keras_hub.models.LlamaTokenizer(proto=proto.getvalue())


def gpt2_with_preprocessor(seed=0):
    """A 2-layer GPT2CausalLM whose preprocessor holds `gpt2_tokenizer`."""
    keras.utils.set_random_seed(seed)
    tokenizer = gpt2_tokenizer()
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=48,
        dropout=0.0,
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer, sequence_length=48
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=preprocessor)

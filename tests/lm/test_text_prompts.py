"""Prompts as text through keras-hub tokenizers built from local
vocabularies, and completions decoded back."""

import keras_hub
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.lm import text_prompts
from tests.lm import local_tokenizers

TOKENIZERS = {
    "gpt2": local_tokenizers.gpt2_tokenizer,
    "llama": local_tokenizers.llama_tokenizer,
}
PROMPTS = {
    "gpt2": ["the cat sat", "a", "2+2=4? th!s"],
    "llama": ["the cat sat on the mat", "two", "what is the answer"],
}


class EncodePromptsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("gpt2", "llama")
    def test_round_trip(self, kind):
        tokenizer = TOKENIZERS[kind]()
        prompts = PROMPTS[kind]
        tokens, mask = lm.encode_prompts(tokenizer, prompts)
        self.assertEqual(tokens.dtype, tf.int32)
        self.assertEqual(mask.dtype, tf.bool)
        # Left-padded: each row's tokens are its last columns, in order,
        # and are exactly the tokenizer's ids of that prompt alone.
        for row, prompt in enumerate(prompts):
            alone = np.asarray(tokenizer(prompt)).tolist()
            valid = tokens[row][mask[row]].numpy().tolist()
            self.assertEqual(valid, alone)
            self.assertAllEqual(
                mask[row],
                [False] * (tokens.shape[1] - len(alone)) + [True] * len(alone),
            )
        # Decoding the prompt positions gives the strings back.
        self.assertEqual(
            lm.decode_completions(tokenizer, tokens, mask), prompts
        )
        self.assertEqual(
            tokens.shape[1], max(len(tokenizer(p)) for p in prompts)
        )

    def test_preprocessor_adds_its_start_token(self):
        tokenizer = local_tokenizers.gpt2_tokenizer()
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
            tokenizer, sequence_length=16
        )
        prompts = ["the cat", "a"]
        tokens, mask = lm.encode_prompts(preprocessor, prompts)
        # keras-hub's own generate_preprocess, right-padded, is the
        # reference: the same ids under its padding mask.
        reference = preprocessor.generate_preprocess(prompts)
        for row in range(len(prompts)):
            self.assertEqual(
                tokens[row][mask[row]].numpy().tolist(),
                reference["token_ids"][row][reference["padding_mask"][row]]
                .numpy()
                .tolist(),
            )
        # The start token (id 0) equals GPT-2's pad id: the mask keeps it.
        self.assertEqual(int(tokens[1, -2]), 0)
        self.assertTrue(bool(mask[1, -2]))
        no_start = keras_hub.models.GPT2CausalLMPreprocessor(
            tokenizer, add_start_token=False
        )
        bare, _ = lm.encode_prompts(no_start, prompts)
        self.assertAllEqual(bare, lm.encode_prompts(tokenizer, prompts)[0])

    def test_tokenizer_found_through_the_model(self):
        causal_lm = local_tokenizers.gpt2_with_preprocessor()
        policy = lm.CausalLMPolicy(causal_lm, value_head=None)
        vocab = causal_lm.preprocessor.tokenizer.vocabulary_size()
        model = lm.CausalLMPPOModel(
            policy, vocab_size=vocab, eos_id=0, advantage_estimator="grpo"
        )
        expected = lm.encode_prompts(causal_lm.preprocessor, ["the cat"])
        for source in (causal_lm, policy, model):
            found = text_prompts.prompt_tokenizer(source)
            self.assertIs(found.tokenizer, causal_lm.preprocessor.tokenizer)
            self.assertEqual(found.start_token_id, 0)
            self.assertAllEqual(
                lm.encode_prompts(source, ["the cat"])[0], expected[0]
            )

    def test_generation_from_text_prompts(self):
        causal_lm = local_tokenizers.gpt2_with_preprocessor()
        tokens, mask = lm.encode_prompts(causal_lm, ["the cat", "a"])
        out = lm.generate(
            causal_lm, tokens, prompt_mask=mask, max_new_tokens=4, seed=0
        )
        tokenizer = causal_lm.preprocessor.tokenizer
        # The preprocessor's start token, then the prompt's ids.
        self.assertAllEqual(
            out.prompt_length,
            [len(tokenizer("the cat")) + 1, len(tokenizer("a")) + 1],
        )
        completions = lm.decode_completions(
            causal_lm,
            out.tokens,
            np.arange(out.tokens.shape[1])[None, :]
            >= np.asarray(out.prompt_length)[:, None],
        )
        for row, text in enumerate(completions):
            new = out.tokens[row, out.prompt_length[row] :].numpy()
            new = [int(i) for i in new if i != tokenizer.end_token_id]
            self.assertEqual(text, tokenizer.detokenize(new))


class DecodeCompletionsTest(tf.test.TestCase):
    def test_masked_and_special_tokens_are_skipped(self):
        tokenizer = local_tokenizers.gpt2_tokenizer()
        vocabulary = local_tokenizers.gpt2_vocabulary()
        ids = [vocabulary[c] for c in "abc"]
        end = vocabulary[local_tokenizers.END]
        tokens = np.array(
            [[ids[0], ids[1], ids[2], end], [end, ids[2], end, end]]
        )
        mask = np.array([[False, True, True, True], [False, True, True, False]])
        self.assertEqual(
            lm.decode_completions(tokenizer, tokens, mask), ["bc", "c"]
        )
        # A row without response tokens is the empty string.
        self.assertEqual(
            lm.decode_completions(tokenizer, tokens, np.zeros([2, 4], bool)),
            ["", ""],
        )

    def test_equals_keras_hub_generate_postprocess(self):
        tokenizer = local_tokenizers.gpt2_tokenizer()
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer)
        rng = np.random.default_rng(0)
        tokens = rng.integers(0, tokenizer.vocabulary_size(), [5, 9])
        tokens[:, 3] = 0  # special tokens inside some responses
        mask = rng.random([5, 9]) < 0.7
        reference = preprocessor.generate_postprocess(
            {"token_ids": tokens, "padding_mask": mask}
        )
        self.assertEqual(
            lm.decode_completions(preprocessor, tokens, mask),
            list(reference),
        )

    def test_shapes_checked(self):
        tokenizer = local_tokenizers.gpt2_tokenizer()
        with self.assertRaisesRegex(ValueError, "must both be \\[B, W\\]"):
            lm.decode_completions(
                tokenizer, np.zeros([2, 3], int), np.ones([2, 4], bool)
            )


class PromptErrorsTest(tf.test.TestCase):
    def test_one_string_is_refused(self):
        with self.assertRaisesRegex(TypeError, "not one string.*prompts="):
            lm.encode_prompts(local_tokenizers.gpt2_tokenizer(), "the cat")

    def test_non_strings_are_refused(self):
        with self.assertRaisesRegex(TypeError, "row 1 is 3"):
            lm.encode_prompts(local_tokenizers.gpt2_tokenizer(), ["a", 3])

    def test_prompt_without_tokens(self):
        # "é" is outside the local vocabulary: keras-hub drops it silently.
        with self.assertRaisesRegex(
            ValueError, r"rows \[1, 2\] gave no tokens.*\['', 'é'\]"
        ):
            lm.encode_prompts(local_tokenizers.gpt2_tokenizer(), ["a", "", "é"])
        with self.assertRaisesRegex(ValueError, "must not be empty"):
            lm.encode_prompts(local_tokenizers.gpt2_tokenizer(), [])

    def test_model_without_preprocessor(self):
        from tests.lm import keras_hub_models

        with self.assertRaisesRegex(
            TypeError, "preprocessor=None` has no tokenizer.*tokenizer="
        ):
            lm.encode_prompts(keras_hub_models.gpt2(), ["a"])

    def test_padded_tokenizer_output_is_refused(self):
        tokenizer = keras_hub.models.GPT2Tokenizer(
            vocabulary=local_tokenizers.gpt2_vocabulary(),
            merges=list(local_tokenizers.MERGES),
            sequence_length=8,
        )
        with self.assertRaisesRegex(TypeError, "without `sequence_length`"):
            lm.encode_prompts(tokenizer, ["a"])

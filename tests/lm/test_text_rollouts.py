"""collect_text: string prompts and text reward functions through
CausalLMPPOModel.collect."""

import numpy as np
import tensorflow as tf

from keras_gae import lm
from keras_gae.losses import AdaptiveKLController
from tests.lm import keras_hub_models
from tests.lm import local_tokenizers

PROMPTS = ["the cat", "2+2="]
ANSWERS = ["sat", None]


def length(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def contains(completions, answer, **kwargs):
    return [
        None if a is None else float(a in c)
        for c, a in zip(completions, answer)
    ]


def model_with_preprocessor(**kwargs):
    causal_lm = local_tokenizers.gpt2_with_preprocessor()
    vocab = causal_lm.preprocessor.tokenizer.vocabulary_size()
    model = lm.CausalLMPPOModel(
        causal_lm,
        vocab_size=vocab,
        eos_id=causal_lm.preprocessor.tokenizer.end_token_id,
        advantage_estimator="grpo",
        **kwargs,
    )
    return model, causal_lm.preprocessor.tokenizer


class CollectTextTest(tf.test.TestCase):
    def test_rows_completions_and_rewards(self):
        model, tokenizer = model_with_preprocessor()
        text = lm.collect_text(
            model,
            PROMPTS,
            [length, contains],
            reward_weights=[0.5, 2.0],
            reward_kwargs={"answer": ANSWERS},
            max_new_tokens=5,
            num_samples=3,
            seed=0,
        )
        self.assertEqual(text.prompts, ("the cat",) * 3 + ("2+2=",) * 3)
        self.assertEqual(text.reward_names, ("length", "contains"))
        batch = text.rollout.batch
        tokens = batch["observation"].numpy()
        mask = batch["mask"].numpy()
        special = set(tokenizer.special_token_ids)
        for row, completion in enumerate(text.completions):
            ids = [int(i) for i in tokens[row][mask[row]] if i not in special]
            self.assertEqual(completion, tokenizer.detokenize(ids))
            # Packed rows: the start token and the prompt's ids, then the
            # response.
            start = int(np.argmax(mask[row]))
            self.assertEqual(
                tokens[row, :start].tolist(),
                [tokenizer.start_token_id] + tokenizer([text.prompts[row]])[0],
            )
        # Scores: the weighted sum, None (rows of the second prompt) as 0.
        expected = []
        for row, completion in enumerate(text.completions):
            answer = ANSWERS[row // 3]
            score = 0.5 * len(completion) / 10
            if answer is not None:
                score += 2.0 * float(answer in completion)
            expected.append(score)
        self.assertAllClose(text.rollout.scores, expected)
        self.assertTrue(np.isnan(text.rewards[3:, 1]).all())
        self.assertAllClose(text.metrics()["reward"], np.mean(expected))

    def test_same_batch_as_collect_with_token_ids(self):
        """In-process equivalent: the ids of the text and a token scorer
        computing the same reward give the same rollout batch."""
        model, tokenizer = model_with_preprocessor()
        special = set(tokenizer.special_token_ids)

        def token_length(tokens, mask):
            texts = [
                tokenizer.detokenize(
                    [int(i) for i in row[keep] if i not in special]
                )
                for row, keep in zip(np.asarray(tokens), np.asarray(mask))
            ]
            return np.array([len(t) / 10 for t in texts], np.float32)

        settings = dict(max_new_tokens=6, num_samples=2, seed=7)
        text = lm.collect_text(model, PROMPTS, length, **settings)
        tokens, prompt_mask = lm.encode_prompts(model, PROMPTS)
        rollout = model.collect(
            tokens, token_length, prompt_mask=prompt_mask, **settings
        )
        for key, value in rollout.batch.items():
            self.assertAllClose(text.rollout.batch[key], value, msg=key)
        self.assertAllClose(text.rollout.scores, rollout.scores)

    def test_pad_id_inside_the_prompt_is_a_prompt_token(self):
        """GPT-2's start token, EOS and pad id are one id: the prompt mask
        keeps the start token a prompt token with `pad_id` set."""
        model, tokenizer = model_with_preprocessor(pad_id=0)
        self.assertEqual(tokenizer.start_token_id, model.pad_id)
        text = lm.collect_text(
            model, PROMPTS, length, max_new_tokens=3, num_samples=2, seed=0
        )
        mask = text.rollout.batch["mask"].numpy()
        starts = np.argmax(mask, axis=1)
        for row, prompt in enumerate(text.prompts):
            self.assertEqual(starts[row], len(tokenizer([prompt])[0]) + 1)

    def test_text_scorer_in_the_evaluation_pass(self):
        model, tokenizer = model_with_preprocessor()
        tokens, mask = lm.encode_prompts(model, PROMPTS)
        scorer = lm.TextScorer(
            model,
            PROMPTS,
            [length, contains],
            reward_kwargs={"answer": ANSWERS},
        )
        logs = lm.evaluate_completions(
            model, tokens, scorer, prompt_mask=mask, max_new_tokens=4
        )
        expected = [
            len(c) / 10 + (0.0 if a is None else float(a in c))
            for c, a in zip(scorer.completions, ANSWERS)
        ]
        self.assertAllClose(logs["reward"], np.mean(expected))
        # Greedy completions, decoded independently, are the scorer's.
        out = lm.generate(
            model.network,
            tokens,
            prompt_mask=mask,
            max_new_tokens=4,
            top_k=1,
            eos_id=model.eos_id,
        )
        for row, completion in enumerate(scorer.completions):
            new = out.tokens[row, out.prompt_length[row] :].numpy()
            new = new[: int(np.sum(out.mask[row]))]
            ids = [int(i) for i in new if i != tokenizer.end_token_id]
            self.assertEqual(completion, tokenizer.detokenize(ids))
        with self.assertRaisesRegex(
            ValueError, "holds 2 rows.*the token rows are 4"
        ):
            scorer(np.zeros([4, 3], np.int32), np.ones([4, 3], bool))

    def test_tokenizer_for_a_model_without_preprocessor(self):
        tokenizer = local_tokenizers.gpt2_tokenizer()
        causal_lm = keras_hub_models.gpt2(vocab=tokenizer.vocabulary_size())
        model = lm.CausalLMPPOModel(
            causal_lm,
            vocab_size=tokenizer.vocabulary_size(),
            eos_id=0,
            advantage_estimator="rloo",
        )
        with self.assertRaisesRegex(TypeError, "pass one as `tokenizer`"):
            lm.collect_text(model, PROMPTS, length, max_new_tokens=2)
        text = lm.collect_text(
            model,
            PROMPTS,
            length,
            tokenizer=tokenizer,
            max_new_tokens=2,
            num_samples=2,
        )
        self.assertLen(text.completions, 4)

    def test_failing_reward_updates_nothing(self):
        controller = AdaptiveKLController(0.1, target_kl=1.0, horizon=10.0)
        reference = local_tokenizers.gpt2_with_preprocessor(seed=1)
        model, _ = model_with_preprocessor(
            reference_network=reference, reward_kl_coef=controller
        )
        before = float(controller.value)

        def broken(completions, **kwargs):
            return [float("nan")] * len(completions)

        with self.assertRaisesRegex(ValueError, "NaN or Inf.*broken"):
            lm.collect_text(
                model, PROMPTS, broken, max_new_tokens=3, num_samples=2
            )
        self.assertEqual(float(controller.value), before)
        lm.collect_text(model, PROMPTS, length, max_new_tokens=3, num_samples=2)
        self.assertNotEqual(float(controller.value), before)

    def test_bad_arguments(self):
        model, _ = model_with_preprocessor()
        with self.assertRaisesRegex(TypeError, "no `prompt_mask`"):
            lm.collect_text(
                model, PROMPTS, length, max_new_tokens=2, prompt_mask=[[1]]
            )
        with self.assertRaisesRegex(ValueError, "TextRewards has its own"):
            lm.collect_text(
                model,
                PROMPTS,
                lm.TextRewards(length),
                reward_weights=[1.0],
                max_new_tokens=2,
            )
        with self.assertRaisesRegex(ValueError, r"one value per prompt \(2\)"):
            lm.collect_text(
                model,
                PROMPTS,
                contains,
                reward_kwargs={"answer": ["sat"]},
                max_new_tokens=2,
            )
        with self.assertRaisesRegex(TypeError, "not one string"):
            lm.collect_text(model, "the cat", length, max_new_tokens=2)

"""Several reward functions with weights (TRL's reward_funcs and
reward_weights), against a plain-Python reference."""

import functools
import math
import statistics

import keras
import numpy as np
import tensorflow as tf

from keras_gae import lm
from keras_gae.lm import text_rewards

PROMPTS = ["p0", "p0", "p1", "p1"]
COMPLETIONS = ["abc", "", "a b", "zz"]
TOKENS = np.array([[7, 1, 2, 3], [7, 0, 0, 0], [8, 1, 4, 2], [8, 9, 9, 0]])
MASK = np.array([[0, 1, 1, 1], [0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 0]], bool)


def length(completions, **kwargs):
    return [len(c) for c in completions]


def matches(completions, answer, **kwargs):
    # Not applicable where there is no answer (TRL's None).
    return [
        None if a is None else float(c == a)
        for c, a in zip(completions, answer)
    ]


def token_sum(tokens, mask):
    return np.where(mask, tokens, 0).sum(axis=1)


def reference(functions, weights, rows, **columns):
    """Row rewards and per-function scores, one row at a time."""
    per_function = []
    for function in functions:
        if isinstance(function, lm.RewardFunction):
            per_function.append(
                [float(v) for v in token_sum(TOKENS, MASK)][:rows]
            )
        else:
            per_function.append(
                function(prompts=PROMPTS, completions=COMPLETIONS, **columns)
            )
    totals = []
    for row in range(rows):
        total = 0.0
        for weight, scores in zip(weights, per_function):
            if scores[row] is not None:
                total += weight * scores[row]
        totals.append(total)
    return totals, per_function


class TextRewardsTest(tf.test.TestCase):
    def test_weighted_sum_with_none_against_a_reference(self):
        answer = ["abc", "abc", None, None]
        functions = [length, matches, lm.RewardFunction(token_sum)]
        weights = [0.5, 2.0, -0.25]
        rewards = lm.TextRewards(functions, reward_weights=weights)
        scores = rewards(PROMPTS, COMPLETIONS, TOKENS, MASK, answer=answer)
        totals, per_function = reference(functions, weights, 4, answer=answer)
        self.assertAllClose(text_rewards.weighted_sum(scores, weights), totals)
        for k, column in enumerate(per_function):
            for row, value in enumerate(column):
                if value is None:
                    self.assertTrue(np.isnan(scores[row, k]))
                else:
                    self.assertAllClose(scores[row, k], value)
        self.assertEqual(rewards.names, ("length", "matches", "token_sum"))

    def test_metrics_against_a_reference(self):
        answer = ["abc", "x", "a b", None]
        functions = [length, matches]
        weights = [1.0, 3.0]
        rewards = lm.TextRewards(functions, reward_weights=weights)
        scores = rewards(PROMPTS, COMPLETIONS, TOKENS, MASK, answer=answer)
        logs = text_rewards.reward_metrics(scores, rewards.names, weights)
        totals, per_function = reference(functions, weights, 4, answer=answer)
        self.assertAllClose(logs["reward"], statistics.mean(totals))
        for name, column in zip(rewards.names, per_function):
            applied = [v for v in column if v is not None]
            self.assertAllClose(
                logs[f"rewards/{name}/mean"], statistics.mean(applied)
            )
            # TRL's nanstd: Bessel's correction over the applicable rows.
            self.assertAllClose(
                logs[f"rewards/{name}/std"], statistics.stdev(applied)
            )
        single = text_rewards.reward_metrics(
            np.array([[1.0, np.nan]]), ("a", "b"), (1.0, 1.0)
        )
        self.assertEqual(single["rewards/a/std"], 0.0)
        self.assertTrue(math.isnan(single["rewards/b/mean"]))

    def test_arguments_passed_like_trl(self):
        seen = {}

        def spy(prompts, completions, completion_ids, **kwargs):
            seen.update(
                prompts=prompts,
                completions=completions,
                completion_ids=completion_ids,
                **kwargs,
            )
            return [0.0] * len(completions)

        lm.TextRewards(spy)(
            PROMPTS, COMPLETIONS, TOKENS, MASK, answer=list("wxyz")
        )
        self.assertEqual(seen["prompts"], PROMPTS)
        self.assertEqual(seen["completions"], COMPLETIONS)
        self.assertEqual(
            seen["completion_ids"], [[1, 2, 3], [], [1, 4, 2], [9, 9]]
        )
        self.assertEqual(seen["answer"], list("wxyz"))

    def test_keras_reward_model_and_names(self):
        inputs = keras.Input([None], dtype="int32")
        pooled = keras.layers.Lambda(
            lambda t: keras.ops.sum(keras.ops.cast(t, "float32"), axis=1)
        )(inputs)
        model = keras.Model(inputs, pooled, name="sum_model")
        partial = functools.partial(length)
        rewards = lm.TextRewards([model, length, length, partial])
        self.assertEqual(
            rewards.names, ("sum_model", "length", "length_2", "partial")
        )
        scores = rewards(PROMPTS, COMPLETIONS, TOKENS, MASK)
        self.assertAllClose(scores[:, 0], TOKENS.sum(axis=1))
        self.assertAllClose(scores[:, 1], [len(c) for c in COMPLETIONS])
        self.assertEqual(rewards.reward_weights, (1.0,) * 4)

    def test_array_and_tensor_results(self):
        rewards = lm.TextRewards(
            [
                lambda completions, **kwargs: np.arange(4.0),
                lambda completions, **kwargs: tf.ones([4]),
            ],
            reward_weights=[1.0, 0.5],
        )
        scores = rewards(PROMPTS, COMPLETIONS, TOKENS, MASK)
        self.assertAllClose(
            text_rewards.weighted_sum(scores, rewards.reward_weights),
            np.arange(4.0) + 0.5,
        )


class TextRewardsErrorsTest(tf.test.TestCase):
    def call(self, function, **columns):
        return lm.TextRewards(function)(
            PROMPTS, COMPLETIONS, TOKENS, MASK, **columns
        )

    def test_row_without_any_score_is_refused(self):
        def none_for_p1(prompts, completions, **kwargs):
            return [1.0 if p == "p0" else None for p in prompts]

        with self.assertRaisesRegex(
            ValueError, r"returned None for rows \[2, 3\].*none_for_p1"
        ):
            self.call(none_for_p1)

    def test_non_finite_scores(self):
        def unstable(completions, **kwargs):
            return [1.0, math.nan, 2.0, math.inf]

        with self.assertRaisesRegex(
            ValueError, r"NaN or Inf scores in rows \[1, 3\].*unstable"
        ):
            self.call(unstable)

    def test_wrong_length_and_type(self):
        with self.assertRaisesRegex(ValueError, r"one score per row \(4\)"):
            self.call(lambda completions, **kwargs: [1.0])
        with self.assertRaisesRegex(TypeError, "one number \\(or None\\)"):
            self.call(lambda completions, **kwargs: ["good"] * 4)
        with self.assertRaisesRegex(TypeError, "one number \\(or None\\)"):
            self.call(lambda completions, **kwargs: 1.0)
        with self.assertRaisesRegex(ValueError, "3 prompts, 4 completions"):
            lm.TextRewards(length)(PROMPTS[:3], COMPLETIONS, TOKENS, MASK)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "non-empty list"):
            lm.TextRewards([])
        with self.assertRaisesRegex(TypeError, "item 1 is not"):
            lm.TextRewards([length, "length"])
        with self.assertRaisesRegex(ValueError, "one float per reward"):
            lm.TextRewards([length], reward_weights=[1.0, 2.0])
        with self.assertRaisesRegex(ValueError, "finite"):
            lm.TextRewards([length], reward_weights=[math.nan])
        with self.assertRaisesRegex(ValueError, "must not be named"):
            self.call(length, completion_ids=[[1]] * 4)

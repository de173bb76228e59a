"""The reward interface: callables and Keras reward models, batched."""

import keras
import numpy as np
import tensorflow as tf

from keras_gae import lm


class RewardFunctionTest(tf.test.TestCase):
    def test_python_callable_in_chunks(self):
        calls = []

        def reward(tokens, mask):
            calls.append(int(tokens.shape[0]))
            return np.asarray(tokens).sum(axis=1) * 0 + np.asarray(mask).sum(
                axis=1
            )

        tokens = np.arange(15).reshape(5, 3)
        mask = np.array([[1, 1, 0]] * 5, bool)
        scores = lm.RewardFunction(reward, batch_size=2)(tokens, mask)
        self.assertAllClose(scores, [2.0] * 5)
        self.assertEqual(calls, [2, 2, 1])

    def test_keras_model_per_token_scores_read_at_the_last_response_token(
        self,
    ):
        inputs = keras.Input([None], dtype="int32")
        per_token = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32"))(
            inputs
        )
        model = keras.Model(inputs, per_token)
        tokens = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
        mask = np.array([[0, 1, 1, 0], [0, 1, 0, 0]], bool)
        scores = lm.RewardFunction(model, batch_size=1)(tokens, mask)
        self.assertAllClose(scores, [3.0, 6.0])

    def test_keras_model_sequence_scores(self):
        inputs = keras.Input([None], dtype="int32")
        pooled = keras.layers.Lambda(
            lambda t: keras.ops.sum(keras.ops.cast(t, "float32"), axis=1)
        )(inputs)
        scores = lm.RewardFunction(keras.Model(inputs, pooled))(
            np.array([[1, 2], [3, 4]]), np.ones([2, 2], bool)
        )
        self.assertAllClose(scores, [3.0, 7.0])

    def test_errors(self):
        with self.assertRaisesRegex(TypeError, "reward"):
            lm.RewardFunction(3)
        with self.assertRaisesRegex(ValueError, "batch_size"):
            lm.RewardFunction(lambda t, m: t, batch_size=0)
        with self.assertRaisesRegex(ValueError, "one score per row"):
            lm.RewardFunction(lambda t, m: tf.zeros([3]))(
                np.zeros([2, 2], np.int32), np.ones([2, 2], bool)
            )


def nan_reward_model(name):
    """A Keras reward model named `name` that scores every row NaN."""
    tokens = keras.Input([None], dtype="int32")
    nan = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32") * np.nan)(
        tokens
    )
    return keras.Model(tokens, nan, name=name)


class RewardFunctionInputChecksTest(tf.test.TestCase):
    """Issue 20: what a reward gives back is checked, naming it."""

    def test_non_finite_scores_name_the_reward(self):
        tokens = np.array([[0, 0], [1, 1], [2, 2]], np.int32)
        mask = np.ones([3, 2], bool)
        for bad in (np.nan, np.inf, -np.inf):

            def unstable_metric(tokens, mask, bad=bad):
                return np.where(np.asarray(tokens)[:, 0] == 1, bad, 1.0)

            with self.assertRaisesRegex(
                ValueError,
                r"`reward` gave NaN or Inf scores in rows \[1\].*"
                "Received: reward=<function.*unstable_metric",
            ):
                lm.RewardFunction(unstable_metric, batch_size=2)(tokens, mask)

    def test_reward_model_giving_nan(self):
        model = nan_reward_model("diverged_reward_model")
        with self.assertRaisesRegex(
            ValueError, "NaN or Inf scores.*diverged_reward_model"
        ):
            lm.RewardFunction(model)(np.ones([2, 2], np.int32), np.ones([2, 2]))

    def test_scores_that_are_not_numbers(self):
        tokens, mask = np.zeros([2, 2], np.int32), np.ones([2, 2], bool)
        for result in (None, ["good", "bad"]):
            with self.assertRaisesRegex(
                TypeError, "`reward` must return \\[B\\] numbers.*Received"
            ):
                lm.RewardFunction(lambda t, m, r=result: r)(tokens, mask)

    def test_reward_model_with_several_scores_per_token(self):
        inputs = keras.Input([None], dtype="int32")
        outputs = keras.layers.Dense(2)(keras.layers.Embedding(4, 3)(inputs))
        with self.assertRaisesRegex(
            ValueError, r"gave \(2, 2, 2\).*Received: reward="
        ):
            lm.RewardFunction(keras.Model(inputs, outputs))(
                np.zeros([2, 2], np.int32), np.ones([2, 2], bool)
            )

    def test_mask_of_another_shape(self):
        with self.assertRaisesRegex(
            ValueError, "`mask` must have the same shape as `tokens`"
        ):
            lm.RewardFunction(lambda t, m: tf.zeros([2]))(
                np.zeros([2, 2], np.int32), np.ones([2, 3], bool)
            )

    def test_wrong_number_of_scores_names_the_reward(self):
        def two_scores_per_row(tokens, mask):
            return tf.zeros([2 * tf.shape(tokens)[0]])

        with self.assertRaisesRegex(
            ValueError,
            r"`reward` must give one score per row \(3\); it gave 6.*"
            "Received: reward=<function.*two_scores_per_row",
        ):
            lm.RewardFunction(two_scores_per_row)(
                np.zeros([3, 2], np.int32), np.ones([3, 2], bool)
            )

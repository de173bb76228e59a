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

"""Tests of sampling from a tiny Keras causal language model."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm

VOCAB = 7
EOS = 6


def tiny_model(seed=0, with_values=False):
    """Embedding + Dense: position-wise, hence causal."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input([None], dtype=tf.int32)
    hidden = keras.layers.Embedding(VOCAB, 8)(tokens)
    logits = keras.layers.Dense(VOCAB)(hidden)
    outputs = logits
    if with_values:
        values = keras.layers.Dense(1)(hidden)
        outputs = (logits, values)
    return keras.Model(tokens, outputs)


class CountingModel(keras.Model):
    """Next token = current + 1 (mod VOCAB) almost surely; value = token."""

    def call(self, tokens):
        following = tf.math.floormod(tokens + 1, VOCAB)
        logits = 30.0 * tf.one_hot(following, VOCAB)
        return logits, tf.cast(tokens, tf.float32)


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class GenerateTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters((1.0, None), (0.7, 3))
    def test_log_probs_match_recomputation(self, temperature, top_k):
        model = tiny_model()
        prompt = np.array([[1, 2, 3], [4, 0, 5]], np.int32)
        out = lm.generate(
            model,
            prompt,
            max_new_tokens=5,
            temperature=temperature,
            top_k=top_k,
            seed=3,
        )
        self.assertAllEqual(out.tokens[:, :3], prompt)
        self.assertIsNone(out.values)
        logits = np.asarray(model(out.tokens), np.float64)
        tokens = np.asarray(out.tokens)
        for b in range(2):
            for i in range(5):
                step = logits[b, 3 + i - 1] / temperature
                expected = log_softmax(step)[tokens[b, 3 + i]]
                self.assertAllClose(out.log_probs[b, i], expected, atol=1e-5)
                if top_k is not None:
                    rank = (step > step[tokens[b, 3 + i]]).sum()
                    self.assertLess(rank, top_k)

    def test_top_k_one_is_greedy(self):
        model = tiny_model(seed=1)
        prompt = np.array([[1, 2], [3, 4], [5, 0]], np.int32)
        out = lm.generate(model, prompt, max_new_tokens=6, top_k=1, seed=0)
        tokens = prompt.copy()
        for _ in range(6):
            logits = np.asarray(model(tokens))
            following = logits[:, -1].argmax(axis=-1).astype(np.int32)
            tokens = np.concatenate([tokens, following[:, None]], axis=1)
        self.assertAllEqual(out.tokens, tokens)

    def test_eos_stops_a_row(self):
        prompt = np.array([[0, 3], [0, 0], [0, 5]], np.int32)
        out = lm.generate(
            CountingModel(), prompt, max_new_tokens=4, eos_id=EOS, seed=0
        )
        self.assertAllEqual(
            out.tokens,
            [[0, 3, 4, 5, 6, 6], [0, 0, 1, 2, 3, 4], [0, 5, 6, 6, 6, 6]],
        )
        self.assertAllEqual(
            out.mask, [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
        )
        self.assertAllEqual(out.done, [True, False, True])
        log_probs = np.asarray(out.log_probs)
        self.assertAllEqual(log_probs[~np.asarray(out.mask)], [0.0] * 4)
        # values[:, i] = V(tokens[:, :P + i]) = the token at P + i - 1.
        self.assertAllClose(
            out.values,
            [[3, 4, 5, 0, 0], [0, 1, 2, 3, 4], [5, 0, 0, 0, 0]],
        )

    def test_outputs_feed_a_rollout_batch(self):
        model = tiny_model(with_values=True)
        prompt = np.array([[1, 2], [3, 4]], np.int32)
        out = lm.generate(model, prompt, max_new_tokens=4, eos_id=EOS, seed=5)
        pad = tf.zeros([2, 2])
        batch = lm.sequence_rollout_batch(
            out.tokens,
            2,
            tf.concat([pad, out.log_probs], 1),
            tf.concat([pad, out.log_probs], 1),
            tf.concat([pad, out.values[:, :4]], 1),
            tf.ones([2]),
            eos_id=EOS,
            kl_coef=0.1,
            bootstrap_value=out.values[:, 4],
        )
        self.assertAllEqual(batch["mask"][:, 2:], out.mask)
        _, values = model(out.tokens)
        self.assertAllClose(
            np.where(out.mask, out.values[:, :4], 0.0),
            np.where(out.mask, np.asarray(values)[:, 1:5, 0], 0.0),
            atol=1e-6,
        )

    def test_seed_reproducibility(self):
        model = tiny_model()
        prompt = np.array([[1, 2], [3, 4], [5, 0], [2, 2]], np.int32)

        def sample(seed):
            return lm.generate(
                model, prompt, max_new_tokens=12, temperature=3.0, seed=seed
            ).tokens

        self.assertAllEqual(sample(11), sample(11))
        self.assertNotAllEqual(sample(11), sample(12))

    def test_errors_name_the_argument(self):
        model = tiny_model()
        prompt = np.array([[1, 2]], np.int32)
        with self.assertRaisesRegex(ValueError, "temperature"):
            lm.generate(model, prompt, max_new_tokens=2, temperature=0.0)
        with self.assertRaisesRegex(ValueError, "max_new_tokens"):
            lm.generate(model, prompt, max_new_tokens=0)
        with self.assertRaisesRegex(ValueError, "top_k"):
            lm.generate(model, prompt, max_new_tokens=2, top_k=0)
        with self.assertRaisesRegex(TypeError, "prompt_tokens"):
            lm.generate(model, [[1.0]], max_new_tokens=2)
        with self.assertRaisesRegex(ValueError, "eos_id.*Received: eos_id=7"):
            lm.generate(model, prompt, max_new_tokens=2, eos_id=VOCAB)
        with self.assertRaisesRegex(ValueError, "top_k.*Received: top_k=8"):
            lm.generate(model, prompt, max_new_tokens=2, top_k=VOCAB + 1)
        with self.assertRaisesRegex(TypeError, "seed"):
            lm.generate(model, prompt, max_new_tokens=2, seed=1.5)

    def test_tf_keras_model_gets_the_keras_3_message(self):
        import tf_keras

        model = tf_keras.Sequential(
            [tf_keras.layers.Embedding(VOCAB, 4), tf_keras.layers.Dense(VOCAB)]
        )
        with self.assertRaisesRegex(TypeError, "model.*Keras 2.*Keras 3"):
            lm.generate(model, [[1, 2]], max_new_tokens=2)

"""MultiCategorical and Bernoulli heads, the encoder, the normalizations."""

import numpy as np
import tensorflow as tf
from tf_agents.specs import array_spec

from keras_gae.agents import ObservationEncoder
from keras_gae.agents import ObservationNormalization
from keras_gae.agents import RewardNormalization
from keras_gae.layers.bernoulli_policy_head import BernoulliPolicyHead
from keras_gae.layers.multi_categorical_policy_head import (
    MultiCategoricalPolicyHead,
)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


class MultiCategoricalTest(tf.test.TestCase):
    def test_log_prob_entropy_greedy_against_numpy(self):
        nvec = [3, 1, 4]
        head = MultiCategoricalPolicyHead(nvec, action_dtype="int64")
        params = np.random.default_rng(0).normal(size=(5, 8)).astype("f4")
        actions = np.array(
            [[2, 0, 3], [0, 0, 0], [1, 0, 2], [2, 0, 1], [0, 0, 3]]
        )
        splits = np.split(params, np.cumsum(nvec)[:-1], axis=-1)
        want_lp = sum(
            log_softmax(logits)[np.arange(5), actions[:, d]]
            for d, logits in enumerate(splits)
        )
        want_h = sum(
            -(np.exp(log_softmax(x)) * log_softmax(x)).sum(-1) for x in splits
        )
        want_greedy = np.stack([x.argmax(-1) for x in splits], -1)
        distribution = head.distribution(tf.constant(params))
        self.assertAllClose(distribution.log_prob(actions), want_lp, atol=1e-5)
        self.assertAllClose(distribution.entropy(), want_h, atol=1e-5)
        self.assertAllEqual(
            head.greedy_action(tf.constant(params)), want_greedy
        )
        samples = distribution.sample(2000, seed=1).numpy()
        self.assertEqual(samples.shape, (2000, 5, 3))
        self.assertTrue(np.all(samples < np.array(nvec)))
        # Row 0, dimension 0: empirical frequencies near softmax.
        counts = np.bincount(samples[:, 0, 0], minlength=3) / 2000
        self.assertAllClose(
            counts, np.exp(log_softmax(splits[0][0])), atol=0.04
        )

    def test_params_size_and_errors(self):
        head = MultiCategoricalPolicyHead([2, 5])
        self.assertEqual(head(np.zeros((2, 4), "f4")).shape, (2, 7))
        with self.assertRaisesRegex(ValueError, "nvec"):
            MultiCategoricalPolicyHead([])
        with self.assertRaisesRegex(ValueError, "nvec"):
            MultiCategoricalPolicyHead([2, 0])


class BernoulliTest(tf.test.TestCase):
    def test_log_prob_entropy_greedy_against_numpy(self):
        head = BernoulliPolicyHead(3, action_dtype="int64")
        logits = np.array([[0.5, -1.0, 2.0], [-0.3, 0.0, 1.5]], "f4")
        actions = np.array([[1, 0, 1], [0, 1, 0]])
        p = 1 / (1 + np.exp(-logits))
        want_lp = np.sum(
            actions * np.log(p) + (1 - actions) * np.log(1 - p), -1
        )
        want_h = np.sum(-(p * np.log(p) + (1 - p) * np.log(1 - p)), -1)
        distribution = head.distribution(tf.constant(logits))
        self.assertAllClose(distribution.log_prob(actions), want_lp, atol=1e-5)
        self.assertAllClose(distribution.entropy(), want_h, atol=1e-5)
        self.assertAllEqual(
            head.greedy_action(tf.constant(logits)), [[1, 0, 1], [0, 0, 1]]
        )


class EncoderTest(tf.test.TestCase):
    def test_dict_of_box_discrete_multidiscrete_binary(self):
        spec = {
            "pos": array_spec.BoundedArraySpec((2,), np.float32, -1, 1),
            "mode": array_spec.BoundedArraySpec((), np.int64, 1, 3),
            "grid": array_spec.BoundedArraySpec((2,), np.int64, 0, [1, 2]),
            "bits": array_spec.BoundedArraySpec((3,), np.int64, 0, 1),
        }
        encoder = ObservationEncoder(spec)
        observation = {
            "pos": np.array([[0.5, -0.5]], "f4"),
            "mode": np.array([3]),
            "grid": np.array([[1, 0]]),
            "bits": np.array([[1, 0, 1]]),
        }
        # Float leaves first, then the others in sorted key order:
        # bits (as floats), grid (one-hot 2 + one-hot 3), mode (one-hot 3).
        want = [0.5, -0.5, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1]
        self.assertAllClose(encoder(observation)[0], want)
        self.assertEqual(encoder.output_size, len(want))

    def test_normalized_floats(self):
        spec = array_spec.BoundedArraySpec((2,), np.float32, -10, 10)
        encoder = ObservationEncoder(spec, normalize=True)
        rng = np.random.default_rng(0)
        a = rng.normal(3, 2, (50, 2)).astype("f4")
        b = rng.normal(-1, 5, (70, 2)).astype("f4")
        encoder.update_statistics(a)
        encoder.update_statistics(b)
        both = np.concatenate([a, b])
        norm = encoder.normalization
        self.assertAllClose(norm.mean, both.mean(0), atol=1e-4)
        self.assertAllClose(norm.variance, both.var(0), rtol=1e-4)
        self.assertEqual(float(norm.count), 120.0)
        x = np.array([[1.0, 2.0]], "f4")
        want = np.clip(
            (x - both.mean(0)) / np.sqrt(both.var(0) + 1e-8), -10, 10
        )
        self.assertAllClose(encoder(x), want, atol=1e-4)

    def test_normalization_is_identity_before_updates(self):
        layer = ObservationNormalization()
        self.assertAllClose(
            layer(np.array([[3.0, -20.0]], "f4")), [[3.0, -10.0]]
        )


class RewardNormalizationTest(tf.test.TestCase):
    def test_against_numpy_reference(self):
        gamma = 0.9
        rng = np.random.default_rng(0)
        layer = RewardNormalization(2, gamma=gamma)
        returns = np.zeros(2)
        seen = []
        for _ in range(3):
            reward = rng.normal(size=(2, 6)).astype("f4")
            ended = rng.random((2, 6)) < 0.2
            mask = rng.random((2, 6)) < 0.9
            reward[~mask] = 0.0
            out = layer.update_and_scale(reward, ended, mask)
            for t in range(6):
                for b in range(2):
                    if mask[b, t]:
                        returns[b] = returns[b] * gamma + reward[b, t]
                        seen.append(returns[b])
                    if ended[b, t]:
                        returns[b] = 0.0
            want = np.clip(reward / np.sqrt(np.var(seen) + 1e-8), -10, 10)
            self.assertAllClose(out, want, rtol=1e-4, atol=1e-5)
            self.assertAllClose(layer.returns, returns, atol=1e-5)

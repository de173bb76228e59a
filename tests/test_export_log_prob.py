"""The exported "sample_action" of a clipped Gaussian policy: the action is
clipped to the box, its "log_prob" is that of the raw (unclipped) sample
(keras_gae/export.py; GaussianPolicyHead(bound="clip"))."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_gae import export
from keras_gae import layers
from keras_gae.models import PPOModel

LOW, HIGH = -0.25, 0.5
OBSERVATION_SPEC = tf.TensorSpec([3], tf.float32)


def make_model(**head_kwargs):
    keras.utils.set_random_seed(0)
    head = layers.GaussianPolicyHead(
        2,
        initial_log_std=-1.0,
        kernel_initializer="glorot_uniform",
        bias_initializer=keras.initializers.Constant(0.3),
        **head_kwargs,
    )
    actor = keras.Sequential([keras.layers.Dense(8, activation="tanh"), head])
    critic = keras.Sequential([keras.layers.Dense(1)])
    model = PPOModel(actor, critic)
    model(tf.zeros([1, 3]))
    return model


def gaussian_log_density(x, mean, log_std):
    """Diagonal Gaussian log-density in float64, summed over the last axis."""
    x, mean, log_std = (np.asarray(a, np.float64) for a in (x, mean, log_std))
    z = (x - mean) / np.exp(log_std)
    return np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


class ClippedGaussianExportTest(tf.test.TestCase):
    def exported(self, model, name):
        path = os.path.join(self.get_temp_dir(), name)
        export.export_policy(model, path, observation_spec=OBSERVATION_SPEC)
        return tf.saved_model.load(path)

    def test_log_prob_is_that_of_the_raw_sample(self):
        clipped_model = make_model(bound="clip", low=LOW, high=HIGH)
        # The same networks without a bound sample the same raw action for
        # a seed, and export it unclipped.
        raw_model = make_model()
        raw_model.set_weights(clipped_model.get_weights())
        clipped = self.exported(clipped_model, "clipped")
        raw = self.exported(raw_model, "raw")
        observation = (
            np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
        )

        def sample(loaded, seed, call):
            seed = tf.constant(seed, tf.int64)
            if call == "attribute":
                return loaded.sample_action(observation, seed)
            return loaded.signatures["sample_action"](
                observation=observation, seed=seed
            )

        params = clipped.distribution(observation)["params"].numpy()
        mean, log_std = np.split(params, 2, axis=-1)
        for seed, call in (([3, 4], "attribute"), ([5, 6], "signature")):
            out = sample(clipped, seed, call)
            raw_out = sample(raw, seed, call)
            action = out["action"].numpy()
            raw_action = raw_out["action"].numpy()
            self.assertAllEqual(action, np.clip(raw_action, LOW, HIGH))
            outside = (raw_action < LOW) | (raw_action > HIGH)
            # Enough clipping for the test to mean something.
            self.assertGreater(outside.any(axis=-1).mean(), 0.25)
            self.assertLess(outside.any(axis=-1).mean(), 1.0)

            expected = gaussian_log_density(raw_action, mean, log_std)
            self.assertAllClose(out["log_prob"], expected, atol=1e-4)
            self.assertAllClose(raw_out["log_prob"], expected, atol=1e-4)
            # The head's own log-prob of the raw sample.
            head = clipped_model.policy_head
            self.assertAllClose(
                out["log_prob"],
                head.distribution(params).log_prob(raw_action),
                atol=1e-5,
            )
            # Rows with a clipped dimension: not the clipped action's density.
            rows = outside.any(axis=-1)
            at_clipped = gaussian_log_density(action, mean, log_std)
            self.assertTrue(
                np.all(
                    np.abs(out["log_prob"].numpy()[rows] - at_clipped[rows])
                    > 1e-3
                )
            )

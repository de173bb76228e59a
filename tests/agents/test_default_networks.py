"""ObservationEncoder (keras_gae/agents/default_networks.py): observation
nests as one float vector, normalized float leaves."""

import numpy as np
import tensorflow as tf
from tf_agents.specs import array_spec
from tf_agents.specs import tensor_spec

from keras_gae.agents import ObservationEncoder


class EncoderTest(tf.test.TestCase):
    def test_dict_of_box_discrete_multidiscrete_binary(self):
        spec = {
            "pos": array_spec.BoundedArraySpec((2,), np.float32, -1, 1),
            "mode": array_spec.BoundedArraySpec((), np.int64, 1, 3),
            "grid": array_spec.BoundedArraySpec((2,), np.int64, 0, [1, 2]),
            "bits": array_spec.BoundedArraySpec((3,), np.int64, 0, 1),
        }
        observation = {
            "pos": np.array([[0.5, -0.5]], "f4"),
            "mode": np.array([3]),
            "grid": np.array([[1, 0]]),
            "bits": np.array([[1, 0, 1]]),
        }
        # Float leaves first, then the others in sorted key order:
        # bits (as floats), grid (one-hot 2 + one-hot 3), mode (one-hot 3).
        want = [0.5, -0.5, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1]
        # Array specs from a Python env, tensor specs from a TF env.
        for each in (spec, tensor_spec.from_spec(spec)):
            encoder = ObservationEncoder(each)
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

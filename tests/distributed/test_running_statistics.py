"""Chan's parallel update across workers against NumPy on the whole data."""

import sys

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.distributed.running_statistics import Moments
from keras_gae.distributed.running_statistics import merge_moments
from keras_gae.distributed.running_statistics import moments_of


class MergeMomentsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        ((5,),),
        ((7, 1, 300),),
        ((0, 4, 9),),
        ((1,),),
    )
    def test_merged_parts_equal_numpy_on_the_concatenation(self, sizes):
        rng = np.random.default_rng(sum(sizes))
        # Parts of unlike scale and offset, as workers' shares can be.
        parts = [
            rng.normal(10.0 * i, 1.0 + i, size=(n, 3))
            for i, n in enumerate(sizes)
        ]
        merged = merge_moments([moments_of(part) for part in parts])
        whole = np.concatenate(parts)
        self.assertEqual(merged.count, whole.shape[0])
        np.testing.assert_allclose(merged.mean, whole.mean(0), rtol=1e-12)
        np.testing.assert_allclose(merged.variance, whole.var(0), rtol=1e-12)

    def test_running_statistics_absorb_merged_moments(self):
        # Running moments (the learner's) merged with one round's parts
        # equal the moments of everything seen.
        rng = np.random.default_rng(3)
        seen, round_parts = (
            rng.normal(size=40),
            [rng.normal(2.0, 3.0, size=n) for n in (6, 0, 11)],
        )
        merged = merge_moments(
            [moments_of(seen)] + [moments_of(p) for p in round_parts]
        )
        whole = np.concatenate([seen] + round_parts)
        self.assertAllClose(
            [merged.count, merged.mean, merged.variance],
            [whole.size, whole.mean(), whole.var()],
            rtol=1e-12,
        )

    def test_no_parts_is_an_error(self):
        with self.assertRaisesRegex(ValueError, r"Received: parts=\[\]"):
            merge_moments([])

    def test_a_single_part_is_itself(self):
        part = Moments(4.0, np.array([1.0, 2.0]), np.array([0.5, 0.25]))
        merged = merge_moments([part])
        self.assertEqual(merged.count, 4.0)
        self.assertAllEqual(merged.mean, part.mean)
        self.assertAllEqual(merged.variance, part.variance)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

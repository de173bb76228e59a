"""Tests of keras_gae.ops.masked: statistics over the valid elements only.

References are float64 NumPy over the valid elements; the distributed tests
run on the two logical CPUs of tests/conftest.py and compare with one device
on the global batch.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops
from tests.distribute_utils import two_cpu_strategy


def numpy_moments(x, mask):
    valid = np.asarray(x, np.float64)[np.asarray(mask) != 0]
    if valid.size == 0:
        return 0.0, 0.0
    return valid.mean(), valid.var()


def random_batch(seed, shape=(8, 5), p_valid=0.7):
    """Float64 values with NaN/Inf padding where the mask is 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=3.0, scale=2.0, size=shape)
    mask = rng.random(shape) < p_valid
    mask[0, 0] = True
    x[~mask] = rng.choice([np.nan, np.inf, -np.inf, 1e30], size=(~mask).sum())
    return x, mask


class MaskedMomentsTest(tf.test.TestCase, parameterized.TestCase):
    def test_masked_moments_ignore_nan_padding(self):
        x = np.array([[1.0, 2.0, np.nan], [3.0, np.inf, 5.0]])
        mask = np.array([[1, 1, 0], [1, 0, 1]])
        valid = np.array([1.0, 2.0, 3.0, 5.0])
        mean, variance = ops.masked_moments(x, mask)
        self.assertAllClose(mean, valid.mean())
        self.assertAllClose(variance, valid.var())
        whitened = ops.masked_whiten(x, mask).numpy()
        self.assertAllClose(
            whitened[mask == 1],
            (valid - valid.mean()) / np.sqrt(valid.var() + 1e-8),
        )
        self.assertAllEqual(whitened[mask == 0], [0.0, 0.0])

    @parameterized.parameters(0, 1, 2)
    def test_matches_numpy_reference(self, seed):
        x, mask = random_batch(seed)
        for given in (mask, mask.astype(np.int32), mask.astype(np.float32)):
            mean, variance = ops.masked_moments(x, given)
            expected_mean, expected_variance = numpy_moments(x, mask)
            self.assertAllClose(mean, expected_mean, atol=1e-12)
            self.assertAllClose(variance, expected_variance, atol=1e-12)

    def test_without_mask_uses_every_element(self):
        x = np.random.default_rng(3).normal(size=(4, 6))
        mean, variance = ops.masked_moments(x)
        self.assertAllClose(mean, x.mean(), atol=1e-12)
        self.assertAllClose(variance, x.var(), atol=1e-12)

    def test_broadcast_mask(self):
        x = np.arange(12.0).reshape(3, 4)
        mask = np.array([True, False, True, True])
        mean, variance = ops.masked_moments(x, mask)
        valid = x[:, mask]
        self.assertAllClose(mean, valid.mean())
        self.assertAllClose(variance, valid.var())

    def test_two_passes_keep_variance_of_large_mean_float32(self):
        # One pass (E[x^2] - E[x]^2) loses every digit of this variance in
        # float32: 1e4^2 needs more than float32's 24 bits of mantissa.
        x = (1e4 + np.array([-1.0, 0.0, 1.0, 2.0])).astype(np.float32)
        mean, variance = ops.masked_moments(x, np.ones(4, bool))
        self.assertEqual(variance.dtype, tf.float32)
        self.assertAllClose(mean, 1e4 + 0.5, rtol=1e-7)
        self.assertAllClose(variance, 1.25, rtol=1e-5)

    def test_empty_mask_gives_zeros(self):
        self.assertAllClose(ops.masked_mean([1.0, 2.0], [0, 0]), 0.0)
        mean, variance = ops.masked_moments([1.0, np.nan], [0, 0])
        self.assertAllEqual([mean, variance], [0.0, 0.0])

    def test_sum_and_count(self):
        x, mask = random_batch(4)
        total, count = ops.masked_sum_and_count(x, mask)
        self.assertAllClose(total, x[mask].sum(), atol=1e-12)
        self.assertAllClose(count, mask.sum())

    def test_whiten_without_mean_shift_keeps_mean(self):
        x = np.array([1.0, 2.0, 6.0])
        out = ops.masked_whiten(x, shift_mean=False).numpy()
        self.assertAllClose(out, (x - x.mean()) / x.std() + x.mean(), 1e-6)


class NonFiniteAndHalfPrecisionTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(np.nan, np.inf, -np.inf)
    def test_whiten_gradient_ignores_masked_non_finite_values(self, bad):
        # The masked element is excluded: the gradients with respect to the
        # valid elements equal those with a finite value there, to the bit.
        mask = np.array([True, False, True, True])
        weights = np.array([1.0, 2.0, -3.0, 0.5], np.float32)

        def gradient(masked_value):
            x = tf.Variable(np.float32([1.0, masked_value, 4.0, -2.0]))
            with tf.GradientTape() as tape:
                whitened = ops.masked_whiten(x, mask)
                objective = tf.reduce_sum(whitened * weights)
            return whitened.numpy(), tape.gradient(objective, x).numpy()

        finite_whitened, finite_gradient = gradient(0.0)
        whitened, got = gradient(bad)
        self.assertAllEqual(whitened, finite_whitened)
        self.assertAllEqual(got, finite_gradient)
        self.assertTrue(np.all(np.isfinite(got)))

    def test_half_precision_is_computed_in_float32(self):
        # In float16 the sum 6e4 + 6e4 and the variance 2.2e7 overflow: the
        # mean came out Inf and the whitened values 0.
        big = np.float16([6e4, 6e4, 0.0])
        self.assertEqual(ops.masked_mean(big, [1, 1, 0]).dtype, tf.float16)
        self.assertAllClose(ops.masked_mean(big, [1, 1, 0]), 6e4)
        total, count = ops.masked_sum_and_count(big, [1, 1, 0])
        self.assertEqual(total.numpy(), np.inf)  # 1.2e5 is no float16
        self.assertEqual(count.numpy(), 2.0)
        x = np.array([1.0, 2.0, 1e4])
        whitened = ops.masked_whiten(x.astype(np.float16))
        self.assertEqual(whitened.dtype, tf.float16)
        expected = (x - x.mean()) / np.sqrt(x.var() + 1e-8)
        self.assertAllClose(whitened, expected, rtol=1e-3, atol=1e-3)
        for dtype in (np.float16, tf.bfloat16.as_numpy_dtype):
            (mean, variance), _ = ops.joint_masked_moments(
                [x.astype(dtype), x.astype(dtype)]
            )
            self.assertEqual(mean.dtype, tf.as_dtype(dtype))
            self.assertAllClose(mean, x.mean(), rtol=1e-2)
            if dtype is np.float16:
                self.assertEqual(variance.numpy(), np.inf)
            else:
                self.assertAllClose(variance, x.var(), rtol=1e-2)

    @parameterized.named_parameters(
        ("int_x", lambda: ops.masked_mean([1, 2, 3]), TypeError, "x"),
        (
            "bool_x",
            lambda: ops.masked_moments([True, False]),
            TypeError,
            "x",
        ),
        (
            "weight_mask",
            lambda: ops.masked_mean([1.0, 2.0], [1.0, 0.5]),
            ValueError,
            "mask",
        ),
        (
            "nan_mask",
            lambda: ops.masked_moments([1.0, 2.0], [1.0, np.nan]),
            ValueError,
            "mask",
        ),
        (
            "string_mask",
            lambda: ops.masked_sum_and_count([1.0, 2.0], ["a", "b"]),
            TypeError,
            "mask",
        ),
        (
            "mask_shape",
            lambda: ops.masked_whiten(np.zeros((2, 3)), np.ones(2)),
            ValueError,
            "mask",
        ),
        (
            "mask_rank",
            lambda: ops.masked_mean(np.zeros(3), np.ones((2, 3))),
            ValueError,
            "mask",
        ),
        (
            "negative_epsilon",
            lambda: ops.masked_whiten([1.0, 2.0], epsilon=-1.0),
            ValueError,
            "epsilon",
        ),
        (
            "nan_epsilon",
            lambda: ops.masked_whiten([1.0, 2.0], epsilon=float("nan")),
            ValueError,
            "epsilon",
        ),
        (
            "zero_epsilon",
            lambda: ops.masked_whiten([1.0, 1.0], epsilon=0.0),
            ValueError,
            "epsilon",
        ),
        (
            "shift_mean",
            lambda: ops.masked_whiten([1.0, 2.0], shift_mean="no"),
            TypeError,
            "shift_mean",
        ),
        (
            "across_replicas",
            lambda: ops.masked_moments([1.0, 2.0], across_replicas=1),
            TypeError,
            "across_replicas",
        ),
        (
            "joint_shapes",
            lambda: ops.joint_masked_moments([np.zeros(3), np.zeros(2)]),
            ValueError,
            "tensors",
        ),
        (
            "joint_dtypes",
            lambda: ops.joint_masked_moments(
                [np.zeros(3, np.float32), np.zeros(3)]
            ),
            TypeError,
            "tensors",
        ),
    )
    def test_bad_arguments_name_them(self, call, error, name):
        with self.assertRaisesRegex(error, f"`{name}.*Received: {name}"):
            call()


class JointMaskedMomentsTest(tf.test.TestCase):
    def test_each_tensor_matches_its_own_moments(self):
        x, mask = random_batch(5)
        y = np.where(mask, np.random.default_rng(6).normal(size=x.shape), 0)
        joint = ops.joint_masked_moments([x, y], mask)
        self.assertLen(joint, 2)
        for tensor, (mean, variance) in zip((x, y), joint):
            expected_mean, expected_variance = numpy_moments(tensor, mask)
            self.assertAllClose(mean, expected_mean, atol=1e-12)
            self.assertAllClose(variance, expected_variance, atol=1e-12)
            single = ops.masked_moments(tensor, mask)
            self.assertAllClose((mean, variance), single, atol=1e-12)

    def test_without_mask(self):
        rng = np.random.default_rng(7)
        x, y = rng.normal(size=(2, 3, 4))
        (x_moments, y_moments) = ops.joint_masked_moments([x, y])
        self.assertAllClose(x_moments, (x.mean(), x.var()), atol=1e-12)
        self.assertAllClose(y_moments, (y.mean(), y.var()), atol=1e-12)

    def test_across_replicas_outside_a_strategy_is_local(self):
        x, mask = random_batch(8)
        local = ops.joint_masked_moments([x], mask)
        replicated = ops.joint_masked_moments([x], mask, across_replicas=True)
        self.assertAllClose(local, replicated, atol=0.0)


class AcrossReplicasTest(tf.test.TestCase):
    """Two replicas, each with half the batch, against the global batch."""

    def setUp(self):
        super().setUp()
        self.strategy = two_cpu_strategy()
        x, mask = random_batch(9, shape=(8, 6), p_valid=0.6)
        # Uneven valid counts per replica: a mean of the replicas' means
        # would differ from the global mean.
        mask[:4, 1:] = False
        self.x, self.mask = x.astype(np.float32), mask
        self.y = np.where(mask, 2.0 * x - 1.0, np.nan).astype(np.float32)

    def per_replica(self, array):
        halves = np.split(array, 2)
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(
                halves[context.replica_id_in_sync_group]
            )
        )

    def run_on_replicas(self, fn):
        """fn(x, y, mask) on each replica; results stacked per replica."""
        results = self.strategy.run(
            tf.function(fn),
            args=tuple(map(self.per_replica, (self.x, self.y, self.mask))),
        )
        return tf.nest.map_structure(
            lambda r: np.stack(
                [t.numpy() for t in self.strategy.experimental_local_results(r)]
            ),
            results,
        )

    def test_joint_moments_equal_one_device_on_global_batch(self):
        stacked = self.run_on_replicas(
            lambda x, y, mask: ops.joint_masked_moments(
                [x, y], mask, across_replicas=True
            )
        )
        expected = [numpy_moments(t, self.mask) for t in (self.x, self.y)]
        one_device = ops.joint_masked_moments([self.x, self.y], self.mask)
        for (means, variances), reference, single in zip(
            stacked, expected, one_device
        ):
            for replica in range(2):
                self.assertAllClose(means[replica], reference[0], rtol=1e-5)
                self.assertAllClose(variances[replica], reference[1], rtol=1e-5)
                self.assertAllClose(
                    (means[replica], variances[replica]), single, rtol=1e-6
                )

    def test_masked_moments_and_whiten_across_replicas(self):
        (mean, variance), whitened = self.run_on_replicas(
            lambda x, y, mask: (
                ops.masked_moments(x, mask, across_replicas=True),
                ops.masked_whiten(x, mask, across_replicas=True),
            )
        )
        expected_mean, expected_variance = numpy_moments(self.x, self.mask)
        self.assertAllClose(mean, [expected_mean] * 2, rtol=1e-5)
        self.assertAllClose(variance, [expected_variance] * 2, rtol=1e-5)
        global_whitened = ops.masked_whiten(self.x, self.mask).numpy()
        self.assertAllClose(
            np.concatenate(whitened), global_whitened, rtol=1e-5, atol=1e-5
        )

    def test_without_across_replicas_each_replica_is_local(self):
        (mean, variance) = self.run_on_replicas(
            lambda x, y, mask: ops.masked_moments(x, mask)
        )
        for replica, (x, mask) in enumerate(
            zip(np.split(self.x, 2), np.split(self.mask, 2))
        ):
            expected_mean, expected_variance = numpy_moments(x, mask)
            self.assertAllClose(mean[replica], expected_mean, rtol=1e-5)
            self.assertAllClose(variance[replica], expected_variance, rtol=1e-5)
        # The setup makes the halves differ, so the flag matters.
        self.assertNotAllClose(mean[0], mean[1])


if __name__ == "__main__":
    tf.test.main()

"""Tests of the return estimators in keras_gae.ops."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops
from tests.ops import reference
from tests.ops.test_gae import random_case


def without(case, *keys):
    return {k: v for k, v in case.items() if k not in keys}


class DiscountedReturnsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(per_step=(False, True), with_values=(False, True))
    def test_matches_reference(self, per_step, with_values):
        for seed in range(3):
            case = without(random_case(seed, per_step=per_step), "lambda_")
            if not with_values:
                case.pop("values")
            expected = reference.monte_carlo(**case)
            got = ops.discounted_returns(**case)
            self.assertAllClose(got, expected, atol=1e-12)

    def test_hand_fixture(self):
        # gamma = 0.5, one episode terminated at t=1, then a truncated one.
        # G_1 = 2; G_0 = 1 + 0.5*2 = 2; G_3 = 4 + 0.5*V_trunc(8) = 8;
        # G_2 = 3 + 0.5*8 = 7.
        got = ops.discounted_returns(
            [[1.0], [2.0], [3.0], [4.0]],
            [100.0],
            gamma=0.5,
            terminated=[[0], [1], [0], [0]],
            truncated=[[0], [0], [0], [1]],
            truncation_values=[[0.0], [0.0], [0.0], [8.0]],
        )
        self.assertAllClose(got, [[2.0], [2.0], [7.0], [8.0]])

    def test_truncation_without_values_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "`truncated` needs `values`"):
            ops.discounted_returns(
                np.zeros((2, 1)), np.zeros(1), truncated=np.ones((2, 1))
            )


class NStepReturnsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(n=(1, 2, 3, 10), per_step=(False, True))
    def test_matches_reference(self, n, per_step):
        for seed in range(3):
            case = without(random_case(seed, per_step=per_step), "lambda_")
            expected = reference.n_step(**case, n=n)
            self.assertAllClose(
                ops.n_step_returns(**case, n=n), expected, atol=1e-12
            )

    def test_large_n_is_monte_carlo(self):
        case = without(random_case(4), "lambda_")
        self.assertAllClose(
            ops.n_step_returns(**case, n=case["rewards"].shape[0]),
            ops.discounted_returns(**case),
            atol=1e-12,
        )

    @parameterized.parameters(
        (0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)
    )
    def test_bad_n(self, n, error):
        with self.assertRaisesRegex(error, "`n`.*Received: n="):
            ops.n_step_returns(
                np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(1), n=n
            )


class TDLambdaAndTDErrorsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(False, True)
    def test_td_lambda_matches_reference_returns(self, per_step):
        for seed in range(3):
            case = random_case(seed, per_step=per_step)
            _, expected = reference.gae(**case)
            self.assertAllClose(
                ops.td_lambda_returns(**case), expected, atol=1e-12
            )

    def test_td_errors_hand_fixture(self):
        # delta_0 = 1 + 0.5*2 - 1 = 1; delta_1 = 1 + 0 - 2 = -1 (terminated).
        got = ops.temporal_difference_errors(
            [[1.0], [1.0]],
            [[1.0], [2.0]],
            [5.0],
            gamma=0.5,
            terminated=[[False], [True]],
        )
        self.assertAllClose(got, [[1.0], [-1.0]])

    def test_batch_major(self):
        case = without(random_case(5, per_step=True), "lambda_")
        transposed = {
            k: np.transpose(v)
            if isinstance(v, np.ndarray) and v.ndim == 2
            else v
            for k, v in case.items()
        }
        for fn in (ops.temporal_difference_errors, ops.discounted_returns):
            self.assertAllClose(
                tf.transpose(fn(**transposed, time_major=False)),
                fn(**case),
            )

    @parameterized.parameters(
        ops.temporal_difference_errors, ops.td_lambda_returns
    )
    def test_values_required(self, fn):
        with self.assertRaisesRegex(TypeError, "`values`.*Received"):
            fn(np.zeros((2, 1)), None, np.zeros(1))

"""The documented behaviour of GAE on NaN or Inf inputs without
check_numerics, and with it."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.ops import generalized_advantage_estimation


def inputs():
    rewards = np.ones((6, 1), np.float32)
    values = np.zeros((6, 1), np.float32)
    terminated = np.zeros((6, 1), bool)
    terminated[1, 0] = True
    return rewards, values, terminated


class NonFiniteInputsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("scan", "xla")
    def test_nan_spreads_back_through_the_row(self, implementation):
        rewards, values, terminated = inputs()
        rewards[3, 0] = np.nan
        advantages = generalized_advantage_estimation(
            rewards,
            values,
            np.zeros(1, np.float32),
            terminated=terminated,
            implementation=implementation,
        ).advantages.numpy()[:, 0]
        # Steps 0..3 (across the episode end at step 1) are NaN; the steps
        # after the NaN are not.
        self.assertTrue(np.all(np.isnan(advantages[:4])))
        self.assertAllClose(advantages[4:], [1.0 + 0.99 * 0.95, 1.0])

    def test_a_masked_step_stops_it(self):
        rewards, values, terminated = inputs()
        rewards[3, 0] = np.nan
        mask = np.ones((6, 1), bool)
        mask[3, 0] = False
        advantages = generalized_advantage_estimation(
            rewards,
            values,
            np.zeros(1, np.float32),
            terminated=terminated,
            mask=mask,
        ).advantages.numpy()[:, 0]
        self.assertTrue(np.all(np.isfinite(advantages)))
        self.assertEqual(advantages[3], 0.0)

    def test_check_numerics_names_the_input(self):
        rewards, values, _ = inputs()
        values[2, 0] = np.inf
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "values"):
            generalized_advantage_estimation(
                rewards, values, np.zeros(1, np.float32), check_numerics=True
            )

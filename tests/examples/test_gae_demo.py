"""Smoke test of the GAE demonstration binary's train_eval-style entry."""

import numpy as np
import tensorflow as tf

from examples import gae_demo


class GAEDemoTest(tf.test.TestCase):
    def test_boundaries_in_demo_table(self):
        result = gae_demo.gae_demo(num_steps=6, gamma=0.9, lambda_=0.8)
        # Terminated at t=3: the return is the reward alone.
        self.assertAllClose(result["returns"][0, 3], 1.0)
        # Truncated at t=3: reward plus gamma times the final obs' value.
        self.assertAllClose(result["returns"][1, 3], 1.0 + 0.9 * 5.0)
        # After the boundary both environments see the same new episode.
        np.testing.assert_allclose(
            result["advantage"][0, 4:], result["advantage"][1, 4:]
        )

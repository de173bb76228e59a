"""The documented behaviour of GAE and the return estimators on NaN or Inf
inputs without check_numerics (nothing crosses an episode end or a masked
step), and with it."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops

T = 6


def gae(implementation):
    def estimate(rewards, values, bootstrap_value, **flags):
        return ops.generalized_advantage_estimation(
            rewards,
            values,
            bootstrap_value,
            implementation=implementation,
            **flags,
        ).advantages

    return estimate


ESTIMATORS = {
    "gae_scan": gae("scan"),
    "gae_xla": gae("xla"),
    "gae_native": gae("native"),
    "td_lambda": ops.td_lambda_returns,
    "discounted": lambda rewards, values, bootstrap_value, **flags: (
        ops.discounted_returns(rewards, bootstrap_value, values=values, **flags)
    ),
    "td_errors": ops.temporal_difference_errors,
    "three_step": lambda *args, **flags: ops.n_step_returns(
        *args, n=3, **flags
    ),
}

# Where the first episode (or the valid stretch) ends: step 1 for an episode
# end, the masked step 2 for a mask.
BOUNDARIES = {
    "terminated": 1,
    "truncated": 1,
    "masked": 2,
}


def inputs(boundary):
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=(T, 1)).astype(np.float32)
    values = rng.normal(size=(T, 1)).astype(np.float32)
    flags = {}
    if boundary == "masked":
        mask = np.ones((T, 1), bool)
        mask[2, 0] = False
        flags["mask"] = mask
    else:
        flag = np.zeros((T, 1), bool)
        flag[1, 0] = True
        flags[boundary] = flag
        if boundary == "truncated":
            flags["truncation_values"] = rng.normal(size=(T, 1)).astype(
                np.float32
            )
    return rewards, values, np.zeros(1, np.float32), flags


class NonFiniteInputsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(
        estimator=sorted(ESTIMATORS), boundary=sorted(BOUNDARIES)
    )
    def test_nan_after_a_boundary_stays_there(self, estimator, boundary):
        estimate = ESTIMATORS[estimator]
        rewards, values, bootstrap_value, flags = inputs(boundary)
        end = BOUNDARIES[boundary]
        finite = estimate(rewards, values, bootstrap_value, **flags).numpy()
        # A NaN reward at step 3 and a NaN value right after the boundary
        # (what a new episode or padding may hold) reach no step up to the
        # boundary: those equal the all-finite results, to the bit.
        rewards[3, 0] = np.nan
        if boundary != "truncated":
            # A truncated step bootstraps from its truncation value, and a
            # terminated or masked one reads no next value at all.
            values[end + 1, 0] = np.nan
        result = estimate(rewards, values, bootstrap_value, **flags).numpy()
        self.assertAllEqual(result[: end + 1], finite[: end + 1])
        self.assertTrue(np.all(np.isfinite(result[: end + 1])))
        # The NaN reward's own step is not finite.
        self.assertTrue(np.isnan(result[3, 0]))

    @parameterized.parameters("scan", "xla", "native")
    def test_nan_spreads_back_within_its_episode(self, implementation):
        rewards = np.ones((T, 1), np.float32)
        values = np.zeros((T, 1), np.float32)
        terminated = np.zeros((T, 1), bool)
        terminated[1, 0] = True
        rewards[4, 0] = np.nan
        advantages = ops.generalized_advantage_estimation(
            rewards,
            values,
            np.zeros(1, np.float32),
            terminated=terminated,
            implementation=implementation,
        ).advantages.numpy()[:, 0]
        # Steps 2..4 (the NaN's episode, up to it) are NaN; the first
        # episode and the step after the NaN are not.
        self.assertTrue(np.all(np.isnan(advantages[2:5])))
        self.assertAllClose(advantages[:2], [1.0 + 0.99 * 0.95, 1.0])
        self.assertAllClose(advantages[5:], [1.0])

    def test_check_numerics_names_the_input(self):
        rewards = np.ones((T, 1), np.float32)
        values = np.zeros((T, 1), np.float32)
        values[2, 0] = np.inf
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "values"):
            ops.generalized_advantage_estimation(
                rewards, values, np.zeros(1, np.float32), check_numerics=True
            )

"""The documented behaviour of GAE and the return estimators on NaN or Inf
inputs without check_numerics (the trace crosses no episode end or masked
step; a step reads the V(s_{t+1}) it bootstraps from, on a masked row too),
and with it."""

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

    @parameterized.product(
        estimator=sorted(ESTIMATORS),
        step_before=("plain", "terminated", "truncated"),
    )
    def test_nan_value_on_a_masked_row_reaches_the_step_reading_it(
        self, estimator, step_before
    ):
        # Row 3 is masked (padding, or the LAST row of a tf-agents episode,
        # which holds V(s_3)). Step 2 bootstraps from values[3] unless it is
        # terminated or reads truncation_values[2] instead: a NaN there is
        # an input of step 2, not padding it may ignore.
        estimate = ESTIMATORS[estimator]
        rewards, values, bootstrap_value, flags = inputs("masked")
        flags["mask"] = np.ones((T, 1), bool)
        flags["mask"][3, 0] = False
        if step_before != "plain":
            flags[step_before] = np.zeros((T, 1), bool)
            flags[step_before][2, 0] = True
        if step_before == "truncated":
            flags["truncation_values"] = np.full((T, 1), 0.5, np.float32)
        finite = estimate(rewards, values, bootstrap_value, **flags).numpy()
        values[3, 0] = np.nan
        result = estimate(rewards, values, bootstrap_value, **flags).numpy()
        if step_before == "plain":
            self.assertTrue(np.isnan(result[2, 0]))
        else:
            self.assertAllEqual(result[:3], finite[:3])
        # The steps after the masked row never read it.
        self.assertAllEqual(result[4:], finite[4:])

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

"""Tests for keras_gae/ops/value_losses.py: the value-clip fraction at the
clip boundary.

The documented rule: a step counts as clipped when the clip makes its
gradient zero. For clip_mode="max" that is l(V_clip - R) > l(V - R), which
needs |V - V_old| > c; for "clamp" it is |V - V_old| > c. A step that moved
exactly c is not clipped (V_clip = V). Every number below is exact in
float32 (multiples of 2^-8 near 1), so "exactly c" is exactly c.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops

CLIP = 0.25
OLD = 2.0
STEP = 2.0**-8  # the smallest move past the boundary used here


def np_clip_fraction(values, returns, old, clip_range, clip_mode):
    """The documented rule in float64."""
    values, returns, old = (
        np.asarray(a, np.float64) for a in (values, returns, old)
    )
    clipped_values = old + np.clip(values - old, -clip_range, clip_range)
    unclipped_loss = 0.5 * (values - returns) ** 2
    clipped_loss = 0.5 * (clipped_values - returns) ** 2
    if clip_mode == "max":
        clipped = clipped_loss > unclipped_loss
    else:
        clipped = np.abs(values - old) > clip_range
    return clipped.mean()


def boundary_steps():
    """(values, returns): moves of exactly +-c, then just past +-c, then
    inside; returns beyond the moved value, so a clip would bind."""
    values = np.array(
        [
            OLD + CLIP,
            OLD - CLIP,
            OLD + CLIP + STEP,
            OLD - CLIP - STEP,
            OLD + CLIP - STEP,
        ]
    )
    returns = np.where(values >= OLD, OLD + 2.0, OLD - 2.0)
    return values, returns


class ValueClipFractionBoundaryTest(tf.test.TestCase, parameterized.TestCase):
    def test_inputs_are_exact_in_float32(self):
        values, returns = boundary_steps()
        for array in (values, returns, values - OLD):
            self.assertAllEqual(array.astype(np.float32), array)
        self.assertAllEqual(
            np.abs(values.astype(np.float32) - np.float32(OLD)),
            [CLIP, CLIP, CLIP + STEP, CLIP + STEP, CLIP - STEP],
        )

    @parameterized.product(
        clip_mode=("max", "clamp"),
        dtype=(np.float32, np.float64),
        jit_compile=(None, False, True),
    )
    def test_exactly_the_clip_range_is_not_clipped(
        self, clip_mode, dtype, jit_compile
    ):
        values, returns = boundary_steps()

        def clip_fraction(values, returns, old_values):
            return ops.value_loss(
                values,
                returns,
                old_values=old_values,
                clip_range=CLIP,
                clip_mode=clip_mode,
            ).clip_fraction

        if jit_compile is not None:
            clip_fraction = tf.function(clip_fraction, jit_compile=jit_compile)
        for step, expected in enumerate([0.0, 0.0, 1.0, 1.0, 0.0]):
            one = [values[step]], [returns[step]], [OLD]
            reference = np_clip_fraction(*one, CLIP, clip_mode)
            self.assertEqual(reference, expected)
            got = clip_fraction(*(np.asarray(a, dtype) for a in one))
            self.assertEqual(float(got), expected, msg=f"step {step}")
        got = clip_fraction(
            values.astype(dtype),
            returns.astype(dtype),
            np.full(5, OLD, dtype),
        )
        # 2 of 5 steps, rounded once to the dtype.
        self.assertEqual(float(got), float(dtype(2) / dtype(5)))
        self.assertEqual(
            np_clip_fraction(values, returns, np.full(5, OLD), CLIP, clip_mode),
            2 / 5,
        )

    @parameterized.parameters("max", "clamp")
    def test_boundary_step_keeps_its_gradient(self, clip_mode):
        # What the fraction reports: at exactly c the step still gets the
        # gradient of l(V - R) = V - R; just past c, none.
        values, returns = boundary_steps()
        values = tf.Variable(values.astype(np.float32))
        with tf.GradientTape() as tape:
            out = ops.value_loss(
                values,
                returns.astype(np.float32),
                old_values=np.full(5, OLD, np.float32),
                clip_range=CLIP,
                clip_mode=clip_mode,
            )
        grad = tape.gradient(out.loss, values).numpy() * 5
        moved_out = np.array([False, False, True, True, False])
        self.assertAllEqual(grad[moved_out], [0.0, 0.0])
        self.assertAllClose(
            grad[~moved_out], (values.numpy() - returns)[~moved_out]
        )

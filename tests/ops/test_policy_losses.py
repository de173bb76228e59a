"""Tests for keras_gae.ops.policy_losses against float64 NumPy references.

The references are written from the papers' formulas (objectives to
maximize, negated at the end), not from the implementation's loss form.
"""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops

# --------------------------------------------------------------------------
# NumPy references (float64).
# --------------------------------------------------------------------------


def _valid(shape, mask):
    if mask is None:
        return np.ones(shape, bool)
    return np.asarray(mask).astype(bool)


def np_ppo(logp, old, adv, *, low, high, dual=None, mask=None):
    """Loss, clip fraction, approx KL and d loss / d logp per step.

    Schulman et al. 2017, eq. 7: L = min(r A, clip(r, 1-low, 1+high) A);
    Ye et al. 2020: L = max(L, c A) where A < 0.
    """
    valid = _valid(np.shape(logp), mask)
    logp, old, adv = (np.where(valid, x, 0.0) for x in (logp, old, adv))
    ratio = np.exp(logp - old)
    unclipped = ratio * adv
    objective = np.minimum(unclipped, np.clip(ratio, 1 - low, 1 + high) * adv)
    if dual is not None:
        objective = np.where(
            adv < 0, np.maximum(objective, dual * adv), objective
        )
    # A clipped branch is active where the objective is not r * A.
    clipped = valid & (objective != unclipped)
    count = valid.sum()
    loss = np.sum(np.where(valid, -objective, 0.0)) / max(count, 1)
    kl_terms = (ratio - 1) - np.log(ratio)
    approx_kl = np.sum(np.where(valid, kl_terms, 0.0)) / max(count, 1)
    clip_fraction = clipped.sum() / max(count, 1)
    # d(-r A)/d logp = -r A where the unclipped branch counts, else 0.
    grad = np.where(valid & ~clipped, -ratio * adv, 0.0) / max(count, 1)
    return loss, clip_fraction, approx_kl, grad


def np_regression(errors, loss_type, delta):
    if loss_type == "squared":
        return 0.5 * errors**2, errors
    absolute = np.abs(errors)
    loss = np.where(
        absolute <= delta, 0.5 * errors**2, delta * (absolute - 0.5 * delta)
    )
    return loss, np.clip(errors, -delta, delta)


def np_value_loss(
    values,
    returns,
    *,
    old=None,
    clip_range=None,
    clip_mode="max",
    loss_type="squared",
    delta=1.0,
    mask=None,
):
    """Loss, clip fraction and d loss / d values per step."""
    valid = _valid(np.shape(values), mask)
    count = max(valid.sum(), 1)
    loss, grad = np_regression(values - returns, loss_type, delta)
    clipped = np.zeros(np.shape(values), bool)
    if clip_range is not None:
        clipped_values = old + np.clip(values - old, -clip_range, clip_range)
        clip_loss, clip_grad = np_regression(
            clipped_values - returns, loss_type, delta
        )
        moved_out = np.abs(values - old) > clip_range
        if clip_mode == "max":
            clipped = clip_loss > loss
            loss = np.maximum(loss, clip_loss)
            grad = np.where(clipped, 0.0, grad)
        else:
            clipped = moved_out
            loss = clip_loss
            grad = np.where(moved_out, 0.0, clip_grad)
    loss = np.sum(np.where(valid, loss, 0.0)) / count
    clip_fraction = np.sum(valid & clipped) / count
    grad = np.where(valid, grad, 0.0) / count
    return loss, clip_fraction, grad


def np_kl_estimate(logp, logq, estimator):
    """Schulman's k1/k2/k3 with r = q(x) / p(x), x drawn from p."""
    log_r = logq - logp
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r**2
    return (np.exp(log_r) - 1) - log_r


def _masked_mean(x, mask):
    valid = _valid(np.shape(x), mask)
    return np.sum(np.where(valid, x, 0.0)) / max(valid.sum(), 1)


def _random_ppo_inputs(rng, shape, scale=0.4):
    old = rng.normal(-1.0, 0.5, shape)
    logp = old + rng.normal(0.0, scale, shape)
    adv = rng.normal(0.0, 1.0, shape)
    return logp, old, adv


def _with_nan_padding(mask, *arrays):
    """Copies of `arrays` holding NaN at the masked steps."""
    return [np.where(mask, a, np.nan) for a in arrays]


def _ppo_with_grad(logp, old, adv, **kwargs):
    logp = tf.Variable(logp)
    with tf.GradientTape() as tape:
        out = ops.ppo_clip_loss(logp, old, adv, **kwargs)
    return out, tape.gradient(out.loss, logp)


SHAPES = (("batch_time", (3, 5)), ("flat", (7,)), ("rank3", (2, 3, 4)))


class PPOClipLossTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        *[
            (f"{shape_name}_{clip_name}_{masked}", shape, clip, masked)
            for shape_name, shape in SHAPES
            for clip_name, clip in (
                ("symmetric", {"clip_ratio": 0.2}),
                ("asymmetric", {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3}),
                ("dual", {"clip_ratio": 0.2, "dual_clip": 1.5}),
            )
            for masked in ("masked", "unmasked")
        ]
    )
    def test_matches_reference(self, shape, clip, masked):
        rng = np.random.default_rng(0)
        logp, old, adv = _random_ppo_inputs(rng, shape)
        mask = rng.random(shape) < 0.7 if masked == "masked" else None
        low = clip.get("clip_ratio_low", clip.get("clip_ratio"))
        high = clip.get("clip_ratio_high", clip.get("clip_ratio"))
        loss, fraction, kl, grad = np_ppo(
            logp,
            old,
            adv,
            low=low,
            high=high,
            dual=clip.get("dual_clip"),
            mask=mask,
        )
        out, tf_grad = _ppo_with_grad(logp, old, adv, mask=mask, **clip)
        self.assertGreater(fraction, 0.0)  # the fixture exercises the clip
        self.assertAllClose(out.loss, loss, rtol=1e-12, atol=1e-12)
        self.assertAllClose(out.clip_fraction, fraction, rtol=0, atol=0)
        self.assertAllClose(out.approx_kl, kl, rtol=1e-12, atol=1e-12)
        self.assertAllClose(tf_grad, grad, rtol=1e-12, atol=1e-12)

    def test_hand_computed_fixture(self):
        # r = [1, 1.5, 0.5, 4], A = [2, 2, -1, -1], eps = 0.2:
        #   step 0: min(2, 2) = 2                      -> -2
        #   step 1: min(3, 1.2 * 2) = 2.4  (clipped)   -> -2.4
        #   step 2: min(-0.5, 0.8 * -1) = -0.8 (clip)  -> 0.8
        #   step 3: min(-4, 1.2 * -1) = -4             -> 4
        #   with dual clip c = 3, step 3: max(-4, -3)  -> 3 (clipped)
        logp = np.log([1.0, 1.5, 0.5, 4.0])
        old = np.zeros(4)
        adv = np.array([2.0, 2.0, -1.0, -1.0])
        out = ops.ppo_clip_loss(logp, old, adv, clip_ratio=0.2)
        self.assertAllClose(out.loss, (-2 - 2.4 + 0.8 + 4) / 4)
        self.assertAllClose(out.clip_fraction, 0.5)
        dual = ops.ppo_clip_loss(logp, old, adv, clip_ratio=0.2, dual_clip=3.0)
        self.assertAllClose(dual.loss, (-2 - 2.4 + 0.8 + 3) / 4)
        self.assertAllClose(dual.clip_fraction, 0.75)
        # k3 at r: (r - 1) - log r.
        kl = [
            0.0,
            0.5 - math.log(1.5),
            -0.5 - math.log(0.5),
            3.0 - math.log(4.0),
        ]
        self.assertAllClose(out.approx_kl, np.mean(kl))

    @parameterized.named_parameters(
        ("upper_positive", 1.0, "high"),
        ("upper_negative", -1.0, "high"),
        ("lower_positive", 1.0, "low"),
        ("lower_negative", -1.0, "low"),
    )
    def test_ratio_exactly_on_a_bound_is_not_clipped(self, sign, side):
        log_ratio = 0.15 if side == "high" else -0.25
        ratio = tf.exp(tf.constant(log_ratio, tf.float64)).numpy()
        # 1 + (ratio - 1) and 1 - (1 - ratio) are exact in float64 for
        # ratio in [0.5, 2], so the ratio sits exactly on the bound.
        eps = ratio - 1.0 if side == "high" else 1.0 - ratio
        self.assertEqual(1.0 + eps if side == "high" else 1.0 - eps, ratio)
        logp = np.array([log_ratio])
        adv = np.array([sign * 2.0])
        out, grad = _ppo_with_grad(logp, np.zeros(1), adv, clip_ratio=eps)
        self.assertEqual(out.clip_fraction.numpy(), 0.0)
        self.assertAllClose(out.loss, -ratio * adv[0])
        self.assertAllClose(grad, -ratio * adv)
        self.assertNotEqual(grad.numpy()[0], 0.0)

    def test_gradient_is_exactly_zero_where_clipped(self):
        # Each step in one regime: (log ratio, advantage, clipped?).
        cases = [
            (0.5, 1.0, True),  # A > 0, r > 1 + eps
            (0.5, -1.0, False),  # A < 0, r > 1 + eps: pessimistic, unclipped
            (-0.5, -1.0, True),  # A < 0, r < 1 - eps
            (-0.5, 1.0, False),  # A > 0, r < 1 - eps
            (0.05, 1.0, False),  # inside the bounds
            (0.05, -1.0, False),
        ]
        logp = np.array([c[0] for c in cases])
        adv = np.array([c[1] for c in cases])
        out, grad = _ppo_with_grad(logp, np.zeros(6), adv, clip_ratio=0.2)
        grad = grad.numpy()
        for (_, _, clipped), g in zip(cases, grad):
            if clipped:
                self.assertEqual(g, 0.0)
            else:
                self.assertNotEqual(g, 0.0)
        self.assertAllClose(out.clip_fraction, 2 / 6)

    def test_dual_clip_active_and_inactive(self):
        # c = 3: A < 0 with r = 4 > c is dual-clipped; r = 2 < c is not;
        # A > 0 with r = 4 is clipped by the ordinary upper bound only.
        logp = np.log([4.0, 2.0, 4.0])
        adv = np.array([-1.0, -1.0, 1.0])
        kwargs = dict(clip_ratio=0.2, dual_clip=3.0)
        out, grad = _ppo_with_grad(logp, np.zeros(3), adv, **kwargs)
        self.assertAllClose(out.loss, (3.0 + 2.0 - 1.2) / 3)
        self.assertEqual(grad.numpy()[0], 0.0)
        self.assertAllClose(grad.numpy()[1], 2.0 / 3)
        self.assertEqual(grad.numpy()[2], 0.0)
        self.assertAllClose(out.clip_fraction, 2 / 3)
        plain, plain_grad = _ppo_with_grad(
            logp, np.zeros(3), adv, clip_ratio=0.2
        )
        self.assertAllClose(plain.loss, (4.0 + 2.0 - 1.2) / 3)
        self.assertAllClose(plain_grad.numpy()[0], 4.0 / 3)
        self.assertAllClose(plain.clip_fraction, 1 / 3)

    def test_dual_clip_tie_is_not_clipped(self):
        ratio = tf.exp(tf.constant(1.1, tf.float64)).numpy()
        out, grad = _ppo_with_grad(
            np.array([1.1]),
            np.zeros(1),
            np.array([-1.0]),
            clip_ratio=0.2,
            dual_clip=float(ratio),
        )
        self.assertEqual(out.clip_fraction.numpy(), 0.0)
        self.assertAllClose(grad, [ratio])

    def test_nan_in_masked_steps_does_not_leak(self):
        rng = np.random.default_rng(1)
        logp, old, adv = _random_ppo_inputs(rng, (4, 6))
        mask = rng.random((4, 6)) < 0.6
        loss, fraction, kl, grad = np_ppo(
            logp, old, adv, low=0.2, high=0.2, dual=2.0, mask=mask
        )
        logp, old, adv = _with_nan_padding(mask, logp, old, adv)
        out, tf_grad = _ppo_with_grad(
            logp, old, adv, clip_ratio=0.2, dual_clip=2.0, mask=mask
        )
        self.assertAllClose(out.loss, loss, rtol=1e-12, atol=1e-12)
        self.assertAllClose(out.clip_fraction, fraction)
        self.assertAllClose(out.approx_kl, kl, rtol=1e-12, atol=1e-12)
        self.assertTrue(np.all(np.isfinite(tf_grad.numpy())))
        self.assertAllEqual(tf_grad.numpy()[~mask], np.zeros((~mask).sum()))
        self.assertAllClose(tf_grad, grad, rtol=1e-12, atol=1e-12)

    @parameterized.named_parameters(
        ("bool", np.bool_), ("int", np.int32), ("float", np.float32)
    )
    def test_mask_dtypes(self, dtype):
        rng = np.random.default_rng(2)
        logp, old, adv = _random_ppo_inputs(rng, (3, 4))
        mask = np.array(rng.random((3, 4)) < 0.5)
        expected = np_ppo(logp, old, adv, low=0.2, high=0.2, mask=mask)[0]
        out = ops.ppo_clip_loss(logp, old, adv, mask=mask.astype(dtype))
        self.assertAllClose(out.loss, expected, rtol=1e-12, atol=1e-12)

    def test_all_masked_gives_zeros(self):
        nan = np.full((2, 3), np.nan)
        out = ops.ppo_clip_loss(nan, nan, nan, mask=np.zeros((2, 3), bool))
        for value in out:
            self.assertEqual(value.numpy(), 0.0)

    def test_approx_kl_estimates_kl_old_to_new(self):
        # Actions drawn from pi_old: the k3 mean converges to KL(old || new).
        rng = np.random.default_rng(3)
        p_old = np.array([0.1, 0.2, 0.3, 0.4])
        p_new = np.array([0.25, 0.25, 0.25, 0.25])
        actions = rng.choice(4, size=200_000, p=p_old)
        out = ops.ppo_clip_loss(
            np.log(p_new[actions]),
            np.log(p_old[actions]),
            np.zeros(actions.shape),
        )
        exact = np.sum(p_old * np.log(p_old / p_new))
        self.assertAllClose(out.approx_kl, exact, rtol=0.02)

    def test_targets_get_no_gradient(self):
        logp = tf.Variable([0.3, -0.3])
        old = tf.Variable([0.0, 0.0])
        adv = tf.Variable([1.0, -1.0])
        with tf.GradientTape() as tape:
            out = ops.ppo_clip_loss(logp, old, adv)
            total = out.loss + out.approx_kl
        grads = tape.gradient(total, [logp, old, adv])
        self.assertIsNotNone(grads[0])
        self.assertIsNone(grads[1])
        self.assertIsNone(grads[2])

    @parameterized.named_parameters(
        ("half", np.float16, tf.float32),
        ("single", np.float32, tf.float32),
        ("double", np.float64, tf.float64),
    )
    def test_output_dtype(self, np_dtype, tf_dtype):
        x = np.zeros((2, 3), np_dtype)
        out = ops.ppo_clip_loss(x, x, x)
        for value in out:
            self.assertEqual(value.dtype, tf_dtype)

    def test_mixed_dtypes_compute_in_float64(self):
        logp = np.array([0.3], np.float32)
        out = ops.ppo_clip_loss(logp, np.zeros(1), np.ones(1, np.float32))
        self.assertEqual(out.loss.dtype, tf.float64)

    def test_inside_tf_function_and_xla(self):
        rng = np.random.default_rng(4)
        logp, old, adv = _random_ppo_inputs(rng, (3, 4))
        logp, old, adv = (x.astype(np.float32) for x in (logp, old, adv))
        mask = rng.random((3, 4)) < 0.7
        expected = np_ppo(
            logp, old, adv, low=0.1, high=0.3, dual=2.0, mask=mask
        )

        def compute(logp, old, adv, mask):
            return ops.ppo_clip_loss(
                logp,
                old,
                adv,
                clip_ratio_low=0.1,
                clip_ratio_high=0.3,
                dual_clip=2.0,
                mask=mask,
            )

        for jit in (False, True):
            out = tf.function(compute, jit_compile=jit)(logp, old, adv, mask)
            self.assertAllClose(out.loss, expected[0], rtol=1e-5, atol=1e-6)
            self.assertAllClose(out.clip_fraction, expected[1])

    def test_variable_clip_ratio_follows_its_value(self):
        clip_ratio = tf.Variable(0.2, dtype=tf.float64)
        logp, adv = np.log([1.5]), np.ones(1)
        loss = tf.function(
            lambda: (
                ops.ppo_clip_loss(
                    logp, np.zeros(1), adv, clip_ratio=clip_ratio
                ).loss
            )
        )
        self.assertAllClose(loss(), -1.2)
        clip_ratio.assign(0.4)
        self.assertAllClose(loss(), -1.4)
        clip_ratio.assign(-0.1)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "clip_ratio"
        ):
            loss()

    def test_dynamic_shape_mismatch_fails_in_graph(self):
        spec = tf.TensorSpec([None], tf.float32)

        @tf.function(input_signature=[spec, spec, spec])
        def compute(logp, old, adv):
            return ops.ppo_clip_loss(logp, old, adv).loss

        self.assertAllClose(compute([0.0], [0.0], [1.0]), -1.0)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "old_log_probs"
        ):
            compute([0.0, 0.0], [0.0], [1.0, 1.0])

    @parameterized.parameters("old_log_probs", "advantages", "mask")
    def test_mismatched_shapes_name_both_arguments(self, name):
        kwargs = {
            "log_probs": np.zeros((2, 3)),
            "old_log_probs": np.zeros((2, 3)),
            "advantages": np.zeros((2, 3)),
            "mask": np.ones((2, 3)),
        }
        kwargs[name] = np.ones((3, 2))
        with self.assertRaisesRegex(ValueError, f"`{name}`.*`log_probs`"):
            ops.ppo_clip_loss(**kwargs)

    @parameterized.named_parameters(
        ("clip_ratio", {"clip_ratio": -0.1}, "clip_ratio", ValueError),
        ("low", {"clip_ratio_low": -0.1}, "clip_ratio_low", ValueError),
        ("high", {"clip_ratio_high": -1.0}, "clip_ratio_high", ValueError),
        ("dual_one", {"dual_clip": 1.0}, "dual_clip", ValueError),
        ("dual_small", {"dual_clip": 0.5}, "dual_clip", ValueError),
        ("vector", {"clip_ratio": [0.1, 0.2]}, "clip_ratio", ValueError),
        ("bool", {"clip_ratio": True}, "clip_ratio", TypeError),
        ("string", {"dual_clip": "2"}, "dual_clip", TypeError),
    )
    def test_bad_parameters(self, kwargs, name, error):
        x = np.zeros(3)
        with self.assertRaisesRegex(error, f"`{name}`.*Received: {name}="):
            ops.ppo_clip_loss(x, x, x, **kwargs)

    @parameterized.product(
        name=(
            "clip_ratio",
            "clip_ratio_high",
            "dual_clip",
            "clip_range",
            "huber_delta",
        ),
        bad=(float("nan"), float("inf")),
        in_graph=(False, True),
    )
    def test_non_finite_tensor_parameters_are_refused(
        self, name, bad, in_graph
    ):
        # As Python floats are: Inf clips nothing and makes the Huber loss
        # NaN (Inf * 0); NaN was refused only as "must be >= 0".
        def loss(parameter):
            if name in ("clip_range", "huber_delta"):
                return ops.value_loss(
                    [3.0],
                    [0.0],
                    old_values=[0.0],
                    loss_type="huber",
                    **{"clip_range": 0.5, name: parameter},
                ).loss
            return ops.ppo_clip_loss([0.5], [0.0], [-1.0], **{name: parameter})

        if in_graph:
            compute = tf.function(loss)
            with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError, f"`{name}` must be finite"
            ):
                compute(tf.constant(bad))
        else:
            with self.assertRaisesRegex(
                ValueError, f"`{name}` must be finite.*Received: {name}="
            ):
                loss(tf.Variable(bad))

    def test_lower_bound_must_stay_positive(self):
        # 1 - eps <= 0 would switch the lower clip off without a word.
        args = ([0.0, 0.1], [0.0, 0.0], [1.0, -1.0])
        with self.assertRaisesRegex(ValueError, "clip_ratio.*< 1"):
            ops.ppo_clip_loss(*args, clip_ratio=1.5)
        with self.assertRaisesRegex(ValueError, "clip_ratio_low.*< 1"):
            ops.ppo_clip_loss(*args, clip_ratio_low=1.0)
        # Only the upper bound: allowed, and the lower clip still works.
        outputs = ops.ppo_clip_loss(
            [np.log(0.5)], [0.0], [-1.0], clip_ratio=1.5, clip_ratio_low=0.2
        )
        self.assertAllClose(outputs.loss, 0.8)

    def test_zero_clip_ratio_is_allowed(self):
        out = ops.ppo_clip_loss(np.log([1.5]), [0.0], [1.0], clip_ratio=0.0)
        self.assertAllClose(out.loss, -1.0)
        self.assertAllClose(out.clip_fraction, 1.0)

    def test_non_float_inputs(self):
        with self.assertRaisesRegex(TypeError, "`log_probs`"):
            ops.ppo_clip_loss([0, 1], [0.0, 1.0], [1.0, 1.0])
        with self.assertRaisesRegex(TypeError, "`mask`"):
            ops.ppo_clip_loss([0.0], [0.0], [1.0], mask=["a"])


class PolicyGradientLossTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        *[
            (f"{name}_{masked}", shape, masked)
            for name, shape in SHAPES
            for masked in (True, False)
        ]
    )
    def test_matches_reference(self, shape, masked):
        rng = np.random.default_rng(5)
        logp, _, adv = _random_ppo_inputs(rng, shape)
        mask = rng.random(shape) < 0.6 if masked else None
        valid = _valid(shape, mask)
        expected = _masked_mean(-logp * adv, mask)
        expected_grad = np.where(valid, -adv, 0.0) / valid.sum()
        if masked:
            logp, adv = _with_nan_padding(mask, logp, adv)
        logp = tf.Variable(logp)
        with tf.GradientTape() as tape:
            loss = ops.policy_gradient_loss(logp, adv, mask=mask)
        self.assertAllClose(loss, expected, rtol=1e-12, atol=1e-12)
        self.assertAllClose(tape.gradient(loss, logp), expected_grad)

    def test_hand_computed_fixture(self):
        loss = ops.policy_gradient_loss([-1.0, -2.0], [2.0, -1.0])
        self.assertAllClose(loss, (2.0 - 2.0) / 2)

    def test_advantages_get_no_gradient(self):
        adv = tf.Variable([1.0, 2.0])
        with tf.GradientTape() as tape:
            loss = ops.policy_gradient_loss([-1.0, -1.0], adv)
        self.assertIsNone(tape.gradient(loss, adv))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "`advantages`.*`log_probs`"):
            ops.policy_gradient_loss(np.zeros(3), np.zeros(2))
        with self.assertRaisesRegex(TypeError, "`advantages`"):
            ops.policy_gradient_loss([0.0], [1])


class ValueLossTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        *[
            (f"{loss_type}_{clip_name}_{masked}", loss_type, clip, masked)
            for loss_type in ("squared", "huber")
            for clip_name, clip in (
                ("unclipped", {}),
                ("max", {"clip_range": 0.3, "clip_mode": "max"}),
                ("clamp", {"clip_range": 0.3, "clip_mode": "clamp"}),
            )
            for masked in ("masked", "unmasked")
        ]
    )
    def test_matches_reference(self, loss_type, clip, masked):
        rng = np.random.default_rng(6)
        shape = (6, 8)
        old = rng.normal(0.0, 1.0, shape)
        values = old + rng.normal(0.0, 0.5, shape)
        returns = old + rng.normal(0.0, 1.5, shape)
        mask = rng.random(shape) < 0.7 if masked == "masked" else None
        loss, fraction, grad = np_value_loss(
            values,
            returns,
            old=old,
            clip_range=clip.get("clip_range"),
            clip_mode=clip.get("clip_mode", "max"),
            loss_type=loss_type,
            delta=0.8,
            mask=mask,
        )
        if clip:
            self.assertGreater(fraction, 0.0)
        if mask is not None:
            values, returns, old = _with_nan_padding(mask, values, returns, old)
        values = tf.Variable(values)
        with tf.GradientTape() as tape:
            out = ops.value_loss(
                values,
                returns,
                old_values=old,
                loss_type=loss_type,
                huber_delta=0.8,
                mask=mask,
                **clip,
            )
        self.assertAllClose(out.loss, loss, rtol=1e-12, atol=1e-12)
        self.assertAllClose(out.clip_fraction, fraction, rtol=0, atol=0)
        tf_grad = tape.gradient(out.loss, values)
        self.assertTrue(np.all(np.isfinite(tf_grad.numpy())))
        self.assertAllClose(tf_grad, grad, rtol=1e-12, atol=1e-12)

    def test_hand_computed_fixture(self):
        # V_old = 0, c = 0.2.
        #   step 0: V = 1, R = 2: unclipped 0.5, clipped 0.5 * 1.8^2 = 1.62
        #   step 1: V = 1, R = 0.5: unclipped 0.125, clipped 0.5 * 0.3^2
        #   step 2: V = 0.1, R = 0.1: inside the clip, 0 either way
        values = tf.Variable([1.0, 1.0, 0.1], dtype=tf.float64)
        returns = np.array([2.0, 0.5, 0.1])
        old = np.zeros(3)
        with tf.GradientTape(persistent=True) as tape:
            max_out = ops.value_loss(
                values, returns, old_values=old, clip_range=0.2
            )
            clamp_out = ops.value_loss(
                values,
                returns,
                old_values=old,
                clip_range=0.2,
                clip_mode="clamp",
            )
        self.assertAllClose(max_out.loss, (1.62 + 0.125 + 0.0) / 3)
        self.assertAllClose(max_out.clip_fraction, 1 / 3)
        self.assertAllClose(
            tape.gradient(max_out.loss, values), [0.0, 0.5 / 3, 0.0]
        )
        self.assertAllClose(clamp_out.loss, (1.62 + 0.045 + 0.0) / 3)
        self.assertAllClose(clamp_out.clip_fraction, 2 / 3)
        self.assertAllEqual(tape.gradient(clamp_out.loss, values), [0, 0, 0])
        huber = ops.value_loss([3.0, 0.5], [0.0, 0.0], loss_type="huber")
        self.assertAllClose(huber.loss, (2.5 + 0.125) / 2)
        self.assertAllClose(huber.clip_fraction, 0.0)

    def test_returns_and_old_values_get_no_gradient(self):
        returns = tf.Variable([1.0, 2.0])
        old = tf.Variable([0.0, 0.0])
        with tf.GradientTape() as tape:
            out = ops.value_loss(
                [0.5, 0.5], returns, old_values=old, clip_range=1.0
            )
        self.assertEqual(tape.gradient(out.loss, [returns, old]), [None, None])

    def test_old_values_unused_without_clip_range(self):
        out = ops.value_loss([1.0], [0.0], old_values=[np.nan])
        self.assertAllClose(out.loss, 0.5)

    @parameterized.named_parameters(
        ("clip_mode", {"clip_mode": "min"}, "clip_mode"),
        ("loss_type", {"loss_type": "absolute"}, "loss_type"),
        ("clip_range", {"clip_range": -0.1, "old_values": [0.0]}, "clip_range"),
        ("delta_zero", {"huber_delta": 0.0}, "huber_delta"),
        ("no_old_values", {"clip_range": 0.2}, "old_values"),
    )
    def test_bad_options(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, f"`{name}`.*Received: {name}="):
            ops.value_loss([1.0], [0.0], **kwargs)

    def test_mismatched_shapes(self):
        with self.assertRaisesRegex(ValueError, "`returns`.*`values`"):
            ops.value_loss(np.zeros((2, 3)), np.zeros((3, 2)))
        with self.assertRaisesRegex(ValueError, "`old_values`.*`values`"):
            ops.value_loss(
                np.zeros(3), np.zeros(3), old_values=np.zeros(2), clip_range=1.0
            )


class EntropyLossTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("masked", True), ("unmasked", False))
    def test_matches_reference(self, masked):
        rng = np.random.default_rng(7)
        entropy = rng.uniform(0.0, 2.0, (3, 4))
        mask = rng.random((3, 4)) < 0.5 if masked else None
        valid = _valid((3, 4), mask)
        expected = -_masked_mean(entropy, mask)
        if masked:
            (entropy,) = _with_nan_padding(mask, entropy)
        entropy = tf.Variable(entropy)
        with tf.GradientTape() as tape:
            loss = ops.entropy_loss(entropy, mask=mask)
        self.assertAllClose(loss, expected, rtol=1e-12, atol=1e-12)
        self.assertAllClose(
            tape.gradient(loss, entropy), -valid.astype(float) / valid.sum()
        )

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "`mask`.*`entropy`"):
            ops.entropy_loss(np.zeros(3), mask=np.ones(2))
        with self.assertRaisesRegex(TypeError, "`entropy`"):
            ops.entropy_loss([1, 2])


class KLTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("k1", "k2", "k3")
    def test_estimates_match_reference(self, estimator):
        rng = np.random.default_rng(8)
        logp = rng.normal(-1.0, 0.5, (3, 5))
        logq = logp + rng.normal(0.0, 0.5, (3, 5))
        mask = rng.random((3, 5)) < 0.7
        expected = np.where(mask, np_kl_estimate(logp, logq, estimator), 0.0)
        padded_p, padded_q = _with_nan_padding(mask, logp, logq)
        estimate = ops.kl_divergence_estimate(
            padded_p, padded_q, estimator=estimator, mask=mask
        )
        self.assertAllClose(estimate, expected, rtol=1e-12, atol=1e-12)
        loss = ops.kl_penalty_loss(
            padded_p, padded_q, estimator=estimator, mask=mask
        )
        self.assertAllClose(
            loss, _masked_mean(expected, mask), rtol=1e-12, atol=1e-12
        )

    def test_default_estimators(self):
        logp, logq = np.array([-1.0]), np.array([-2.0])
        self.assertAllClose(ops.kl_divergence_estimate(logp, logq), [1.0])
        self.assertAllClose(
            ops.kl_penalty_loss(logp, logq), math.exp(-1.0) - 1.0 + 1.0
        )

    @parameterized.parameters("k1", "k3")
    def test_unbiased_estimators_converge_to_kl_p_to_q(self, estimator):
        # Actions drawn from p (the current policy): the mean estimates
        # KL(p || q), not KL(q || p).
        rng = np.random.default_rng(9)
        p = np.array([0.1, 0.2, 0.3, 0.4])
        q = np.array([0.4, 0.3, 0.2, 0.1])
        actions = rng.choice(4, size=200_000, p=p)
        loss = ops.kl_penalty_loss(
            np.log(p[actions]), np.log(q[actions]), estimator=estimator
        )
        forward = np.sum(p * np.log(p / q))
        self.assertAllClose(loss, forward, rtol=0.03)

    def test_k3_and_k2_are_non_negative(self):
        rng = np.random.default_rng(10)
        logp, logq = rng.normal(size=(2, 100))
        for estimator in ("k2", "k3"):
            estimate = ops.kl_divergence_estimate(
                logp, logq, estimator=estimator
            )
            self.assertAllGreaterEqual(estimate, 0.0)

    def test_gradients(self):
        logp = tf.Variable([-1.0, -2.0], dtype=tf.float64)
        ref = tf.Variable([-1.5, -1.0], dtype=tf.float64)
        with tf.GradientTape() as tape:
            loss = ops.kl_penalty_loss(logp, ref, estimator="k3")
        grad_p, grad_ref = tape.gradient(loss, [logp, ref])
        self.assertIsNone(grad_ref)
        # d/dlogp [exp(q - p) - 1 - (q - p)] = 1 - exp(q - p), mean over 2.
        diff = np.array([-0.5, 1.0])
        self.assertAllClose(grad_p, (1.0 - np.exp(diff)) / 2)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "`estimator`.*Received"):
            ops.kl_penalty_loss([0.0], [0.0], estimator="k4")
        with self.assertRaisesRegex(ValueError, "`estimator`"):
            ops.kl_divergence_estimate([0.0], [0.0], estimator="exact")
        with self.assertRaisesRegex(ValueError, "`ref_log_probs`.*`log_probs`"):
            ops.kl_penalty_loss(np.zeros(2), np.zeros(3))

"""The losses of keras_gae.ops on NaN or Inf inputs, and on huge log-ratios.

The rule (keras_gae/ops/policy_losses.py): a NaN or Inf input at a valid
step makes the loss NaN or Inf, never a finite number, so the training
models' guard refuses the step; one at a masked step changes neither the
loss nor its gradients; with check_numerics=True it is an error naming the
input. A huge but finite log-ratio gives PPO's loss where the clip bounds
the objective, with a zero gradient; where nothing bounds it (a negative
advantage without dual clip) the loss is the float overflow, +Inf.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops

N = 4
VALID, MASKED = 0, 1
MASK = np.array([True, False, True, True])


def _first(outputs):
    return outputs[0] if isinstance(outputs, tuple) else outputs


# name: (function of the per-step inputs in order, their names)
LOSSES = {
    "ppo": (
        lambda a, **k: ops.ppo_clip_loss(*a, **k),
        ("log_probs", "old_log_probs", "advantages"),
    ),
    "ppo_asymmetric_dual": (
        lambda a, **k: ops.ppo_clip_loss(
            *a, clip_ratio_low=0.1, clip_ratio_high=0.3, dual_clip=3.0, **k
        ),
        ("log_probs", "old_log_probs", "advantages"),
    ),
    "policy_gradient": (
        lambda a, **k: ops.policy_gradient_loss(*a, **k),
        ("log_probs", "advantages"),
    ),
    "entropy": (lambda a, **k: ops.entropy_loss(*a, **k), ("entropy",)),
    "value_squared": (
        lambda a, **k: ops.value_loss(*a, **k),
        ("values", "returns"),
    ),
    "value_huber": (
        lambda a, **k: ops.value_loss(*a, loss_type="huber", **k),
        ("values", "returns"),
    ),
    "value_max": (
        lambda a, **k: ops.value_loss(
            a[0], a[1], old_values=a[2], clip_range=0.2, **k
        ),
        ("values", "returns", "old_values"),
    ),
    "value_clamp": (
        lambda a, **k: ops.value_loss(
            a[0], a[1], old_values=a[2], clip_range=0.2, clip_mode="clamp", **k
        ),
        ("values", "returns", "old_values"),
    ),
    "value_clamp_huber": (
        lambda a, **k: ops.value_loss(
            a[0],
            a[1],
            old_values=a[2],
            clip_range=0.2,
            clip_mode="clamp",
            loss_type="huber",
            **k,
        ),
        ("values", "returns", "old_values"),
    ),
    **{
        f"kl_penalty_{estimator}": (
            lambda a, estimator=estimator, **k: ops.kl_penalty_loss(
                *a, estimator=estimator, **k
            ),
            ("log_probs", "ref_log_probs"),
        )
        for estimator in ops.KL_ESTIMATORS
    },
}


def _inputs(count, seed=0):
    """Moderate float32 inputs: log-probs near -1, both advantage signs."""
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(-1.0, 0.3, N).astype(np.float32)]
    arrays += [rng.normal(-1.0, 0.3, N).astype(np.float32)]
    arrays += [np.array([1.0, -1.0, -0.5, 2.0], np.float32)]
    return arrays[:count]


def _loss_and_gradients(fn, arrays, **kwargs):
    variables = [tf.Variable(a) for a in arrays]
    with tf.GradientTape() as tape:
        loss = _first(fn(variables, **kwargs))
    gradients = tape.gradient(loss, variables)
    return loss.numpy(), [None if g is None else g.numpy() for g in gradients]


class NonFiniteInputsTest(tf.test.TestCase, parameterized.TestCase):
    def test_never_a_finite_loss_from_a_non_finite_valid_input(self):
        # Every loss, every input, NaN and +-Inf: at a valid step the loss
        # is not finite; at a masked step loss and gradients are unchanged
        # to the bit.
        for name, (fn, names) in LOSSES.items():
            arrays = _inputs(len(names))
            for seed in range(3):
                arrays = _inputs(len(names), seed)
                base, base_gradients = _loss_and_gradients(
                    fn, arrays, mask=MASK
                )
                for index, argument in enumerate(names):
                    for bad in (np.nan, np.inf, -np.inf):
                        where = f"{name}: {argument}={bad}"
                        changed = [a.copy() for a in arrays]
                        changed[index][VALID] = bad
                        loss = _first(fn(changed, mask=MASK)).numpy()
                        self.assertFalse(
                            np.isfinite(loss), f"{where} gave {loss}"
                        )
                        changed = [a.copy() for a in arrays]
                        changed[index][MASKED] = bad
                        loss, gradients = _loss_and_gradients(
                            fn, changed, mask=MASK
                        )
                        self.assertEqual(loss, base, where)
                        for got, expected in zip(gradients, base_gradients):
                            if expected is not None:
                                self.assertAllEqual(got, expected, where)

    @parameterized.parameters(False, True)
    def test_ppo_non_finite_log_ratio_makes_the_loss_nan(self, jit):
        compute = tf.function(
            lambda logp, old, adv: ops.ppo_clip_loss(
                logp, old, adv, dual_clip=3.0
            ),
            jit_compile=jit,
        )
        for logp, old in ((np.inf, 0.0), (-np.inf, 0.0), (0.0, -np.inf)):
            for advantage in (1.0, 0.0, -1.0):
                outputs = compute(
                    np.float32([logp, -1.0]),
                    np.float32([old, -1.0]),
                    np.float32([advantage, 1.0]),
                )
                where = f"logp={logp}, old={old}, A={advantage}"
                self.assertTrue(np.isnan(outputs.loss.numpy()), where)
                self.assertFalse(np.isfinite(outputs.approx_kl.numpy()), where)

    @parameterized.product(
        log_ratio=(88.8, 100.0, 1e30),
        case=("positive", "zero", "negative_dual"),
        jit=(False, True),
    )
    def test_ppo_huge_log_ratio_where_the_clip_bounds_it(
        self, log_ratio, case, jit
    ):
        # exp(log_ratio) overflows float32; the clipped objective does not
        # depend on it: A * (1 + eps) for A > 0, 0 for A = 0, c * A for
        # A < 0 with dual clip c. The step's gradient is 0 (clipped).
        advantage = {"positive": 2.0, "zero": 0.0, "negative_dual": -2.0}[case]
        clipped = {"positive": 1.2, "zero": 0.0, "negative_dual": 3.0}[case]
        logp = tf.Variable(np.float32([log_ratio - 1.0, -1.0]))
        old = np.float32([-1.0, -1.0])
        adv = np.float32([advantage, 1.0])

        @tf.function(jit_compile=jit)
        def compute():
            with tf.GradientTape() as tape:
                outputs = ops.ppo_clip_loss(
                    logp, old, adv, clip_ratio=0.2, dual_clip=3.0
                )
            return outputs, tape.gradient(outputs.loss, logp)

        outputs, gradient = compute()
        # Step 1 has r = 1: loss -1, gradient -1/2.
        self.assertAllClose(outputs.loss, (-clipped * advantage - 1.0) / 2)
        self.assertAllEqual(gradient, [0.0, -0.5])
        self.assertAllClose(outputs.clip_fraction, 0.5 if advantage else 0.0)

    def test_ppo_unbounded_overflow_is_inf_and_check_numerics_says_so(self):
        # A < 0 without dual clip: -L = r * |A| with r = exp(100), about
        # 2.7e43, beyond float32 (the loss is +Inf) and within float64.
        logp, old, adv = [100.0, 0.0], [0.0, 0.0], [-1.0, 1.0]
        in_float64 = ops.ppo_clip_loss(
            np.float64(logp), np.float64(old), np.float64(adv)
        )
        self.assertAllClose(in_float64.loss, (np.exp(100.0) - 1.0) / 2)
        as_float32 = [np.float32(x) for x in (logp, old, adv)]
        self.assertEqual(ops.ppo_clip_loss(*as_float32).loss.numpy(), np.inf)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "ppo_clip_loss.*overflow"
        ):
            ops.ppo_clip_loss(*as_float32, check_numerics=True)
        # Dual clip bounds it: finite, and no error.
        bounded = ops.ppo_clip_loss(
            *as_float32, dual_clip=3.0, check_numerics=True
        )
        self.assertAllClose(bounded.loss, (3.0 - 1.0) / 2)

    def test_overflow_from_finite_inputs_names_the_loss(self):
        # Finite inputs whose loss exceeds float32: +Inf, or with
        # check_numerics an error naming the function.
        big = np.float32([1e20, 0.0])
        zeros = np.zeros(2, np.float32)
        self.assertEqual(ops.value_loss(big, zeros).loss.numpy(), np.inf)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "`value_loss` overflowed"
        ):
            ops.value_loss(big, zeros, check_numerics=True)
        ref = np.float32([100.0, 0.0])
        self.assertEqual(ops.kl_penalty_loss(zeros, ref).numpy(), np.inf)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "`kl_penalty_loss` overflowed"
        ):
            ops.kl_penalty_loss(zeros, ref, check_numerics=True)

    @parameterized.parameters(False, True)
    def test_check_numerics_names_the_input(self, in_function):
        for name, (fn, names) in LOSSES.items():
            arrays = _inputs(len(names))
            call = tf.function(fn) if in_function else fn
            expected = _first(fn(arrays, mask=MASK)).numpy()
            for index, argument in enumerate(names):
                changed = [a.copy() for a in arrays]
                changed[index][MASKED] = np.nan
                # Masked padding is not checked: it is never read.
                loss = call(changed, mask=MASK, check_numerics=True)
                self.assertEqual(_first(loss).numpy(), expected, name)
                for bad in (np.nan, np.inf):
                    changed[index][VALID] = bad
                    with self.assertRaisesRegex(
                        tf.errors.InvalidArgumentError,
                        f"`{argument}` holds NaN or Inf at a valid step",
                        msg=f"{name}: {argument}={bad}",
                    ):
                        call(changed, mask=MASK, check_numerics=True)

    def test_kl_divergence_estimate_check_numerics(self):
        log_probs = np.float32([-1.0, np.nan])
        ref = np.float32([-2.0, -1.0])
        estimate = ops.kl_divergence_estimate(
            log_probs, ref, mask=[1, 0], check_numerics=True
        )
        self.assertAllClose(estimate, [1.0, 0.0])
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "`log_probs` holds NaN"
        ):
            ops.kl_divergence_estimate(log_probs, ref, check_numerics=True)

    def test_check_numerics_inside_xla_warns_that_it_is_dropped(self):
        # XLA has no numerics check: the NaN would pass without a word.
        compute = tf.function(
            lambda x: ops.entropy_loss(x, check_numerics=True),
            jit_compile=True,
        )
        with self.assertWarnsRegex(
            UserWarning, "check_numerics.*entropy_loss.*XLA"
        ):
            self.assertTrue(np.isnan(compute(np.float32([np.nan]))))
        gae = tf.function(
            lambda r: (
                ops.generalized_advantage_estimation(
                    r, r, r[0], check_numerics=True
                ).advantages
            ),
            jit_compile=True,
        )
        with self.assertWarnsRegex(
            UserWarning,
            "check_numerics.*generalized_advantage_estimation.*XLA",
        ):
            gae(np.float32([[1.0], [2.0]]))

    def test_check_numerics_must_be_a_bool(self):
        with self.assertRaisesRegex(
            TypeError, "`check_numerics`.*Received: check_numerics=1"
        ):
            ops.entropy_loss([1.0], check_numerics=1)
        for estimator in (
            ops.generalized_advantage_estimation,
            ops.td_lambda_returns,
        ):
            with self.assertRaisesRegex(
                TypeError, "`check_numerics`.*Received: check_numerics='no'"
            ):
                estimator([[1.0]], [[0.0]], [0.0], check_numerics="no")


if __name__ == "__main__":
    tf.test.main()

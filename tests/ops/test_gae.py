"""Tests of keras_gae.ops.generalized_advantage_estimation."""

import hypothesis
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from hypothesis import strategies as st

from keras_gae import ops
from tests.ops import reference

IMPLEMENTATIONS = ("auto", "scan", "xla", "native")


def random_case(
    seed,
    num_steps=7,
    batch=4,
    *,
    p_end=0.25,
    with_truncation_values=True,
    with_mask=True,
    per_step=False,
):
    """Random inputs with every flag; float64 NumPy, time-major."""
    rng = np.random.default_rng(seed)
    shape = (num_steps, batch)
    case = dict(
        rewards=rng.normal(size=shape),
        values=rng.normal(size=shape),
        bootstrap_value=rng.normal(size=batch),
        terminated=rng.random(shape) < p_end,
        truncated=rng.random(shape) < p_end,
    )
    if with_truncation_values:
        case["truncation_values"] = rng.normal(size=shape)
    if with_mask:
        case["mask"] = rng.random(shape) > 0.15
    if per_step:
        case["gamma"] = rng.uniform(0.5, 1.0, size=shape)
        case["lambda_"] = rng.uniform(0.0, 1.0, size=shape)
    else:
        case["gamma"] = float(rng.uniform(0.8, 1.0))
        case["lambda_"] = float(rng.uniform(0.0, 1.0))
    return case


class GAEReferenceTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(
        implementation=IMPLEMENTATIONS,
        per_step=(False, True),
        with_mask=(False, True),
        with_truncation_values=(False, True),
    )
    def test_matches_numpy_reference(
        self, implementation, per_step, with_mask, with_truncation_values
    ):
        for seed in range(3):
            case = random_case(
                seed,
                per_step=per_step,
                with_mask=with_mask,
                with_truncation_values=with_truncation_values,
            )
            expected_adv, expected_ret = reference.gae(**case)
            out = ops.generalized_advantage_estimation(
                **case, implementation=implementation
            )
            self.assertEqual(out.advantages.dtype, tf.float64)
            self.assertAllClose(out.advantages, expected_adv, atol=1e-12)
            self.assertAllClose(out.returns, expected_ret, atol=1e-12)

    def test_float32_within_1e5_relative_of_float64(self):
        case = random_case(7, num_steps=300, batch=16, p_end=0.01)
        expected, _ = reference.gae(**case)
        single = {
            k: v.astype(np.float32)
            if isinstance(v, np.ndarray) and v.dtype == np.float64
            else v
            for k, v in case.items()
        }
        for implementation in IMPLEMENTATIONS:
            out = ops.generalized_advantage_estimation(
                **single, implementation=implementation
            )
            self.assertEqual(out.advantages.dtype, tf.float32)
            scale = np.max(np.abs(expected))
            np.testing.assert_allclose(
                out.advantages.numpy(), expected, rtol=1e-5, atol=1e-5 * scale
            )


class GAEFixtureTest(tf.test.TestCase, parameterized.TestCase):
    """Small cases worked out by hand (gamma=0.5, lambda_=0.5)."""

    @parameterized.parameters(*IMPLEMENTATIONS)
    def test_single_episode_no_ends(self, implementation):
        # r = [1, 0, 2], V = [0, 1, 0], V(s_3) = 4.
        # delta_2 = 2 + 0.5*4 - 0 = 4;    A_2 = 4
        # delta_1 = 0 + 0.5*0 - 1 = -1;   A_1 = -1 + 0.25*4 = 0
        # delta_0 = 1 + 0.5*1 - 0 = 1.5;  A_0 = 1.5 + 0.25*0 = 1.5
        out = ops.generalized_advantage_estimation(
            [[1.0], [0.0], [2.0]],
            [[0.0], [1.0], [0.0]],
            [4.0],
            gamma=0.5,
            lambda_=0.5,
            implementation=implementation,
        )
        self.assertAllClose(out.advantages, [[1.5], [0.0], [4.0]])
        self.assertAllClose(out.returns, [[1.5], [1.0], [4.0]])

    @parameterized.parameters(*IMPLEMENTATIONS)
    def test_termination_and_truncation(self, implementation):
        # Column 0: terminated at t=1 (no bootstrap from V=10 at t=2).
        #   A_2 = 1 + 0.5*2 - 10 = -8
        #   A_1 = 1 + 0 - 0 = 1 (trace cut)
        #   A_0 = (1 + 0.5*0 - 0) + 0.25*1 = 1.25
        # Column 1: truncated at t=1 with truncation value 6 (next row 10 is
        #   a new episode).
        #   A_2 = 1 + 0.5*2 - 10 = -8
        #   A_1 = 1 + 0.5*6 - 0 = 4 (trace cut)
        #   A_0 = 1 + 0 + 0.25*4 = 2
        out = ops.generalized_advantage_estimation(
            [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]],
            [[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]],
            [2.0, 2.0],
            gamma=0.5,
            lambda_=0.5,
            terminated=[[False, False], [True, False], [False, False]],
            truncated=[[False, False], [False, True], [False, False]],
            truncation_values=[[0.0, 0.0], [0.0, 6.0], [0.0, 0.0]],
            implementation=implementation,
        )
        self.assertAllClose(
            out.advantages, [[1.25, 2.0], [1.0, 4.0], [-8.0, -8.0]]
        )

    @parameterized.parameters(*IMPLEMENTATIONS)
    def test_masked_row_is_zero_and_cuts_trace(self, implementation):
        # tf-agents layout: row 1 is the LAST -> FIRST boundary (masked).
        # A_2 = 1 + 0.5*2 - 0 = 2; A_1 = 0 (masked);
        # A_0 = 1 + 0.5*3 - 0 + 0.25*0 = 2.5 (bootstraps from V=3 of row 1,
        #   the final observation of the truncated episode).
        out = ops.generalized_advantage_estimation(
            [[1.0], [99.0], [1.0]],
            [[0.0], [3.0], [0.0]],
            [2.0],
            gamma=0.5,
            lambda_=0.5,
            truncated=[[True], [False], [False]],
            mask=[[1.0], [0.0], [1.0]],
            implementation=implementation,
        )
        self.assertAllClose(out.advantages, [[2.5], [0.0], [2.0]])
        self.assertAllClose(out.returns, [[2.5], [3.0], [2.0]])


class GAEInvariantTest(tf.test.TestCase, parameterized.TestCase):
    def test_episodes_back_to_back_equal_episodes_alone(self):
        rng = np.random.default_rng(3)
        lengths = [4, 1, 6, 3]
        ends = ["terminated", "truncated", "terminated", "truncated"]
        rewards = rng.normal(size=sum(lengths))
        values = rng.normal(size=sum(lengths))
        truncation_values = rng.normal(size=sum(lengths))
        terminated = np.zeros(sum(lengths), bool)
        truncated = np.zeros(sum(lengths), bool)
        bounds = np.cumsum([0] + lengths)
        for i, end in enumerate(ends):
            (terminated if end == "terminated" else truncated)[
                bounds[i + 1] - 1
            ] = True
        together = ops.generalized_advantage_estimation(
            rewards[:, None],
            values[:, None],
            [0.0],
            gamma=0.9,
            lambda_=0.8,
            terminated=terminated[:, None],
            truncated=truncated[:, None],
            truncation_values=truncation_values[:, None],
        ).advantages.numpy()[:, 0]
        for i, end in enumerate(ends):
            sl = slice(bounds[i], bounds[i + 1])
            last = bounds[i + 1] - 1
            bootstrap = 0.0 if end == "terminated" else truncation_values[last]
            alone = ops.generalized_advantage_estimation(
                rewards[sl, None],
                values[sl, None],
                [bootstrap],
                gamma=0.9,
                lambda_=0.8,
            ).advantages.numpy()[:, 0]
            self.assertAllClose(together[sl], alone, atol=1e-12)

    def test_lambda_one_is_monte_carlo_minus_values(self):
        case = random_case(11, with_mask=True)
        case["lambda_"] = 1.0
        out = ops.generalized_advantage_estimation(**case)
        mc = ops.discounted_returns(
            case["rewards"],
            case["bootstrap_value"],
            gamma=case["gamma"],
            terminated=case["terminated"],
            truncated=case["truncated"],
            truncation_values=case["truncation_values"],
            values=case["values"],
            mask=case["mask"],
        )
        self.assertAllClose(out.advantages, mc - case["values"], atol=1e-12)
        self.assertAllClose(
            mc,
            reference.monte_carlo(
                **{
                    k: case[k]
                    for k in (
                        "rewards",
                        "bootstrap_value",
                        "gamma",
                        "terminated",
                        "truncated",
                        "truncation_values",
                        "values",
                        "mask",
                    )
                }
            ),
            atol=1e-12,
        )

    def test_lambda_zero_is_td_errors(self):
        case = random_case(12, per_step=True)
        case["lambda_"] = 0.0
        out = ops.generalized_advantage_estimation(**case)
        del case["lambda_"]
        deltas = ops.temporal_difference_errors(**case)
        self.assertAllClose(out.advantages, deltas, atol=1e-12)
        self.assertAllClose(
            out.returns,
            ops.n_step_returns(**case, n=1),
            atol=1e-12,
        )

    @parameterized.parameters(*IMPLEMENTATIONS)
    def test_time_major_equals_batch_major(self, implementation):
        case = random_case(13, per_step=True)
        time_major = ops.generalized_advantage_estimation(
            **case, implementation=implementation
        )
        batch_major_case = {
            k: np.transpose(v) if isinstance(v, np.ndarray) else v
            for k, v in case.items()
        }
        batch_major = ops.generalized_advantage_estimation(
            **batch_major_case,
            time_major=False,
            implementation=implementation,
        )
        self.assertAllClose(
            tf.transpose(batch_major.advantages), time_major.advantages
        )
        self.assertAllClose(
            tf.transpose(batch_major.returns), time_major.returns
        )

    def test_truncation_equals_reward_augmentation(self):
        """Truncated == terminated with gamma * V(final obs) added to r_t."""
        case = random_case(14, with_mask=False, p_end=0.3)
        truncated = case.pop("truncated")
        terminated = case.pop("terminated") & ~truncated
        augmented = case["rewards"] + (
            truncated * case["gamma"] * case["truncation_values"]
        )
        out = ops.generalized_advantage_estimation(
            **case, terminated=terminated, truncated=truncated
        )
        case["rewards"] = augmented
        case.pop("truncation_values")
        expected = ops.generalized_advantage_estimation(
            **case, terminated=terminated | truncated
        )
        self.assertAllClose(out.advantages, expected.advantages, atol=1e-12)

    def test_returns_equal_td_lambda_returns_and_forward_view(self):
        case = random_case(15, per_step=True)
        out = ops.generalized_advantage_estimation(**case)
        self.assertAllClose(
            out.returns, ops.td_lambda_returns(**case), atol=1e-12
        )
        rng = np.random.default_rng(16)
        rewards, values = rng.normal(size=(2, 6, 3))
        bootstrap, terminated = rng.normal(size=3), rng.random((6, 3)) < 0.2
        forward = reference.lambda_returns_forward(
            rewards,
            values,
            bootstrap,
            gamma=0.9,
            lambda_=0.7,
            terminated=terminated,
        )
        out = ops.generalized_advantage_estimation(
            rewards,
            values,
            bootstrap,
            gamma=0.9,
            lambda_=0.7,
            terminated=terminated,
        )
        self.assertAllClose(out.returns, forward, atol=1e-10)

    def test_implementations_agree(self):
        case = random_case(17, num_steps=64, batch=33, per_step=True)
        scan = ops.generalized_advantage_estimation(
            **case, implementation="scan"
        )
        xla = ops.generalized_advantage_estimation(**case, implementation="xla")
        native = ops.generalized_advantage_estimation(
            **case, implementation="native"
        )
        auto = ops.generalized_advantage_estimation(**case)
        self.assertAllClose(scan.advantages, xla.advantages, atol=1e-12)
        self.assertAllClose(scan.advantages, native.advantages, atol=1e-12)
        self.assertAllClose(scan.advantages, auto.advantages, atol=1e-12)


class GAEExecutionModeTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(
        implementation=IMPLEMENTATIONS, jit_compile=(False, True)
    )
    def test_tf_function_with_dynamic_shapes(self, implementation, jit_compile):
        spec = tf.TensorSpec([None, None], tf.float32)

        @tf.function(
            input_signature=[
                spec,
                spec,
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([None, None], tf.bool),
            ],
            jit_compile=jit_compile,
        )
        def compute(rewards, values, bootstrap_value, terminated):
            return ops.generalized_advantage_estimation(
                rewards,
                values,
                bootstrap_value,
                terminated=terminated,
                gamma=0.9,
                lambda_=0.8,
                implementation=implementation,
            )

        if implementation == "native" and jit_compile:
            # A custom op cannot be compiled by XLA: a clear error instead.
            with self.assertRaisesRegex(ValueError, "`implementation='nat"):
                compute.get_concrete_function()
            return
        for num_steps, batch in [(5, 3), (9, 2)]:
            case = random_case(num_steps, num_steps, batch, with_mask=False)
            expected, _ = reference.gae(
                case["rewards"],
                case["values"],
                case["bootstrap_value"],
                gamma=0.9,
                lambda_=0.8,
                terminated=case["terminated"],
            )
            out = compute(
                case["rewards"].astype(np.float32),
                case["values"].astype(np.float32),
                case["bootstrap_value"].astype(np.float32),
                case["terminated"],
            )
            self.assertAllClose(out.advantages, expected, atol=1e-5)

    @parameterized.parameters(tf.float16, tf.bfloat16)
    def test_half_precision_accumulates_in_float32(self, dtype):
        case = random_case(21, num_steps=50, batch=3, with_mask=False)
        expected, _ = reference.gae(**case)
        half = {
            k: tf.cast(v, dtype)
            if isinstance(v, np.ndarray) and v.dtype == np.float64
            else v
            for k, v in case.items()
        }
        out = ops.generalized_advantage_estimation(**half)
        self.assertEqual(out.advantages.dtype, tf.float32)
        # Inputs rounded to half precision, then exact float32 accumulation:
        # compare against the reference run on the rounded inputs.
        rounded = {
            k: tf.cast(v, tf.float64).numpy() if isinstance(v, tf.Tensor) else v
            for k, v in half.items()
        }
        expected_rounded, _ = reference.gae(**rounded)
        self.assertAllClose(out.advantages, expected_rounded, atol=1e-4)
        self.assertLess(np.max(np.abs(out.advantages - expected)), 0.5)

    @parameterized.parameters(*IMPLEMENTATIONS)
    def test_gradients_are_stopped(self, implementation):
        values = tf.Variable([[1.0], [2.0]])
        with tf.GradientTape() as tape:
            out = ops.generalized_advantage_estimation(
                [[1.0], [1.0]], values, [0.5], implementation=implementation
            )
            total = tf.reduce_sum(out.advantages + out.returns)
        self.assertIsNone(tape.gradient(total, values))


class GAEErrorTest(tf.test.TestCase, parameterized.TestCase):
    def call(self, **overrides):
        args = dict(
            rewards=np.zeros((3, 2), np.float32),
            values=np.zeros((3, 2), np.float32),
            bootstrap_value=np.zeros(2, np.float32),
        )
        args.update(overrides)
        return ops.generalized_advantage_estimation(**args)

    @parameterized.named_parameters(
        ("rank", dict(rewards=np.zeros(3, np.float32)), ValueError, "rewards"),
        (
            "values_shape",
            dict(values=np.zeros((3, 3), np.float32)),
            ValueError,
            "values",
        ),
        (
            "bootstrap_shape",
            dict(bootstrap_value=np.zeros(3, np.float32)),
            ValueError,
            "bootstrap_value",
        ),
        (
            "bootstrap_rank",
            dict(bootstrap_value=np.zeros((1, 2), np.float32)),
            ValueError,
            "bootstrap_value",
        ),
        (
            "int_rewards",
            dict(rewards=np.zeros((3, 2), np.int32)),
            TypeError,
            "rewards",
        ),
        (
            "int_values",
            dict(values=np.zeros((3, 2), np.int64)),
            TypeError,
            "values",
        ),
        (
            "string_flags",
            dict(terminated=np.full((3, 2), "x")),
            TypeError,
            "terminated",
        ),
        (
            "flag_shape",
            dict(truncated=np.zeros((2, 2), bool)),
            ValueError,
            "truncated",
        ),
        ("gamma_high", dict(gamma=1.5), ValueError, "gamma"),
        ("lambda_negative", dict(lambda_=-0.1), ValueError, "lambda_"),
        (
            "gamma_tensor_range",
            dict(gamma=tf.constant([[0.5], [2.0], [0.5]])),
            ValueError,
            "gamma",
        ),
        (
            "gamma_rank_1",
            dict(gamma=np.full(2, 0.9, np.float32)),
            ValueError,
            "gamma",
        ),
        ("gamma_bool", dict(gamma=True), TypeError, "gamma"),
        (
            "empty",
            dict(
                rewards=np.zeros((0, 2), np.float32),
                values=np.zeros((0, 2), np.float32),
            ),
            ValueError,
            "rewards",
        ),
        (
            "implementation",
            dict(implementation="fast"),
            ValueError,
            "implementation",
        ),
        (
            "bootstrap_none",
            dict(bootstrap_value=None),
            TypeError,
            "bootstrap_value",
        ),
    )
    def test_bad_input(self, overrides, error, name):
        with self.assertRaises(error) as context:
            self.call(**overrides)
        message = str(context.exception)
        self.assertIn(f"`{name}`", message)
        self.assertIn("Received:", message)

    def test_mismatched_shape_names_both_arguments(self):
        with self.assertRaisesRegex(ValueError, r"values.*rewards"):
            self.call(values=np.zeros((4, 2), np.float32))

    def test_dynamic_empty_time_axis_fails_in_graph(self):
        @tf.function(
            input_signature=[tf.TensorSpec([None, None], tf.float32)] * 2
            + [tf.TensorSpec([None], tf.float32)]
        )
        def compute(rewards, values, bootstrap_value):
            return ops.generalized_advantage_estimation(
                rewards, values, bootstrap_value
            ).advantages

        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "T >= 1"):
            compute(tf.zeros((0, 2)), tf.zeros((0, 2)), tf.zeros(2))

    def test_dynamic_gamma_out_of_range_fails_in_graph(self):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def compute(gamma):
            return ops.generalized_advantage_estimation(
                tf.zeros((2, 2)), tf.zeros((2, 2)), tf.zeros(2), gamma=gamma
            ).advantages

        self.assertAllClose(compute(tf.fill([2, 2], 0.5)), tf.zeros((2, 2)))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "gamma"):
            compute(tf.fill([2, 2], 1.5))

    @parameterized.parameters(
        "rewards", "values", "bootstrap_value", "truncation_values"
    )
    def test_check_numerics_names_input(self, name):
        args = dict(
            rewards=np.zeros((3, 2), np.float32),
            values=np.zeros((3, 2), np.float32),
            bootstrap_value=np.zeros(2, np.float32),
            truncated=np.eye(3, 2, dtype=bool),
            truncation_values=np.zeros((3, 2), np.float32),
        )
        args[name] = args[name].copy()
        args[name].flat[0] = np.nan
        # Without the check the NaN propagates silently.
        out = ops.generalized_advantage_estimation(**args)
        self.assertTrue(np.isnan(out.advantages.numpy()).any())
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, name):
            ops.generalized_advantage_estimation(**args, check_numerics=True)


class GAEPropertyTest(tf.test.TestCase):
    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(
        num_steps=st.integers(1, 9),
        batch=st.integers(1, 5),
        seed=st.integers(0, 2**31 - 1),
        time_major=st.booleans(),
        flags=st.sets(
            st.sampled_from(
                ["terminated", "truncated", "truncation_values", "mask"]
            )
        ),
        per_step=st.booleans(),
    )
    def test_any_shape_and_flags_match_reference(
        self, num_steps, batch, seed, time_major, flags, per_step
    ):
        case = random_case(seed, num_steps, batch, per_step=per_step)
        for key in ["terminated", "truncated", "truncation_values", "mask"]:
            if key not in flags:
                case.pop(key, None)
        expected_adv, expected_ret = reference.gae(**case)
        call_case = dict(case)
        if not time_major:
            call_case = {
                k: np.transpose(v)
                if isinstance(v, np.ndarray) and v.ndim == 2
                else v
                for k, v in case.items()
            }
        out = ops.generalized_advantage_estimation(
            **call_case, time_major=time_major
        )
        advantages, returns = out.advantages.numpy(), out.returns.numpy()
        if not time_major:
            advantages, returns = advantages.T, returns.T
        np.testing.assert_allclose(advantages, expected_adv, atol=1e-10)
        np.testing.assert_allclose(returns, expected_ret, atol=1e-10)
        if "mask" in case:
            self.assertTrue(np.all(advantages[~case["mask"]] == 0.0))

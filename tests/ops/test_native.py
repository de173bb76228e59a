"""Tests of keras_gae.ops.native: the compiled GAE op and its guards.

The op is built (or loaded from the cache) once per process, by the first
test that needs it.
"""

import itertools
import pathlib
import tempfile
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.ops import _gae_implementations as gae_implementations
from keras_gae.ops import native
from keras_gae.ops.native import loader
from tests.ops import reference

FLAG_NAMES = ("terminated", "truncated", "truncation_values", "mask")
# Every subset of the optional inputs.
FLAG_SUBSETS = [
    frozenset(name for name, on in zip(FLAG_NAMES, chosen) if on)
    for chosen in itertools.product((False, True), repeat=len(FLAG_NAMES))
]
SHAPES = ((1, 1), (1, 6), (4, 1), (9, 13), (17, 5))
# How gamma and lambda_ are given: their shapes as a function of (T, B).
COEFFICIENT_FORMS = {
    "scalar": lambda t, b: ((), ()),
    "per_step": lambda t, b: ((t, b), (t, b)),
    "per_time": lambda t, b: ((t, 1), (t, 1)),
    "per_column": lambda t, b: ((1, b), (1, b)),
    "mixed": lambda t, b: ((t, 1), (1, b)),
    "mixed_scalar": lambda t, b: ((1, b), ()),
}


def gae_reference(
    rewards,
    values,
    bootstrap_value,
    gamma,
    lambda_,
    terminated=None,
    truncated=None,
    truncation_values=None,
    mask=None,
):
    """Float64 GAE from the shared step-by-step loop (tests/ops/reference)."""
    return reference.gae(
        rewards,
        values,
        bootstrap_value,
        gamma=gamma,
        lambda_=lambda_,
        terminated=terminated,
        truncated=truncated,
        truncation_values=truncation_values,
        mask=mask,
    )


def random_case(seed, num_steps, batch, flags, coefficient_form):
    """Float64 NumPy inputs; flags set often enough to matter."""
    rng = np.random.default_rng(seed)
    shape = (num_steps, batch)
    gamma_shape, lambda_shape = COEFFICIENT_FORMS[coefficient_form](
        num_steps, batch
    )
    case = dict(
        rewards=rng.normal(size=shape),
        values=rng.normal(size=shape),
        bootstrap_value=rng.normal(size=batch),
        gamma=rng.uniform(0.5, 1.0, size=gamma_shape),
        lambda_=rng.uniform(0.0, 1.0, size=lambda_shape),
    )
    if "terminated" in flags:
        case["terminated"] = rng.random(shape) < 0.2
    if "truncated" in flags:
        case["truncated"] = rng.random(shape) < 0.2
    if "truncation_values" in flags:
        case["truncation_values"] = rng.normal(size=shape)
    if "mask" in flags:
        case["mask"] = rng.random(shape) > 0.2
    return case


def to_tensors(case, dtype):
    """`case` as op arguments: floats in `dtype`, flags bool, absent None."""
    converted = {}
    for name in ("rewards", "values", "bootstrap_value", "gamma", "lambda_"):
        converted[name] = tf.constant(case[name], dtype)
    for name in ("terminated", "truncated", "mask"):
        converted[name] = tf.constant(case[name]) if name in case else None
    converted["truncation_values"] = (
        tf.constant(case["truncation_values"], dtype)
        if "truncation_values" in case
        else None
    )
    return converted


def run_native(case, dtype):
    return native.gae_time_major(**to_tensors(case, dtype))


def tolerance(dtype, expected):
    """1e-5 relative to the largest |output| for float32, tight for 64."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    return (1e-5 if dtype == tf.float32 else 1e-12) * scale


class NativeGAETest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(
            native.available(), "the native GAE op failed to build or load"
        )

    @parameterized.product(
        dtype=(tf.float32, tf.float64),
        coefficient_form=tuple(COEFFICIENT_FORMS),
    )
    def test_matches_numpy_reference_for_every_flag_subset(
        self, dtype, coefficient_form
    ):
        for seed, (flags, (num_steps, batch)) in enumerate(
            itertools.product(FLAG_SUBSETS, SHAPES)
        ):
            with self.subTest(flags=sorted(flags), shape=(num_steps, batch)):
                case = random_case(
                    seed, num_steps, batch, flags, coefficient_form
                )
                expected = gae_reference(**case)
                advantages, returns = run_native(case, dtype)
                self.assertEqual(advantages.dtype, dtype)
                self.assertEqual(returns.dtype, dtype)
                self.assertEqual(advantages.shape, (num_steps, batch))
                atol = tolerance(dtype, expected)
                self.assertAllClose(advantages, expected[0], atol=atol, rtol=0)
                self.assertAllClose(returns, expected[1], atol=atol, rtol=0)

    @parameterized.parameters(tf.float32, tf.float64)
    def test_matches_tensorflow_scan_path(self, dtype):
        # Same operation order as the tf.scan implementation it replaces.
        for seed, flags in enumerate(FLAG_SUBSETS):
            case = random_case(seed, 30, 70, flags, "per_step")
            converted = to_tensors(case, dtype)
            native_outputs = native.gae_time_major(**converted)
            scan_outputs = gae_implementations.scan(**converted)
            scale = float(np.max(np.abs(scan_outputs[1])))
            atol = (1e-6 if dtype == tf.float32 else 1e-14) * scale
            for got, want in zip(native_outputs, scan_outputs):
                self.assertAllClose(got, want, atol=atol, rtol=0)

    @parameterized.parameters((20, 4099), (3, 20001), (2, 40003))
    def test_wide_batches_split_over_threads_and_blocks(self, num_steps, batch):
        # Large enough for the kernel to split B between threads (from 2**16
        # elements) and for a thread to walk several blocks of 8192 columns,
        # with odd remainders.
        case = random_case(7, num_steps, batch, set(FLAG_NAMES), "per_step")
        expected = gae_reference(**case)
        advantages, returns = run_native(case, tf.float64)
        self.assertAllClose(advantages, expected[0], atol=1e-12, rtol=0)
        self.assertAllClose(returns, expected[1], atol=1e-12, rtol=0)

    def test_hand_computed_episode(self):
        # One column: steps 0-1 form an episode that terminates after step 1,
        # step 2 is truncated with V(final obs) = 10, step 3 is padding.
        # gamma = 0.5, lambda_ = 0.5, so gamma * lambda_ = 0.25.
        #   A_3 = 0 (masked)
        #   A_2 = 1 + 0.5 * 10 - 2 = 4          (trace cut by truncation)
        #   A_1 = 3 + 0 - 4 = -1                (terminated: no bootstrap)
        #   A_0 = (2 + 0.5 * 4 - 1) + 0.25 * -1 = 2.75
        advantages, returns = native.gae_time_major(
            rewards=tf.constant([[2.0], [3.0], [1.0], [5.0]]),
            values=tf.constant([[1.0], [4.0], [2.0], [7.0]]),
            bootstrap_value=tf.constant([100.0]),
            terminated=tf.constant([[False], [True], [False], [False]]),
            truncated=tf.constant([[False], [False], [True], [False]]),
            truncation_values=tf.constant([[0.0], [0.0], [10.0], [0.0]]),
            mask=tf.constant([[True], [True], [True], [False]]),
            gamma=tf.constant(0.5),
            lambda_=tf.constant(0.5),
        )
        self.assertAllClose(advantages, [[2.75], [-1.0], [4.0], [0.0]])
        self.assertAllClose(returns, [[3.75], [3.0], [6.0], [7.0]])

    def test_truncation_values_read_only_where_truncated(self):
        case = random_case(3, 6, 4, {"truncated", "terminated"}, "scalar")
        truncation_values = np.full((6, 4), np.nan)
        truncation_values[case["truncated"]] = 1.5
        case["truncation_values"] = truncation_values
        expected = gae_reference(**case)
        advantages, _ = run_native(case, tf.float32)
        self.assertAllClose(advantages, expected[0], atol=1e-5, rtol=0)

    def test_terminated_step_ignores_non_finite_next_value(self):
        advantages, _ = native.gae_time_major(
            rewards=tf.constant([[1.0, 1.0]]),
            values=tf.constant([[0.5, 0.5]]),
            bootstrap_value=tf.constant([np.inf, np.nan]),
            terminated=tf.constant([[True, True]]),
            truncated=None,
            truncation_values=None,
            mask=None,
            gamma=tf.constant(0.9),
            lambda_=tf.constant(0.9),
        )
        self.assertAllEqual(advantages, [[0.5, 0.5]])

    def test_tf_function_with_dynamic_shapes(self):
        spec = tf.TensorSpec([None, None], tf.float32)
        flag_spec = tf.TensorSpec([None, None], tf.bool)

        @tf.function(
            input_signature=(
                spec,
                spec,
                tf.TensorSpec([None], tf.float32),
                flag_spec,
                flag_spec,
                spec,
                flag_spec,
                spec,
            )
        )
        def compute(
            rewards,
            values,
            bootstrap_value,
            terminated,
            truncated,
            truncation_values,
            mask,
            gamma,
        ):
            advantages, returns = native.gae_time_major(
                rewards,
                values,
                bootstrap_value,
                terminated,
                truncated,
                truncation_values,
                mask,
                gamma,
                tf.constant(0.9),
            )
            self.assertEqual(advantages.shape.as_list(), [None, None])
            self.assertFalse(native.in_xla_context())
            return advantages, returns

        for num_steps, batch in ((5, 3), (8, 11), (1, 1)):
            case = random_case(
                num_steps, num_steps, batch, set(FLAG_NAMES), "per_step"
            )
            case["lambda_"] = 0.9
            expected = gae_reference(**case)
            advantages, returns = compute(
                *(
                    tf.constant(case[name], dtype)
                    for name, dtype in (
                        ("rewards", tf.float32),
                        ("values", tf.float32),
                        ("bootstrap_value", tf.float32),
                        ("terminated", tf.bool),
                        ("truncated", tf.bool),
                        ("truncation_values", tf.float32),
                        ("mask", tf.bool),
                        ("gamma", tf.float32),
                    )
                )
            )
            self.assertAllClose(advantages, expected[0], atol=1e-5, rtol=0)
            self.assertAllClose(returns, expected[1], atol=1e-5, rtol=0)
        self.assertEqual(compute.experimental_get_tracing_count(), 1)

    def test_inputs_computed_in_the_graph(self):
        # Intermediate tensors nobody else holds: the runtime could hand
        # their buffers to the outputs, which must not change the result.
        case = random_case(11, 12, 40, set(FLAG_NAMES), "scalar")
        expected = gae_reference(**case)

        @tf.function
        def compute(half_rewards, half_values, two):
            return native.gae_time_major(
                half_rewards * two,
                half_values * two,
                tf.constant(case["bootstrap_value"]),
                tf.constant(case["terminated"]),
                tf.constant(case["truncated"]),
                tf.constant(case["truncation_values"]),
                tf.constant(case["mask"]),
                tf.constant(case["gamma"], tf.float64),
                tf.constant(case["lambda_"], tf.float64),
            )

        advantages, returns = compute(
            tf.constant(case["rewards"] / 2),
            tf.constant(case["values"] / 2),
            tf.constant(2.0, tf.float64),
        )
        self.assertAllClose(advantages, expected[0], atol=1e-12, rtol=0)
        self.assertAllClose(returns, expected[1], atol=1e-12, rtol=0)

    def test_static_shape_merges_known_dimensions(self):
        @tf.function(
            input_signature=(
                tf.TensorSpec([5, None], tf.float64),
                tf.TensorSpec([None, None], tf.float64),
                tf.TensorSpec([7], tf.float64),
            )
        )
        def compute(rewards, values, bootstrap_value):
            advantages, returns = native.gae_time_major(
                rewards,
                values,
                bootstrap_value,
                None,
                None,
                None,
                None,
                tf.constant(0.99, tf.float64),
                tf.constant(0.95, tf.float64),
            )
            self.assertEqual(advantages.shape.as_list(), [5, 7])
            self.assertEqual(returns.shape.as_list(), [5, 7])
            return advantages

        case = random_case(0, 5, 7, set(), "scalar")
        case.update(gamma=0.99, lambda_=0.95)
        advantages = compute(
            case["rewards"], case["values"], case["bootstrap_value"]
        )
        self.assertAllClose(advantages, gae_reference(**case)[0])

    def test_no_gradient_flows(self):
        values = tf.Variable(tf.ones([3, 2]))
        with tf.GradientTape() as tape:
            advantages, returns = native.gae_time_major(
                tf.ones([3, 2]),
                values,
                tf.ones([2]),
                None,
                None,
                None,
                None,
                tf.constant(0.9),
                tf.constant(0.9),
            )
            loss = tf.reduce_sum(advantages) + tf.reduce_sum(returns)
        self.assertIsNone(tape.gradient(loss, values))

    @parameterized.named_parameters(
        ("values", "values", tf.zeros([3, 2])),
        ("bootstrap_value", "bootstrap_value", tf.zeros([3])),
        ("terminated", "terminated", tf.zeros([3, 2], tf.bool)),
        ("truncated", "truncated", tf.zeros([4, 3], tf.bool)),
        ("truncation_values", "truncation_values", tf.zeros([4, 1])),
        ("mask", "mask", tf.zeros([2, 2], tf.bool)),
        ("gamma_rank1", "gamma", tf.fill([2], 0.9)),
        ("gamma_shape", "gamma", tf.fill([3, 2], 0.9)),
        ("lambda_", "lambda_", tf.fill([1, 3], 0.9)),
    )
    def test_mismatched_shape_names_argument(self, name, bad):
        arguments = dict(
            rewards=tf.zeros([4, 2]),
            values=tf.zeros([4, 2]),
            bootstrap_value=tf.zeros([2]),
            terminated=None,
            truncated=tf.zeros([4, 2], tf.bool),
            truncation_values=None,
            mask=None,
            gamma=tf.constant(0.9),
            lambda_=tf.constant(0.9),
        )
        arguments[name] = bad
        with self.assertRaisesRegex(
            (tf.errors.InvalidArgumentError, ValueError), f"`{name}`"
        ):
            native.gae_time_major(**arguments)

    def test_unavailable_library_raises_runtime_error(self):
        with mock.patch.object(loader, "get_library", return_value=None):
            with self.assertRaisesRegex(RuntimeError, "available"):
                native.gae_time_major(
                    tf.zeros([2, 2]),
                    tf.zeros([2, 2]),
                    tf.zeros([2]),
                    None,
                    None,
                    None,
                    None,
                    tf.constant(0.9),
                    tf.constant(0.9),
                )


class InXlaContextTest(tf.test.TestCase):
    def test_false_when_eager(self):
        self.assertFalse(native.in_xla_context())

    def test_false_in_plain_tf_function(self):
        seen = []

        @tf.function
        def plain():
            seen.append(native.in_xla_context())
            return tf.constant(0)

        plain()
        self.assertEqual(seen, [False])

    def test_true_in_jit_compiled_function(self):
        seen = []

        @tf.function(jit_compile=True)
        def compiled(x):
            seen.append(native.in_xla_context())
            return x + 1

        compiled(tf.constant(1.0))
        self.assertEqual(seen, [True])

    def test_true_in_graphs_nested_inside_jit(self):
        seen = {}

        @tf.function
        def inner(x):
            seen["inner function"] = native.in_xla_context()
            return x * 2

        def body(i, x):
            seen["while body"] = native.in_xla_context()
            return i + 1, x + 1

        @tf.function(jit_compile=True)
        def compiled(x):
            x = inner(x)
            return tf.while_loop(lambda i, x: i < 3, body, (0, x))[1]

        compiled(tf.constant(1.0))
        self.assertEqual(seen, {"inner function": True, "while body": True})

    def test_false_again_after_jit_tracing(self):
        seen = []

        @tf.function(jit_compile=True)
        def compiled(x):
            return x + 1

        @tf.function
        def outer(x):
            y = compiled(x)
            seen.append(native.in_xla_context())
            return y

        outer(tf.constant(1.0))
        self.assertEqual(seen, [False])

    def test_keras_jit_compiled_train_step_is_xla(self):
        seen = []

        class Probe(keras.Model):
            def train_step(self, data):
                seen.append(native.in_xla_context())
                return {"loss": tf.reduce_sum(data)}

        model = Probe()
        model.compile(jit_compile=True)
        model.fit(tf.ones([2, 1]), epochs=1, verbose=0)
        self.assertIn(True, seen)
        self.assertNotIn(False, seen)


class LoaderTest(tf.test.TestCase):
    def test_missing_compiler_warns_and_returns_none(self):
        with tempfile.TemporaryDirectory() as directory:
            with self.assertLogs("absl", level="WARNING") as logs:
                library = loader.load_library(
                    cache_dir=pathlib.Path(directory),
                    compiler="keras-gae-no-such-compiler",
                )
            self.assertIsNone(library)
            self.assertLen(logs.records, 1)
            self.assertIn("unavailable", logs.output[0])
            # Nothing half-built is left in the cache.
            self.assertEmpty(list(pathlib.Path(directory).rglob("*.so")))

    def test_failed_compile_warns_and_leaves_no_file(self):
        # `false` stands in for a compiler that exits with an error.
        with tempfile.TemporaryDirectory() as directory:
            with self.assertLogs("absl", level="WARNING") as logs:
                library = loader.load_library(
                    cache_dir=pathlib.Path(directory), compiler="false"
                )
            self.assertIsNone(library)
            self.assertIn("exited with status 1", logs.output[0])
            self.assertEmpty(list(pathlib.Path(directory).rglob("*.so")))

    def test_build_skipped_when_another_process_finished_it(self):
        with tempfile.TemporaryDirectory() as directory:
            target = pathlib.Path(directory) / "key" / "gae_op.so"
            target.parent.mkdir()
            target.write_bytes(b"built elsewhere")
            # Would raise if it tried to build with this compiler.
            loader._build_once(target, "keras-gae-no-such-compiler")
            self.assertEqual(target.read_bytes(), b"built elsewhere")

    def test_cache_path_is_keyed_by_tensorflow_version(self):
        path = loader.library_path(pathlib.Path("/cache"), "g++")
        self.assertEqual(path.name, "gae_op.so")
        self.assertTrue(path.parent.name.startswith(tf.__version__ + "-"))
        self.assertNotEqual(
            path, loader.library_path(pathlib.Path("/cache"), "clang++")
        )

    def test_cache_root_follows_environment(self):
        with mock.patch.dict("os.environ", {"KERAS_GAE_CACHE": "/x/y"}):
            self.assertEqual(loader.cache_root(), pathlib.Path("/x/y"))

    def test_built_library_is_cached(self):
        self.assertTrue(native.available())
        self.assertTrue(loader.library_path().exists())


if __name__ == "__main__":
    tf.test.main()

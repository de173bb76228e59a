"""Tests of GAE's default `implementation="auto"`: no compiler, same numbers.

"auto" runs "xla" outside XLA-compiled functions and "scan" inside them
(keras_gae/ops/_gae_implementations.py says why). It must never build or
load the g++-compiled native op: a first run compiles no C++.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import ops
from keras_gae.ops import _gae_implementations
from keras_gae.ops import native
from keras_gae.ops.native import loader
from tests.distribute_utils import two_cpu_strategy
from tests.ops import reference
from tests.ops.test_gae import random_case

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def auto_gae(case):
    return ops.generalized_advantage_estimation(**case, implementation="auto")


class AutoResolutionTest(tf.test.TestCase):
    def test_xla_when_eager(self):
        self.assertEqual(_gae_implementations.resolve("auto"), "xla")

    def test_xla_in_plain_tf_function(self):
        seen = []

        @tf.function
        def plain():
            seen.append(_gae_implementations.resolve("auto"))
            return tf.constant(0)

        plain()
        self.assertEqual(seen, ["xla"])

    def test_scan_inside_jit_compiled_function(self):
        seen = []

        @tf.function(jit_compile=True)
        def compiled(x):
            seen.append(_gae_implementations.resolve("auto"))
            return x + 1

        compiled(tf.constant(1.0))
        self.assertEqual(seen, ["scan"])

    def test_other_choices_pass_through(self):
        for implementation in ("scan", "xla"):
            self.assertEqual(
                _gae_implementations.resolve(implementation), implementation
            )

    def test_unknown_implementation(self):
        with self.assertRaisesRegex(
            ValueError, "`implementation`.*Received: implementation='fast'"
        ):
            _gae_implementations.resolve("fast")


class AutoNeverBuildsNativeTest(tf.test.TestCase, parameterized.TestCase):
    """Every path into the native op fails the test if "auto" takes it."""

    def setUp(self):
        super().setUp()
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.cache = directory.name
        self.traps = {
            "get_library": mock.Mock(side_effect=AssertionError("library")),
            "load_library": mock.Mock(side_effect=AssertionError("load")),
            "build": mock.Mock(side_effect=AssertionError("build")),
            "available": mock.Mock(side_effect=AssertionError("available")),
            "kernel": mock.Mock(side_effect=AssertionError("kernel")),
        }
        patches = [
            mock.patch.dict(os.environ, {"KERAS_GAE_CACHE": self.cache}),
            mock.patch.dict(loader._state, clear=True),
            mock.patch.object(loader, "get_library", self.traps["get_library"]),
            mock.patch.object(
                loader, "load_library", self.traps["load_library"]
            ),
            mock.patch.object(loader, "build", self.traps["build"]),
            mock.patch.object(native, "available", self.traps["available"]),
            mock.patch.dict(
                _gae_implementations.KERNELS, {"native": self.traps["kernel"]}
            ),
        ]
        for patch in patches:
            patch.start()
            self.addCleanup(patch.stop)

    def assert_untouched(self):
        for trap in self.traps.values():
            trap.assert_not_called()
        self.assertEmpty(os.listdir(self.cache))
        self.assertNotIn("library", loader._state)

    @parameterized.named_parameters(
        ("eager", None), ("tf_function", False), ("jit_compile", True)
    )
    def test_matches_float64_reference(self, jit_compile):
        compute = auto_gae
        if jit_compile is not None:
            compute = tf.function(auto_gae, jit_compile=jit_compile)
        for seed, per_step in ((0, False), (1, True)):
            case = random_case(seed, num_steps=11, batch=5, per_step=per_step)
            expected_adv, expected_ret = reference.gae(**case)
            out = compute(case)
            self.assertEqual(out.advantages.dtype, tf.float64)
            self.assertAllClose(out.advantages, expected_adv, atol=1e-12)
            self.assertAllClose(out.returns, expected_ret, atol=1e-12)
        self.assert_untouched()

    def test_default_implementation_is_auto(self):
        case = random_case(2)
        expected_adv, _ = reference.gae(**case)
        out = ops.generalized_advantage_estimation(**case)
        self.assertAllClose(out.advantages, expected_adv, atol=1e-12)
        self.assert_untouched()

    def test_native_still_goes_through_the_loader(self):
        # The traps are live: asking for "native" does reach them.
        with self.assertRaisesRegex(AssertionError, "available"):
            ops.generalized_advantage_estimation(
                **random_case(3), implementation="native"
            )


@pytest.mark.slow
class FreshProcessTest(tf.test.TestCase):
    def test_first_run_compiles_nothing(self):
        # A new process, an empty cache and no usable compiler: the default
        # path must work and leave the cache untouched, with no warning.
        script = textwrap.dedent(
            """
            import numpy as np
            import tensorflow as tf
            import keras
            import keras_gae
            from keras_gae import ops
            from keras_gae.ops.native import loader

            rng = np.random.default_rng(0)
            args = (
                rng.normal(size=(6, 3)),
                rng.normal(size=(6, 3)),
                rng.normal(size=3),
            )
            ops.generalized_advantage_estimation(*args)
            tf.function(ops.generalized_advantage_estimation)(*args)
            tf.function(ops.generalized_advantage_estimation,
                        jit_compile=True)(*args)
            print("native state:", sorted(loader._state))
            """
        )
        with tempfile.TemporaryDirectory() as cache:
            environment = dict(
                os.environ,
                KERAS_GAE_CACHE=cache,
                CXX="keras-gae-no-such-compiler",
                TF_CPP_MIN_LOG_LEVEL="2",
            )
            result = subprocess.run(
                [sys.executable, "-c", script],
                cwd=REPO_ROOT,
                env=environment,
                capture_output=True,
                text=True,
                timeout=300,
            )
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            self.assertIn("native state: []", result.stdout)
            self.assertNotIn("native GAE op", result.stderr)
            self.assertEmpty(os.listdir(cache))


class AutoUnderMirroredStrategyTest(tf.test.TestCase):
    def test_two_replicas_equal_one_device(self):
        # Each replica runs GAE on its half of the batch columns, as a
        # model's train_step does; auto runs XLA on each logical CPU.
        strategy = two_cpu_strategy()
        case = random_case(4, num_steps=9, batch=6, with_mask=True)
        case = {
            k: v.astype(np.float32)
            if isinstance(v, np.ndarray) and v.dtype == np.float64
            else v
            for k, v in case.items()
        }
        columns = {k: v for k, v in case.items() if isinstance(v, np.ndarray)}
        scalars = {k: v for k, v in case.items() if k not in columns}

        def half(array, replica):
            axis = 0 if array.ndim == 1 else 1
            return np.split(array, 2, axis=axis)[replica]

        distributed = {
            k: strategy.experimental_distribute_values_from_function(
                lambda context, v=v: tf.constant(
                    half(v, context.replica_id_in_sync_group)
                )
            )
            for k, v in columns.items()
        }

        @tf.function
        def step(inputs):
            return ops.generalized_advantage_estimation(**inputs, **scalars)

        per_replica = strategy.run(step, args=(distributed,))
        advantages = np.concatenate(
            [
                t.numpy()
                for t in strategy.experimental_local_results(
                    per_replica.advantages
                )
            ],
            axis=1,
        )
        one_device = ops.generalized_advantage_estimation(**case)
        self.assertAllClose(advantages, one_device.advantages, atol=1e-6)
        expected, _ = reference.gae(**random_case(4, 9, 6, with_mask=True))
        self.assertAllClose(advantages, expected, atol=1e-5)


if __name__ == "__main__":
    tf.test.main()

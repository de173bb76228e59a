"""Keras 3 in any import order, and clear errors for the wrong Keras.

Each import order runs tests/keras3_user_script.py in a fresh process: fit,
`.keras` save and load, CartPole through keras_gae.agents, and a
SavedModel loaded where keras_gae cannot be imported.
"""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.models import PPOModel

_TESTS = os.path.dirname(__file__)
_ROOT = os.path.dirname(_TESTS)


def _run(args, env=None, timeout=600):
    environment = dict(os.environ)
    environment.pop("TF_USE_LEGACY_KERAS", None)
    environment["PYTHONPATH"] = _ROOT
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, *args],
        cwd=_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
class ImportOrderTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        "tensorflow", "keras", "tf_keras_touched", "keras_gae"
    )
    def test_user_script(self, order):
        script = os.path.join(_TESTS, "keras3_user_script.py")
        result = _run([script, order, self.get_temp_dir()])
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        self.assertIn(f"OK {order}", result.stdout)


class WrongKerasTest(tf.test.TestCase):
    def test_other_backend_is_refused_by_name(self):
        result = _run(
            ["-c", "import keras_gae"], env={"KERAS_BACKEND": "numpy"}
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImportError", result.stderr)
        self.assertIn("TensorFlow backend", result.stderr)
        self.assertIn("KERAS_BACKEND='numpy'", result.stderr)

    def test_keras_2_network_is_refused_by_name(self):
        import tf_keras

        actor = tf_keras.Sequential([tf_keras.layers.Dense(2)])
        critic = tf_keras.Sequential([tf_keras.layers.Dense(1)])
        with self.assertRaisesRegex(TypeError, "`actor` is a Keras 2"):
            PPOModel(actor, critic)
        with self.assertRaisesRegex(TypeError, r"import keras"):
            PPOModel(actor, critic)

    def test_tf_agents_leaves_keras_3_in_place(self):
        import keras

        import keras_gae.agents  # noqa: F401

        self.assertIs(tf.keras.layers.Layer, keras.layers.Layer)
        self.assertNotIn("TF_USE_LEGACY_KERAS", os.environ)

"""The import guard for the Keras version (DESIGN.md, "Keras version")."""

import os
import subprocess
import sys

import tensorflow as tf


class KerasVersionTest(tf.test.TestCase):
    def test_keras_2_is_behind_tf_keras(self):
        self.assertStartsWith(tf.keras.layers.Layer.__module__, "tf_keras")

    def test_keras_3_already_imported_raises_clear_import_error(self):
        env = dict(os.environ)
        env.pop("TF_USE_LEGACY_KERAS", None)
        code = "import tensorflow as tf; tf.keras.Model; import keras_gae"
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImportError", result.stderr)
        self.assertIn("TF_USE_LEGACY_KERAS=1", result.stderr)

    def test_importing_keras_gae_first_selects_keras_2(self):
        env = dict(os.environ)
        env.pop("TF_USE_LEGACY_KERAS", None)
        code = (
            "import keras_gae, tensorflow as tf; "
            "m = tf.keras.layers.Layer.__module__; "
            "assert m.startswith('tf_keras'), m"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])

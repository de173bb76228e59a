"""Tests of keras_gae.export: SavedModels that load without keras_gae."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import export
from keras_gae import layers
from keras_gae.models import PPOModel

# Runs in a fresh interpreter where `import keras_gae` fails, so only
# TensorFlow can be used to load and run the export.
_LOADER = r"""
import json, sys
sys.modules["keras_gae"] = None
import numpy as np
import tensorflow as tf
path, obs_file = sys.argv[1], sys.argv[2]
obs = np.load(obs_file)
loaded = tf.saved_model.load(path)
sig = loaded.signatures
seed = tf.constant([3, 4], tf.int64)
out = {
    "action": sig["action"](observation=obs)["action"],
    "value": sig["value"](observation=obs)["value"],
    "params": sig["distribution"](observation=obs)["params"],
    "sample": sig["sample_action"](observation=obs, seed=seed)["action"],
    "sample_again": loaded.sample_action(obs, seed)["action"],
}
out = {k: v.numpy().tolist() for k, v in out.items()}
try:
    import keras_gae  # noqa: F401
    out["keras_gae_importable"] = True
except ImportError:
    out["keras_gae_importable"] = False
print(json.dumps(out))
"""


def make_model(head):
    actor = keras.Sequential([keras.layers.Dense(8, activation="tanh"), head])
    critic = keras.Sequential(
        [keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    return PPOModel(actor, critic)


class ExportTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("categorical", lambda: layers.CategoricalPolicyHead(3)),
        (
            "tanh_gaussian",
            lambda: layers.GaussianPolicyHead(
                2, bound="tanh", low=-2.0, high=2.0
            ),
        ),
    )
    def test_loads_in_fresh_process_without_keras_gae(self, make_head):
        keras.utils.set_random_seed(0)
        model = make_model(make_head())
        path = os.path.join(self.get_temp_dir(), "policy")
        export.export_policy(
            model, path, observation_spec=tf.TensorSpec([4], tf.float32)
        )
        obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
        obs_file = os.path.join(self.get_temp_dir(), "obs.npy")
        np.save(obs_file, obs)
        result = subprocess.run(
            [sys.executable, "-c", _LOADER, path, obs_file],
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertFalse(out["keras_gae_importable"])
        params, values = model(obs)
        head = model.policy_head
        self.assertAllClose(out["params"], params, atol=1e-6)
        self.assertAllClose(out["value"], values, atol=1e-6)
        self.assertAllClose(out["action"], head.greedy_action(params))
        # Seeded sampling is reproducible and matches the in-memory head.
        self.assertAllClose(out["sample"], out["sample_again"])
        expected = head.postprocess_action(
            head.distribution(params).sample(seed=tf.constant([3, 4]))
        )
        self.assertAllClose(out["sample"], expected, atol=1e-5)

    def test_bad_signature_inputs_fail_clearly(self):
        model = make_model(layers.CategoricalPolicyHead(2))
        path = os.path.join(self.get_temp_dir(), "policy")
        export.export_policy(
            model, path, observation_spec=tf.TensorSpec([4], tf.float32)
        )
        loaded = tf.saved_model.load(path)
        with self.assertRaisesRegex(
            (TypeError, ValueError, tf.errors.InvalidArgumentError),
            r"`observation` must have shape \[batch, 4\]",
        ):
            loaded.signatures["action"](observation=tf.zeros((2, 3)))
        with self.assertRaisesRegex(
            (TypeError, ValueError, tf.errors.InvalidArgumentError),
            "expected to be a float tensor but is a int32 tensor",
        ):
            loaded.signatures["action"](observation=tf.zeros((2, 4), tf.int32))

    def test_nan_weights_are_refused(self):
        model = make_model(layers.CategoricalPolicyHead(2))
        model(tf.zeros((1, 4)))
        kernel = model.critic.layers[-1].kernel
        kernel.assign(tf.fill(kernel.shape, np.nan))
        path = os.path.join(self.get_temp_dir(), "policy")
        with self.assertRaisesRegex(ValueError, "NaN or Inf") as caught:
            export.export_policy(
                model, path, observation_spec=tf.TensorSpec([4], tf.float32)
            )
        # The message names the variable by its path.
        self.assertIn(kernel.path, str(caught.exception))
        self.assertFalse(os.path.exists(path))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(TypeError, "`model`"):
            export.export_policy(
                keras.Sequential(),
                self.get_temp_dir(),
                observation_spec=tf.TensorSpec([4]),
            )
        model = make_model(layers.CategoricalPolicyHead(2))
        with self.assertRaisesRegex(TypeError, "`observation_spec`"):
            export.export_policy(
                model, self.get_temp_dir(), observation_spec=[4]
            )

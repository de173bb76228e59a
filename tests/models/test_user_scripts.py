"""The models as a user first types them, each in a fresh interpreter.

Issue 19 ("the first hour"): `model.summary()` and `model.fit` over a
rollout dataset, run as a script would run them, so that nothing this
test process imported or configured hides an error or a warning.
"""

import textwrap

import pytest
import tensorflow as tf

from tests.fresh_process import run_python

# Networks of a known size: Dense(4 -> 8) has 40 weights, Dense(8 -> 2)
# (the categorical head's logits) 18 and Dense(8 -> 1) 9.
_NETWORKS = """
import keras
import numpy as np
from keras_gae import layers, models

def actor():
    return keras.Sequential([
        keras.layers.Dense(8, activation="tanh"),
        layers.CategoricalPolicyHead(2),
    ])

def critic():
    return keras.Sequential([
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(1),
    ])

def rollout_batch(model, B=4, T=8):
    rng = np.random.default_rng(0)
    observation = rng.normal(size=(B, T, 4)).astype(np.float32)
    step = model.act(observation.reshape(B * T, 4))
    return {
        "observation": observation,
        "action": np.reshape(step.action, [B, T]),
        "log_prob": np.reshape(step.log_prob, [B, T]),
        "value": np.reshape(step.value, [B, T]),
        "reward": np.ones((B, T), np.float32),
        "terminated": rng.random((B, T)) < 0.1,
        "truncated": np.zeros((B, T), bool),
        "bootstrap_value": np.zeros(B, np.float32),
    }
"""


def _sections(stdout):
    """The script's output split at its `=== name` marker lines."""
    sections, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("=== "):
            name = line[4:]
            sections[name] = []
        elif name is not None:
            sections[name].append(line)
    return {key: "\n".join(lines) for key, lines in sections.items()}


class SummaryTest(tf.test.TestCase):
    def test_summary_of_unbuilt_built_and_shared_models(self):
        code = _NETWORKS + textwrap.dedent(
            """
            print("=== unbuilt")
            model = models.PPOModel(actor(), critic())
            model.summary()
            print("=== called")
            model(np.zeros((3, 4), np.float32))
            model.summary()
            print("=== fitted")
            model = models.A2CModel(actor(), critic())
            model.compile(optimizer="adam")
            batch = rollout_batch(model)
            model.fit(
                models.rollout_dataset(batch, num_minibatches=2), verbose=0
            )
            model.summary()
            print("=== shared")
            inputs = keras.Input((4,))
            hidden = keras.layers.Dense(8, activation="tanh")(inputs)
            shared = keras.Model(
                inputs,
                [layers.CategoricalPolicyHead(2)(hidden),
                 keras.layers.Dense(1)(hidden)],
            )
            model = models.PPOModel(shared=shared, normalize_advantages=False)
            model.summary(expand_nested=True)
            """
        )
        result = run_python(code, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertNotIn("Traceback", result.stderr)
        sections = _sections(result.stdout)
        self.assertEqual(
            sorted(sections), ["called", "fitted", "shared", "unbuilt"]
        )
        # Unbuilt networks: Keras' "unbuilt" rows, the GAE layer's [B, T].
        self.assertIn("(unbuilt)", sections["unbuilt"])
        self.assertIn("Total params: 0", sections["unbuilt"])
        self.assertIn("GeneralizedAdvantageEstimatio", sections["unbuilt"])
        self.assertIn("((None, None), (None,", sections["unbuilt"])
        self.assertIn("AdvantageNormalization", sections["unbuilt"])
        # Actor 40 + 18, critic 40 + 9.
        self.assertIn("Total params: 107", sections["called"])
        self.assertNotIn("unbuilt", sections["called"])
        self.assertIn('Model: "ppo_model"', sections["called"])
        self.assertIn("Trainable params: 107", sections["fitted"])
        self.assertIn('Model: "a2c_model"', sections["fitted"])
        self.assertNotIn("unbuilt", sections["fitted"])
        # 40 + 18 + 9 in one functional network.
        self.assertIn("Total params: 67", sections["shared"])
        self.assertIn("((None, 2), (None, 1))", sections["shared"])
        self.assertIn("dense_", sections["shared"])


class FitWarningsTest(tf.test.TestCase):
    @pytest.mark.slow
    def test_fitting_rollout_datasets_warns_nothing(self):
        code = _NETWORKS + textwrap.dedent(
            """
            import warnings

            model = models.PPOModel(actor(), critic())
            model.compile(optimizer=keras.optimizers.Adam(3e-4))
            batch = rollout_batch(model)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.fit(
                    models.rollout_dataset(batch, num_minibatches=2),
                    epochs=2,
                    verbose=0,
                )
                model.fit(
                    models.step_dataset(model, batch, num_minibatches=2),
                    verbose=0,
                )
            print("caught:", [str(w.message) for w in caught])
            # Asked for explicitly, Keras' own warning still says it.
            with warnings.catch_warnings(record=True) as asked:
                warnings.simplefilter("always")
                model.fit(
                    models.rollout_dataset(batch, num_minibatches=2),
                    shuffle=True,
                    verbose=0,
                )
            print("asked:", [str(w.message)[:25] for w in asked])
            """
        )
        result = run_python(code, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("caught: []\n", result.stdout)
        self.assertIn("asked: ['`shuffle=True` was passed']", result.stdout)
        self.assertNotIn("Warning", result.stderr)

"""Tests of the GeneralizedAdvantageEstimation layer."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import layers
from tests.ops import reference

B, T = 3, 6


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
    """Batch-major float64 GAE: the shared time-major loop, transposed."""

    def time_major(x):
        return None if x is None else np.transpose(np.asarray(x))

    advantages, returns = reference.gae(
        time_major(rewards),
        time_major(values),
        bootstrap_value,
        gamma=gamma,
        lambda_=lambda_,
        terminated=time_major(terminated),
        truncated=time_major(truncated),
        truncation_values=time_major(truncation_values),
        mask=time_major(mask),
    )
    return advantages.T, returns.T


def random_batch(seed=0, flags=True, dtype=np.float32):
    rng = np.random.default_rng(seed)
    batch = {
        "reward": rng.normal(size=(B, T)).astype(dtype),
        "value": rng.normal(size=(B, T)).astype(dtype),
        "bootstrap_value": rng.normal(size=(B,)).astype(dtype),
    }
    if flags:
        batch["terminated"] = rng.random((B, T)) < 0.2
        batch["truncated"] = rng.random((B, T)) < 0.2
        batch["truncation_value"] = rng.normal(size=(B, T)).astype(dtype)
        batch["mask"] = rng.random((B, T)) < 0.85
    return batch


def reference_for(batch, gamma, lambda_):
    return gae_reference(
        batch["reward"],
        batch["value"],
        batch["bootstrap_value"],
        gamma,
        lambda_,
        terminated=batch.get("terminated"),
        truncated=batch.get("truncated"),
        truncation_values=batch.get("truncation_value"),
        mask=batch.get("mask"),
    )


class GeneralizedAdvantageEstimationTest(
    tf.test.TestCase, parameterized.TestCase
):
    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    @parameterized.product(
        implementation=["scan", "xla", "auto"],
        flags=[False, True],
    )
    def test_matches_numpy_reference(self, implementation, flags):
        batch = random_batch(seed=1, flags=flags, dtype=np.float64)
        layer = layers.GeneralizedAdvantageEstimation(
            gamma=0.9,
            lambda_=0.8,
            implementation=implementation,
            dtype="float64",
        )
        advantages, returns = layer(batch)
        expected_advantages, expected_returns = reference_for(batch, 0.9, 0.8)
        self.assertEqual(advantages.dtype, tf.float64)
        self.assertAllClose(advantages, expected_advantages, atol=1e-10)
        self.assertAllClose(returns, expected_returns, atol=1e-10)

    def test_hand_computed_fixture(self):
        # gamma = lambda = 0.5, V = 0, V(s_T) = 4, r = 1:
        # deltas 1, 1, 1 + 0.5 * 4 = 3; A_2 = 3, A_1 = 1 + 0.25 * 3 = 1.75,
        # A_0 = 1 + 0.25 * 1.75 = 1.4375. Terminated on the last step:
        # delta_2 = 1, A_1 = 1.25, A_0 = 1.3125.
        layer = layers.GeneralizedAdvantageEstimation(gamma=0.5, lambda_=0.5)
        inputs = {
            "reward": tf.ones([2, 3]),
            "value": tf.zeros([2, 3]),
            "bootstrap_value": tf.fill([2], 4.0),
            "terminated": tf.constant([[False] * 3, [False, False, True]]),
        }
        advantages, returns = layer(inputs)
        expected = [[1.4375, 1.75, 3.0], [1.3125, 1.25, 1.0]]
        self.assertAllClose(advantages, expected)
        self.assertAllClose(returns, expected)

    def test_time_major_equals_batch_major(self):
        batch = random_batch(seed=2)
        batch_major = layers.GeneralizedAdvantageEstimation()(batch)
        transposed = {
            key: value if key == "bootstrap_value" else np.transpose(value)
            for key, value in batch.items()
        }
        time_major = layers.GeneralizedAdvantageEstimation(time_major=True)(
            transposed
        )
        for got, expected in zip(time_major, batch_major):
            self.assertAllClose(tf.transpose(got), expected)

    def test_accepts_a_whole_rollout_batch(self):
        batch = random_batch(seed=3)
        full = dict(
            batch,
            observation=np.zeros((B, T, 4), np.float32),
            action=np.zeros((B, T), np.int32),
            log_prob=np.zeros((B, T), np.float32),
            ref_log_prob=np.zeros((B, T), np.float32),
            advantage=np.zeros((B, T), np.float32),
            **{"return": np.zeros((B, T), np.float32)},
        )
        layer = layers.GeneralizedAdvantageEstimation()
        for got, expected in zip(layer(full), layer(batch)):
            self.assertAllEqual(got, expected)

    def test_float64_inputs_to_default_layer_are_float32(self):
        batch = random_batch(seed=4, dtype=np.float64)
        advantages, returns = layers.GeneralizedAdvantageEstimation()(batch)
        self.assertEqual(advantages.dtype, tf.float32)
        self.assertEqual(returns.dtype, tf.float32)
        expected, _ = reference_for(batch, 0.99, 0.95)
        self.assertAllClose(advantages, expected, atol=1e-5)

    def test_stays_float32_under_mixed_precision(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        layer = layers.GeneralizedAdvantageEstimation()
        self.assertEqual(layer.compute_dtype, "float32")
        batch = random_batch(seed=5, flags=True, dtype=np.float16)
        advantages, returns = layer(batch)
        self.assertEqual(advantages.dtype, tf.float32)
        self.assertEqual(returns.dtype, tf.float32)
        expected, _ = reference_for(batch, 0.99, 0.95)
        self.assertAllClose(advantages, expected, atol=1e-5)

        # Inside a functional model whose critic computes in float16.
        observation = keras.Input((T, 2), name="observation")
        value = keras.ops.squeeze(keras.layers.Dense(1)(observation), -1)
        self.assertEqual(value.dtype, "float16")
        rewards = keras.Input((T,), name="reward")
        bootstrap = keras.Input((), name="bootstrap_value")
        advantages, _ = layers.GeneralizedAdvantageEstimation()(
            {"reward": rewards, "value": value, "bootstrap_value": bootstrap}
        )
        self.assertEqual(advantages.dtype, "float32")

    def test_check_numerics(self):
        batch = random_batch(seed=6, flags=False)
        batch["reward"][0, 2] = np.nan
        quiet = layers.GeneralizedAdvantageEstimation()
        self.assertTrue(np.isnan(quiet(batch)[0].numpy()).any())
        layer = layers.GeneralizedAdvantageEstimation(check_numerics=True)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "rewards"):
            layer(batch)

    @parameterized.named_parameters(
        ("gamma_high", {"gamma": 1.5}, ValueError, "gamma"),
        ("gamma_negative", {"gamma": -0.1}, ValueError, "gamma"),
        ("lambda_high", {"lambda_": 1.01}, ValueError, "lambda_"),
        ("gamma_string", {"gamma": "0.9"}, TypeError, "gamma"),
        ("lambda_bool", {"lambda_": True}, TypeError, "lambda_"),
        ("implementation", {"implementation": "fast"}, ValueError, "implem"),
        ("time_major", {"time_major": 1}, TypeError, "time_major"),
        ("check_numerics", {"check_numerics": "y"}, TypeError, "check_num"),
        ("half_dtype", {"dtype": "mixed_float16"}, ValueError, "dtype"),
    )
    def test_constructor_errors(self, kwargs, error, name):
        with self.assertRaisesRegex(error, f"`{name}.*Received: {name}"):
            layers.GeneralizedAdvantageEstimation(**kwargs)

    def test_call_errors(self):
        layer = layers.GeneralizedAdvantageEstimation()
        batch = random_batch(seed=7, flags=False)
        with self.assertRaisesRegex(
            TypeError, "`inputs` must be one rollout batch: a dict"
        ):
            layer(batch["reward"])
        missing = {k: v for k, v in batch.items() if k != "bootstrap_value"}
        with self.assertRaisesRegex(ValueError, "missing.*bootstrap_value"):
            layer(missing)
        with self.assertRaisesRegex(ValueError, "unknown key.*'rewards'"):
            layer(dict(batch, rewards=batch["reward"]))
        wrong_rank = dict(batch, value=batch["value"][..., None])
        with self.assertRaisesRegex(
            ValueError, r"inputs\['value'\] as `values`.*Received: values="
        ):
            layer(wrong_rank)
        wrong_batch = dict(batch, bootstrap_value=np.zeros(B + 1, np.float32))
        with self.assertRaisesRegex(ValueError, "Received: bootstrap_value="):
            layer(wrong_batch)

    def test_get_config_round_trip(self):
        layer = layers.GeneralizedAdvantageEstimation(
            gamma=0.9,
            lambda_=0.7,
            time_major=True,
            implementation="scan",
            check_numerics=True,
            name="gae",
        )
        config = layer.get_config()
        restored = layers.GeneralizedAdvantageEstimation.from_config(config)
        self.assertEqual(restored.get_config(), config)
        self.assertEqual(config["gamma"], 0.9)
        self.assertEqual(config["lambda_"], 0.7)
        serialized = keras.layers.serialize(layer)
        self.assertEqual(
            serialized["registered_name"],
            "keras_gae>GeneralizedAdvantageEstimation",
        )
        deserialized = keras.layers.deserialize(serialized)
        self.assertIsInstance(
            deserialized, layers.GeneralizedAdvantageEstimation
        )
        batch = {
            k: v if k == "bootstrap_value" else np.transpose(v)
            for k, v in random_batch(seed=8).items()
        }
        for got, expected in zip(deserialized(batch), layer(batch)):
            self.assertAllEqual(got, expected)

    def test_compute_output_shape_as_keras_calls_it(self):
        # Keras (`summary()`, symbolic builds) passes `input_shape=`.
        layer = layers.GeneralizedAdvantageEstimation()
        shapes = {"reward": (B, T), "value": (B, T), "bootstrap_value": (B,)}
        self.assertEqual(
            layer.compute_output_shape(input_shape=shapes), ((B, T), (B, T))
        )
        # Built without shapes, as the training models build theirs.
        self.assertEqual(
            layer.compute_output_shape(input_shape=None),
            ((None, None), (None, None)),
        )
        with self.assertRaisesRegex(ValueError, r"Received: input_shape=\(3,"):
            layer.compute_output_shape(input_shape=(B, T))

    def _functional_model(self):
        inputs = {
            "reward": keras.Input((T,), name="reward"),
            "value": keras.Input((T,), name="value"),
            "bootstrap_value": keras.Input((), name="bootstrap_value"),
            "terminated": keras.Input((T,), dtype=tf.bool, name="terminated"),
            "truncated": keras.Input((T,), dtype=tf.bool, name="truncated"),
            "truncation_value": keras.Input((T,), name="truncation_value"),
            "mask": keras.Input((T,), dtype=tf.bool, name="mask"),
        }
        outputs = layers.GeneralizedAdvantageEstimation(gamma=0.9, lambda_=0.8)(
            inputs
        )
        return keras.Model(inputs, outputs)

    def test_functional_model_keras_file_and_saved_model(self):
        model = self._functional_model()
        batch = random_batch(seed=9)
        expected_advantages, expected_returns = reference_for(batch, 0.9, 0.8)
        advantages, returns = model(batch)
        self.assertAllClose(advantages, expected_advantages, atol=1e-5)
        self.assertAllClose(returns, expected_returns, atol=1e-5)

        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        path = os.path.join(directory, "gae.keras")
        model.save(path)
        loaded_model = keras.saving.load_model(path)
        gae_layers = [
            layer
            for layer in loaded_model.layers
            if isinstance(layer, layers.GeneralizedAdvantageEstimation)
        ]
        self.assertLen(gae_layers, 1)
        self.assertEqual(gae_layers[0].gamma, 0.9)
        self.assertEqual(gae_layers[0].lambda_, 0.8)
        loaded_outputs = loaded_model(batch)

        export_path = os.path.join(directory, "gae_saved_model")
        model.export(export_path, verbose=False)
        raw = tf.saved_model.load(export_path)
        tensors = {k: tf.constant(v) for k, v in batch.items()}
        raw_outputs = raw.serve(tensors)
        reloaded = keras.layers.TFSMLayer(export_path)
        layer_outputs = reloaded(tensors)
        for outputs in (loaded_outputs, raw_outputs, layer_outputs):
            self.assertLen(outputs, 2)
            for got, expected in zip(outputs, (advantages, returns)):
                self.assertAllClose(got, expected, atol=1e-6)

    def test_fit_smoke(self):
        # A critic regressing on GAE returns inside a compiled train step:
        # the model outputs V(s_t) - returns_t, fit against zeros.
        observation = keras.Input((T, 2), name="observation")
        reward = keras.Input((T,), name="reward")
        bootstrap = keras.Input((), name="bootstrap_value")
        critic = keras.layers.Dense(1, kernel_initializer="zeros")
        value = keras.ops.squeeze(critic(observation), -1)
        _, returns = layers.GeneralizedAdvantageEstimation()(
            {"reward": reward, "value": value, "bootstrap_value": bootstrap}
        )
        error = keras.layers.Subtract()([value, returns])
        model = keras.Model([observation, reward, bootstrap], error)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        rng = np.random.default_rng(10)
        x = [
            rng.normal(size=(8, T, 2)).astype(np.float32),
            np.ones((8, T), np.float32),
            np.zeros((8,), np.float32),
        ]
        history = model.fit(
            x, np.zeros((8, T), np.float32), epochs=3, batch_size=4, verbose=0
        )
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertNotAllClose(critic.kernel, np.zeros((2, 1)))

    def test_keras_file_round_trip_inside_a_model(self):
        model = self._functional_model()
        path = os.path.join(self.get_temp_dir(), "gae_model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        batch = random_batch(seed=11)
        for got, expected in zip(loaded(batch), model(batch)):
            self.assertAllEqual(got, expected)


if __name__ == "__main__":
    tf.test.main()

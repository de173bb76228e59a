"""Tests of the AdvantageNormalization layer."""

import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import layers
from tests import distribute_utils


def normalize_reference(x, mask=None, center=True, epsilon=1e-8):
    """Float64 masked whitening over all valid elements."""
    x = np.asarray(x, np.float64)
    valid = np.ones(x.shape, bool) if mask is None else np.asarray(mask, bool)
    values = x[valid]
    mean = values.mean() if values.size else 0.0
    variance = values.var() if values.size else 0.0
    shifted = x - mean if center else x
    return np.where(valid, shifted / np.sqrt(variance + epsilon), 0.0)


def running_reference(batches, momentum):
    """(mean, variance, count) of the EMA normalizer after `batches`."""
    mean, variance, count = 0.0, 1.0, 0
    for x, mask in batches:
        values = np.asarray(x, np.float64)[np.asarray(mask, bool)]
        if not values.size:
            continue
        if count == 0:
            mean, variance = values.mean(), values.var()
        else:
            mean = momentum * mean + (1 - momentum) * values.mean()
            variance = momentum * variance + (1 - momentum) * values.var()
        count += 1
    return mean, variance, count


class AdvantageNormalizationTest(tf.test.TestCase, parameterized.TestCase):
    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    @parameterized.product(masked=[False, True], center=[True, False])
    def test_matches_numpy_reference(self, masked, center):
        rng = np.random.default_rng(0)
        x = rng.normal(3.0, 2.0, size=(4, 7))
        mask = rng.random((4, 7)) < 0.6 if masked else None
        layer = layers.AdvantageNormalization(
            epsilon=1e-6, center=center, dtype="float64"
        )
        got = layer(x, mask=mask)
        self.assertEqual(got.dtype, tf.float64)
        expected = normalize_reference(x, mask, center, epsilon=1e-6)
        self.assertAllClose(got, expected, atol=1e-10)

    def test_hand_computed_fixture(self):
        # Valid elements 1, 3 (mean 2, var 1); the masked 100 is ignored.
        layer = layers.AdvantageNormalization(epsilon=1e-12)
        got = layer(tf.constant([[1.0, 3.0, 100.0]]), mask=[[1, 1, 0]])
        self.assertAllClose(got, [[-1.0, 1.0, 0.0]])
        uncentered = layers.AdvantageNormalization(epsilon=1e-12, center=False)
        got = uncentered(tf.constant([[1.0, 3.0, 100.0]]), mask=[[1, 1, 0]])
        self.assertAllClose(got, [[1.0, 3.0, 0.0]])

    def test_masked_non_finite_values_do_not_leak(self):
        x = tf.constant([[1.0, np.nan, 2.0], [np.inf, 4.0, -1.0]])
        mask = tf.constant([[True, False, True], [False, True, True]])
        got = layers.AdvantageNormalization()(x, mask=mask)
        self.assertAllEqual(np.isfinite(got), np.ones([2, 3], bool))
        expected = normalize_reference(np.nan_to_num(x.numpy()), mask.numpy())
        self.assertAllClose(got, expected, atol=1e-5)

    def test_no_valid_element_gives_zeros(self):
        got = layers.AdvantageNormalization()(
            tf.ones([2, 3]), mask=tf.zeros([2, 3], tf.bool)
        )
        self.assertAllEqual(got, np.zeros([2, 3]))

    def test_mask_is_propagated(self):
        mask = np.array([[1, 0, 1]], np.int32)
        got = layers.AdvantageNormalization()(tf.ones([1, 3]), mask=mask)
        self.assertAllEqual(got._keras_mask, mask.astype(bool))

    def test_stays_float32_under_mixed_precision(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        layer = layers.AdvantageNormalization()
        self.assertEqual(layer.compute_dtype, "float32")
        # 300^2 overflows float16; the statistics must not be half precision.
        x = np.array([[300.0, 310.0, 290.0, 305.0]], np.float16)
        got = layer(x)
        self.assertEqual(got.dtype, tf.float32)
        self.assertAllClose(got, normalize_reference(x), atol=1e-4)

    @parameterized.named_parameters(("batch", None), ("running", 0.9))
    def test_mirrored_strategy_matches_one_replica(self, momentum):
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        self.assertLen(devices, 2)
        strategy = distribute_utils.two_cpu_strategy()
        rng = np.random.default_rng(1)
        # The halves differ in location and scale, so per-replica statistics
        # would give a different answer than the global ones.
        x = np.concatenate(
            [rng.normal(0.0, 1.0, (2, 5)), rng.normal(4.0, 3.0, (2, 5))]
        ).astype(np.float32)
        mask = rng.random((4, 5)) < 0.8
        with strategy.scope():
            layer = layers.AdvantageNormalization(momentum=momentum)
            layer.build(tf.TensorShape([None, 5]))

        def split(array):
            return strategy.experimental_distribute_values_from_function(
                lambda context: tf.constant(
                    np.split(array, 2)[context.replica_id_in_sync_group]
                )
            )

        @tf.function
        def step(x, mask):
            return strategy.run(
                lambda a, m: layer(a, mask=m, training=True), args=(x, mask)
            )

        reduced = []
        all_reduce = tf.distribute.ReplicaContext.all_reduce

        def counting_all_reduce(context, reduce_op, value, options=None):
            reduced.append(value)
            return all_reduce(context, reduce_op, value, options)

        with mock.patch.object(
            tf.distribute.ReplicaContext, "all_reduce", counting_all_reduce
        ):
            outputs = step(split(x), split(mask))
        got = tf.concat(strategy.experimental_local_results(outputs), 0)
        # Two all-reduces per replica, each of one stacked tensor: the sums
        # and the count ([sum, count], or with running statistics [sum,
        # number of valid elements, count]), then the centred squares
        # ([square] or [square, that of the ones]).
        self.assertLen(reduced, 2 * strategy.num_replicas_in_sync)
        moments = 1 if momentum is None else 2
        shapes = sorted(value.shape[0] for value in reduced)
        self.assertEqual(
            shapes,
            [moments] * strategy.num_replicas_in_sync
            + [moments + 1] * strategy.num_replicas_in_sync,
        )

        single = layers.AdvantageNormalization(momentum=momentum)
        expected = single(x, mask=mask, training=True)
        self.assertAllClose(got, expected, atol=1e-5)
        self.assertAllClose(got, normalize_reference(x, mask), atol=1e-4)
        if momentum is not None:
            for distributed, local in zip(layer.weights, single.weights):
                # Every replica's copy holds the single-replica value.
                copies = strategy.experimental_local_results(distributed.value)
                self.assertLen(copies, strategy.num_replicas_in_sync)
                for copy in copies:
                    self.assertAllClose(copy, local.numpy(), atol=1e-5)
            self.assertEqual(float(layer.count.numpy()), 1.0)

    def test_default_context_is_local(self):
        # Outside strategy.run: no all-reduce, plain local statistics.
        with mock.patch.object(
            tf.distribute.ReplicaContext,
            "all_reduce",
            side_effect=AssertionError("all_reduce called"),
        ):
            got = layers.AdvantageNormalization()(tf.constant([[1.0, 3.0]]))
        self.assertAllClose(got, [[-1.0, 1.0]])

    def test_running_statistics(self):
        momentum = 0.8
        rng = np.random.default_rng(2)
        layer = layers.AdvantageNormalization(momentum=momentum, epsilon=1e-6)
        x0 = rng.normal(1.0, 2.0, (3, 4)).astype(np.float32)
        m0 = rng.random((3, 4)) < 0.7

        # Before any update, inference uses the batch statistics.
        got = layer(x0, mask=m0, training=False)
        self.assertAllClose(
            got, normalize_reference(x0, m0, epsilon=1e-6), atol=1e-5
        )
        self.assertEqual(float(layer.count), 0.0)
        names = sorted(w.name.split("/")[-1] for w in layer.weights)
        self.assertEqual(names, ["count", "mean", "variance"])
        self.assertEmpty(layer.trainable_weights)

        batches = [
            (x0, m0),
            (rng.normal(-2.0, 0.5, (3, 4)).astype(np.float32), m0),
            (np.full((3, 4), np.nan, np.float32), np.zeros((3, 4), bool)),
            (rng.normal(0.0, 3.0, (3, 4)).astype(np.float32), ~m0),
        ]
        for step, (x, mask) in enumerate(batches):
            got = layer(x, mask=mask, training=True)
            mean, variance, count = running_reference(
                batches[: step + 1], momentum
            )
            self.assertEqual(float(layer.count), count)
            self.assertAllClose(layer.moving_mean, mean, atol=1e-5)
            self.assertAllClose(layer.moving_variance, variance, atol=1e-5)
            expected = (x - mean) / np.sqrt(variance + 1e-6)
            self.assertAllClose(
                got, np.where(mask, expected, 0.0), atol=1e-4, rtol=1e-4
            )

        # training=False (and None) uses but does not update the statistics.
        x = rng.normal(size=(3, 4)).astype(np.float32)
        for training in (False, None):
            got = layer(x, training=training)
            self.assertEqual(float(layer.count), 3.0)
            self.assertAllClose(layer.moving_mean, mean, atol=1e-5)
            self.assertAllClose(
                got, (x - mean) / np.sqrt(variance + 1e-6), atol=1e-4
            )

    def test_running_statistics_with_training_tensor(self):
        layer = layers.AdvantageNormalization(momentum=0.5)
        x = tf.constant([[1.0, 3.0]])
        layer(x, training=tf.constant(False))
        self.assertEqual(float(layer.count), 0.0)
        layer(x, training=tf.constant(True))
        self.assertEqual(float(layer.count), 1.0)
        self.assertAllClose(layer.moving_mean, 2.0)

    @parameterized.named_parameters(
        ("epsilon_zero", {"epsilon": 0.0}, ValueError, "epsilon"),
        ("epsilon_string", {"epsilon": "1e-8"}, TypeError, "epsilon"),
        ("center_int", {"center": 1}, TypeError, "center"),
        ("momentum_one", {"momentum": 1.0}, ValueError, "momentum"),
        ("momentum_negative", {"momentum": -0.1}, ValueError, "momentum"),
        ("momentum_string", {"momentum": "0.9"}, TypeError, "momentum"),
        ("half_dtype", {"dtype": "mixed_bfloat16"}, ValueError, "dtype"),
    )
    def test_constructor_errors(self, kwargs, error, name):
        with self.assertRaisesRegex(error, f"`{name}.*Received: {name}"):
            layers.AdvantageNormalization(**kwargs)

    def test_call_errors(self):
        layer = layers.AdvantageNormalization()
        with self.assertRaisesRegex(TypeError, "Received: advantages="):
            layer(tf.constant([[1, 2]]))
        with self.assertRaisesRegex(ValueError, "Received: mask="):
            layer(tf.ones([2, 3]), mask=tf.ones([2, 4], tf.bool))
        with self.assertRaisesRegex(ValueError, "Received: mask="):
            layer(tf.ones([2, 3]), mask=tf.ones([1, 2, 3], tf.bool))
        with self.assertRaisesRegex(TypeError, "Received: mask="):
            layer(tf.ones([2, 3]), mask=tf.constant([["a"] * 3] * 2))

    def test_get_config_round_trip(self):
        layer = layers.AdvantageNormalization(
            epsilon=1e-5, center=False, momentum=0.95, name="norm"
        )
        config = layer.get_config()
        self.assertEqual(config["momentum"], 0.95)
        restored = layers.AdvantageNormalization.from_config(config)
        self.assertEqual(restored.get_config(), config)
        serialized = keras.layers.serialize(layer)
        self.assertEqual(
            serialized["registered_name"], "keras_gae>AdvantageNormalization"
        )
        deserialized = keras.layers.deserialize(serialized)
        x = tf.constant([[1.0, -2.0, 5.0]])
        self.assertAllClose(deserialized(x), layer(x))

    def test_keras_file_round_trip_inside_a_model(self):
        normalization = layers.AdvantageNormalization(
            epsilon=1e-6, momentum=0.9, name="norm"
        )
        model = keras.Sequential([keras.Input((4,)), normalization])
        rng = np.random.default_rng(4)
        model(rng.normal(3.0, 2.0, (5, 4)).astype(np.float32), training=True)
        path = os.path.join(self.get_temp_dir(), "normalization.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        restored = loaded.get_layer("norm")
        self.assertIsInstance(restored, layers.AdvantageNormalization)
        self.assertEqual(restored.get_config(), normalization.get_config())
        # The running statistics come back with the model.
        self.assertEqual(float(restored.count.numpy()), 1.0)
        for got, expected in zip(restored.weights, normalization.weights):
            self.assertAllClose(got.numpy(), expected.numpy())
        x = rng.normal(size=(2, 4)).astype(np.float32)
        self.assertAllClose(loaded(x), model(x))

    def test_fit_smoke(self):
        normalization = layers.AdvantageNormalization(momentum=0.9)
        model = keras.Sequential(
            [keras.Input((6,)), normalization, keras.layers.Dense(1)]
        )
        model.compile(optimizer="sgd", loss="mse")
        rng = np.random.default_rng(3)
        x = rng.normal(2.0, 5.0, (16, 6)).astype(np.float32)
        y = rng.normal(size=(16, 1)).astype(np.float32)
        history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        self.assertEqual(float(normalization.count), 4.0)
        model.predict(x, verbose=0)
        self.assertEqual(float(normalization.count), 4.0)


if __name__ == "__main__":
    tf.test.main()

"""FusedAdam against a float64 NumPy Adam and against Keras' Adam."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.optimizers import FusedAdam
from tests.distribute_utils import two_cpu_strategy


def _numpy_adam(weights, gradients, lr, beta_1, beta_2, epsilon):
    """Adam in float64 (Keras' epsilon placement); `(w, m, v)` per step."""
    w = np.array(weights, np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    trajectory = []
    for t, g in enumerate(gradients, start=1):
        g = np.asarray(g, np.float64)
        m = m + (1 - beta_1) * (g - m)
        v = v + (1 - beta_2) * (g * g - v)
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w = w - alpha * m / (np.sqrt(v) + epsilon)
        trajectory.append((w.copy(), m.copy(), v.copy()))
    return trajectory


def _gradients(steps, shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for _ in range(steps)]


def _compiled_apply(optimizer, variables):
    @tf.function
    def step(gradients):
        optimizer.apply(gradients, variables)

    return step


class FusedAdamTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("eager", "eager", "float32", 1e-5),
        ("graph", "graph", "float32", 1e-5),
        ("xla", "xla", "float32", 1e-5),
        ("float64", "graph", "float64", 1e-12),
    )
    def test_matches_numpy_reference(self, mode, dtype, tolerance):
        initial = np.random.default_rng(1).normal(size=(3, 4))
        gradients = [g.astype(dtype) for g in _gradients(6, (3, 4))]
        variable = keras.Variable(initial.astype(dtype), dtype=dtype)
        optimizer = FusedAdam(
            learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-3
        )
        optimizer.build([variable])

        def step(gradient):
            optimizer.apply([gradient], [variable])

        if mode != "eager":
            step = tf.function(step, jit_compile=mode == "xla")
        # Keras keeps the learning rate in a float32 variable.
        lr = float(np.float32(0.05))
        expected = _numpy_adam(initial, gradients, lr, 0.8, 0.95, 1e-3)
        for gradient, (w, m, v) in zip(gradients, expected):
            step(tf.constant(gradient))
            for actual, expected in (
                (variable, w),
                (optimizer._momentums[0], m),
                (optimizer._velocities[0], v),
            ):
                self.assertAllClose(
                    actual.numpy(), expected, rtol=tolerance, atol=tolerance
                )
        self.assertEqual(int(optimizer.iterations.numpy()), len(gradients))

    @parameterized.named_parameters(
        ("plain", {}),
        ("schedule", {"schedule": True}),
        ("clipnorm_weight_decay", {"clipnorm": 0.5, "weight_decay": 0.01}),
        ("amsgrad", {"amsgrad": True}),
        ("accumulation", {"gradient_accumulation_steps": 2}),
    )
    def test_matches_keras_adam(self, options):
        options = dict(options)
        if options.pop("schedule", False):
            schedules = keras.optimizers.schedules
            options["learning_rate"] = schedules.ExponentialDecay(
                0.1, decay_steps=2, decay_rate=0.5
            )
        else:
            options["learning_rate"] = 0.1
        initial = [
            np.random.default_rng(2).normal(size=(5, 2)).astype(np.float32),
            np.zeros(2, np.float32),
        ]
        results = []
        for cls in (keras.optimizers.Adam, FusedAdam):
            variables = [keras.Variable(x) for x in initial]
            optimizer = cls(**options)
            optimizer.build(variables)
            step = _compiled_apply(optimizer, variables)
            for a, b in zip(_gradients(5, (5, 2)), _gradients(5, (2,), 3)):
                step([tf.constant(a), tf.constant(b)])
            results.append(
                [v.numpy() for v in variables]
                + [v.numpy() for v in optimizer.variables]
            )
        self.assertLen(results[1], len(results[0]))
        for keras_value, fused_value in zip(*results):
            self.assertAllClose(fused_value, keras_value, rtol=1e-5, atol=1e-6)

    def test_inside_loss_scale_optimizer_matches_keras_adam(self):
        gradients = _gradients(4, (3,), seed=5)
        # An overflowing step, which the loss scale skips.
        gradients.insert(2, np.full((3,), np.inf, np.float32))
        results = []
        for cls in (keras.optimizers.Adam, FusedAdam):
            variable = keras.Variable(np.ones(3, np.float32))
            optimizer = keras.optimizers.LossScaleOptimizer(cls(0.1))
            optimizer.build([variable])
            step = _compiled_apply(optimizer, [variable])
            for gradient in gradients:
                scale = float(optimizer.scale_loss(1.0))
                step([tf.constant(gradient * scale)])
            results.append(variable.numpy())
        self.assertAllClose(results[1], results[0], rtol=1e-6, atol=1e-7)
        self.assertNotAllClose(results[1], np.ones(3))

    def test_fit_under_mirrored_strategy_matches_one_device(self):
        x = np.random.default_rng(4).normal(size=(32, 3)).astype(np.float32)
        y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)

        def train(strategy, cls):
            with strategy.scope():
                keras.utils.set_random_seed(0)
                model = keras.Sequential(
                    [
                        keras.Input((3,)),
                        keras.layers.Dense(4),
                        keras.layers.Dense(1),
                    ]
                )
                model.compile(optimizer=cls(0.05), loss="mse")
            model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
            return model.get_weights()

        one_device = train(tf.distribute.get_strategy(), keras.optimizers.Adam)
        mirrored = train(two_cpu_strategy(), FusedAdam)
        for expected, actual in zip(one_device, mirrored):
            self.assertAllClose(actual, expected, rtol=1e-5, atol=1e-6)

    def test_checkpoints_interchange_with_keras_adam(self):
        variable = keras.Variable(np.ones((2, 2), np.float32))
        adam = keras.optimizers.Adam(0.1)
        adam.build([variable])
        adam.apply([tf.constant([[1.0, -1.0], [0.5, 2.0]])], [variable])
        directory = tempfile.mkdtemp()
        path = tf.train.Checkpoint(optimizer=adam).save(
            os.path.join(directory, "ckpt")
        )
        fused = FusedAdam(0.1)
        fused.build([keras.Variable(np.zeros((2, 2), np.float32))])
        tf.train.Checkpoint(optimizer=fused).restore(path).assert_consumed()
        for expected, actual in zip(adam.variables, fused.variables):
            self.assertAllEqual(actual.numpy(), expected.numpy())

    def test_serialization_round_trip(self):
        optimizer = FusedAdam(learning_rate=0.01, beta_1=0.7, epsilon=1e-5)
        restored = keras.optimizers.deserialize(
            keras.optimizers.serialize(optimizer)
        )
        self.assertIsInstance(restored, FusedAdam)
        self.assertEqual(restored.get_config(), optimizer.get_config())

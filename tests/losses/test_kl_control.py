"""Tests for the KL coefficient controllers in keras_gae.losses."""

import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import losses
from tests import distribute_utils


def np_adaptive(init_kl_coef, target_kl, horizon, updates):
    """Ziegler et al. 2019 in float64: beta after each update."""
    beta = init_kl_coef
    history = []
    for kl, n_steps in updates:
        error = np.clip(kl / target_kl - 1.0, -0.2, 0.2)
        beta *= 1.0 + error * n_steps / horizon
        history.append(beta)
    return np.array(history)


# What every Keras layer's config holds besides its own arguments.
BASE_KEYS = ("trainable", "dtype")

# KL well above, slightly above, at, slightly below and far below target 6.
UPDATES = [(12.0, 256), (6.6, 512), (6.0, 128), (5.4, 256), (0.0, 1000)]


@keras.saving.register_keras_serializable(package="keras_gae_tests")
class PenalizedRegression(keras.Model):
    """A regression whose loss is beta * mse, beta from a KL controller.

    The mean squared error stands in for a measured KL: the train step
    feeds its all-reduced value to the controller, as the PPO models do.
    """

    def __init__(self, kl_controller, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)
        self.kl_controller = kl_controller

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            kl = tf.reduce_mean(tf.square(self(x, training=True) - y))
            loss = self.kl_controller.value * kl
            # Keras 3 divides mean losses by the number of replicas.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        context = tf.distribute.get_replica_context()
        kl = context.all_reduce(tf.distribute.ReduceOp.MEAN, kl)
        n_steps = context.all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(x)[0], tf.float32)
        )
        kl_coef = self.kl_controller.update(kl, n_steps)
        return {"kl": kl, "kl_coef": kl_coef}

    def get_config(self):
        config = super().get_config()
        config["kl_controller"] = keras.saving.serialize_keras_object(
            self.kl_controller
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["kl_controller"] = keras.saving.deserialize_keras_object(
            config["kl_controller"]
        )
        return cls(**config)


class AdaptiveKLControllerTest(tf.test.TestCase, parameterized.TestCase):
    def test_hand_computed_fixture(self):
        controller = losses.AdaptiveKLController(0.1, 6.0, 10_000)
        # KL = 12: error clip(12 / 6 - 1) = 0.2, n / horizon = 0.0256,
        # beta = 0.1 * (1 + 0.2 * 0.0256).
        self.assertAllClose(controller.update(12.0, 256), 0.100512)
        # KL = 3: error -0.5 clipped to -0.2.
        self.assertAllClose(
            controller.update(3.0, 256), 0.100512 * (1 - 0.2 * 0.0256)
        )

    @parameterized.named_parameters(("eager", False), ("compiled", True))
    def test_matches_reference(self, compiled):
        controller = losses.AdaptiveKLController(0.2, 6.0, 2_000)
        update = controller.update
        if compiled:
            update = tf.function(update, jit_compile=False)
        expected = np_adaptive(0.2, 6.0, 2_000, UPDATES)
        for (kl, n_steps), beta in zip(UPDATES, expected):
            returned = update(tf.constant(kl), tf.constant(n_steps))
            self.assertAllClose(returned, beta, rtol=1e-6)
            self.assertAllClose(controller.value, beta, rtol=1e-6)
        self.assertLess(expected[-1], expected[0])

    def test_update_in_a_compiled_train_step(self):
        controller = losses.AdaptiveKLController(0.1, 1.0, 100)
        weight = tf.Variable(1.0)

        @tf.function(jit_compile=True)
        def step():
            with tf.GradientTape() as tape:
                kl = tf.square(weight)
                loss = controller.value * kl
            weight.assign_sub(0.1 * tape.gradient(loss, weight))
            return controller.update(kl, 50)

        first = step()
        # kl = 1 = target: no change; then kl < target: beta shrinks.
        self.assertAllClose(first, 0.1)
        self.assertLess(step().numpy(), 0.1)

    @parameterized.named_parameters(
        ("eager", None), ("function", False), ("xla", True)
    )
    def test_nan_kl_or_bad_n_steps_never_reach_beta(self, jit_compile):
        # beta is a saved weight: a NaN KL (a refused training step) or a
        # NaN, Inf or negative step count must not make it NaN or move it
        # the wrong way. The NaN KL leaves beta as it was; the step count
        # is an error naming it eagerly, and leaves beta in a compiled step.
        controller = losses.AdaptiveKLController(0.1, 6.0, 100)
        update = controller.update
        if jit_compile is not None:
            update = tf.function(update, jit_compile=jit_compile)
        cases = [
            (np.nan, 10.0, "current_kl"),
            (1.0, np.nan, "n_steps"),
            (1.0, np.inf, "n_steps"),
            (12.0, -5.0, "n_steps"),
        ]
        for current_kl, n_steps, name in cases:
            args = (tf.constant(current_kl), tf.constant(n_steps))
            if jit_compile is None and name == "n_steps":
                with self.assertRaisesRegex(
                    ValueError, f"`{name}`.*Received: {name}="
                ):
                    update(*args)
            else:
                self.assertAllClose(update(*args), 0.1)
            self.assertEqual(controller.value.numpy(), np.float32(0.1))
        # An infinite KL is above any target: the largest increase.
        self.assertAllClose(update(np.inf, 10.0), 0.1 * (1 + 0.2 * 0.1))

    def test_coefficient_is_a_non_trainable_variable(self):
        controller = losses.AdaptiveKLController(0.1, 6.0, 100)
        self.assertIsInstance(controller.coef, keras.Variable)
        self.assertEqual(controller.coef.dtype, "float32")
        self.assertFalse(controller.coef.trainable)
        self.assertEmpty(controller.trainable_variables)
        self.assertEqual(list(controller.variables), [controller.coef])

    def test_checkpoint_round_trip(self):
        controller = losses.AdaptiveKLController(0.1, 6.0, 100)
        controller.update(12.0, 50)
        saved_value = controller.value.numpy()
        checkpoint = tf.train.Checkpoint(controller=controller)
        path = checkpoint.save(os.path.join(self.get_temp_dir(), "ckpt"))
        controller.update(12.0, 50)
        self.assertNotAllClose(controller.value, saved_value)
        fresh = losses.AdaptiveKLController(0.1, 6.0, 100)
        tf.train.Checkpoint(controller=fresh).restore(path).assert_consumed()
        self.assertAllClose(fresh.value, saved_value)

    def test_saved_with_a_keras_model_holding_it(self):
        model = PenalizedRegression(losses.AdaptiveKLController(0.1, 6.0, 100))
        model(np.zeros((1, 2), np.float32))
        model.kl_controller.update(12.0, 50)
        saved_value = model.kl_controller.value.numpy()
        # The coefficient is one of the model's weights.
        self.assertIn(model.kl_controller.coef, model.non_trainable_weights)
        path = os.path.join(self.get_temp_dir(), "model.weights.h5")
        model.save_weights(path)
        model.kl_controller.coef.assign(5.0)
        model.load_weights(path)
        self.assertAllClose(model.kl_controller.value, saved_value)
        # And it is in the model's tf.train.Checkpoint.
        checkpoint = tf.train.Checkpoint(model=model)
        saved = checkpoint.save(os.path.join(self.get_temp_dir(), "ckpt"))
        model.kl_controller.coef.assign(5.0)
        checkpoint.restore(saved)
        self.assertAllClose(model.kl_controller.value, saved_value)

    def test_update_under_mirrored_strategy(self):
        strategy = distribute_utils.two_cpu_strategy()
        with strategy.scope():
            controller = losses.AdaptiveKLController(0.2, 6.0, 2_000)

        @tf.function
        def step(kl, n_steps):
            return strategy.run(controller.update, args=(kl, n_steps))

        expected = np_adaptive(0.2, 6.0, 2_000, UPDATES)
        for (kl, n_steps), beta in zip(UPDATES, expected):
            per_replica = step(tf.constant(kl), tf.constant(n_steps))
            for value in strategy.experimental_local_results(per_replica):
                self.assertAllClose(value, beta, rtol=1e-6)
        copies = strategy.experimental_local_results(controller.coef.value)
        self.assertLen(copies, strategy.num_replicas_in_sync)
        for value in copies:
            self.assertAllClose(value, expected[-1], rtol=1e-6)

    def test_keras_file_round_trip_inside_a_model(self):
        model = PenalizedRegression(losses.AdaptiveKLController(0.1, 6.0, 100))
        x = np.ones((2, 2), np.float32)
        model(x)
        model.kl_controller.update(12.0, 50)
        saved_value = model.kl_controller.value.numpy()
        path = os.path.join(self.get_temp_dir(), "penalized.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        self.assertIsInstance(loaded.kl_controller, losses.AdaptiveKLController)
        self.assertEqual(
            loaded.kl_controller.get_config(), model.kl_controller.get_config()
        )
        # The updated beta, not the initial one, comes back from the file.
        self.assertAllClose(loaded.kl_controller.value, saved_value)
        self.assertNotAllClose(saved_value, 0.1)
        self.assertAllClose(loaded(x), model(x))

    @parameterized.named_parameters(("one_device", False), ("mirrored", True))
    def test_fit_smoke(self, mirrored):
        strategy = (
            distribute_utils.two_cpu_strategy()
            if mirrored
            else tf.distribute.get_strategy()
        )
        with strategy.scope():
            model = PenalizedRegression(
                losses.AdaptiveKLController(0.1, 0.01, 16)
            )
            model.compile(optimizer=keras.optimizers.SGD(0.01))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 2)).astype(np.float32)
        y = rng.normal(size=(16, 1)).astype(np.float32)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
        self.assertTrue(np.all(np.isfinite(history["kl"])))
        # The KL stays far above its target: beta grows by the full 20% of
        # n_steps / horizon = 8 / 16 on each of the 4 steps.
        self.assertAllClose(history["kl_coef"][-1], 0.1 * 1.1**4, rtol=1e-5)
        self.assertAllClose(model.kl_controller.value, 0.1 * 1.1**4, rtol=1e-5)
        self.assertIn(model.kl_controller.coef, model.non_trainable_weights)
        for copy in strategy.experimental_local_results(
            model.kl_controller.coef.value
        ):
            self.assertAllClose(copy, 0.1 * 1.1**4, rtol=1e-5)

    def test_config_round_trip(self):
        controller = losses.AdaptiveKLController(0.05, 3.0, 500, name="kl")
        config = controller.get_config()
        self.assertEqual(
            {key: config[key] for key in config if key not in BASE_KEYS},
            {
                "init_kl_coef": 0.05,
                "target_kl": 3.0,
                "horizon": 500.0,
                "name": "kl",
            },
        )
        restored = losses.AdaptiveKLController.from_config(config)
        self.assertEqual(restored.get_config(), config)
        self.assertAllClose(restored.value, 0.05)
        serialized = keras.saving.serialize_keras_object(controller)
        self.assertEqual(
            serialized["registered_name"], "keras_gae>AdaptiveKLController"
        )
        restored = keras.saving.deserialize_keras_object(serialized)
        self.assertIsInstance(restored, losses.AdaptiveKLController)
        self.assertEqual(restored.get_config(), config)

    @parameterized.named_parameters(
        ("init_zero", {"init_kl_coef": 0.0}, "init_kl_coef", ValueError),
        ("init_negative", {"init_kl_coef": -1.0}, "init_kl_coef", ValueError),
        ("target", {"target_kl": 0.0}, "target_kl", ValueError),
        ("horizon", {"horizon": -10}, "horizon", ValueError),
        ("nan", {"target_kl": float("nan")}, "target_kl", ValueError),
        ("string", {"target_kl": "6"}, "target_kl", TypeError),
        ("bool", {"horizon": True}, "horizon", TypeError),
    )
    def test_bad_arguments(self, override, name, error):
        kwargs = {"init_kl_coef": 0.1, "target_kl": 6.0, "horizon": 100}
        kwargs.update(override)
        with self.assertRaisesRegex(error, f"`{name}`.*Received: {name}="):
            losses.AdaptiveKLController(**kwargs)


class FixedKLControllerTest(tf.test.TestCase):
    def test_update_leaves_the_coefficient(self):
        controller = losses.FixedKLController(0.3)
        for kl, n_steps in UPDATES:
            self.assertAllClose(controller.update(kl, n_steps), 0.3)
        compiled = tf.function(controller.update)
        self.assertAllClose(compiled(tf.constant(50.0), tf.constant(7)), 0.3)
        self.assertAllClose(controller.value, 0.3)
        self.assertFalse(controller.coef.trainable)

    def test_zero_is_allowed(self):
        self.assertAllClose(losses.FixedKLController(0.0).value, 0.0)

    def test_config_round_trip(self):
        controller = losses.FixedKLController(0.3)
        config = controller.get_config()
        self.assertEqual(
            {key: config[key] for key in config if key not in BASE_KEYS},
            {"kl_coef": 0.3, "name": "fixed_kl_controller"},
        )
        restored = losses.FixedKLController.from_config(config)
        self.assertEqual(restored.get_config(), config)
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(controller)
        )
        self.assertIsInstance(restored, losses.FixedKLController)
        self.assertAllClose(restored.value, 0.3)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError, "`kl_coef`.*Received: kl_coef="
        ):
            losses.FixedKLController(-0.1)
        with self.assertRaisesRegex(TypeError, "`kl_coef`"):
            losses.FixedKLController(tf.constant(0.1))

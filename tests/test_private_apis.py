"""The private TensorFlow and Keras APIs keras_gae uses still behave.

keras_gae/_src/private_apis.py holds every such use; each test here names
the attribute in its failure message, so that a TensorFlow or Keras
release that moves or changes one fails here first, loudly.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from keras_gae._src import private_apis
from tests.distribute_utils import two_cpu_strategy


class PrivateApisTest(tf.test.TestCase):
    def test_strategy_supports_no_merge_call(self):
        name = "tf.__internal__.distribute.strategy_supports_no_merge_call"
        self.assertTrue(
            private_apis.strategy_supports_no_merge_call(),
            f"{name}() without a strategy should be True.",
        )
        strategy = two_cpu_strategy()
        with strategy.scope():
            self.assertFalse(
                private_apis.strategy_supports_no_merge_call(),
                f"{name}() under a MirroredStrategy should be False.",
            )
        in_replica = strategy.run(
            lambda: tf.constant(private_apis.strategy_supports_no_merge_call())
        )
        for value in strategy.experimental_local_results(in_replica):
            self.assertFalse(
                bool(value),
                f"{name}() in a MirroredStrategy replica should be False.",
            )

    def test_flatten_layers_walks_custom_layers(self):
        class Block(keras.layers.Layer):
            def __init__(self):
                super().__init__()
                self.inner = keras.layers.Dense(2, name="inner")

            def call(self, x):
                return self.inner(x)

        block = Block()
        model = keras.Sequential([keras.Input((3,)), block])
        layers = private_apis.flatten_layers(model)
        message = "keras.layers.Layer._flatten_layers changed its walk."
        self.assertIs(layers[0], model, message)
        self.assertTrue(any(x is block for x in layers), message)
        self.assertTrue(any(x is block.inner for x in layers), message)
        self.assertEqual(
            len(layers), len({id(x) for x in layers}), "Repeated layers."
        )

    def test_adam_slots_are_the_moments(self):
        beta_1, beta_2 = 0.9, 0.99
        optimizer = keras.optimizers.Adam(0.1, beta_1=beta_1, beta_2=beta_2)
        first = keras.Variable(np.ones(3, np.float32))
        second = keras.Variable(np.ones(2, np.float32))
        gradients = [
            np.array([1.0, 2.0, 3.0], np.float32),
            np.array([-1.0, 0.5], np.float32),
        ]
        optimizer.apply(gradients, [first, second])
        for variable, gradient in zip((first, second), gradients):
            momentum, velocity = private_apis.adam_slots(optimizer, variable)
            message = (
                "Adam's _get_variable_index/_momentums/_velocities no longer "
                "give a variable's moments."
            )
            self.assertAllClose(
                np.array(momentum), (1 - beta_1) * gradient, msg=message
            )
            self.assertAllClose(
                np.array(velocity), (1 - beta_2) * gradient**2, msg=message
            )

    def test_overridden_hooks_keep_their_names_and_parameters(self):
        for cls, name, parameters in private_apis.OVERRIDDEN_HOOKS:
            qualified = f"{cls.__module__}.{cls.__name__}.{name}"
            hook = getattr(cls, name, None)
            self.assertTrue(
                callable(hook), f"{qualified} is gone: keras_gae overrides it."
            )
            self.assertEqual(
                tuple(inspect.signature(hook).parameters),
                parameters,
                f"{qualified} changed its parameters.",
            )

    def test_model_keeps_its_distribute_strategy_attribute(self):
        # The symbolic-build hook reads it, as Keras' own version does.
        model = keras.Sequential([keras.layers.Dense(1)])
        self.assertIsNone(
            getattr(model, "_distribute_strategy", "missing"),
            "keras.Model._distribute_strategy is gone or not None outside "
            "a strategy scope.",
        )
        strategy = two_cpu_strategy()
        with strategy.scope():
            model = keras.Sequential([keras.layers.Dense(1)])
        self.assertIs(
            getattr(model, "_distribute_strategy", None),
            strategy,
            "keras.Model._distribute_strategy no longer records the scope's "
            "strategy.",
        )

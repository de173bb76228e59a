"""Rollout batches the training step refuses: actions outside the action
space and flags that are not 0/1, with and without XLA."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.ops import generalized_advantage_estimation
from tests.models.one_rollout import fit
from tests.models.one_rollout import state_of
from tests.models.test_ppo_model import ACTIONS
from tests.models.test_ppo_model import linear_model
from tests.models.test_ppo_model import random_batch


class ActionRangeTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(jit_compile=(False, True), action=(ACTIONS, -1))
    def test_action_outside_the_space_is_refused(self, jit_compile, action):
        batch = random_batch(seed=3)
        batch["action"][1, 2] = action
        batch["mask"][1, 2] = True
        model = linear_model(seed=3)
        model.compile(
            optimizer=keras.optimizers.Adam(0.01), jit_compile=jit_compile
        )
        model.optimizer.build(model.trainable_variables)
        before = state_of(model)
        with self.assertRaisesRegex(
            ValueError,
            rf'batch\["action"\].*\[0, {ACTIONS}\) \(num_actions\).*'
            r"Received: .* at 1 steps",
        ):
            fit(model, batch)
        for got, want in zip(state_of(model), before):
            self.assertAllEqual(got, want)

    def test_action_outside_the_space_in_a_masked_row_is_ignored(self):
        # Padding rows may hold any action; they do not enter the loss.
        batch = random_batch(seed=3)
        reference = {key: np.array(value) for key, value in batch.items()}
        batch["mask"][1, 2] = False
        reference["mask"][1, 2] = False
        batch["action"][1, 2] = 99
        reference["action"][1, 2] = 0
        results = []
        for data in (batch, reference):
            model = linear_model(seed=3)
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            logs = fit(model, data)
            results.append((state_of(model), logs["loss"]))
        for got, want in zip(results[0][0], results[1][0]):
            self.assertAllClose(got, want)
        self.assertAllClose(results[0][1], results[1][1])


class FlagValuesTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("terminated", "truncated", "mask")
    def test_gae_refuses_non_binary_flags(self, key):
        rewards = np.ones((3, 2), np.float32)
        flags = np.zeros((3, 2), np.float32)
        flags[1, 0] = 0.5
        kwargs = {key: flags}
        with self.assertRaisesRegex(
            ValueError, f"`{key}` must hold only 0 and 1.*0.5"
        ):
            generalized_advantage_estimation(
                rewards, rewards, np.zeros(2, np.float32), **kwargs
            )
        # Inside a graph: an assertion naming the flag.
        gae = tf.function(
            lambda flags: (
                generalized_advantage_estimation(
                    rewards, rewards, np.zeros(2, np.float32), **{key: flags}
                ).advantages
            )
        )
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, f"`{key}` must hold only 0 and 1"
        ):
            gae(tf.constant(flags))
        # 0/1 floats stay accepted and read as bools.
        flags[1, 0] = 1.0
        self.assertAllClose(
            gae(tf.constant(flags)),
            generalized_advantage_estimation(
                rewards, rewards, np.zeros(2, np.float32), **{key: flags == 1}
            ).advantages,
        )

    @parameterized.parameters(
        ("mask", False), ("terminated", False), ("mask", True)
    )
    def test_training_refuses_non_binary_flags(self, key, jit_compile):
        batch = random_batch(seed=3)
        weights = batch[key].astype(np.float32)
        weights[0, 1] = 0.5
        batch[key] = weights
        model = linear_model(seed=3)
        model.compile(
            optimizer=keras.optimizers.Adam(0.01), jit_compile=jit_compile
        )
        model.optimizer.build(model.trainable_variables)
        before = state_of(model)
        # Graph mode: the assertion; under XLA (which drops assertions) the
        # step's own count.
        error = ValueError if jit_compile else tf.errors.InvalidArgumentError
        with self.assertRaisesRegex(error, "0 and 1"):
            fit(model, batch)
        for got, want in zip(state_of(model), before):
            self.assertAllEqual(got, want)

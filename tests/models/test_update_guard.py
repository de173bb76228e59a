"""The guarded update: no non-finite weight or optimizer state is ever kept,
a batch without valid steps moves nothing, and a learning rate that is
negative or not finite is refused."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.models import NonFiniteLossError
from tests import distribute_utils
from tests.models.one_rollout import fit
from tests.models.one_rollout import state_of
from tests.models.test_ppo_model import linear_model
from tests.models.test_ppo_model import random_batch


class UpdateGuardTest(tf.test.TestCase, parameterized.TestCase):
    def assert_state_equal(self, got, want):
        self.assertEqual(len(got), len(want))
        for a, b in zip(got, want):
            self.assertAllEqual(a, b)

    @parameterized.parameters(False, True)
    def test_overflowing_weights_are_undone(self, jit_compile):
        # A finite loss and finite gradients, but a learning rate so large
        # that the new weights overflow to Inf.
        model = linear_model(seed=3)
        model.compile(
            optimizer=keras.optimizers.SGD(3e38), jit_compile=jit_compile
        )
        model.optimizer.build(model.trainable_variables)
        before = state_of(model)
        with self.assertRaisesRegex(NonFiniteLossError, "after 0 optimizer"):
            fit(model, random_batch(seed=4))
        self.assert_state_equal(state_of(model), before)
        self.assertEqual(int(model.optimizer.iterations), 0)

    def test_overflowing_optimizer_state_is_undone(self):
        # A finite loss (about 1e34) whose gradients are finite but whose
        # squares (Adam's second moment) are not: the weights would stay
        # finite while the state turns Inf for good.
        batch = random_batch(seed=5)
        batch["observation"] = batch["observation"] * 1e3
        batch["reward"] = np.full_like(batch["reward"], 1e17)
        model = linear_model(seed=3)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.optimizer.build(model.trainable_variables)
        before = state_of(model)
        with self.assertRaises(NonFiniteLossError):
            fit(model, batch)
        self.assert_state_equal(state_of(model), before)

    def test_overflow_is_undone_across_replicas(self):
        with distribute_utils.two_cpu_strategy().scope():
            model = linear_model(seed=3)
            model.compile(optimizer=keras.optimizers.SGD(3e38))
            model.optimizer.build(model.trainable_variables)
        before = state_of(model)
        with self.assertRaises(NonFiniteLossError):
            fit(model, random_batch(seed=4, rows=4))
        self.assert_state_equal(state_of(model), before)

    @parameterized.parameters(np.nan, np.inf, -1e-3)
    def test_bad_learning_rate_is_refused(self, learning_rate):
        model = linear_model(seed=3)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        before = [np.array(v) for v in model.trainable_variables]
        with self.assertRaisesRegex(
            ValueError, "finite and >= 0.*Received: learning_rate="
        ):
            fit(model, random_batch(seed=4))
        for got, want in zip(model.trainable_variables, before):
            self.assertAllEqual(got, want)

    def test_learning_rate_set_between_fits_is_checked(self):
        model = linear_model(seed=3)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        fit(model, random_batch(seed=4))
        model.optimizer.learning_rate = float("nan")
        with self.assertRaisesRegex(ValueError, "learning_rate=nan"):
            model.train_on_batch(random_batch(seed=4))

    @parameterized.parameters(False, True)
    def test_all_masked_batch_moves_nothing(self, jit_compile):
        # Momentum from a first, valid step would move the weights on a
        # second step whose gradients are all zero.
        model = linear_model(seed=3, entropy_coef=0.01)
        model.compile(
            optimizer=keras.optimizers.Adam(0.05), jit_compile=jit_compile
        )
        fit(model, random_batch(seed=4))
        before = state_of(model)
        masked = random_batch(seed=6)
        masked["mask"] = np.zeros_like(masked["mask"])
        fit(model, masked)
        self.assert_state_equal(state_of(model), before)

    def test_all_masked_replica_still_trains_with_the_other(self):
        # One replica without valid steps: the global batch has some, so
        # the update is applied (the same as on one device).
        batch = random_batch(seed=7, rows=4)
        batch["mask"][2:] = False
        results = []
        for strategy in (
            tf.distribute.get_strategy(),
            distribute_utils.two_cpu_strategy(),
        ):
            with strategy.scope():
                model = linear_model(seed=3)
                model.compile(optimizer=keras.optimizers.SGD(0.5))
            fit(model, batch)
            results.append([np.array(v) for v in model.trainable_variables])
        for single, mirrored in zip(*results):
            self.assertAllClose(single, mirrored, atol=1e-6)
        self.assertNotAllClose(
            results[0][0], linear_model(seed=3).trainable_variables[0]
        )

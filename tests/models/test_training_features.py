"""Training features of the models: compile options, callbacks, mixed
precision, MirroredStrategy, the non-finite guard, and the datasets."""

import glob
import importlib.util
import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.layers import CategoricalPolicyHead
from keras_gae.models import A2CModel
from keras_gae.models import NonFiniteLossError
from keras_gae.models import PPOModel
from keras_gae.models import minibatch_dataset
from keras_gae.models import rollout_dataset
from keras_gae.models import step_dataset
from tests import distribute_utils
from tests.models.test_ppo_model import ACTIONS
from tests.models.test_ppo_model import OBS
from tests.models.test_ppo_model import linear_model
from tests.models.test_ppo_model import network_weights
from tests.models.test_ppo_model import random_batch

OPTIONS = dict(max_grad_norm=0.5, value_clip=0.3, entropy_coef=0.01)


def history_of(model, dataset, epochs=1, **fit_kwargs):
    fit_kwargs.setdefault("shuffle", False)  # datasets shuffle themselves
    return model.fit(dataset, epochs=epochs, verbose=0, **fit_kwargs).history


def assert_weights_close(test, got, want, atol=1e-6):
    test.assertEqual(len(got), len(want))
    for a, b in zip(got, want):
        test.assertAllClose(a, b, atol=atol, rtol=0)


class CompileOptionsTest(tf.test.TestCase, parameterized.TestCase):
    def test_jit_compile_gives_the_same_update(self):
        model_class = PPOModel
        batch = random_batch(seed=10, rows=4)
        weights, histories = [], []
        for jit_compile in (False, True):
            model = linear_model(model_class, seed=5, **OPTIONS)
            model.compile(
                optimizer=keras.optimizers.Adam(0.05),
                jit_compile=jit_compile,
            )
            dataset = rollout_dataset(batch, num_minibatches=2, seed=1)
            histories.append(history_of(model, dataset, epochs=2))
            weights.append(network_weights(model))
        assert_weights_close(self, weights[1], weights[0], atol=1e-5)
        for name in histories[0]:
            self.assertAllClose(
                histories[1][name], histories[0][name], atol=1e-5
            )
        # The update did something.
        self.assertNotAllClose(
            weights[0][0], linear_model(model_class, seed=5).get_weights()[0]
        )

    def test_steps_per_execution(self):
        batch = random_batch(seed=11, rows=6)
        weights, histories = [], []
        for steps in (1, 3):
            model = linear_model(seed=6, **OPTIONS)
            model.compile(
                optimizer=keras.optimizers.Adam(0.05),
                steps_per_execution=steps,
            )
            dataset = rollout_dataset(batch, num_minibatches=3, shuffle=False)
            histories.append(history_of(model, dataset, epochs=2))
            weights.append(network_weights(model))
            self.assertEqual(int(model.optimizer.iterations), 6)
        assert_weights_close(self, weights[1], weights[0])
        for name in histories[0]:
            self.assertAllClose(histories[1][name], histories[0][name])

    def test_the_train_step_is_traced_once(self):
        # The optimizer's slot variables are made before the first trace:
        # a step that made them would be traced twice (about twice the
        # first fit's time for a keras-hub model).
        model = linear_model(seed=8)
        model.compile(optimizer=keras.optimizers.Adam(0.05))
        self.assertFalse(model.optimizer.built)
        traces = []
        train_step = model.train_step
        model.train_step = lambda data: traces.append(1) or train_step(data)
        batch = random_batch(seed=12, rows=4)
        history_of(model, rollout_dataset(batch, num_minibatches=2), 2)
        self.assertLen(traces, 1)
        self.assertEqual(int(model.optimizer.iterations), 4)

    def test_metrics_reset_every_epoch(self):
        batch = random_batch(seed=12, rows=4)
        model = linear_model()
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        history_of(model, rollout_dataset(batch, num_minibatches=2), epochs=3)
        trackers = {metric.name: metric for metric in model.metrics}
        # Each step is weighted by its valid steps: one epoch's worth (the
        # last of the totals is the total weight).
        self.assertEqual(
            float(trackers["rollout_metrics"].totals[-1]), batch["mask"].sum()
        )

    def test_callbacks(self):
        batch = random_batch(seed=13, rows=4)
        model = linear_model(**OPTIONS)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        directory = self.get_temp_dir()
        checkpoint_path = os.path.join(directory, "{epoch:02d}.weights.h5")
        callbacks = [
            keras.callbacks.ModelCheckpoint(
                checkpoint_path, save_weights_only=True
            ),
            # No improvement can be this large: training stops after the
            # second epoch.
            keras.callbacks.EarlyStopping(
                monitor="loss", min_delta=1e9, patience=0
            ),
            keras.callbacks.TerminateOnNaN(),
        ]
        history = history_of(
            model,
            rollout_dataset(batch, num_minibatches=2, seed=0),
            epochs=5,
            callbacks=callbacks,
        )
        self.assertLen(history["loss"], 2)
        restored = linear_model(seed=99, **OPTIONS)
        restored.load_weights(checkpoint_path.format(epoch=2))
        assert_weights_close(
            self, network_weights(restored), network_weights(model), atol=0
        )

    def test_tensorboard_callback(self):
        # Keras writes the epoch scalars with tf.summary.scalar, whose
        # implementation ships in the tensorboard package.
        self.assertIsNotNone(
            importlib.util.find_spec("tensorboard"),
            "keras.callbacks.TensorBoard needs the tensorboard package; "
            "install the test requirements.",
        )
        model = linear_model()
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        directory = os.path.join(self.get_temp_dir(), "logs")
        history_of(
            model,
            rollout_dataset(random_batch(seed=13, rows=4), num_minibatches=2),
            epochs=2,
            callbacks=[keras.callbacks.TensorBoard(directory)],
        )
        events = glob.glob(os.path.join(directory, "train", "events*"))
        self.assertNotEmpty(events)
        tags = set()
        for event in tf.compat.v1.train.summary_iterator(events[0]):
            tags.update(value.tag for value in event.summary.value)
        self.assertIn("epoch_loss", tags)
        self.assertIn("epoch_clip_fraction", tags)


class MixedPrecisionTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        keras.mixed_precision.set_global_policy("mixed_float16")

    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    def test_mixed_float16_smoke(self):
        self.check_mixed_precision_training("float16")

    def test_mixed_bfloat16_smoke(self):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        self.check_mixed_precision_training("bfloat16")

    def check_mixed_precision_training(self, compute_dtype):
        batch = random_batch(seed=14, rows=4)
        model = linear_model(**OPTIONS)
        self.assertEqual(model.actor.layers[0].compute_dtype, compute_dtype)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        # Keras scales the loss for float16 only.
        self.assertEqual(
            isinstance(
                model.optimizer, keras.mixed_precision.LossScaleOptimizer
            ),
            compute_dtype == "float16",
        )
        before = network_weights(model)
        history = history_of(
            model, rollout_dataset(batch, num_minibatches=2), epochs=2
        )
        for values in history.values():
            self.assertTrue(np.all(np.isfinite(values)))
        for weight in model.trainable_weights:
            self.assertEqual(weight.dtype, tf.float32)
        self.assertNotAllClose(network_weights(model)[0], before[0])
        params, values = model(batch["observation"][:, 0])
        self.assertEqual(params.dtype, tf.float32)
        self.assertEqual(values.dtype, tf.float32)
        advantages, _ = model.compute_advantages(batch)
        self.assertEqual(advantages.dtype, tf.float32)

    def test_nonfinite_guard_with_loss_scaling(self):
        batch = random_batch(seed=15, rows=4)
        batch["reward"][3, 1] = np.nan
        batch["mask"][3, 1] = True
        model = linear_model()
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        before = network_weights(model)
        with self.assertRaises(NonFiniteLossError):
            history_of(
                model, rollout_dataset(batch, num_minibatches=1), epochs=1
            )
        assert_weights_close(self, network_weights(model), before, atol=0)


class MirroredStrategyTest(tf.test.TestCase, parameterized.TestCase):
    def test_matches_one_device_on_the_global_batch(self):
        model_class = PPOModel
        devices = tf.config.list_logical_devices("CPU")
        self.assertGreaterEqual(len(devices), 2)
        batch = random_batch(seed=16, rows=4)
        # Uneven valid steps per replica: the loss must still weight every
        # valid step of the global batch equally.
        batch["mask"][:2] = True
        batch["mask"][2:, 1:] = False
        results = []
        for strategy in (
            tf.distribute.get_strategy(),
            distribute_utils.two_cpu_strategy(),
        ):
            with strategy.scope():
                model = linear_model(model_class, seed=7, **OPTIONS)
                model.compile(optimizer=keras.optimizers.SGD(0.5))
            self.assertEqual(
                model.distribute_strategy.num_replicas_in_sync,
                1 if not results else 2,
            )
            history = history_of(
                model, rollout_dataset(batch, num_minibatches=1, shuffle=False)
            )
            results.append((network_weights(model), history))
        (single, single_logs), (mirrored, mirrored_logs) = results
        assert_weights_close(self, mirrored, single, atol=1e-6)
        for name in single_logs:
            self.assertAllClose(
                mirrored_logs[name], single_logs[name], atol=1e-5
            )

    def test_regularization_matches_one_device(self):
        # Each replica adds its share of the regularization losses; summed
        # over the two replicas they must count once, as on one device.
        batch = random_batch(seed=18, rows=4)
        results = []
        for strategy in (
            tf.distribute.get_strategy(),
            distribute_utils.two_cpu_strategy(),
        ):
            with strategy.scope():
                keras.utils.set_random_seed(5)
                actor = keras.Sequential(
                    [
                        keras.Input((OBS,)),
                        keras.layers.Dense(
                            4,
                            activation="tanh",
                            kernel_initializer=keras.initializers.RandomNormal(
                                stddev=0.5, seed=3
                            ),
                            kernel_regularizer=keras.regularizers.L2(0.5),
                        ),
                        CategoricalPolicyHead(ACTIONS),
                    ]
                )
                critic = keras.Sequential(
                    [
                        keras.Input((OBS,)),
                        keras.layers.Dense(
                            1,
                            kernel_initializer=keras.initializers.RandomNormal(
                                stddev=0.5, seed=4
                            ),
                            kernel_regularizer=keras.regularizers.L1(0.3),
                        ),
                    ]
                )
                model = PPOModel(actor, critic, **OPTIONS)
                model(tf.zeros((1, OBS)))
                model.compile(optimizer=keras.optimizers.SGD(0.5))
            self.assertGreater(len(model.losses), 0)
            history = history_of(
                model, rollout_dataset(batch, num_minibatches=1, shuffle=False)
            )
            results.append((network_weights(model), history))
        (single, single_logs), (mirrored, mirrored_logs) = results
        assert_weights_close(self, mirrored, single, atol=1e-6)
        self.assertAllClose(
            mirrored_logs["loss"], single_logs["loss"], atol=1e-5
        )

    def test_nonfinite_guard_across_replicas(self):
        # Only the second replica's rows are broken; neither replica may
        # apply the update.
        batch = random_batch(seed=21, rows=4)
        batch["reward"][3, 0] = np.nan
        batch["mask"][3, 0] = True
        with distribute_utils.two_cpu_strategy().scope():
            model = linear_model(seed=7, **OPTIONS)
            model.compile(optimizer=keras.optimizers.Adam(0.05))
        before = network_weights(model)
        with self.assertRaises(NonFiniteLossError):
            history_of(
                model, rollout_dataset(batch, num_minibatches=1, shuffle=False)
            )
        assert_weights_close(self, network_weights(model), before, atol=0)


class NonFiniteGuardTest(tf.test.TestCase, parameterized.TestCase):
    """A NaN or Inf loss stops fit and leaves the pre-step weights."""

    def clean_and_broken(self, corruption):
        """6 rows, 3 minibatches of 2 rows; the second minibatch is broken."""
        batch = random_batch(seed=17, rows=6)
        broken = {key: np.array(value) for key, value in batch.items()}
        if corruption == "nan_reward":
            broken["reward"][2, 3] = np.nan
            broken["mask"][2, 3] = True
        else:
            broken["observation"][3, 0, 1] = np.inf
            broken["mask"][3, 0] = True
        return batch, broken

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The weights after the first (clean) minibatch alone.
        clean = random_batch(seed=17, rows=6)
        reference = linear_model(seed=8, **OPTIONS)
        reference.compile(optimizer=keras.optimizers.Adam(0.05))
        first_rows = {key: value[:2] for key, value in clean.items()}
        history_of(reference, rollout_dataset(first_rows, num_minibatches=1))
        cls.expected = network_weights(reference)

    @parameterized.parameters(
        (False, 1, "nan_reward"),
        (True, 3, "nan_reward"),
        (False, 3, "inf_observation"),
        (True, 1, "inf_observation"),
    )
    def test_weights_are_those_before_the_failing_step(
        self, jit_compile, steps_per_execution, corruption
    ):
        _, broken = self.clean_and_broken(corruption)

        model = linear_model(seed=8, **OPTIONS)
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )
        checkpoint = os.path.join(self.get_temp_dir(), "last.weights.h5")
        save_every_batch = keras.callbacks.ModelCheckpoint(
            checkpoint, save_weights_only=True, save_freq=1
        )
        with self.assertRaisesRegex(
            NonFiniteLossError, "NaN or Inf.*after 1 optimizer updates"
        ):
            history_of(
                model,
                rollout_dataset(broken, num_minibatches=3, shuffle=False),
                epochs=2,
                callbacks=[save_every_batch],
            )
        # Only the first minibatch was applied, even when the third one
        # (clean) ran in the same execution as the broken second one.
        self.assertEqual(int(model.optimizer.iterations), 1)
        expected = self.expected
        assert_weights_close(self, network_weights(model), expected)
        if steps_per_execution == 1:
            saved = linear_model(seed=99, **OPTIONS)
            saved.load_weights(checkpoint)
            assert_weights_close(self, network_weights(saved), expected)

    def test_train_on_batch_raises_and_keeps_weights(self):
        _, broken = self.clean_and_broken("nan_reward")
        model = linear_model(A2CModel, seed=9)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        before = network_weights(model)
        with self.assertRaises(NonFiniteLossError):
            model.train_on_batch({key: v[2:4] for key, v in broken.items()})
        assert_weights_close(self, network_weights(model), before, atol=0)

    def test_next_fit_starts_clean(self):
        clean, broken = self.clean_and_broken("nan_reward")
        model = linear_model(seed=9)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        with self.assertRaises(NonFiniteLossError):
            history_of(model, rollout_dataset(broken, num_minibatches=3))
        history = history_of(model, rollout_dataset(clean, num_minibatches=3))
        self.assertTrue(np.isfinite(history["loss"][0]))


class RolloutDatasetTest(tf.test.TestCase):
    def batch(self, rows=6, steps=3):
        rng = np.random.default_rng(0)
        return {
            "observation": {
                "x": rng.normal(size=(rows, steps, 2)).astype(np.float32)
            },
            "reward": np.arange(rows * steps, dtype=np.float32).reshape(
                rows, steps
            ),
            "bootstrap_value": np.arange(rows, dtype=np.float32),
        }

    def epoch_rows(self, dataset):
        return [
            [int(v) for v in element["bootstrap_value"].numpy()]
            for element in dataset
        ]

    def test_minibatches_cover_every_row_once_per_epoch(self):
        dataset = rollout_dataset(self.batch(), num_minibatches=3, seed=4)
        element = next(iter(dataset))
        self.assertEqual(element["observation"]["x"].shape, (2, 3, 2))
        self.assertEqual(element["reward"].shape, (2, 3))
        self.assertEqual(element["bootstrap_value"].shape, (2,))
        orders = []
        for _ in range(3):
            minibatches = self.epoch_rows(dataset)
            self.assertLen(minibatches, 3)
            rows = sorted(sum(minibatches, []))
            self.assertEqual(rows, list(range(6)))
            orders.append(sum(minibatches, []))
            # Rows stay whole: reward row r is r * 3 + [0, 1, 2].
            for element in dataset.take(1):
                for row, rewards in zip(
                    element["bootstrap_value"].numpy(),
                    element["reward"].numpy(),
                ):
                    self.assertAllEqual(rewards, row * 3 + np.arange(3))
        self.assertGreater(len({tuple(order) for order in orders}), 1)

    def test_seed_and_no_shuffle(self):
        first = rollout_dataset(self.batch(), num_minibatches=2, seed=3)
        second = rollout_dataset(self.batch(), num_minibatches=2, seed=3)
        self.assertEqual(self.epoch_rows(first), self.epoch_rows(second))
        ordered = rollout_dataset(
            self.batch(), num_minibatches=2, shuffle=False
        )
        self.assertEqual(self.epoch_rows(ordered), [[0, 1, 2], [3, 4, 5]])

    def test_autotuning_is_off(self):
        # Closing an autotuned iterator can take a second after each fit.
        rows = rollout_dataset(self.batch(), num_minibatches=2)
        steps = step_dataset(
            linear_model(), random_batch(seed=1, rows=2), num_minibatches=2
        )
        for dataset in (rows, steps, steps.repeat(2)):
            self.assertFalse(dataset.options().autotune.enabled)
        # Unset (on) by default.
        self.assertIsNot(
            tf.data.Dataset.range(2).options().autotune.enabled, False
        )

    def test_errors(self):
        batch = self.batch()
        with self.assertRaisesRegex(ValueError, "num_minibatches=4"):
            rollout_dataset(batch, num_minibatches=4)
        with self.assertRaisesRegex(ValueError, "num_minibatches=0"):
            rollout_dataset(batch, num_minibatches=0)
        with self.assertRaisesRegex(TypeError, "num_minibatches=2.0"):
            rollout_dataset(batch, num_minibatches=2.0)
        with self.assertRaisesRegex(TypeError, "seed="):
            rollout_dataset(batch, num_minibatches=2, seed="a")
        with self.assertRaisesRegex(TypeError, "shuffle="):
            rollout_dataset(batch, num_minibatches=2, shuffle=1)
        with self.assertRaisesRegex(TypeError, "batch="):
            rollout_dataset([batch], num_minibatches=2)
        uneven = {**batch, "bootstrap_value": np.zeros(5, np.float32)}
        with self.assertRaisesRegex(ValueError, "bootstrap_value.*5 rows"):
            rollout_dataset(uneven, num_minibatches=2)


class StepDatasetTest(tf.test.TestCase):
    def test_valid_steps_once_per_epoch_with_gae_targets(self):
        batch = random_batch(seed=18, rows=3, steps=4)
        # Tag every step by its first observation feature.
        tags = np.arange(12, dtype=np.float32).reshape(3, 4)
        batch["observation"][..., 0] = tags
        num_valid = int(batch["mask"].sum())
        model = linear_model(gamma=0.9, lambda_=0.8)
        advantages, returns = model.compute_advantages(batch)
        dataset = step_dataset(model, batch, num_minibatches=4, seed=0)
        # Minibatches of ceil(B * T / K) steps, padding masked.
        size = -(-batch["mask"].size // 4)
        self.assertLess(num_valid, batch["mask"].size)
        orders = []
        for _ in range(2):
            seen = []
            for element in dataset:
                self.assertEqual(element["observation"].shape, (size, 1, OBS))
                self.assertEqual(element["advantage"].shape, (size, 1))
                self.assertNotIn("reward", element)
                mask = element["mask"].numpy()[:, 0]
                for i in np.flatnonzero(mask):
                    tag = int(element["observation"][i, 0, 0])
                    b, t = divmod(tag, 4)
                    seen.append(tag)
                    self.assertAllClose(
                        element["advantage"][i, 0], advantages[b, t]
                    )
                    self.assertAllClose(element["return"][i, 0], returns[b, t])
                    self.assertAllClose(
                        element["log_prob"][i, 0], batch["log_prob"][b, t]
                    )
                    self.assertEqual(
                        int(element["action"][i, 0]), batch["action"][b, t]
                    )
                padding = element["observation"].numpy()[~mask]
                self.assertAllEqual(padding, np.zeros_like(padding))
            expected = sorted(np.flatnonzero(batch["mask"].ravel()))
            self.assertEqual(sorted(seen), expected)
            orders.append(seen)
        self.assertNotEqual(orders[0], orders[1])

    def test_minibatch_shape_does_not_depend_on_valid_steps(self):
        batch = random_batch(seed=21, rows=4, steps=8)
        model = linear_model()
        shapes = set()
        for valid in (32, 20, 9):
            mask = np.zeros(32, bool)
            mask[:valid] = True
            masked = {**batch, "mask": mask.reshape(4, 8)}
            dataset = step_dataset(model, masked, num_minibatches=3, seed=0)
            counts = []
            for element in dataset:
                shapes.add(tuple(element["mask"].shape))
                counts.append(int(element["mask"].numpy().sum()))
            self.assertEqual(sum(counts), valid)
        self.assertEqual(shapes, {(11, 1)})

    def test_trains_a_model(self):
        batch = random_batch(seed=19, rows=4)
        model = linear_model(A2CModel)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        history = history_of(
            model, step_dataset(model, batch, num_minibatches=3, seed=1), 2
        )
        self.assertLen(history["loss"], 2)
        self.assertTrue(np.all(np.isfinite(history["loss"])))
        self.assertEqual(int(model.optimizer.iterations), 6)

    def test_minibatch_dataset_picks_by_mode(self):
        batch = random_batch(seed=22, rows=4, steps=3)
        model = linear_model()
        rows = minibatch_dataset(
            model, batch, mode="rows", num_minibatches=2, seed=0
        )
        steps = minibatch_dataset(
            model, batch, mode="steps", num_minibatches=2, seed=0
        )
        self.assertEqual(next(iter(rows))["reward"].shape, (2, 3))
        self.assertEqual(next(iter(steps))["mask"].shape, (6, 1))
        with self.assertRaisesRegex(ValueError, "mode='episodes'"):
            minibatch_dataset(model, batch, mode="episodes", num_minibatches=1)

    def test_errors(self):
        batch = random_batch(seed=20)
        model = linear_model()
        with self.assertRaisesRegex(ValueError, "no valid step"):
            step_dataset(
                model,
                {**batch, "mask": np.zeros_like(batch["mask"])},
                num_minibatches=1,
            )
        with self.assertRaisesRegex(ValueError, "num_minibatches=0"):
            step_dataset(model, batch, num_minibatches=0)
        with self.assertRaisesRegex(TypeError, "seed="):
            step_dataset(model, batch, num_minibatches=1, seed=1.5)


if __name__ == "__main__":
    tf.test.main()

"""A2CModel: one train step against float64 NumPy, config, targets."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.models import A2CModel
from keras_gae.models import PPOModel
from keras_gae.models import rollout_dataset
from keras_gae.models import step_dataset
from tests.models.test_ppo_model import OBS
from tests.models.test_ppo_model import fit_one_step
from tests.models.test_ppo_model import linear_model
from tests.models.test_ppo_model import network_weights
from tests.models.test_ppo_model import random_batch
from tests.models.test_ppo_model import reference_update


class A2CTrainStepTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("defaults", {}, True),
        (
            "options",
            dict(
                gamma=0.8,
                lambda_=1.0,
                normalize_advantages=False,
                entropy_coef=0.1,
                value_coef=0.3,
                value_loss_type="huber",
                huber_delta=0.7,
                max_grad_norm=0.2,
            ),
            True,
        ),
        ("value_clip_no_flags", dict(value_clip=0.2), False),
    )
    def test_matches_numpy(self, kwargs, flags):
        batch = random_batch(seed=5, flags=flags)
        model = linear_model(A2CModel, seed=2, **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        expected_weights, expected = reference_update(
            model, batch, 0.05, policy="a2c"
        )
        logs = fit_one_step(model, batch)

        self.assertEqual(set(logs), set(model.metric_names))
        self.assertNotIn("clip_fraction", logs)
        norm = expected.pop("gradient_norm")
        if model.max_grad_norm is not None:
            self.assertGreater(norm, model.max_grad_norm)
        self.assertEqual(set(expected), set(logs))
        for name, value in expected.items():
            self.assertAllClose(logs[name], value, atol=1e-5, msg=name)
        for weight, reference in zip(network_weights(model), expected_weights):
            self.assertAllClose(weight, reference, atol=1e-5)

    def test_policy_loss_is_not_clipped(self):
        # A PPO model with the same networks and batch clips some steps; A2C
        # must follow the unclipped policy gradient there.
        batch = random_batch(seed=6)
        a2c = linear_model(A2CModel, seed=3)
        ppo = linear_model(PPOModel, seed=3, clip_ratio=0.01)
        a2c_logs = {}
        for model in (a2c, ppo):
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            a2c_logs[type(model).__name__] = fit_one_step(model, batch)
        self.assertGreater(a2c_logs["PPOModel"]["clip_fraction"], 0.5)
        self.assertNotAllClose(
            a2c_logs["A2CModel"]["policy_loss"],
            a2c_logs["PPOModel"]["policy_loss"],
        )


class A2CConfigTest(tf.test.TestCase):
    def test_get_config_round_trip(self):
        model = linear_model(
            A2CModel,
            gamma=0.5,
            lambda_=1.0,
            entropy_coef=0.02,
            normalize_advantages=False,
            max_grad_norm=1.0,
            name="a2c",
        )
        config = model.get_config()
        self.assertNotIn("clip_ratio", config)
        restored = A2CModel.from_config(config)
        self.assertIsInstance(restored, A2CModel)
        self.assertEqual(restored.get_config(), config)
        restored(tf.zeros((1, OBS)))
        restored.set_weights(model.get_weights())
        observations = np.random.default_rng(1).normal(size=(3, OBS))
        for got, want in zip(restored(observations), model(observations)):
            self.assertAllClose(got, want)

    def test_unknown_argument_is_rejected(self):
        # Keras 3 refuses unknown keyword arguments with a ValueError.
        with self.assertRaisesRegex(ValueError, "clip_ratio"):
            linear_model(A2CModel, clip_ratio=0.2)


class PrecomputedTargetsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(A2CModel, PPOModel)
    def test_step_dataset_matches_rollout_step(self, model_class):
        # One minibatch of all valid steps with GAE computed up front gives
        # the same losses and update as the rollout batch itself.
        batch = random_batch(seed=7)
        models = [linear_model(model_class, seed=4) for _ in range(2)]
        logs = []
        for model, dataset in zip(
            models,
            [
                rollout_dataset(batch, num_minibatches=1, shuffle=False),
                step_dataset(models[1], batch, num_minibatches=1, seed=0),
            ],
        ):
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            history = model.fit(
                dataset, epochs=1, verbose=0, shuffle=False
            ).history
            logs.append({name: values[0] for name, values in history.items()})
        for name in logs[0]:
            self.assertAllClose(logs[1][name], logs[0][name], atol=1e-5)
        for got, want in zip(models[1].get_weights(), models[0].get_weights()):
            self.assertAllClose(got, want, atol=1e-6)


if __name__ == "__main__":
    tf.test.main()

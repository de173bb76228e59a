"""Tests for the Keras Loss classes of keras_gae/losses/loss_classes.py.

Each class must give what its function gives on the unpacked tensors, with
`sample_weight` as the mask, round-trip through its config and Keras
serialization, and train inside `model.compile` + `model.fit`.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import losses
from keras_gae import ops
from tests import distribute_utils

B, T, OBS, ACTIONS = 4, 5, 3, 4


def _rollout(seed=0):
    rng = np.random.default_rng(seed)
    old = np.log(rng.dirichlet(np.ones(ACTIONS), (B, T)).max(-1))
    return {
        "log_probs": old + rng.normal(0.0, 0.4, (B, T)),
        "old_log_probs": old,
        "advantages": rng.normal(0.0, 1.0, (B, T)),
        "values": rng.normal(0.0, 1.0, (B, T)),
        "returns": rng.normal(0.0, 1.0, (B, T)),
        "old_values": rng.normal(0.0, 1.0, (B, T)),
        "entropy": rng.uniform(0.0, 1.0, (B, T)),
        "mask": rng.random((B, T)) < 0.7,
    }


def _stack(*arrays):
    return np.stack(arrays, axis=-1)


class LossClassesMatchFunctionsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("masked", True), ("unmasked", False))
    def test_ppo_clip_loss(self, masked):
        r = _rollout()
        mask = r["mask"] if masked else None
        loss = losses.PPOClipLoss(
            clip_ratio_low=0.1, clip_ratio_high=0.3, dual_clip=2.0
        )
        got = loss(
            _stack(r["advantages"], r["old_log_probs"]),
            r["log_probs"],
            sample_weight=None if mask is None else mask.astype(np.float64),
        )
        expected = ops.ppo_clip_loss(
            r["log_probs"],
            r["old_log_probs"],
            r["advantages"],
            clip_ratio_low=0.1,
            clip_ratio_high=0.3,
            dual_clip=2.0,
            mask=mask,
        ).loss
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)

    def test_policy_gradient_loss(self):
        r = _rollout()
        got = losses.PolicyGradientLoss()(
            r["advantages"], r["log_probs"], sample_weight=r["mask"]
        )
        expected = ops.policy_gradient_loss(
            r["log_probs"], r["advantages"], mask=r["mask"]
        )
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)

    @parameterized.named_parameters(
        ("plain", {}, False),
        ("plain_stacked", {}, True),
        ("max", {"clip_range": 0.2}, True),
        ("clamp_huber", {"clip_range": 0.2, "clip_mode": "clamp"}, True),
        ("huber", {"loss_type": "huber", "huber_delta": 0.5}, False),
    )
    def test_value_loss(self, kwargs, stacked):
        r = _rollout()
        y_true = (
            _stack(r["returns"], r["old_values"]) if stacked else r["returns"]
        )
        got = losses.ValueLoss(**kwargs)(
            y_true, r["values"], sample_weight=r["mask"]
        )
        expected = ops.value_loss(
            r["values"],
            r["returns"],
            old_values=r["old_values"],
            mask=r["mask"],
            **kwargs,
        ).loss
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)

    def test_entropy_loss(self):
        r = _rollout()
        got = losses.EntropyLoss()(
            np.zeros((B, T)), r["entropy"], sample_weight=r["mask"]
        )
        expected = ops.entropy_loss(r["entropy"], mask=r["mask"])
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)

    @parameterized.parameters("k1", "k2", "k3")
    def test_kl_penalty_loss(self, estimator):
        r = _rollout()
        got = losses.KLPenaltyLoss(estimator)(
            r["old_log_probs"], r["log_probs"], sample_weight=r["mask"]
        )
        expected = ops.kl_penalty_loss(
            r["log_probs"],
            r["old_log_probs"],
            estimator=estimator,
            mask=r["mask"],
        )
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)

    def test_row_sample_weight_masks_whole_rows(self):
        r = _rollout()
        rows = np.array([1.0, 0.0, 1.0, 0.0])
        got = losses.PolicyGradientLoss()(
            r["advantages"], r["log_probs"], sample_weight=rows
        )
        expected = ops.policy_gradient_loss(
            r["log_probs"][::2], r["advantages"][::2]
        )
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)

    def test_nonzero_weights_count_as_one(self):
        r = _rollout()
        weights = r["mask"] * np.linspace(0.5, 3.0, T)
        got = losses.EntropyLoss()(
            np.zeros((B, T)), r["entropy"], sample_weight=weights
        )
        expected = ops.entropy_loss(r["entropy"], mask=r["mask"])
        self.assertAllClose(got, expected, rtol=1e-12, atol=1e-12)


class PackingErrorsTest(tf.test.TestCase):
    def test_ppo_y_true_must_stack_two(self):
        with self.assertRaisesRegex(ValueError, "`y_true` must stack"):
            losses.PPOClipLoss()(np.zeros((B, T)), np.zeros((B, T)))
        with self.assertRaisesRegex(ValueError, "Received: y_true="):
            losses.PPOClipLoss()(np.zeros((B, T, 3)), np.zeros((B, T)))

    def test_value_clip_range_needs_old_values(self):
        with self.assertRaisesRegex(ValueError, "`y_true`.*old_values"):
            losses.ValueLoss(clip_range=0.2)(np.zeros((B, T)), np.zeros((B, T)))

    def test_sample_weight_must_broadcast(self):
        with self.assertRaisesRegex(ValueError, "`sample_weight`"):
            losses.EntropyLoss()(
                np.zeros((B, T)), np.zeros((B, T)), sample_weight=np.ones(3)
            )
        with self.assertRaisesRegex(ValueError, "`sample_weight`"):
            losses.EntropyLoss()(
                np.zeros((B, T)),
                np.zeros((B, T)),
                sample_weight=np.ones((B, T, 2)),
            )


class CheckNumericsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("ppo", losses.PPOClipLoss, "log_probs", 2),
        ("policy_gradient", losses.PolicyGradientLoss, "log_probs", None),
        ("value", losses.ValueLoss, "values", None),
        ("entropy", losses.EntropyLoss, "entropy", None),
        ("kl_penalty", losses.KLPenaltyLoss, "log_probs", None),
    )
    def test_nan_y_pred_at_a_valid_step_is_an_error_naming_it(
        self, cls, argument, stacked
    ):
        y_pred = np.full((B, T), -1.0, np.float32)
        shape = (B, T) if stacked is None else (B, T, stacked)
        y_true = np.full(shape, -1.0, np.float32)
        weight = np.ones((B, T), np.float32)
        weight[0, 0] = 0.0
        y_pred[0, 0] = np.nan
        loss = cls(check_numerics=True)
        # The NaN sits on a masked step: no error, the loss of the rest.
        expected = cls()(y_true, np.where(weight > 0, y_pred, -1.0), weight)
        self.assertAllClose(loss(y_true, y_pred, weight), expected)
        self.assertFalse(np.isfinite(cls()(y_true, y_pred).numpy()))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, f"`{argument}` holds NaN"
        ):
            loss(y_true, y_pred)
        config = loss.get_config()
        self.assertTrue(config["check_numerics"])
        self.assertTrue(cls.from_config(config).get_config()["check_numerics"])

    @parameterized.product(
        cls=(
            losses.PPOClipLoss,
            losses.PolicyGradientLoss,
            losses.ValueLoss,
            losses.EntropyLoss,
            losses.KLPenaltyLoss,
        ),
        bad=(np.nan, np.inf),
    )
    def test_non_finite_sample_weight(self, cls, bad):
        # A NaN weight is neither 0 (left out) nor a valid step: the loss
        # is NaN (it counted as valid), and with check_numerics an error.
        y_pred = np.full((B, T), -1.0, np.float32)
        stacked = cls is losses.PPOClipLoss
        y_true = np.full((B, T, 2) if stacked else (B, T), -1.0, np.float32)
        weight = np.ones((B, T), np.float32)
        weight[1, 2] = bad
        self.assertTrue(np.isnan(cls()(y_true, y_pred, weight).numpy()))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "`sample_weight` holds NaN or Inf"
        ):
            cls(check_numerics=True)(y_true, y_pred, weight)

    def test_check_numerics_must_be_a_bool(self):
        with self.assertRaisesRegex(
            TypeError, "`check_numerics`.*Received: check_numerics='yes'"
        ):
            losses.ValueLoss(check_numerics="yes")


class ConstructorErrorsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("clip_ratio", losses.PPOClipLoss, {"clip_ratio": -0.1}, "clip_ratio"),
        ("dual", losses.PPOClipLoss, {"dual_clip": 1.0}, "dual_clip"),
        ("clip_mode", losses.ValueLoss, {"clip_mode": "min"}, "clip_mode"),
        ("loss_type", losses.ValueLoss, {"loss_type": "l1"}, "loss_type"),
        ("delta", losses.ValueLoss, {"huber_delta": 0.0}, "huber_delta"),
        ("range", losses.ValueLoss, {"clip_range": -1.0}, "clip_range"),
        ("estimator", losses.KLPenaltyLoss, {"estimator": "k9"}, "estimator"),
    )
    def test_bad_values(self, cls, kwargs, name):
        with self.assertRaisesRegex(ValueError, f"`{name}`.*Received: {name}="):
            cls(**kwargs)

    def test_parameters_must_be_python_floats(self):
        with self.assertRaisesRegex(TypeError, "`clip_ratio`.*Python float"):
            losses.PPOClipLoss(clip_ratio=tf.Variable(0.2))
        with self.assertRaisesRegex(TypeError, "`dual_clip`"):
            losses.PPOClipLoss(dual_clip=True)


ALL_LOSSES = (
    losses.PPOClipLoss(clip_ratio_low=0.1, clip_ratio_high=0.28, dual_clip=3),
    losses.PolicyGradientLoss(name="pg"),
    losses.ValueLoss(clip_range=0.5, clip_mode="clamp", loss_type="huber"),
    losses.EntropyLoss(),
    losses.KLPenaltyLoss(estimator="k2"),
)


class SerializationTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(*[(loss,) for loss in ALL_LOSSES])
    def test_get_config_round_trip(self, loss):
        config = loss.get_config()
        self.assertNotIn("reduction", config)
        restored = type(loss).from_config(config)
        self.assertEqual(restored.get_config(), config)
        self.assertEqual(restored.name, loss.name)

    @parameterized.parameters(*[(loss,) for loss in ALL_LOSSES])
    def test_keras_serialization_by_registered_name(self, loss):
        serialized = keras.losses.serialize(loss)
        self.assertEqual(
            serialized["registered_name"], f"keras_gae>{type(loss).__name__}"
        )
        restored = keras.losses.deserialize(serialized)
        self.assertIsInstance(restored, type(loss))
        self.assertEqual(restored.get_config(), loss.get_config())


def _policy_value_model():
    observation = keras.Input((T, OBS), name="observation")
    action = keras.Input((T, ACTIONS), name="action_one_hot")
    hidden = keras.layers.Dense(8, activation="tanh")(observation)
    logits = keras.layers.Dense(ACTIONS)(hidden)
    log_pi = keras.ops.log_softmax(logits)
    outputs = {
        "log_prob": keras.ops.sum(log_pi * action, axis=-1),
        "value": keras.ops.squeeze(keras.layers.Dense(1)(hidden), -1),
        "entropy": -keras.ops.sum(keras.ops.exp(log_pi) * log_pi, axis=-1),
    }
    # Named layers give the per-output metrics their names.
    outputs = {
        name: keras.layers.Identity(name=name)(output)
        for name, output in outputs.items()
    }
    return keras.Model([observation, action], outputs)


def _fit_data(seed=0):
    rng = np.random.default_rng(seed)
    observation = rng.normal(size=(B, T, OBS)).astype(np.float32)
    actions = rng.integers(0, ACTIONS, (B, T))
    one_hot = np.eye(ACTIONS, dtype=np.float32)[actions]
    mask = (rng.random((B, T)) < 0.7).astype(np.float32)
    nan_where_masked = np.where(mask > 0, 0.0, np.nan).astype(np.float32)
    advantages = rng.normal(size=(B, T)).astype(np.float32)
    old_log_probs = np.full((B, T), np.log(1 / ACTIONS), np.float32)
    returns = rng.normal(size=(B, T)).astype(np.float32)
    old_values = np.zeros((B, T), np.float32)
    # Masked steps hold NaN: they must not reach the loss or the weights.
    targets = {
        "log_prob": _stack(advantages, old_log_probs)
        + nan_where_masked[..., None],
        "value": _stack(returns, old_values) + nan_where_masked[..., None],
        "entropy": np.zeros((B, T), np.float32),
    }
    return (observation, one_hot), targets, mask


def _fit_losses(entropy):
    """PPO's clipped policy loss and clipped value loss, and the entropy
    loss if `entropy`, by output name."""
    loss = {
        "log_prob": losses.PPOClipLoss(),
        "value": losses.ValueLoss(clip_range=0.2),
    }
    if entropy:
        loss["entropy"] = losses.EntropyLoss()
    return loss


class FitSmokeTest(tf.test.TestCase):
    def fit_finitely(self, model, inputs, targets, mask, **kwargs):
        """Fits `model` with `mask` as every output's sample weight; its
        losses and then its weights are finite."""
        history = model.fit(
            inputs,
            targets,
            sample_weight={name: mask for name in targets},
            verbose=0,
            **kwargs,
        )
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        for weight in model.trainable_weights:
            self.assertTrue(np.all(np.isfinite(weight.numpy())))

    def test_fit_policy_value_entropy_model(self):
        keras.utils.set_random_seed(0)
        model = _policy_value_model()
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=_fit_losses(entropy=True),
            loss_weights={"log_prob": 1.0, "value": 0.5, "entropy": 0.01},
        )
        inputs, targets, mask = _fit_data()
        before = [w.numpy() for w in model.trainable_weights]
        self.fit_finitely(model, inputs, targets, mask, batch_size=2, epochs=3)
        changed = [
            not np.allclose(old, new.numpy())
            for old, new in zip(before, model.trainable_weights)
        ]
        self.assertTrue(all(changed))

    def test_fit_under_mirrored_strategy(self):
        strategy = distribute_utils.two_cpu_strategy()
        with strategy.scope():
            model = _policy_value_model()
            model.compile(
                optimizer=keras.optimizers.SGD(1e-2),
                loss=_fit_losses(entropy=False),
            )
        inputs, targets, mask = _fit_data(seed=2)
        del targets["entropy"]
        self.fit_finitely(model, inputs, targets, mask, batch_size=B, epochs=2)

    def test_evaluate_equals_the_functions(self):
        # One batch: Keras' reported loss is exactly the masked means.
        model = _policy_value_model()
        model.compile(
            loss={
                "log_prob": losses.PPOClipLoss(clip_ratio=0.1),
                "value": losses.ValueLoss(),
            },
            loss_weights={"log_prob": 1.0, "value": 0.5},
        )
        inputs, targets, mask = _fit_data(seed=1)
        targets = {
            "log_prob": targets["log_prob"],
            "value": targets["value"][..., 0],
        }
        result = model.evaluate(
            inputs,
            targets,
            sample_weight={name: mask for name in targets},
            batch_size=B,
            verbose=0,
            return_dict=True,
        )
        outputs = model.predict(inputs, batch_size=B, verbose=0)
        valid = mask > 0
        policy = ops.ppo_clip_loss(
            outputs["log_prob"],
            targets["log_prob"][..., 1],
            targets["log_prob"][..., 0],
            clip_ratio=0.1,
            mask=valid,
        ).loss
        value = ops.value_loss(
            outputs["value"], targets["value"], mask=valid
        ).loss
        self.assertAllClose(result["log_prob_loss"], policy, rtol=1e-5)
        self.assertAllClose(result["value_loss"], value, rtol=1e-5)
        self.assertAllClose(result["loss"], policy + 0.5 * value, rtol=1e-5)


class SavingAndReplicasTest(tf.test.TestCase):
    def _compile(self, model):
        model.compile(
            optimizer="sgd",
            loss={
                "log_prob": losses.PPOClipLoss(
                    clip_ratio_low=0.1, clip_ratio_high=0.28, dual_clip=3.0
                ),
                "value": losses.ValueLoss(
                    clip_range=0.5, clip_mode="clamp", loss_type="huber"
                ),
                "entropy": losses.EntropyLoss(name="entropy_bonus"),
            },
            loss_weights={"log_prob": 1.0, "value": 0.5, "entropy": 0.01},
        )

    def test_keras_file_round_trip_inside_a_model(self):
        keras.utils.set_random_seed(1)
        model = _policy_value_model()
        self._compile(model)
        inputs, targets, mask = _fit_data(seed=3)
        weights = {name: mask for name in targets}
        model.fit(inputs, targets, sample_weight=weights, verbose=0)
        path = os.path.join(self.get_temp_dir(), "policy_value.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        for name, loss in model.loss.items():
            self.assertIsInstance(loaded.loss[name], type(loss))
            self.assertEqual(loaded.loss[name].get_config(), loss.get_config())
        evaluate = dict(sample_weight=weights, verbose=0, return_dict=True)
        self.assertAllClose(
            loaded.evaluate(inputs, targets, **evaluate),
            model.evaluate(inputs, targets, **evaluate),
        )
        more = [
            losses.PolicyGradientLoss(name="pg"),
            losses.KLPenaltyLoss(estimator="k2"),
        ]
        for loss in more:
            restored = keras.saving.load_model(
                self._saved_with_loss(loss), compile=True
            ).loss
            self.assertIsInstance(restored, type(loss))
            self.assertEqual(restored.get_config(), loss.get_config())

    def _saved_with_loss(self, loss):
        model = keras.Sequential([keras.Input((T,)), keras.layers.Dense(T)])
        model.compile(optimizer="sgd", loss=loss)
        path = os.path.join(self.get_temp_dir(), f"{loss.name}.keras")
        model.save(path)
        return path

    def test_evaluate_under_mirrored_strategy_equals_one_device(self):
        # Every replica gets the same number of valid steps, so the mean of
        # the replicas' masked means is the global masked mean: the loss
        # Keras reports is the one-device loss only if each replica's loss
        # was divided by the number of replicas (and multiplied back).
        inputs, targets, _ = _fit_data(seed=4)
        mask = np.tile(np.array([1, 1, 0, 1, 0], np.float32), (B, 1))
        weights = {name: mask for name in targets}
        targets = {
            name: np.nan_to_num(target) for name, target in targets.items()
        }
        keras.utils.set_random_seed(2)
        model = _policy_value_model()
        self._compile(model)
        evaluate = dict(
            sample_weight=weights, batch_size=B, verbose=0, return_dict=True
        )
        expected = model.evaluate(inputs, targets, **evaluate)
        strategy = distribute_utils.two_cpu_strategy()
        with strategy.scope():
            mirrored = _policy_value_model()
            self._compile(mirrored)
        mirrored.set_weights(model.get_weights())
        got = mirrored.evaluate(inputs, targets, **evaluate)
        self.assertAllClose(got, expected, rtol=1e-5)

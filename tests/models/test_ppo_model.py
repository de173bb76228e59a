"""PPOModel: one train step against float64 NumPy, config, errors, networks.

The NumPy reference recomputes everything from the formulas: GAE
(arXiv:1506.02438, eq. 16, with docs/design.md's episode boundaries), masked
advantage normalization, the linear softmax policy, PPO's clipped (and dual
clipped) surrogate (arXiv:1707.06347, eq. 7; arXiv:1912.09729), the clipped
value loss, the entropy bonus, and the update of plain SGD with global-norm
clipping, its gradient taken by central finite differences.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.layers import CategoricalPolicyHead
from keras_gae.layers import GaussianPolicyHead
from keras_gae.losses.kl_control import AdaptiveKLController
from keras_gae.models import ActionOutputs
from keras_gae.models import PPOModel
from keras_gae.models import rollout_dataset

B, T, OBS, ACTIONS = 4, 5, 3, 2


# NumPy reference (also imported by the other model tests).


def gae_reference(batch, gamma, lambda_):
    """Batch-major float64 GAE, one loop per row."""
    rewards = np.asarray(batch["reward"], np.float64)
    values = np.asarray(batch["value"], np.float64)
    rows, steps = rewards.shape
    terminated = batch.get("terminated", np.zeros_like(rewards, bool))
    truncated = batch.get("truncated", np.zeros_like(rewards, bool))
    truncation_values = batch.get("truncation_value")
    mask = batch.get("mask", np.ones_like(rewards, bool))
    advantages = np.zeros_like(rewards)
    for b in range(rows):
        following = 0.0
        for t in reversed(range(steps)):
            if not mask[b, t]:
                following = 0.0
                continue
            if t == steps - 1:
                next_value = batch["bootstrap_value"][b]
            else:
                next_value = values[b, t + 1]
            if truncated[b, t] and truncation_values is not None:
                next_value = truncation_values[b, t]
            delta = (
                rewards[b, t]
                + gamma * (1.0 - terminated[b, t]) * next_value
                - values[b, t]
            )
            end = terminated[b, t] or truncated[b, t]
            advantages[b, t] = delta + gamma * lambda_ * (1 - end) * following
            following = advantages[b, t]
    return advantages, advantages + values


def masked_mean(x, mask):
    return float(np.sum(np.where(mask, x, 0.0)) / max(np.sum(mask), 1))


def masked_variance(x, mask):
    return masked_mean((x - masked_mean(x, mask)) ** 2, mask)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def regression_loss(errors, loss_type, delta):
    if loss_type == "squared":
        return 0.5 * errors**2
    absolute = np.abs(errors)
    return np.where(
        absolute <= delta, 0.5 * errors**2, delta * (absolute - 0.5 * delta)
    )


def network_weights(model):
    """The tiny networks' weights: [W, b, W_critic, b_critic]."""
    return model.actor.get_weights() + model.critic.get_weights()


def linear_parameters(model):
    """`network_weights`, flattened to one float64 vector."""
    return np.concatenate(
        [np.asarray(w, np.float64).ravel() for w in network_weights(model)]
    )


def unflatten(theta, shapes):
    arrays, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(theta[start : start + size].reshape(shape))
        start += size
    return arrays


def reference_step(theta, shapes, batch, config, policy="ppo"):
    """Loss and metrics of one train step of the linear actor-critic.

    Args:
      theta: flat float64 weights [W, b, W_critic, b_critic].
      shapes: their shapes.
      batch: the NumPy rollout batch.
      config: the model's hyperparameters (dict).
      policy: "ppo" or "a2c".

    Returns:
      A dict of float metrics, "loss" included.
    """
    kernel, bias, critic_kernel, critic_bias = unflatten(theta, shapes)
    mask = batch.get("mask", np.ones(batch["reward"].shape, bool))
    advantages, returns = gae_reference(
        batch, config["gamma"], config["lambda_"]
    )
    old_values = batch["value"].astype(np.float64)
    metrics = {
        "advantage_mean": masked_mean(advantages, mask),
        "advantage_std": np.sqrt(masked_variance(advantages, mask)),
        "explained_variance": 1.0
        - masked_variance(returns - old_values, mask)
        / masked_variance(returns, mask),
    }
    if config["normalize_advantages"]:
        mean = masked_mean(advantages, mask)
        std = np.sqrt(masked_variance(advantages, mask) + 1e-8)
        advantages = np.where(mask, (advantages - mean) / std, 0.0)

    observations = batch["observation"].astype(np.float64)
    log_pi = log_softmax(observations @ kernel + bias)
    log_probs = np.take_along_axis(
        log_pi, batch["action"][..., None].astype(int), axis=-1
    )[..., 0]
    entropy = -np.sum(np.exp(log_pi) * log_pi, axis=-1)
    values = (observations @ critic_kernel + critic_bias)[..., 0]

    old_log_probs = batch["log_prob"].astype(np.float64)
    ratio = np.exp(log_probs - old_log_probs)
    metrics["approx_kl"] = masked_mean(
        (ratio - 1.0) - (log_probs - old_log_probs), mask
    )
    if policy == "ppo":
        low = config["clip_ratio_low"] or config["clip_ratio"]
        high = config["clip_ratio_high"] or config["clip_ratio"]
        surrogate = np.minimum(
            ratio * advantages,
            np.clip(ratio, 1.0 - low, 1.0 + high) * advantages,
        )
        clipped = ((advantages > 0) & (ratio > 1 + high)) | (
            (advantages < 0) & (ratio < 1 - low)
        )
        dual = config["dual_clip"]
        if dual is not None:
            surrogate = np.where(
                advantages < 0,
                np.maximum(surrogate, dual * advantages),
                surrogate,
            )
            clipped |= (advantages < 0) & (ratio > dual)
        metrics["policy_loss"] = -masked_mean(surrogate, mask)
        metrics["clip_fraction"] = masked_mean(clipped, mask)
    else:
        metrics["policy_loss"] = -masked_mean(log_probs * advantages, mask)

    loss_type, delta = config["value_loss_type"], config["huber_delta"]
    value_losses = regression_loss(values - returns, loss_type, delta)
    clip = config["value_clip"]
    if clip is None:
        metrics["value_clip_fraction"] = 0.0
    else:
        clipped_values = old_values + np.clip(values - old_values, -clip, clip)
        clipped_losses = regression_loss(
            clipped_values - returns, loss_type, delta
        )
        metrics["value_clip_fraction"] = masked_mean(
            clipped_losses > value_losses, mask
        )
        value_losses = np.maximum(value_losses, clipped_losses)
    metrics["value_loss"] = masked_mean(value_losses, mask)
    metrics["entropy"] = masked_mean(entropy, mask)
    metrics["loss"] = (
        metrics["policy_loss"]
        + config["value_coef"] * metrics["value_loss"]
        - config["entropy_coef"] * metrics["entropy"]
    )
    return metrics


def reference_update(model, batch, learning_rate, policy="ppo"):
    """Weights after one SGD step, by central finite differences."""
    config = model.get_config()
    theta = linear_parameters(model)
    shapes = [w.shape for w in network_weights(model)]

    def loss(t):
        return reference_step(t, shapes, batch, config, policy)["loss"]

    epsilon = 1e-6
    gradient = np.zeros_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = epsilon
        gradient[i] = (loss(theta + step) - loss(theta - step)) / (2 * epsilon)
    norm = np.linalg.norm(gradient)
    if config["max_grad_norm"] is not None:
        gradient *= config["max_grad_norm"] / max(norm, config["max_grad_norm"])
    metrics = reference_step(theta, shapes, batch, config, policy)
    metrics["gradient_norm"] = norm
    return unflatten(theta - learning_rate * gradient, shapes), metrics


def reference_log_probs(model, batch):
    """log pi(a_t | s_t) of the linear actor (its first two weights)."""
    kernel, bias = [
        np.asarray(w, np.float64) for w in model.actor.get_weights()
    ]
    log_pi = log_softmax(batch["observation"] @ kernel + bias)
    return np.take_along_axis(
        log_pi, batch["action"][..., None].astype(int), axis=-1
    )[..., 0]


def random_batch(seed=0, rows=B, steps=T, flags=True):
    """A rollout batch with random data, episode ends, truncation and mask."""
    rng = np.random.default_rng(seed)
    batch = {
        "observation": rng.normal(size=(rows, steps, OBS)).astype(np.float32),
        "action": rng.integers(0, ACTIONS, size=(rows, steps)).astype(np.int32),
        "reward": rng.normal(size=(rows, steps)).astype(np.float32),
        "log_prob": (np.log(0.5) + 0.4 * rng.normal(size=(rows, steps))).astype(
            np.float32
        ),
        "value": rng.normal(size=(rows, steps)).astype(np.float32),
        "bootstrap_value": rng.normal(size=(rows,)).astype(np.float32),
    }
    if flags:
        batch["terminated"] = rng.random((rows, steps)) < 0.2
        batch["truncated"] = (rng.random((rows, steps)) < 0.2) & ~batch[
            "terminated"
        ]
        batch["truncation_value"] = rng.normal(size=(rows, steps)).astype(
            np.float32
        )
        mask = rng.random((rows, steps)) < 0.8
        mask[:, 0] = True
        batch["mask"] = mask
    return batch


def linear_networks(seed=0, num_actions=ACTIONS):
    """A linear softmax actor and a linear critic on OBS features."""
    initializer = keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    actor = keras.Sequential(
        [
            keras.Input((OBS,)),
            CategoricalPolicyHead(
                num_actions, kernel_initializer=initializer, name="head"
            ),
        ]
    )
    critic = keras.Sequential(
        [
            keras.Input((OBS,)),
            keras.layers.Dense(
                1,
                kernel_initializer=keras.initializers.RandomNormal(
                    stddev=0.5, seed=seed + 1
                ),
                bias_initializer="ones",
            ),
        ]
    )
    return actor, critic


def linear_model(model_class=PPOModel, seed=0, **kwargs):
    actor, critic = linear_networks(seed)
    model = model_class(actor, critic, **kwargs)
    model(tf.zeros((1, OBS)))
    return model


def fit_one_step(model, batch):
    history = model.fit(
        rollout_dataset(batch, num_minibatches=1, shuffle=False),
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    return {name: values[-1] for name, values in history.history.items()}


class PPOTrainStepTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("defaults", {}, True),
        (
            "every_option",
            dict(
                gamma=0.9,
                lambda_=0.7,
                clip_ratio=0.1,
                clip_ratio_high=0.3,
                dual_clip=2.0,
                value_coef=0.7,
                entropy_coef=0.05,
                value_clip=0.3,
                value_loss_type="huber",
                huber_delta=0.5,
                max_grad_norm=0.4,
            ),
            True,
        ),
        (
            "no_normalization_no_flags",
            dict(normalize_advantages=False, clip_ratio_low=0.05),
            False,
        ),
    )
    def test_matches_numpy(self, kwargs, flags):
        batch = random_batch(seed=1, flags=flags)
        model = linear_model(**kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        expected_weights, expected = reference_update(model, batch, 0.1)
        logs = fit_one_step(model, batch)

        self.assertEqual(set(logs), set(model.metric_names))
        norm = expected.pop("gradient_norm")
        if model.max_grad_norm is not None:
            self.assertGreater(norm, model.max_grad_norm)
        for name, value in expected.items():
            self.assertAllClose(logs[name], value, atol=1e-5, msg=name)
        # The batch's old log-probs differ from the policy's: some steps
        # must be clipped for the test to cover the clip.
        self.assertGreater(expected["clip_fraction"], 0.0)
        for weight, reference in zip(network_weights(model), expected_weights):
            self.assertAllClose(weight, reference, atol=1e-5)

    def test_value_clip_is_active_in_fixture(self):
        batch = random_batch(seed=1)
        model = linear_model(value_clip=0.3)
        config = model.get_config()
        metrics = reference_step(
            linear_parameters(model),
            [w.shape for w in network_weights(model)],
            batch,
            config,
        )
        self.assertGreater(metrics["value_clip_fraction"], 0.0)

    def test_test_step_reports_without_updating(self):
        batch = random_batch(seed=2)
        model = linear_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        before = model.get_weights()
        _, expected = reference_update(model, batch, 0.1)
        del expected["gradient_norm"]
        logs = model.evaluate(
            rollout_dataset(batch, num_minibatches=1, shuffle=False),
            verbose=0,
            return_dict=True,
        )
        for name, value in expected.items():
            self.assertAllClose(logs[name], value, atol=1e-5, msg=name)
        for weight, reference in zip(model.get_weights(), before):
            self.assertAllEqual(weight, reference)

    def test_kl_penalty_and_adaptive_controller(self):
        batch = random_batch(seed=3)
        rng = np.random.default_rng(0)
        batch["ref_log_prob"] = (
            batch["log_prob"] + 0.3 * rng.normal(size=(B, T))
        ).astype(np.float32)
        controller = AdaptiveKLController(
            init_kl_coef=0.5, target_kl=0.01, horizon=100.0
        )
        model = linear_model(kl_coef=controller, kl_estimator="k2")
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        expected = reference_step(
            linear_parameters(model),
            [w.shape for w in network_weights(model)],
            batch,
            model.get_config(),
        )
        log_ratio = batch["ref_log_prob"] - reference_log_probs(model, batch)
        kl = masked_mean(0.5 * log_ratio**2, batch["mask"])

        logs = fit_one_step(model, batch)

        self.assertAllClose(logs["kl_penalty"], kl, atol=1e-5)
        self.assertAllClose(logs["kl_coef"], 0.5)
        self.assertAllClose(
            logs["loss"], expected["loss"] + 0.5 * kl, atol=1e-5
        )
        # Ziegler et al. 2019: beta *= 1 + clip(kl / target - 1, +-0.2) n / H.
        error = np.clip(kl / 0.01 - 1.0, -0.2, 0.2)
        count = batch["mask"].sum()
        self.assertAllClose(
            controller.value, 0.5 * (1 + error * count / 100.0), rtol=1e-5
        )

    def test_fixed_kl_coef_against_behaviour_policy(self):
        batch = random_batch(seed=4)
        model = linear_model(kl_coef=0.2)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        expected = reference_step(
            linear_parameters(model),
            [w.shape for w in network_weights(model)],
            batch,
            model.get_config(),
        )
        # Without "ref_log_prob" the reference is the behaviour policy:
        # k3 = (r - 1) - log r with r = pi_old / pi.
        log_ratio = batch["log_prob"] - reference_log_probs(model, batch)
        kl = masked_mean(np.expm1(log_ratio) - log_ratio, batch["mask"])
        logs = fit_one_step(model, batch)
        self.assertAllClose(logs["kl_penalty"], kl, atol=1e-5)
        self.assertAllClose(
            logs["loss"], expected["loss"] + 0.2 * kl, atol=1e-5
        )


class PPOConfigTest(tf.test.TestCase, parameterized.TestCase):
    def test_checkpoint_holds_training_state_not_metrics(self):
        model = linear_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        fit_one_step(model, random_batch())
        self.assertGreater(float(np.sum(model._trackers.totals)), 0.0)
        path = tf.train.Checkpoint(model=model).write(
            os.path.join(self.get_temp_dir(), "ckpt")
        )
        names = [name for name, _ in tf.train.list_variables(path)]
        # The weights and the optimizer's state are saved; the metric
        # totals and the failure counters are not.
        self.assertLen(
            [name for name in names if "VARIABLE_VALUE" in name],
            len(model.trainable_variables) + len(model.optimizer.variables),
        )
        self.assertFalse(
            [n for n in names if "_trackers" in n or "_failures" in n]
        )

    def test_get_config_round_trip(self):
        model = linear_model(
            gamma=0.95,
            lambda_=0.9,
            clip_ratio=0.15,
            clip_ratio_low=0.1,
            clip_ratio_high=0.25,
            dual_clip=3.0,
            value_coef=0.25,
            entropy_coef=0.01,
            value_clip=0.2,
            value_loss_type="huber",
            huber_delta=2.0,
            normalize_advantages=False,
            max_grad_norm=0.5,
            kl_coef=0.1,
            kl_estimator="k1",
            gae_implementation="scan",
            name="my_ppo",
        )
        config = model.get_config()
        restored = PPOModel.from_config(config)
        self.assertEqual(restored.get_config(), config)
        for name in (
            "gamma",
            "lambda_",
            "clip_ratio",
            "clip_ratio_low",
            "clip_ratio_high",
            "dual_clip",
            "value_coef",
            "entropy_coef",
            "value_clip",
            "value_loss_type",
            "huber_delta",
            "normalize_advantages",
            "max_grad_norm",
            "kl_coef",
            "kl_estimator",
            "gae_implementation",
        ):
            self.assertEqual(getattr(restored, name), getattr(model, name))
        self.assertEqual(restored.name, "my_ppo")
        self.assertEqual(restored.gae.gamma, 0.95)
        self.assertIsNone(restored.advantage_normalization)
        # Same architecture: the weights transfer.
        restored(tf.zeros((1, OBS)))
        restored.set_weights(model.get_weights())
        observations = np.random.default_rng(0).normal(size=(6, OBS))
        for got, want in zip(restored(observations), model(observations)):
            self.assertAllClose(got, want)

    def test_config_with_kl_controller_and_serializer(self):
        controller = AdaptiveKLController(0.2, 0.02, 1000.0)
        model = linear_model(kl_coef=controller)
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(model)
        )
        self.assertIsInstance(restored, PPOModel)
        self.assertIsInstance(restored.kl_coef, AdaptiveKLController)
        self.assertEqual(restored.kl_coef.get_config(), controller.get_config())

    def test_config_of_shared_trunk_with_separate_head(self):
        inputs = keras.Input((OBS,))
        features = keras.layers.Dense(8, activation="tanh")(inputs)
        value = keras.layers.Dense(1)(features)
        shared = keras.Model(inputs, [features, value])
        model = PPOModel(shared=shared, policy_head=CategoricalPolicyHead(3))
        model(tf.zeros((1, OBS)))
        restored = PPOModel.from_config(model.get_config())
        params, values = restored(tf.zeros((2, OBS)))
        self.assertEqual(params.shape, (2, 3))
        self.assertEqual(values.shape, (2,))

    def test_config_of_network_with_two_heads(self):
        inputs = keras.Input((OBS,))
        first = CategoricalPolicyHead(2, name="first")(inputs)
        second = CategoricalPolicyHead(3, name="second")(inputs)
        actor = keras.Model(inputs, [first, second])
        critic = keras.Sequential([keras.layers.Dense(1)])
        chosen = actor.get_layer("second")
        model = PPOModel(actor, critic, policy_head=chosen)
        with self.assertRaisesRegex(ValueError, "holds 2 heads"):
            PPOModel(actor, critic)
        restored = PPOModel.from_config(model.get_config())
        self.assertEqual(restored.policy_head.name, "second")
        self.assertIsNot(restored.policy_head, chosen)


class PPOArgumentErrorsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("gamma_high", dict(gamma=1.5), ValueError, "gamma"),
        ("gamma_type", dict(gamma="0.9"), TypeError, "gamma"),
        ("lambda_negative", dict(lambda_=-0.1), ValueError, "lambda_"),
        ("clip_ratio_zero", dict(clip_ratio=0.0), ValueError, "clip_ratio"),
        (
            "clip_ratio_one_is_the_lower_clip_too",
            dict(clip_ratio=1.5),
            ValueError,
            "clip_ratio",
        ),
        (
            "clip_low_one",
            dict(clip_ratio_low=1.0),
            ValueError,
            "clip_ratio_low",
        ),
        (
            "clip_high_negative",
            dict(clip_ratio_high=-0.1),
            ValueError,
            "clip_ratio_high",
        ),
        ("dual_clip_one", dict(dual_clip=1.0), ValueError, "dual_clip"),
        ("value_coef", dict(value_coef=-1.0), ValueError, "value_coef"),
        ("entropy_coef", dict(entropy_coef=True), TypeError, "entropy_coef"),
        ("value_clip", dict(value_clip=-0.2), ValueError, "value_clip"),
        (
            "value_loss_type",
            dict(value_loss_type="l1"),
            ValueError,
            "value_loss_type",
        ),
        ("huber_delta", dict(huber_delta=0.0), ValueError, "huber_delta"),
        (
            "normalize",
            dict(normalize_advantages=1),
            TypeError,
            "normalize_advantages",
        ),
        ("max_grad_norm", dict(max_grad_norm=0.0), ValueError, "max_grad_norm"),
        ("kl_coef_negative", dict(kl_coef=-0.1), ValueError, "kl_coef"),
        ("kl_coef_type", dict(kl_coef="adaptive"), TypeError, "kl_coef"),
        ("kl_estimator", dict(kl_estimator="k4"), ValueError, "kl_estimator"),
        (
            "gae_implementation",
            dict(gae_implementation="fast"),
            ValueError,
            "gae_implementation",
        ),
        ("nan", dict(entropy_coef=float("nan")), ValueError, "entropy_coef"),
    )
    def test_invalid_hyperparameter(self, kwargs, error, name):
        actor, critic = linear_networks()
        with self.assertRaisesRegex(error, f"`{name}`.*Received: {name}="):
            PPOModel(actor, critic, **kwargs)

    def test_clip_ratio_above_one_needs_clip_ratio_low(self):
        actor, critic = linear_networks()
        with self.assertRaisesRegex(ValueError, "clip_ratio_low.*not given"):
            PPOModel(actor, critic, clip_ratio=1.5)
        # With its own lower clip, a wide clip_ratio is the upper one only.
        model = PPOModel(actor, critic, clip_ratio=1.5, clip_ratio_low=0.2)
        self.assertEqual(model.clip_ratio, 1.5)

    def test_invalid_networks(self):
        actor, critic = linear_networks()
        with self.assertRaisesRegex(ValueError, "`critic` is required"):
            PPOModel(actor)
        with self.assertRaisesRegex(ValueError, "either `shared`"):
            PPOModel(actor, critic, shared=actor)
        with self.assertRaisesRegex(TypeError, "`actor` must be a Keras"):
            PPOModel(lambda x: x, critic)
        with self.assertRaisesRegex(TypeError, "`policy_head` must be"):
            PPOModel(actor, critic, policy_head=keras.layers.Dense(2))
        torso = keras.Sequential([keras.layers.Dense(4)])
        with self.assertRaisesRegex(ValueError, "`actor` holds no PolicyHead"):
            PPOModel(torso, critic)
        with self.assertRaisesRegex(ValueError, "not among the PolicyHeads"):
            PPOModel(actor, critic, policy_head=CategoricalPolicyHead(2))

    def test_invalid_batches(self):
        model = linear_model()
        model.compile(optimizer="sgd")
        batch = random_batch()

        def fails(bad_batch, error, pattern):
            with self.assertRaisesRegex(error, pattern):
                model.train_on_batch(bad_batch)

        missing = {k: v for k, v in batch.items() if k != "bootstrap_value"}
        fails(missing, ValueError, r"missing key\(s\) \['bootstrap_value'\]")
        fails(
            {**batch, "rewards": batch["reward"]},
            ValueError,
            r"unknown key\(s\) \['rewards'\]",
        )
        fails(
            {**batch, "advantage": batch["reward"]},
            ValueError,
            '"advantage" and "return"',
        )
        fails(
            {**batch, "ref_log_prob": batch["log_prob"]},
            ValueError,
            "Received: kl_coef=None",
        )
        fails(
            {**batch, "value": batch["value"][:, :-1]},
            ValueError,
            r'batch\["value"\] must have the shape',
        )
        fails(
            {**batch, "observation": batch["observation"][:, 0]},
            ValueError,
            r'batch\["observation"\] must be \[B, T, ...\]',
        )
        fails(
            {**batch, "reward": batch["reward"].astype(np.int32)},
            TypeError,
            r'batch\["reward"\]',
        )


class PPONetworksTest(tf.test.TestCase):
    def test_call_distribution_and_act(self):
        model = linear_model()
        observations = np.random.default_rng(0).normal(size=(7, OBS))
        params, values = model(observations)
        self.assertEqual(params.shape, (7, ACTIONS))
        self.assertEqual(values.shape, (7,))
        kernel, bias, critic_kernel, critic_bias = model.get_weights()
        self.assertAllClose(params, observations @ kernel + bias, atol=1e-5)
        self.assertAllClose(
            values,
            (observations @ critic_kernel + critic_bias)[:, 0],
            atol=1e-5,
        )
        distribution = model.distribution(params)
        self.assertAllClose(
            distribution.logits_parameter(), observations @ kernel + bias
        )

        outputs = model.act(observations, seed=tf.constant([1, 2]))
        self.assertIsInstance(outputs, ActionOutputs)
        again = model.act(observations, seed=tf.constant([1, 2]))
        self.assertAllEqual(outputs.action, again.action)
        self.assertAllClose(
            outputs.log_prob, distribution.log_prob(outputs.action)
        )
        self.assertAllClose(outputs.value, values)
        greedy = model.act(observations, deterministic=True)
        self.assertAllEqual(
            greedy.action, np.argmax(observations @ kernel + bias, axis=-1)
        )

    def test_shared_trunk_trains(self):
        inputs = keras.Input((OBS,))
        features = keras.layers.Dense(8, activation="tanh")(inputs)
        params = CategoricalPolicyHead(ACTIONS, name="head")(features)
        value = keras.layers.Dense(1)(features)
        model = PPOModel(shared=keras.Model(inputs, [params, value]))
        self.assertEqual(model.policy_head.name, "head")
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        before = [w.numpy() for w in model.trainable_weights]
        logs = fit_one_step(model, random_batch())
        self.assertTrue(np.isfinite(logs["loss"]))
        for weight, old in zip(model.trainable_weights, before):
            self.assertNotAllClose(weight, old)

    def test_torso_with_policy_head_on_top(self):
        head = CategoricalPolicyHead(ACTIONS)
        torso = keras.Sequential([keras.layers.Dense(6, "relu")])
        critic = keras.Sequential([keras.layers.Dense(1)])
        model = PPOModel(torso, critic, policy_head=head)
        params, _ = model(tf.zeros((3, OBS)))
        self.assertEqual(params.shape, (3, ACTIONS))
        self.assertIn(
            id(head.trainable_weights[0]),
            {id(w) for w in model.trainable_weights},
        )

    def test_gaussian_head_and_nested_observations(self):
        action_dim = 2

        class Actor(keras.Model):
            def __init__(self):
                super().__init__()
                self.head = GaussianPolicyHead(action_dim)

            def call(self, observations):
                return self.head(
                    tf.concat(
                        [observations["position"], observations["velocity"]], -1
                    )
                )

        class Critic(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(1)

            def call(self, observations):
                return self.dense(observations["position"])

        model = PPOModel(Actor(), Critic(), entropy_coef=0.01)
        rng = np.random.default_rng(0)
        batch = random_batch(flags=False)
        batch["observation"] = {
            "position": rng.normal(size=(B, T, 2)).astype(np.float32),
            "velocity": rng.normal(size=(B, T, 1)).astype(np.float32),
        }
        batch["action"] = rng.normal(size=(B, T, action_dim)).astype(np.float32)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        logs = fit_one_step(model, batch)
        self.assertTrue(all(np.isfinite(v) for v in logs.values()))
        # Gaussian entropy: sum over dims of 0.5 * log(2 pi e sigma^2),
        # sigma = 1 at the initial log-std of 0.
        self.assertAllClose(
            logs["entropy"], action_dim * 0.5 * np.log(2 * np.pi * np.e)
        )


if __name__ == "__main__":
    tf.test.main()

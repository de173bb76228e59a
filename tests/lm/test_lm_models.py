"""CausalLMPPOModel: one train step against float64 NumPy, alignment, masks.

The NumPy reference recomputes the tiny language model from its weights
(token embeddings, a causal prefix mean, tanh, two linear heads), reads the
policy and value of step t at position t - 1, and forms GAE
(arXiv:1506.02438) with gamma = 1, masked advantage normalization, PPO's
clipped surrogate (arXiv:1707.06347, eq. 7), the (clipped) value loss and
the entropy, all as means over response tokens.
"""

import contextlib
import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.losses.kl_control import AdaptiveKLController
from keras_gae.ops import _checks
from tests.lm.test_reward_functions import nan_reward_model
from tests.models.test_ppo_model import gae_reference
from tests.models.test_ppo_model import log_softmax
from tests.models.test_ppo_model import masked_mean
from tests.models.test_ppo_model import masked_variance

VOCAB, WIDTH, EOS = 6, 4, 5
B, P, N = 4, 2, 5
L = P + N


@keras.saving.register_keras_serializable(package="keras_gae_tests")
class PrefixMeanLM(keras.Model):
    """h_t = tanh(mean of embeddings of tokens[:t + 1]); linear heads."""

    def __init__(self, vocab_size=VOCAB, width=WIDTH, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.width = width
        self.embedding = keras.layers.Embedding(
            vocab_size,
            width,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        self.logits_layer = keras.layers.Dense(
            vocab_size,
            kernel_initializer=keras.initializers.RandomNormal(stddev=1.0),
            bias_initializer=keras.initializers.RandomNormal(stddev=0.5),
        )
        self.value_layer = keras.layers.Dense(
            1,
            kernel_initializer=keras.initializers.RandomNormal(stddev=1.0),
            bias_initializer=keras.initializers.RandomNormal(stddev=0.5),
        )

    def call(self, tokens, training=None):
        embedded = self.embedding(tokens)
        counts = tf.cast(tf.range(1, tf.shape(tokens)[1] + 1), tf.float32)
        hidden = tf.tanh(
            tf.cumsum(embedded, axis=1) / counts[tf.newaxis, :, tf.newaxis]
        )
        return self.logits_layer(hidden), self.value_layer(hidden)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, width=self.width)
        return config


def make_network(seed):
    keras.utils.set_random_seed(seed)
    network = PrefixMeanLM()
    network(tf.zeros([1, L], tf.int32))
    return network


def numpy_forward(network, tokens):
    """float64 (logits [B, L, V], values [B, L]) from the weights."""
    embeddings = network.embedding.embeddings.numpy().astype(np.float64)
    kernel, bias = (
        w.numpy().astype(np.float64) for w in network.logits_layer.weights
    )
    v_kernel, v_bias = (
        w.numpy().astype(np.float64) for w in network.value_layer.weights
    )
    embedded = embeddings[tokens]
    counts = np.arange(1, tokens.shape[1] + 1)[None, :, None]
    hidden = np.tanh(np.cumsum(embedded, axis=1) / counts)
    return hidden @ kernel + bias, (hidden @ v_kernel + v_bias)[..., 0]


def make_tokens(seed):
    """Rows: ends with EOS early, EOS last, truncated, EOS right away."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, EOS, size=(B, L)).astype(np.int32)
    tokens[0, P + 2] = EOS
    tokens[0, P + 3 :] = EOS
    tokens[1, L - 1] = EOS
    tokens[3, P] = EOS
    tokens[3, P + 1 :] = EOS
    return tokens


def make_batch(seed, kl_coef=0.1):
    rng = np.random.default_rng(seed + 1)
    tokens = make_tokens(seed)
    return lm.sequence_rollout_batch(
        tokens,
        P,
        rng.normal(size=(B, L)).astype(np.float32) - 1.5,
        rng.normal(size=(B, L)).astype(np.float32) - 1.5,
        rng.normal(size=(B, L)).astype(np.float32),
        rng.normal(size=B).astype(np.float32),
        eos_id=EOS,
        kl_coef=kl_coef,
        bootstrap_value=rng.normal(size=B).astype(np.float32),
    )


def numpy_step(
    network,
    batch,
    *,
    temperature,
    lambda_,
    clip_ratio,
    value_coef,
    entropy_coef,
    value_clip,
):
    """float64 losses of one PPO step on a sequence rollout batch."""
    batch = {k: np.asarray(v) for k, v in batch.items()}
    tokens = batch["observation"]
    mask = batch["mask"]
    logits, values = numpy_forward(network, tokens)
    params = np.zeros_like(logits)
    params[:, 1:] = logits[:, :-1] / temperature
    new_values = np.zeros_like(values)
    new_values[:, 1:] = values[:, :-1]
    log_distribution = log_softmax(params)
    log_probs = np.take_along_axis(
        log_distribution, tokens[..., None], axis=-1
    )[..., 0]
    entropy = -np.sum(np.exp(log_distribution) * log_distribution, axis=-1)

    advantages, returns = gae_reference(batch, 1.0, lambda_)
    mean = masked_mean(advantages, mask)
    std = np.sqrt(masked_variance(advantages, mask))
    normalized = (advantages - mean) / np.sqrt(std**2 + 1e-8)

    ratio = np.exp(log_probs - batch["log_prob"])
    clipped = np.clip(ratio, 1 - clip_ratio, 1 + clip_ratio)
    surrogate = np.minimum(ratio * normalized, clipped * normalized)
    policy_loss = -masked_mean(surrogate, mask)
    old_values = batch["value"]
    errors = 0.5 * (new_values - returns) ** 2
    if value_clip is not None:
        clipped_values = old_values + np.clip(
            new_values - old_values, -value_clip, value_clip
        )
        errors = np.maximum(errors, 0.5 * (clipped_values - returns) ** 2)
    value_loss = masked_mean(errors, mask)
    mean_entropy = masked_mean(entropy, mask)
    log_ratio = log_probs - batch["log_prob"]
    return {
        "loss": policy_loss
        + value_coef * value_loss
        - entropy_coef * mean_entropy,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": mean_entropy,
        "approx_kl": masked_mean(np.exp(log_ratio) - 1 - log_ratio, mask),
        "advantage_mean": mean,
        "advantage_std": std,
    }


def make_model(network, learning_rate=0.1, **kwargs):
    model = lm.CausalLMPPOModel(network, vocab_size=VOCAB, eos_id=EOS, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    return model


class CausalLogProbsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("unit", 1.0), ("hot", 0.7))
    def test_one_pass_equals_per_prefix_recomputation(self, temperature):
        network = make_network(0)
        tokens = make_tokens(0)
        logits, _ = network(tokens)
        one_pass = lm.causal_log_probs(
            logits, tokens, temperature=temperature
        ).numpy()
        model = make_model(network, temperature=temperature)
        params, _ = model.sequence_outputs(tokens)
        from_model = tf.nn.log_softmax(params).numpy()
        for t in range(1, L):
            # The model sees only the prefix: no later token can leak in.
            prefix_logits, _ = network(tokens[:, :t])
            expected = tf.nn.log_softmax(
                prefix_logits[:, -1] / temperature
            ).numpy()[np.arange(B), tokens[:, t]]
            self.assertAllClose(one_pass[:, t], expected, atol=1e-5)
            self.assertAllClose(
                from_model[np.arange(B), t, tokens[:, t]], expected, atol=1e-5
            )
        self.assertAllEqual(one_pass[:, 0], np.zeros(B))

    def test_values_are_read_at_the_previous_position(self):
        network = make_network(1)
        tokens = make_tokens(1)
        model = make_model(network)
        _, values = model.sequence_outputs(tokens)
        for t in range(1, L):
            _, prefix_values = network(tokens[:, :t])
            self.assertAllClose(
                values[:, t], prefix_values[:, -1, 0], atol=1e-5
            )

    def test_call_merges_time_into_the_batch(self):
        model = make_model(make_network(2))
        params, values = model(make_tokens(2))
        self.assertEqual(params.shape, (B * L, VOCAB))
        self.assertEqual(values.shape, (B * L,))

    def test_rejects_float_tokens(self):
        with self.assertRaisesRegex(TypeError, "tokens"):
            lm.causal_log_probs(tf.zeros([1, 2, 3]), tf.zeros([1, 2]))


class TrainStepTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("defaults", dict()),
        (
            "clipped_value_entropy_temperature",
            dict(
                value_clip=0.1,
                entropy_coef=0.05,
                temperature=0.8,
                lambda_=0.9,
                clip_ratio=0.1,
            ),
        ),
    )
    def test_losses_match_numpy(self, settings):
        config = dict(
            temperature=1.0,
            lambda_=0.95,
            clip_ratio=0.2,
            value_coef=0.5,
            entropy_coef=0.0,
            value_clip=None,
        )
        config.update(settings)
        network = make_network(3)
        batch = make_batch(3)
        expected = numpy_step(network, batch, **config)
        model = make_model(network, **config)
        logs = model.train_on_batch(batch, return_dict=True)
        for name, value in expected.items():
            self.assertAllClose(
                logs[name], value, rtol=1e-4, atol=1e-5, msg=name
            )

    def test_masked_positions_affect_neither_loss_nor_update(self):
        batch = {k: v.numpy() for k, v in make_batch(4).items()}
        garbage = dict(batch)
        invalid = ~batch["mask"]
        for key in ("log_prob", "value", "reward"):
            garbage[key] = np.where(invalid, np.nan, batch[key]).astype(
                np.float32
            )
        # Tokens after a row's EOS (positions no step reads) changed.
        tokens = batch["observation"].copy()
        after_eos = invalid & (np.arange(L)[None, :] >= P)
        tokens[after_eos] = (tokens[after_eos] + 1) % EOS
        garbage["observation"] = garbage["action"] = tokens

        first = make_model(make_network(4), learning_rate=0.5)
        second = make_model(make_network(4), learning_rate=0.5)
        logs_first = first.train_on_batch(batch, return_dict=True)
        logs_second = second.train_on_batch(garbage, return_dict=True)
        for name, value in logs_first.items():
            self.assertAllClose(logs_second[name], value, msg=name)
        changed = False
        for before, w_first, w_second in zip(
            make_network(4).weights,
            first.network.weights,
            second.network.weights,
        ):
            self.assertAllClose(w_first, w_second)
            changed |= not np.allclose(before.numpy(), w_first.numpy())
        self.assertTrue(changed)

    def test_gradients_vanish_on_tokens_only_masked_steps_read(self):
        # The last token row position after EOS feeds no valid step: the
        # embedding of a token used only there gets no gradient.
        network = make_network(5)
        batch = {k: v.numpy() for k, v in make_batch(5).items()}
        tokens = np.full((B, L), EOS, np.int32)
        tokens[:, :P] = 1
        tokens[:, P] = 2
        tokens[:, P + 1] = EOS
        tokens[:, L - 1] = 4  # after EOS: read by no valid step
        batch["observation"] = batch["action"] = tokens
        mask = np.zeros((B, L), bool)
        mask[:, P : P + 2] = True
        batch["mask"] = mask
        batch["terminated"] = np.zeros((B, L), bool)
        batch["terminated"][:, P + 1] = True
        batch["truncated"] = np.zeros((B, L), bool)
        model = make_model(network)
        prepared = model._prepare(model._check_batch(batch), training=True)
        with tf.GradientTape() as tape:
            params, values = model(prepared.observations, training=True)
            loss = model._loss_terms(prepared, params, values)["loss"]
        gradient = tape.gradient(loss, network.embedding.embeddings)
        gradient = tf.convert_to_tensor(gradient).numpy()
        self.assertAllEqual(gradient[4], np.zeros(WIDTH))
        self.assertGreater(np.abs(gradient[1]).sum(), 0.0)


class CollectTest(tf.test.TestCase, parameterized.TestCase):
    def test_batch_matches_one_pass_recomputation_and_controller(self):
        network = make_network(6)
        reference = make_network(7)
        controller = AdaptiveKLController(0.2, target_kl=0.5, horizon=20.0)
        model = make_model(
            network, reference_network=reference, reward_kl_coef=controller
        )
        prompts = np.array([[1, 2], [3, 0], [2, 2], [4, 1]], np.int32)

        def scorer(tokens, mask):
            return tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)

        rollout = model.collect(prompts, scorer, max_new_tokens=N, seed=3)
        batch = {k: v.numpy() for k, v in rollout.batch.items()}
        tokens = batch["observation"]
        mask = batch["mask"]
        self.assertAllEqual(tokens[:, :P], prompts)
        logits, values = numpy_forward(network, tokens)
        log_probs = np.take_along_axis(
            log_softmax(logits[:, :-1]), tokens[:, 1:, None], axis=-1
        )[..., 0]
        self.assertAllClose(
            batch["log_prob"][:, 1:][mask[:, 1:]],
            log_probs[mask[:, 1:]],
            atol=1e-4,
        )
        self.assertAllClose(
            batch["value"][:, 1:][mask[:, 1:]],
            values[:, :-1][mask[:, 1:]],
            atol=1e-4,
        )
        ref_logits, _ = numpy_forward(reference, tokens)
        ref_log_probs = np.take_along_axis(
            log_softmax(ref_logits[:, :-1]), tokens[:, 1:, None], axis=-1
        )[..., 0]
        kl = np.where(mask[:, 1:], log_probs - ref_log_probs, 0.0)
        expected_kl = kl.sum(axis=1).mean()
        self.assertAllClose(rollout.kl, expected_kl, atol=1e-4)
        self.assertAllClose(rollout.scores, mask.sum(axis=1))
        self.assertAllClose(rollout.kl_coef, 0.2)
        rewards = np.zeros((B, L))
        rewards[:, 1:] = -0.2 * kl
        last = L - 1 - np.argmax(mask[:, ::-1], axis=1)
        rewards[np.arange(B), last] += mask.sum(axis=1)
        self.assertAllClose(batch["reward"], rewards, atol=1e-4)
        error = np.clip(expected_kl / 0.5 - 1.0, -0.2, 0.2)
        self.assertAllClose(
            controller.value, 0.2 * (1 + error * B / 20.0), atol=1e-5
        )
        logs = model.train_on_batch(rollout.batch, return_dict=True)
        # Collected with the same weights: the first step's ratio is 1.
        self.assertAllClose(logs["approx_kl"], 0.0, atol=1e-6)
        self.assertTrue(all(np.isfinite(v) for v in logs.values()))

    @parameterized.parameters("gae", "grpo")
    def test_the_mask_is_checked_once_per_collect(self, estimator):
        """Validation at the boundary: `generate`'s response mask reaches
        the scorer, the rewards, the batch and the advantages as it is,
        not converted and compared again at every hop (issue 24)."""
        model = make_model(
            make_network(1),
            reference_network=make_network(2),
            reward_kl_coef=0.1,
            advantage_estimator=estimator,
        )
        prompts = np.array([[1, 2], [3, 0]], np.int32)
        # The first call traces the reference pass (its checks run once,
        # in the trace); counted is a call after it.
        model.collect(prompts, count_response, max_new_tokens=N, num_samples=2)
        counted = ("convert_flag", "check_same_shape")
        mocks = {
            name: mock.patch.object(_checks, name, wraps=getattr(_checks, name))
            for name in counted
        }
        calls = {}
        with contextlib.ExitStack() as stack:
            for name, patch in mocks.items():
                calls[name] = stack.enter_context(patch)
            model.collect(
                prompts, count_response, max_new_tokens=N, num_samples=2
            )
        # Critic-free: one check of the rewards and mask by the estimator.
        once = 0 if estimator == "gae" else 1
        self.assertEqual(
            {name: calls[name].call_count for name in counted},
            {name: once for name in counted},
        )

    def test_reference_is_frozen_and_saved_with_the_model(self):
        reference = make_network(8)
        model = make_model(
            make_network(9), reference_network=reference, reward_kl_coef=0.1
        )
        self.assertFalse(reference.trainable)
        trainable = {id(v) for v in model.trainable_variables}
        self.assertTrue(all(id(v) not in trainable for v in reference.weights))
        saved = {id(v) for v in model.weights}
        self.assertTrue(all(id(v) in saved for v in reference.weights))


class ConfigAndErrorsTest(tf.test.TestCase, parameterized.TestCase):
    def test_get_config_round_trip(self):
        model = lm.CausalLMPPOModel(
            make_network(10),
            vocab_size=VOCAB,
            eos_id=EOS,
            reference_network=make_network(11),
            reward_kl_coef=AdaptiveKLController(0.1, 2.0, 100.0),
            temperature=0.9,
            clip_ratio=0.15,
        )
        restored = lm.CausalLMPPOModel.from_config(model.get_config())
        self.assertEqual(restored.temperature, 0.9)
        self.assertEqual(restored.clip_ratio, 0.15)
        self.assertEqual(restored.gamma, 1.0)
        self.assertEqual(restored.eos_id, EOS)
        self.assertIsInstance(restored.reward_kl_coef, AdaptiveKLController)
        self.assertFalse(restored.reference_network.trainable)

    def test_keras_save_and_load_round_trip(self):
        model = make_model(
            make_network(13),
            reference_network=make_network(14),
            reward_kl_coef=AdaptiveKLController(0.1, 2.0, 100.0),
            temperature=0.9,
            pad_id=0,
        )
        model.train_on_batch(make_batch(13), return_dict=True)
        tokens = make_tokens(13)
        path = os.path.join(self.get_temp_dir(), "lm_ppo.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        self.assertIsInstance(restored, lm.CausalLMPPOModel)
        self.assertEqual(restored.temperature, 0.9)
        self.assertEqual(restored.pad_id, 0)
        self.assertFalse(restored.reference_network.trainable)
        self.assertIsInstance(restored.reward_kl_coef, AdaptiveKLController)
        for expected, actual in zip(
            model.sequence_outputs(tokens), restored.sequence_outputs(tokens)
        ):
            self.assertAllClose(actual, expected)
        self.assertAllClose(
            restored.reference_log_probs(tokens),
            model.reference_log_probs(tokens),
        )

    def test_tf_keras_network_gets_the_keras_3_message(self):
        import tf_keras

        network = tf_keras.Sequential([tf_keras.layers.Dense(VOCAB)])
        with self.assertRaisesRegex(TypeError, "network.*Keras 2.*Keras 3"):
            lm.CausalLMPPOModel(network, vocab_size=VOCAB, eos_id=EOS)
        with self.assertRaisesRegex(TypeError, "reference_network.*Keras 2"):
            lm.CausalLMPPOModel(
                make_network(12),
                vocab_size=VOCAB,
                eos_id=EOS,
                reference_network=network,
            )

    @parameterized.named_parameters(
        ("network", dict(network="lm"), TypeError, "network"),
        ("shared", dict(shared=None), ValueError, "shared"),
        ("temperature", dict(temperature=0.0), ValueError, "temperature"),
        ("eos", dict(eos_id=-1), ValueError, "eos_id"),
        ("eos_vocab", dict(eos_id=VOCAB), ValueError, "eos_id"),
        ("pad_vocab", dict(pad_id=VOCAB), ValueError, "pad_id"),
        ("kl_no_ref", dict(reward_kl_coef=0.1), ValueError, "reward_kl_coef"),
        ("kl_type", dict(reward_kl_coef="x"), TypeError, "reward_kl_coef"),
        (
            "estimator",
            dict(reward_kl_estimator="k9"),
            ValueError,
            "reward_kl_estimator",
        ),
        ("vocab", dict(vocab_size=0), ValueError, "vocab_size"),
    )
    def test_bad_arguments(self, override, error, name):
        arguments = dict(network=make_network(12), vocab_size=VOCAB, eos_id=EOS)
        arguments.update(override)
        with self.assertRaisesRegex(error, f"{name}.*Received: {name}="):
            lm.CausalLMPPOModel(**arguments)


class TokenLogitsHeadTest(tf.test.TestCase, parameterized.TestCase):
    def test_params_distribution_and_greedy_action(self):
        head = lm.TokenLogitsHead(VOCAB, temperature=0.5)
        logits = np.random.default_rng(0).normal(size=(3, VOCAB))
        params = head(tf.constant(logits, tf.float32))
        self.assertEqual(params.dtype, tf.float32)
        self.assertAllClose(params, logits / 0.5)
        tokens = np.array([0, 3, 5], np.int32)
        self.assertAllClose(
            head.distribution(params).log_prob(tokens),
            log_softmax(logits / 0.5)[np.arange(3), tokens],
        )
        self.assertAllEqual(head.greedy_action(params), logits.argmax(-1))

    def test_get_config_round_trip(self):
        head = lm.TokenLogitsHead(VOCAB, temperature=0.7, name="head")
        restored = lm.TokenLogitsHead.from_config(head.get_config())
        self.assertEqual(restored.vocab_size, VOCAB)
        self.assertEqual(restored.temperature, 0.7)
        self.assertEqual(restored.name, "head")

    def test_keras_save_and_load_in_a_functional_model(self):
        keras.utils.set_random_seed(0)
        tokens = keras.Input([None], dtype="int32")
        logits = keras.layers.Dense(VOCAB)(
            keras.layers.Embedding(VOCAB, WIDTH)(tokens)
        )
        model = keras.Model(tokens, lm.TokenLogitsHead(VOCAB, 0.8)(logits))
        path = os.path.join(self.get_temp_dir(), "head.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        rows = make_tokens(0)
        self.assertAllClose(restored(rows), model(rows))

    @parameterized.named_parameters(
        ("vocab", dict(vocab_size=0), ValueError, "vocab_size"),
        ("vocab_type", dict(vocab_size=2.0), TypeError, "vocab_size"),
        ("temperature", dict(temperature=-1.0), ValueError, "temperature"),
    )
    def test_bad_arguments(self, override, error, name):
        arguments = dict(vocab_size=VOCAB)
        arguments.update(override)
        with self.assertRaisesRegex(error, f"{name}.*Received: {name}="):
            lm.TokenLogitsHead(**arguments)


def functional_network(positions=None):
    """tokens -> (logits, values) with no `vocab_size` attribute, and a
    positional Embedding of `positions` rows when given."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input([None], dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, WIDTH)(tokens)
    if positions is not None:
        hidden = PositionsAdded(positions)(hidden)
    return keras.Model(
        tokens,
        (keras.layers.Dense(VOCAB)(hidden), keras.layers.Dense(1)(hidden)),
    )


class PositionsAdded(keras.layers.Layer):
    def __init__(self, positions, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(positions, WIDTH)

    def call(self, hidden):
        positions = tf.range(tf.shape(hidden)[1])
        return hidden + self.embedding(positions)[tf.newaxis]


class NonFinite(PrefixMeanLM):
    """PrefixMeanLM whose logits or values are multiplied by `factor`."""

    def __init__(self, scaled="values", factor=np.nan, **kwargs):
        super().__init__(**kwargs)
        self.scaled, self.factor = scaled, factor

    def call(self, tokens, training=None):
        logits, values = super().call(tokens)
        if self.scaled == "logits":
            return logits * self.factor, values
        return logits, values * self.factor


def count_response(tokens, mask):
    return tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)


class CollectInputChecksTest(tf.test.TestCase, parameterized.TestCase):
    """Issue 20: what enters `collect` is checked, naming its source."""

    def test_prompt_ids_outside_a_functional_networks_vocabulary(self):
        model = make_model(functional_network())
        for bad in (VOCAB, -1):
            with self.assertRaisesRegex(
                ValueError,
                rf"prompt_tokens.*\[0, {VOCAB}\).*ids \[{bad}\] in rows \[1\]",
            ):
                model.collect(
                    [[1, 2], [bad, 3]], count_response, max_new_tokens=2
                )

    def test_prompt_and_new_tokens_past_a_positional_embedding(self):
        model = make_model(functional_network(positions=6))
        rollout = model.collect(
            [[1, 2]], count_response, max_new_tokens=4, seed=0
        )
        self.assertEqual(rollout.batch["observation"].shape, (1, 6))
        with self.assertRaisesRegex(
            ValueError, "6 positions.*Received: max_new_tokens=5"
        ):
            model.collect([[1, 2]], count_response, max_new_tokens=5)

    def test_vocab_size_other_than_the_logits(self):
        model = lm.CausalLMPPOModel(make_network(0), vocab_size=5, eos_id=4)
        with self.assertRaisesRegex(
            ValueError, f"`vocab_size`.*logits, {VOCAB}.*vocab_size=5"
        ):
            model.collect([[1, 2]], count_response, max_new_tokens=2)

    @parameterized.named_parameters(("nan", np.nan), ("inf", np.inf))
    def test_non_finite_score_names_the_reward_function(self, bad):
        def flaky_scorer(tokens, mask):
            return np.array([1.0, bad], np.float32)

        model = make_model(make_network(0))
        with self.assertRaisesRegex(
            ValueError, r"NaN or Inf scores.*rows \[1\].*flaky_scorer"
        ):
            model.collect([[1, 2], [3, 4]], flaky_scorer, max_new_tokens=2)

    def test_non_finite_reward_model(self):
        reward_model = nan_reward_model("nan_reward_model")
        model = make_model(make_network(0))
        with self.assertRaisesRegex(
            ValueError, "NaN or Inf scores.*nan_reward_model"
        ):
            model.collect([[1, 2]], reward_model, max_new_tokens=2)

    def test_non_finite_reference_and_values_name_their_network(self):
        def build(network):
            network(tf.zeros([1, L], tf.int32))
            return network

        model = make_model(
            make_network(0),
            reference_network=build(NonFinite("logits", np.nan)),
            reward_kl_coef=0.1,
        )
        with self.assertRaisesRegex(
            ValueError,
            "`reference_network` gave NaN or Inf log-probabilities.*"
            "Received: reference_network=",
        ):
            model.collect([[1, 2]], count_response, max_new_tokens=2)
        model = make_model(build(NonFinite("values", np.inf)))
        with self.assertRaisesRegex(
            ValueError, "`network` gave NaN or Inf values.*Received: network="
        ):
            model.collect([[1, 2]], count_response, max_new_tokens=2)
        model = make_model(build(NonFinite("logits", np.nan)))
        with self.assertRaisesRegex(
            ValueError, "`network` gave NaN or Inf logits"
        ):
            model.collect([[1, 2]], count_response, max_new_tokens=2)

    def test_update_kl_controller_must_be_a_bool(self):
        model = make_model(make_network(0))
        with self.assertRaisesRegex(
            TypeError, "Received: update_kl_controller=1"
        ):
            model.collect(
                [[1, 2]],
                count_response,
                max_new_tokens=2,
                update_kl_controller=1,
            )

    def test_reference_log_probs_of_ids_outside_the_vocabulary(self):
        model = make_model(make_network(0), reference_network=make_network(1))
        with self.assertRaisesRegex(
            ValueError, rf"`tokens`.*\[0, {VOCAB}\).*ids \[{VOCAB}\]"
        ):
            model.reference_log_probs([[1, VOCAB]])

    def test_causal_log_probs_of_ids_outside_the_logits(self):
        logits = tf.zeros([1, 3, VOCAB])
        for bad in (VOCAB, -1):
            with self.assertRaisesRegex(
                ValueError, rf"`tokens`.*\[0, {VOCAB}\).*ids \[{bad}\]"
            ):
                lm.causal_log_probs(logits, [[1, bad, 2]])
        with self.assertRaisesRegex(
            ValueError, "`tokens` must have shape.*Received: tokens="
        ):
            lm.causal_log_probs(logits, [[1, 2]])

    def test_training_on_token_ids_outside_the_vocabulary(self):
        # Under XLA the graph assertion on the network's tokens is dropped
        # (and a GPU embedding reads zeros, as one-hot inputs do here): the
        # head still refuses the action.
        keras.utils.set_random_seed(0)
        tokens = keras.Input([None], dtype="int32")
        hidden = keras.layers.Dense(WIDTH)(
            keras.layers.Lambda(lambda t: keras.ops.one_hot(t, VOCAB))(tokens)
        )
        network = keras.Model(
            tokens,
            (keras.layers.Dense(VOCAB)(hidden), keras.layers.Dense(1)(hidden)),
        )
        model = lm.CausalLMPPOModel(network, vocab_size=VOCAB, eos_id=EOS)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
        batch = dict(make_batch(0))
        rows = np.array(batch["observation"])
        rows[2, P] = VOCAB
        batch["observation"] = batch["action"] = tf.constant(rows)
        with self.assertRaisesRegex(
            ValueError, rf"token ids in \[0, {VOCAB}\)"
        ):
            model.fit(batch, epochs=1, verbose=0)

    def test_stop_token_ids_must_be_a_sequence(self):
        with self.assertRaisesRegex(TypeError, "Received: stop_token_ids=4"):
            make_model(make_network(0), stop_token_ids=4)


class NetworkInputIdsTest(tf.test.TestCase):
    """Issue 20: token ids reaching the network's embedding are checked."""

    def test_sequence_outputs(self):
        model = make_model(make_network(0))
        with self.assertRaisesRegex(
            ValueError, rf"`tokens`.*\[0, {VOCAB}\).*ids \[-1\] in rows \[1\]"
        ):
            model.sequence_outputs([[1, 2], [3, -1]])

    def test_training_batch(self):
        model = make_model(make_network(0))
        batch = dict(make_batch(0))
        rows = np.array(batch["observation"])
        rows[2, 0] = VOCAB  # A prompt position: no action reads it.
        batch["observation"] = batch["action"] = tf.constant(rows)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, rf"`tokens`.*\[0, {VOCAB}\)"
        ):
            model.fit(batch, epochs=1, verbose=0)

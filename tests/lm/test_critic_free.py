"""Estimators and value functions: GAE needs one, the others use none."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from tests.lm import keras_hub_models as khm
from tests.lm.test_lm_models import EOS
from tests.lm.test_lm_models import VOCAB
from tests.lm.test_lm_models import NonFinite
from tests.lm.test_lm_models import make_batch
from tests.lm.test_lm_models import numpy_forward
from tests.models.test_ppo_model import log_softmax
from tests.models.test_ppo_model import masked_mean


def critic_free_batch(seed):
    batch = {k: np.asarray(v) for k, v in make_batch(seed).items()}
    rng = np.random.default_rng(seed + 7)
    advantages = rng.normal(size=batch["mask"].shape).astype(np.float32)
    batch["advantage"] = np.where(batch["mask"], advantages, 0.0)
    batch["return"] = np.zeros_like(advantages)
    return batch


def numpy_policy_loss(network, batch, clip_ratio=0.2):
    """Token-mean PPO clipped surrogate (arXiv:1707.06347), float64."""
    tokens, mask = batch["observation"], batch["mask"]
    logits, _ = numpy_forward(network, tokens)
    log_distribution = log_softmax(logits[:, :-1])
    log_probs = np.zeros(tokens.shape)
    log_probs[:, 1:] = np.take_along_axis(
        log_distribution, tokens[:, 1:, None], axis=-1
    )[..., 0]
    ratio = np.exp(log_probs - batch["log_prob"])
    advantages = batch["advantage"]
    clipped = np.clip(ratio, 1 - clip_ratio, 1 + clip_ratio)
    return -masked_mean(
        np.minimum(ratio * advantages, clipped * advantages), mask
    )


class ValueFunctionTest(tf.test.TestCase, parameterized.TestCase):
    def test_gae_without_a_value_function_is_refused(self):
        policy = lm.CausalLMPolicy(khm.gpt2(), value_head=None)
        for arguments in (dict(), dict(advantage_estimator="gae")):
            with self.assertRaisesRegex(
                ValueError,
                "advantage_estimator=.gae.* needs a value function.*"
                "Received: advantage_estimator='gae', value_head=None",
            ):
                lm.CausalLMPPOModel(
                    policy, vocab_size=khm.VOCAB, eos_id=1, **arguments
                )

    @parameterized.named_parameters(
        ("value_coef", dict(value_coef=0.5), "value_coef"),
        ("value_clip", dict(value_clip=0.2), "value_clip"),
    )
    def test_critic_free_refuses_value_settings(self, override, name):
        with self.assertRaisesRegex(
            ValueError, f"grpo.*`{name}`.*Received: {name}="
        ):
            lm.CausalLMPPOModel(
                NonFinite(),
                vocab_size=VOCAB,
                eos_id=EOS,
                advantage_estimator="grpo",
                **override,
            )

    def test_critic_free_refuses_a_separate_critic(self):
        critic = keras.Sequential([keras.layers.Embedding(khm.VOCAB, 1)])
        policy = lm.CausalLMPolicy(khm.gpt2(), value_head=None, critic=critic)
        with self.assertRaisesRegex(ValueError, "rloo.*Received: critic="):
            lm.CausalLMPPOModel(
                policy,
                vocab_size=khm.VOCAB,
                eos_id=1,
                advantage_estimator="rloo",
            )

    @parameterized.parameters("grpo", "dr_grpo", "rloo", "reinforce_pp")
    def test_critic_free_step_reads_no_value(self, estimator):
        # The network's values are NaN: read anywhere in the step, they
        # would make the loss NaN and stop fit.
        keras.utils.set_random_seed(3)
        network = NonFinite(scaled="values", factor=np.nan)
        batch = critic_free_batch(3)
        network(batch["observation"])
        expected = numpy_policy_loss(network, batch)
        model = lm.CausalLMPPOModel(
            network,
            vocab_size=VOCAB,
            eos_id=EOS,
            advantage_estimator=estimator,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        self.assertEqual(model.value_coef, 0.0)
        value_weights = [w.numpy() for w in network.value_layer.weights]
        policy_weights = [w.numpy() for w in network.logits_layer.weights]
        logs = model.train_on_batch(batch, return_dict=True)
        self.assertAllClose(logs["policy_loss"], expected, rtol=1e-5)
        # No value loss in the total (the entropy coefficient is 0).
        self.assertAllClose(logs["loss"], expected, rtol=1e-5)
        for name in ("value_loss", "value_clip_fraction", "explained_variance"):
            self.assertNotIn(name, logs)
        for before, after in zip(value_weights, network.value_layer.weights):
            self.assertAllEqual(after, before)
        self.assertFalse(
            all(
                np.array_equal(before, after)
                for before, after in zip(
                    policy_weights, network.logits_layer.weights
                )
            )
        )

    def test_gae_keeps_the_critic_metrics(self):
        keras.utils.set_random_seed(4)
        network = NonFinite(scaled="values", factor=1.0)
        model = lm.CausalLMPPOModel(network, vocab_size=VOCAB, eos_id=EOS)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        logs = model.train_on_batch(make_batch(4), return_dict=True)
        self.assertGreater(logs["value_loss"], 0.0)
        self.assertAllClose(
            logs["loss"], logs["policy_loss"] + 0.5 * logs["value_loss"]
        )

"""TRL's everyday GRPO options against NumPy: GSPO's sequence ratios, Dr.
GRPO's constant-length loss, scale_rewards and mask_truncated_completions.

The references recompute the tiny language model of test_lm_models from its
weights in float64 and follow the formulas of TRL's GRPOTrainer (Zheng et
al. 2025, arXiv:2507.18071 for GSPO; Liu et al. 2025, arXiv:2503.20783 for
Dr. GRPO).
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from tests.lm.test_lm_models import EOS
from tests.lm.test_lm_models import VOCAB
from tests.lm.test_lm_models import make_batch
from tests.lm.test_lm_models import make_network
from tests.lm.test_lm_models import numpy_forward
from tests.models.test_ppo_model import log_softmax

CLIP = 0.2


def numpy_log_probs(network, tokens):
    logits, _ = numpy_forward(network, tokens)
    out = np.zeros(tokens.shape)
    out[:, 1:] = np.take_along_axis(
        log_softmax(logits[:, :-1]), tokens[:, 1:, None], axis=-1
    )[..., 0]
    return out


def off_policy_batch(network, seed):
    """A batch whose old log-probs are the network's plus noise, and one
    advantage per row (an outcome estimator's)."""
    batch = {k: np.asarray(v) for k, v in make_batch(seed).items()}
    rng = np.random.default_rng(seed + 11)
    mask = batch["mask"]
    new = numpy_log_probs(network, batch["observation"])
    old = new + rng.normal(scale=0.3, size=new.shape)
    batch["log_prob"] = np.where(mask, old, 0.0).astype(np.float32)
    row_advantages = rng.normal(size=(mask.shape[0], 1))
    batch["advantage"] = np.where(mask, row_advantages, 0.0).astype(np.float32)
    batch["return"] = np.zeros(mask.shape, np.float32)
    return batch, new


def surrogate(ratio, advantages):
    clipped = np.clip(ratio, 1 - CLIP, 1 + CLIP)
    return -np.minimum(ratio * advantages, clipped * advantages)


def policy_loss_of(network, batch, **settings):
    model = lm.CausalLMPPOModel(
        network,
        vocab_size=VOCAB,
        eos_id=EOS,
        advantage_estimator="grpo",
        clip_ratio=CLIP,
        **settings,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model.test_on_batch(batch, return_dict=True)["policy_loss"]


class PolicyLossTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("sequence_mean", "token_mean")
    def test_sequence_level_ratios(self, aggregation):
        network = make_network(20)
        batch, new = off_policy_batch(network, 20)
        mask = batch["mask"]
        rows = [b for b in range(len(mask)) if mask[b].any()]
        per_row = []
        for b in rows:
            valid = mask[b]
            log_ratio = np.mean(new[b][valid] - batch["log_prob"][b][valid])
            ratio = np.exp(log_ratio)  # one ratio per sequence
            per_row.append(surrogate(ratio, batch["advantage"][b][valid]))
        if aggregation == "sequence_mean":
            expected = np.mean([losses.mean() for losses in per_row])
        else:
            expected = np.concatenate(per_row).mean()
        some_clipped = any(
            abs(np.mean(new[b][mask[b]] - batch["log_prob"][b][mask[b]]))
            > np.log(1 + CLIP)
            for b in rows
        )
        self.assertTrue(some_clipped)  # the clip is exercised
        loss = policy_loss_of(
            network,
            batch,
            importance_sampling_level="sequence",
            loss_aggregation=aggregation,
        )
        self.assertAllClose(loss, expected, rtol=1e-4, atol=1e-6)
        token_level = policy_loss_of(
            network, batch, loss_aggregation=aggregation
        )
        self.assertNotAllClose(token_level, expected, atol=1e-3)

    def test_sequence_level_gradient_reaches_every_token(self):
        network = make_network(21)
        batch, _ = off_policy_batch(network, 21)
        batch["log_prob"] = numpy_log_probs(
            network, batch["observation"]
        ).astype(np.float32)  # ratio 1: nothing clipped
        model = lm.CausalLMPPOModel(
            network,
            vocab_size=VOCAB,
            eos_id=EOS,
            advantage_estimator="grpo",
            importance_sampling_level="sequence",
            loss_aggregation="sequence_mean",
        )
        mask = tf.constant(batch["mask"])
        log_probs = tf.constant(batch["log_prob"])
        with tf.GradientTape() as tape:
            tape.watch(log_probs)
            loss = model._policy_loss(
                log_probs,
                tf.constant(batch["log_prob"]),
                tf.constant(batch["advantage"]),
                mask,
            )["policy_loss"]
        gradient = tape.gradient(loss, log_probs).numpy()
        # d/d log p_bt of -(1/B') sum_b s_b A_b with s_b = exp(mean log
        # ratio) = 1: -A_b / (B' n_b) on valid tokens, 0 elsewhere.
        lengths = batch["mask"].sum(axis=1, keepdims=True)
        rows = np.sum(lengths > 0)
        expected = np.where(
            batch["mask"],
            -batch["advantage"] / (rows * np.maximum(lengths, 1)),
            0.0,
        )
        self.assertAllClose(gradient, expected, atol=1e-6)

    def test_dr_grpo_divides_by_rows_times_max_completion_length(self):
        network = make_network(22)
        batch, new = off_policy_batch(network, 22)
        mask = batch["mask"]
        ratio = np.exp(new - batch["log_prob"])
        losses = surrogate(ratio, batch["advantage"])
        expected = np.sum(np.where(mask, losses, 0.0)) / (len(mask) * 9)
        loss = policy_loss_of(
            network,
            batch,
            loss_aggregation="dr_grpo",
            max_completion_length=9,
        )
        self.assertAllClose(loss, expected, rtol=1e-4, atol=1e-6)

    def test_xla_step_equals_the_graph_step(self):
        logs = []
        for jit_compile in (False, True):
            network = make_network(24)
            batch, _ = off_policy_batch(network, 24)
            model = lm.CausalLMPPOModel(
                network,
                vocab_size=VOCAB,
                eos_id=EOS,
                advantage_estimator="grpo",
                importance_sampling_level="sequence",
                loss_aggregation="dr_grpo",
                max_completion_length=9,
            )
            model.compile(
                optimizer=keras.optimizers.SGD(0.5), jit_compile=jit_compile
            )
            model.train_on_batch(batch)
            logs.append(model.train_on_batch(batch, return_dict=True))
        for name, value in logs[0].items():
            self.assertAllClose(logs[1][name], value, atol=1e-5, msg=name)

    @parameterized.named_parameters(
        ("missing", dict(loss_aggregation="dr_grpo"), "max_completion_length"),
        ("unused", dict(max_completion_length=9), "max_completion_length"),
        (
            "level",
            dict(importance_sampling_level="seq"),
            "importance_sampling_level",
        ),
        ("scale", dict(scale_rewards="std"), "scale_rewards"),
        (
            "scale_estimator",
            dict(scale_rewards="batch", advantage_estimator="rloo"),
            "scale_rewards",
        ),
    )
    def test_bad_settings(self, override, name):
        arguments = dict(
            network=make_network(23),
            vocab_size=VOCAB,
            eos_id=EOS,
            advantage_estimator="grpo",
        )
        arguments.update(override)
        with self.assertRaisesRegex(ValueError, f"Received: {name}="):
            lm.CausalLMPPOModel(**arguments)


def count_response(tokens, mask):
    return tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)


class CollectOptionsTest(tf.test.TestCase, parameterized.TestCase):
    PROMPTS = np.array([[1, 2], [3, 0], [2, 2], [4, 1]], np.int32)

    def collect(self, seed, **settings):
        model = lm.CausalLMPPOModel(
            make_network(seed),
            vocab_size=VOCAB,
            eos_id=EOS,
            advantage_estimator="grpo",
            **settings,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        rollout = model.collect(
            self.PROMPTS,
            count_response,
            max_new_tokens=3,
            num_samples=4,
            seed=5,
        )
        return model, rollout

    @parameterized.parameters("group", "batch", "none")
    def test_scale_rewards(self, scale_rewards):
        _, rollout = self.collect(24, scale_rewards=scale_rewards)
        returns = np.asarray(rollout.scores, np.float64).reshape(4, 4)
        centred = returns - returns.mean(axis=1, keepdims=True)
        if scale_rewards == "group":
            centred /= returns.std(axis=1, ddof=1, keepdims=True) + 1e-6
        elif scale_rewards == "batch":
            centred /= returns.std(ddof=1) + 1e-6
        mask = rollout.batch["mask"].numpy()
        expected = np.where(mask, centred.reshape(-1, 1), 0.0)
        self.assertAllClose(rollout.batch["advantage"], expected, atol=1e-5)

    def test_mask_truncated_completions(self):
        _, plain = self.collect(25)
        model, masked = self.collect(25, mask_truncated_completions=True)
        done = plain.done.numpy()
        self.assertTrue(done.any() and not done.all())
        mask = masked.batch["mask"].numpy()
        self.assertAllEqual(mask[~done], np.zeros_like(mask[~done]))
        self.assertAllEqual(mask[done], plain.batch["mask"].numpy()[done])
        # The truncated rows still count in their groups' statistics.
        self.assertAllClose(masked.batch["advantage"], plain.batch["advantage"])
        # ... and nowhere in the loss: the same as without those rows.
        kept = {k: np.asarray(v)[done] for k, v in masked.batch.items()}
        logs = model.test_on_batch(masked.batch, return_dict=True)
        expected = model.test_on_batch(kept, return_dict=True)
        for name, value in expected.items():
            self.assertAllClose(logs[name], value, atol=1e-6, msg=name)

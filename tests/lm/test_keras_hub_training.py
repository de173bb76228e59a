"""One PPO / GRPO / RLOO / REINFORCE++ iteration on tiny keras-hub models."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.models import rollout_dataset
from tests.lm import keras_hub_models as khm

STOP = khm.VOCAB - 1
PROMPTS = np.array([[0, 1, 2], [3, 4, 5], [0, 0, 6], [7, 8, 9]], np.int32)


def count_fives(tokens, mask):
    return tf.reduce_sum(
        tf.cast(mask & tf.equal(tokens, 5), tf.float32), axis=1
    )


def iterate(model, num_samples, epochs=1):
    rollout = model.collect(
        PROMPTS,
        count_fives,
        max_new_tokens=5,
        num_samples=num_samples,
        seed=0,
    )
    history = model.fit(
        rollout_dataset(rollout.batch, num_minibatches=2, seed=0),
        epochs=epochs,
        verbose=0,
        shuffle=False,
    ).history
    return rollout, history


class KerasHubTrainingTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        ("gae", "shared", "token_mean", None),
        ("grpo", None, "sequence_mean", 2),
        ("dr_grpo", None, "sequence_sum", None),
        ("rloo", None, "token_mean", 2),
        ("reinforce_pp", "shared", "sequence_mean", None),
    )
    def test_one_iteration(self, estimator, value_head, aggregation, lora):
        causal_lm = khm.gpt2(seed=0)
        reference = None if lora else khm.gpt2(seed=0)
        policy = lm.CausalLMPolicy(
            causal_lm, value_head=value_head, lora_rank=lora
        )
        model = lm.CausalLMPPOModel(
            policy,
            vocab_size=khm.VOCAB,
            eos_id=STOP,
            pad_id=0,
            reference_network=(
                lm.CausalLMPolicy(reference, value_head=None)
                if reference is not None
                else None
            ),
            reward_kl_coef=0.05,
            reward_kl_estimator="k3",
            advantage_estimator=estimator,
            loss_aggregation=aggregation,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        base = [np.array(w) for w in causal_lm.backbone.weights]
        tokens = tf.constant([[1, 2, 3, 4, 5]])
        reference_before = model.reference_log_probs(tokens)
        rollout, history = iterate(model, num_samples=4)
        self.assertEqual(rollout.batch["observation"].shape[0], 16)
        for name in ("loss", "policy_loss", "clip_fraction", "entropy"):
            self.assertTrue(np.isfinite(history[name]).all(), name)
        if estimator != "gae":
            self.assertIn("advantage", rollout.batch)
        after = [np.array(w) for w in causal_lm.backbone.weights]
        changed = [not np.allclose(a, b) for a, b in zip(base, after)]
        if lora:
            # Only the adapters train; the reference is the frozen base.
            names = [w.path for w in causal_lm.backbone.weights]
            for name, moved in zip(names, changed):
                self.assertEqual(moved, "lora" in name, name)
            self.assertAllClose(
                model.reference_log_probs(tokens), reference_before, atol=1e-6
            )
            log_probs = lm.causal_log_probs(policy(tokens)[0], tokens)
            self.assertNotAllClose(log_probs, reference_before, atol=1e-4)
        else:
            self.assertTrue(any(changed))

    def test_lora_reference_log_probs_equal_the_base_model(self):
        base = khm.gpt2(seed=1)
        tokens = np.array([[1, 2, 3, 4, 5, 6]])
        expected = lm.causal_log_probs(khm.full_logits(base, tokens), tokens)
        policy = lm.CausalLMPolicy(base, value_head=None, lora_rank=4)
        model = lm.CausalLMPPOModel(
            policy,
            vocab_size=khm.VOCAB,
            eos_id=STOP,
            reward_kl_coef=0.1,
            advantage_estimator="grpo",
        )
        for variable in base.backbone.weights:
            if "lora_kernel_b" in variable.path:
                variable.assign(tf.ones_like(variable))
        self.assertAllClose(
            model.reference_log_probs(tokens), expected, atol=1e-5
        )

    def test_kl_in_both_reward_and_loss_is_refused(self):
        policy = lm.CausalLMPolicy(khm.gpt2(), value_head="shared")
        with self.assertRaisesRegex(ValueError, "kl_coef"):
            lm.CausalLMPPOModel(
                policy,
                vocab_size=khm.VOCAB,
                eos_id=STOP,
                reference_network=lm.CausalLMPolicy(khm.gpt2()),
                reward_kl_coef=0.1,
                kl_coef=0.1,
            )

    def test_kl_in_the_loss_carries_reference_log_probs(self):
        policy = lm.CausalLMPolicy(khm.gpt2(), value_head=None, lora_rank=2)
        model = lm.CausalLMPPOModel(
            policy,
            vocab_size=khm.VOCAB,
            eos_id=STOP,
            advantage_estimator="grpo",
            kl_coef=0.1,
            kl_estimator="k3",
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        rollout, history = iterate(model, num_samples=2)
        self.assertIn("ref_log_prob", rollout.batch)
        self.assertAllClose(
            rollout.batch["reward"].numpy().sum(1), rollout.scores
        )  # no KL in the reward
        self.assertTrue(np.isfinite(history["kl_penalty"]).all())

    def test_gradient_accumulation_and_mixed_precision(self):
        causal_lm = khm.gpt2(dtype="mixed_bfloat16")
        policy = lm.CausalLMPolicy(causal_lm, value_head="shared")
        model = lm.CausalLMPPOModel(policy, vocab_size=khm.VOCAB, eos_id=STOP)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2, gradient_accumulation_steps=2)
        )
        rollout = model.collect(PROMPTS, count_fives, max_new_tokens=4, seed=1)
        dataset = rollout_dataset(rollout.batch, num_minibatches=2, seed=0)
        before = [np.array(w) for w in policy.trainable_weights]
        model.fit(dataset.take(1), verbose=0, shuffle=False)
        mid = [np.array(w) for w in policy.trainable_weights]
        self.assertTrue(all(np.array_equal(a, b) for a, b in zip(before, mid)))
        model.fit(dataset.skip(1), verbose=0, shuffle=False)
        after = [np.array(w) for w in policy.trainable_weights]
        self.assertFalse(all(np.array_equal(a, b) for a, b in zip(mid, after)))
        self.assertTrue(all(np.isfinite(w).all() for w in after))


class CollectionTest(tf.test.TestCase):
    def test_truncated_rows_bootstrap_from_the_last_position(self):
        policy = lm.CausalLMPolicy(khm.gpt2(seed=3), value_head="shared")
        model = lm.CausalLMPPOModel(
            policy,
            vocab_size=khm.VOCAB,
            eos_id=STOP,
            pad_id=0,
            stop_token_ids=[STOP - 1],
        )
        rollout = model.collect(
            PROMPTS, count_fives, max_new_tokens=6, num_samples=2, seed=4
        )
        batch = {k: np.asarray(v) for k, v in rollout.batch.items()}
        _, values = policy(batch["observation"])
        values = np.asarray(values)
        prompt_length = np.repeat([2, 3, 1, 3], 2)
        truncated_rows = 0
        for b in range(8):
            valid = np.flatnonzero(batch["mask"][b])
            self.assertEqual(valid[0], prompt_length[b])
            last = valid[-1]
            # Stored values: V before each token, read one column earlier.
            self.assertAllClose(
                batch["value"][b, valid], values[b, valid - 1], atol=1e-5
            )
            if batch["truncated"][b, last]:
                truncated_rows += 1
                self.assertLen(valid, 6)
                self.assertAllClose(
                    batch["bootstrap_value"][b], values[b, last], atol=1e-5
                )
                self.assertAllClose(
                    batch["truncation_value"][b, last],
                    values[b, last],
                    atol=1e-5,
                )
                self.assertNotAllClose(
                    batch["bootstrap_value"][b], values[b, last - 1]
                )
            else:
                self.assertIn(batch["observation"][b, last], (STOP, STOP - 1))
                self.assertTrue(batch["terminated"][b, last])
        self.assertGreater(truncated_rows, 0)

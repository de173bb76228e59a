"""Smoke test of the LM PPO example: tiny sizes, a few seconds."""

import os

import keras
import numpy as np
import tensorflow as tf

from examples import train_lm_ppo


class TrainLMPPOTest(tf.test.TestCase):
    def test_tiny_run_checkpoints_logs_and_exports(self):
        root_dir = os.path.join(self.get_temp_dir(), "run")
        result = train_lm_ppo.train_eval(
            root_dir,
            corpus_size=64,
            embed_dim=8,
            num_heads=2,
            pretrain_steps=3,
            num_iterations=2,
            batch_size=8,
            max_new_tokens=6,
            max_digits=4,
            num_epochs=1,
            num_minibatches=2,
            eval_size=8,
            checkpoint_interval=1,
            verbose=False,
        )
        self.assertLen(result["history"], 2)
        for record in result["history"]:
            for name in ("reward", "kl", "entropy", "response_length"):
                self.assertTrue(np.isfinite(record[name]), msg=name)
            self.assertBetween(record["reward"], 0.0, 1.0)
        for name in ("score", "kl", "response_length"):
            self.assertTrue(np.isfinite(result["final"][name]), msg=name)

        latest = tf.train.latest_checkpoint(result["checkpoint_dir"])
        self.assertEndsWith(latest, "ckpt-2")
        self.assertTrue(os.path.exists(latest + ".index"))
        events = os.listdir(os.path.join(root_dir, "train"))
        self.assertTrue(any(name.startswith("events") for name in events))

        loaded = tf.saved_model.load(result["export_dir"])
        prompts = tf.constant(
            [[train_lm_ppo.BOS_ID, 3], [train_lm_ppo.BOS_ID, 7]], tf.int32
        )
        greedy = loaded.signatures["generate"](prompt_tokens=prompts)
        tokens = greedy["tokens"].numpy()
        self.assertEqual(tokens.shape, (2, 2 + 6))
        self.assertAllEqual(tokens[:, :2], prompts)
        self.assertTrue(np.all((tokens >= 0) & (tokens < 12)))
        self.assertAllEqual(loaded.generate(prompts)["tokens"].numpy(), tokens)
        seed = tf.constant([1, 2], tf.int64)
        first = loaded.signatures["sample"](prompt_tokens=prompts, seed=seed)
        again = loaded.signatures["sample"](prompt_tokens=prompts, seed=seed)
        self.assertAllEqual(first["tokens"], again["tokens"])

        # A rerun resumes from the checkpoint instead of starting over.
        resumed = train_lm_ppo.train_eval(
            root_dir,
            corpus_size=64,
            embed_dim=8,
            num_heads=2,
            pretrain_steps=3,
            num_iterations=3,
            batch_size=8,
            max_new_tokens=6,
            max_digits=4,
            num_epochs=1,
            num_minibatches=2,
            eval_size=8,
            checkpoint_interval=1,
            verbose=False,
        )
        self.assertLen(resumed["history"], 1)

    def test_exported_greedy_matches_the_network(self):
        keras.utils.set_random_seed(0)
        network = train_lm_ppo.CausalTransformer(12, 6, 8, 2, 1)
        prompts = np.array([[11, 2], [11, 9]], np.int32)
        path = train_lm_ppo.export_policy(
            network, os.path.join(self.get_temp_dir(), "policy"), 4
        )
        loaded = tf.saved_model.load(path)
        tokens = loaded.generate(prompts)["tokens"]
        expected = prompts
        finished = np.zeros(2, bool)
        for _ in range(4):
            buffer = np.concatenate(
                [expected, np.full((2, 6 - expected.shape[1]), 10)], axis=1
            )
            logits, _ = network(buffer)
            chosen = np.argmax(logits.numpy()[:, expected.shape[1] - 1], -1)
            chosen = np.where(finished, 10, chosen)
            finished |= chosen == 10
            expected = np.concatenate([expected, chosen[:, None]], axis=1)
        self.assertAllEqual(tokens, expected)

    def test_scorer(self):
        eos = train_lm_ppo.EOS_ID
        bos = train_lm_ppo.BOS_ID
        tokens = np.array(
            [
                [bos, 1, 2, 2, 5, eos],  # all 3 pairs in order
                [bos, 5, 4, 6, eos, eos],  # 5>4 breaks, 4<=6
                [bos, 3, eos, eos, eos, eos],  # no response digit
                [bos, 3, 4, bos, 5, 6],  # BOS breaks two pairs
            ]
        )
        mask = np.zeros(tokens.shape, bool)
        mask[0, 2:] = True
        mask[1, 2:5] = True
        mask[2, 2] = True
        mask[3, 2:] = True
        self.assertAllClose(
            train_lm_ppo.sortedness_scores(tokens, mask),
            [1.0, 0.5, 0.0, 2.0 / 4.0],
        )

"""Smoke test of the LM RL example: tiny sizes, a few seconds per run."""

import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from examples import train_lm_ppo

TINY = dict(
    corpus_size=64,
    num_layers=1,
    hidden_dim=8,
    pretrain_steps=2,
    prompts_per_iteration=2,
    num_samples=2,
    min_digits=2,
    max_digits=3,
    num_epochs=1,
    num_minibatches=2,
    eval_size=4,
    checkpoint_interval=1,
    verbose=False,
)


class TrainLMPPOTest(tf.test.TestCase, parameterized.TestCase):
    def test_tiny_run_checkpoints_logs_exports_and_resumes(self):
        root_dir = os.path.join(self.get_temp_dir(), "run")
        result = train_lm_ppo.train_eval(root_dir, num_iterations=2, **TINY)
        self.assertLen(result["history"], 2)
        for record in result["history"]:
            for name in ("reward", "kl", "entropy", "clip_fraction"):
                self.assertTrue(np.isfinite(record[name]), msg=name)
            self.assertBetween(record["reward"], 0.0, 1.0)
        for name in ("score", "greedy_score", "kl", "response_length"):
            self.assertTrue(np.isfinite(result["final"][name]), msg=name)
        latest = tf.train.latest_checkpoint(result["checkpoint_dir"])
        self.assertEndsWith(latest, "ckpt-2")
        events = os.listdir(os.path.join(root_dir, "train"))
        self.assertTrue(any(name.startswith("events") for name in events))

        loaded = tf.saved_model.load(result["export_dir"])
        pad, bos, sep = (
            train_lm_ppo.PAD_ID,
            train_lm_ppo.BOS_ID,
            train_lm_ppo.SEP_ID,
        )
        prompts = tf.constant(
            [[pad, bos, 3, 1, sep], [bos, 7, 2, 2, sep]], tf.int32
        )
        greedy = loaded.signatures["generate"](prompt_tokens=prompts)
        tokens = greedy["tokens"].numpy()
        self.assertAllEqual(greedy["prompt_length"], [4, 5])
        self.assertAllEqual(tokens[0, :4], [bos, 3, 1, sep])
        self.assertAllEqual(tokens[1, :5], [bos, 7, 2, 2, sep])
        self.assertTrue(np.all((tokens >= 0) & (tokens < 14)))
        self.assertAllEqual(loaded.generate(prompts)["tokens"].numpy(), tokens)
        sampled = loaded.signatures["sample"](prompt_tokens=prompts)
        self.assertEqual(sampled["tokens"].shape, tokens.shape)

        resumed = train_lm_ppo.train_eval(root_dir, num_iterations=3, **TINY)
        self.assertLen(resumed["history"], 1)

    @parameterized.parameters(("grpo", 2), ("rloo", 0), ("reinforce_pp", 0))
    def test_critic_free_estimators_and_lora_run(self, estimator, lora_rank):
        result = train_lm_ppo.train_eval(
            os.path.join(self.get_temp_dir(), estimator),
            estimator=estimator,
            lora_rank=lora_rank,
            num_iterations=1,
            **TINY,
        )
        self.assertTrue(np.isfinite(result["history"][0]["loss"]))

    def test_scorer(self):
        bos, sep, eos = (
            train_lm_ppo.BOS_ID,
            train_lm_ppo.SEP_ID,
            train_lm_ppo.EOS_ID,
        )
        tokens = np.array(
            [
                [bos, 3, 1, 2, sep, 1, 2, 3, eos],  # sorted: 1
                [bos, 3, 1, 2, sep, 3, 2, 1, eos],  # only the middle: 1/3
                [bos, 3, 1, 2, sep, 1, 2, eos, eos],  # too short: 2/3
                [bos, 3, 1, 2, sep, 1, 2, 3, 3],  # too long, cut: 3/4
                [bos, 5, sep, eos, eos, eos, eos, eos, eos],  # nothing: 0
            ]
        )
        mask = np.zeros(tokens.shape, bool)
        mask[0, 5:] = mask[1, 5:] = True
        mask[2, 5:8] = True
        mask[3, 5:] = True
        mask[4, 3] = True
        self.assertAllClose(
            train_lm_ppo.sorting_scores(tokens, mask),
            [1.0, 1.0 / 3.0, 2.0 / 3.0, 3.0 / 4.0, 0.0],
        )

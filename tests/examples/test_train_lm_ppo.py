"""The LM RL example: tiny runs of `train_eval`, the scorer, and the
script as typed (`--help`, bad flags, a clean tiny run ending with its
summary line)."""

import functools
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from examples import train_lm_ppo
from tests.examples import binary_checks
from tests.examples.binary_checks import checkpoint_files
from tests.examples.binary_checks import truncate_checkpoint

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
    # These tests are about the loop, checkpoints and export; XLA's compile
    # time would be most of their run (XLA generation: tests/lm).
    jit_generate=False,
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

    def test_trl_options_run_and_evaluate(self):
        result = train_lm_ppo.train_eval(
            os.path.join(self.get_temp_dir(), "trl"),
            estimator="dr_grpo",
            loss_aggregation="dr_grpo",
            importance_sampling_level="sequence",
            mask_truncated_completions=True,
            lora_rank=2,
            lora_alpha=4.0,
            lora_target_names=["query", "key", "value"],
            eval_interval=2,
            num_iterations=2,
            **TINY,
        )
        first, second = result["history"]
        self.assertNotIn("eval_reward", first)
        self.assertBetween(second["eval_reward"], 0.0, 1.0)
        self.assertBetween(second["eval_truncated_fraction"], 0.0, 1.0)
        self.assertNotIn("value_loss", second)  # critic-free

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


SCRIPT = "train_lm_ppo.py"
run_script = functools.partial(binary_checks.run_script, SCRIPT)


class TrainLMPPOCommandLineTest(
    binary_checks.CommandLineTests, tf.test.TestCase
):
    SCRIPT = SCRIPT
    HELP_FLAG = "--num_samples"
    # keras_gae.estimator_names (the --estimator choices) is plain Python;
    # no subpackage of keras_gae, which would bring TensorFlow, loads.
    NOT_IMPORTED_BY_HELP = (
        "tensorflow",
        "keras",
        "keras_hub",
        "keras_gae.lm",
        "keras_gae.ops",
        "keras_gae._src",
    )
    BAD_FLAGS = (
        (["--num_layers=0"], "--num_layers=0"),
        (["--hidden_dim=7"], "--hidden_dim=7: must be even"),
        (["--learning_rate=nan"], "must be a finite number > 0"),
        (
            ["--clip_ratio=0"],
            "--clip_ratio=0.0: must be a finite number > 0",
        ),
        (["--sorted_fraction=1.5"], "--sorted_fraction=1.5"),
        (["--estimator=ppo"], "--estimator=ppo"),
        (["--min_digits=4", "--max_digits=3"], "--min_digits must be <="),
        (
            ["--estimator=rloo", "--num_samples=1"],
            "--num_samples must be >= 2",
        ),
        (["--num_minibatches=3"], "--num_minibatches must divide"),
        (["--scale_rewards=batch"], "--scale_rewards applies to"),
        (["--lora_alpha=16"], "--lora_alpha and --lora_target_names need"),
        (["--importance_sampling_level=seq"], "--importance_sampling_level"),
        (["--root_dir="], "--root_dir=: must not be empty"),
        (["extra"], "unexpected arguments ['extra']"),
    )


@pytest.mark.slow
class TrainLMPPOScriptRunTest(tf.test.TestCase):
    def test_run_prints_no_log_line_nor_warning_and_ends_with_a_summary(
        self,
    ):
        flags = [
            f"--root_dir={os.path.join(self.get_temp_dir(), 'script')}",
            "--num_iterations=1",
            "--estimator=grpo",
            "--lora_rank=2",
        ] + [
            f"--{name}={value}"
            for name, value in TINY.items()
            # The default XLA generation: no log line nor warning either.
            if name not in ("verbose", "jit_generate")
        ]
        result, _, _ = run_script(*flags, importtime=False)
        binary_checks.assert_quiet_run(self, result)
        lines = result.stdout.splitlines()
        self.assertStartsWith(lines[0], "Supervised next-token loss: ")
        self.assertStartsWith(lines[2], "iteration   0  reward ")
        self.assertRegex(
            lines[-1],
            r"^Fine-tuned \(grpo, lora_rank 2\): score [\d.]+ \(supervised "
            r"[\d.]+\), .*; \d+ s$",
        )


class TrainLMPPOCheckpointSafetyTest(tf.test.TestCase):
    """The agents' loop's restore path: fall back and say so, or refuse;
    never pretrain from scratch on top of checkpoints."""

    def test_unparsable_state_file_resumes_from_the_newest_checkpoint(self):
        root_dir = os.path.join(self.get_temp_dir(), "run")
        train_lm_ppo.train_eval(root_dir, num_iterations=1, **TINY)
        saved = checkpoint_files(root_dir)
        self.assertEqual(
            sorted(saved),
            [
                f"ckpt-{n}.{s}"
                for n in (0, 1)
                for s in ("data-00000-of-00001", "index")
            ],
        )
        with open(
            os.path.join(root_dir, "checkpoints", "checkpoint"), "w"
        ) as f:
            f.write("x")
        with self.assertWarnsRegex(RuntimeWarning, "restored .*ckpt-1"):
            resumed = train_lm_ppo.train_eval(
                root_dir, num_iterations=2, **dict(TINY, seed=7)
            )
        # Resumed at iteration 1: no pretraining, one iteration.
        self.assertLen(resumed["history"], 1)
        after = checkpoint_files(root_dir)
        for name, content in saved.items():
            self.assertEqual(after[name], content, name)
        self.assertIn("ckpt-2.index", after)

    def test_truncated_newest_checkpoint_falls_back(self):
        root_dir = os.path.join(self.get_temp_dir(), "run")
        train_lm_ppo.train_eval(root_dir, num_iterations=2, **TINY)
        truncate_checkpoint(root_dir, 2)
        unreadable = {
            name: content
            for name, content in checkpoint_files(root_dir).items()
            if name.startswith("ckpt-2.")
        }
        with self.assertWarnsRegex(
            RuntimeWarning, "ckpt-1 instead.*unreadable-1.*ckpt-2"
        ):
            resumed = train_lm_ppo.train_eval(
                root_dir, num_iterations=2, **TINY
            )
        # Iteration 2 ran again from ckpt-1's weights.
        self.assertLen(resumed["history"], 1)
        self.assertEqual(
            checkpoint_files(root_dir, "checkpoints/unreadable-1"),
            unreadable,
        )
        self.assertIn("ckpt-2.index", checkpoint_files(root_dir))

    def test_restart_keeps_the_old_checkpoints(self):
        root_dir = os.path.join(self.get_temp_dir(), "run")
        train_lm_ppo.train_eval(root_dir, num_iterations=1, **TINY)
        saved = checkpoint_files(root_dir)
        with self.assertWarnsRegex(RuntimeWarning, "checkpoints.old-1"):
            result = train_lm_ppo.train_eval(
                root_dir, num_iterations=1, restart=True, **TINY
            )
        self.assertLen(result["history"], 1)
        self.assertEqual(checkpoint_files(root_dir, "checkpoints.old-1"), saved)


@pytest.mark.slow
class TrainLMPPOScriptCheckpointTest(tf.test.TestCase):
    def test_no_readable_checkpoint_is_one_error_line_then_restart(self):
        root_dir = os.path.join(self.get_temp_dir(), "run")
        flags = [f"--root_dir={root_dir}", "--num_iterations=1"] + [
            f"--{name}={value}"
            for name, value in TINY.items()
            if name != "verbose"
        ]
        result, _, _ = run_script(*flags, importtime=False)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        for number in (0, 1):
            truncate_checkpoint(root_dir, number)
        broken = checkpoint_files(root_dir)

        result, _, _ = run_script(*flags, "--seed=7", importtime=False)
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        errors = result.stderr.splitlines()
        self.assertLen(errors, 1, msg=result.stderr[-3000:])
        self.assertRegex(
            errors[0],
            r"^train_lm_ppo.py: error: None of the checkpoints under "
            rf"{re.escape(root_dir)}/checkpoints can be restored.*--restart"
            r".*Received: .*ckpt-1: IndexError",
        )
        self.assertEqual(result.stdout, "")
        self.assertEqual(checkpoint_files(root_dir), broken)

        result, _, _ = run_script(*flags, "--restart", importtime=False)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("checkpoints.old-1", result.stderr)
        self.assertEqual(
            checkpoint_files(root_dir, "checkpoints.old-1"),
            broken,
        )
        self.assertStartsWith(
            result.stdout.splitlines()[0], "Supervised next-token loss: "
        )

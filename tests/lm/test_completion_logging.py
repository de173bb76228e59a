"""Completions and reward logs in TensorBoard, read back from the event
file."""

import glob
import os
import statistics

import numpy as np
import tensorflow as tf

from keras_gae import lm
from keras_gae.lm import completion_logging


def text_rollout(shift=0.0):
    """A TextRollout made by hand: 3 rows, two reward functions, the
    second not applicable to row 1."""
    return lm.TextRollout(
        rollout=None,
        prompts=("2+2=", "2+2=", "the cat"),
        completions=("4", "five", " sat"),
        rewards=np.array([[1.0, 0.5], [0.0, np.nan], [1.0 + shift, 0.25]]),
        reward_names=("correct", "short"),
        reward_weights=(2.0, -1.0),
    )


def read_events(log_dir):
    """{tag: [(step, array)]} of the event files in `log_dir`."""
    events = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                events.setdefault(value.tag, []).append(
                    (event.step, tf.make_ndarray(value.tensor))
                )
    return events


class CompletionLoggerTest(tf.test.TestCase):
    def test_rows_and_reward_logs_read_back(self):
        log_dir = self.get_temp_dir()
        logger = lm.CompletionLogger(log_dir, num_rows=2)
        logger.log(text_rollout(), step=0)
        logger.log(text_rollout(shift=1.0), step=1)
        events = read_events(log_dir)
        tables = events["completions"]
        self.assertEqual([step for step, _ in tables], [0, 1])
        rows = [[cell.decode("utf-8") for cell in row] for row in tables[0][1]]
        # Row reward: 2 * correct - 1 * short, a None (NaN) counting 0.
        self.assertEqual(
            rows,
            [
                ["prompt", "completion", "reward", "correct", "short"],
                ["2+2=", "4", "1.5", "1", "0.5"],
                ["2+2=", "five", "0", "0", ""],
            ],
        )
        for step, shift in ((0, 0.0), (1, 1.0)):
            correct = [1.0, 0.0, 1.0 + shift]
            short = [0.5, 0.25]  # row 1 not applicable
            totals = [2.0 * 1.0 - 0.5, 0.0, 2.0 * (1.0 + shift) - 0.25]
            expected = {
                "reward": statistics.mean(totals),
                "rewards/correct/mean": statistics.mean(correct),
                "rewards/correct/std": statistics.stdev(correct),
                "rewards/short/mean": statistics.mean(short),
                "rewards/short/std": statistics.stdev(short),
            }
            for tag, value in expected.items():
                logged = dict(events[tag])[step]
                self.assertAllClose(float(logged), value, msg=tag)

    def test_fewer_rows_than_asked(self):
        table = completion_logging.completion_table(text_rollout(), 10)
        self.assertEqual(table.shape, (4, 5))
        self.assertEqual(table[3, 1], " sat")

    def test_writer_given(self):
        log_dir = self.get_temp_dir()
        writer = tf.summary.create_file_writer(log_dir)
        lm.CompletionLogger(writer, num_rows=1, name="samples").log(
            text_rollout(), step=3
        )
        events = read_events(log_dir)
        self.assertEqual(events["samples"][0][0], 3)
        self.assertEqual(events["samples"][0][1].shape, (2, 5))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(TypeError, "log_dir"):
            lm.CompletionLogger(3)
        with self.assertRaisesRegex(ValueError, "num_rows"):
            lm.CompletionLogger(self.get_temp_dir(), num_rows=0)
        logger = lm.CompletionLogger(self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "step"):
            logger.log(text_rollout(), step=-1)

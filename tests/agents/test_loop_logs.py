"""Tests of keras_gae.agents.loop_logs: tags, contributed logs, read-back."""

import json
import os
import struct
import textwrap

import keras
import tensorflow as tf

from keras_gae.agents import loop_logs
from tests.fresh_process import run_python


def _write(log_dir, points):
    """Writes {tag: {step: value}} with a plain summary writer."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for tag, by_step in points.items():
            for step, value in by_step.items():
                tf.summary.scalar(tag, value, step)
    writer.close()


class ReadScalarsTest(tf.test.TestCase):
    def test_reads_without_a_deprecation_warning_as_a_user_would(self):
        # What a user plots after training: the callback writes, then
        # read_scalars reads back, in a fresh interpreter whose stderr
        # shows every warning TensorFlow logs.
        code = textwrap.dedent(
            """
            import json, sys
            from keras_gae.agents import EnvStepTensorBoard
            from keras_gae.agents.loop_logs import read_scalars

            callback = EnvStepTensorBoard(sys.argv[1])
            callback.on_train_begin()
            for env_steps, loss in ((64, 0.5), (128, 0.25)):
                callback.on_epoch_end(
                    0,
                    {"env_steps": env_steps, "loss": loss,
                     "episode_return_mean": env_steps / 4},
                )
            callback.on_train_end()
            print(json.dumps(read_scalars(sys.argv[1])))
            """
        )
        log_dir = self.get_temp_dir()
        result = run_python(code, args=[log_dir], timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertNotIn("deprecated", result.stderr)
        self.assertNotIn("tf_record_iterator", result.stderr)
        self.assertEqual(
            json.loads(result.stdout.splitlines()[-1]),
            {
                "train/loss": [[64, 0.5], [128, 0.25]],
                "rollout/episode_return_mean": [[64, 16.0], [128, 32.0]],
            },
        )

    def test_a_record_being_written_ends_the_file(self):
        # A run writing its event file now: its last record is cut short.
        log_dir = self.get_temp_dir()
        _write(log_dir, {"train/loss": {1: 1.0, 2: 2.0}})
        (path,) = tf.io.gfile.glob(os.path.join(log_dir, "events.out.*"))
        with open(path, "rb") as file:
            whole = file.read()
        # TFRecord: 8 bytes of length, 4 of CRC, the data, 4 of CRC.
        offset, last = 0, 0
        while offset < len(whole):
            last = offset
            (length,) = struct.unpack("<Q", whole[offset : offset + 8])
            offset += 16 + length
        with open(path, "ab") as file:
            file.write(whole[last:-2])
        self.assertEqual(
            loop_logs.read_scalars(log_dir),
            {"train/loss": [(1, 1.0), (2, 2.0)]},
        )
        self.assertEqual(loop_logs.read_scalars(log_dir, "train/other"), {})


class SummaryTagTest(tf.test.TestCase):
    def test_groups(self):
        expected = {
            "episode_return_mean": "rollout/episode_return_mean",
            "episodes": "rollout/episodes",
            "eval_return_mean": "eval/return_mean",
            "eval_return_std": "eval/return_std",
            "loss": "train/loss",
            "learning_rate": "train/learning_rate",
            "fit_seconds": "time/fit_seconds",
            "iteration": "time/iteration",
        }
        for key, tag in expected.items():
            self.assertEqual(loop_logs.summary_tag(key), tag, key)


class Contributor(keras.callbacks.Callback):
    def __init__(self, added):
        super().__init__()
        self.added = added
        self.seen = []

    def iteration_logs(self, iteration, logs):
        self.seen.append((iteration, dict(logs)))
        logs["edited"] = True  # a copy: the loop's logs stay as they are
        return self.added


class ContributedLogsTest(tf.test.TestCase):
    def test_contributions_are_added_in_order(self):
        first = Contributor({"eval_return_mean": 3.0})
        second = Contributor(None)
        third = Contributor({"custom": 1.5})
        plain = keras.callbacks.History()
        logs = {"loss": 0.5}
        result = loop_logs.contributed_logs(
            [first, plain, second, third], 4, logs
        )
        self.assertEqual(
            result, {"loss": 0.5, "eval_return_mean": 3.0, "custom": 1.5}
        )
        self.assertEqual(logs, {"loss": 0.5})
        self.assertEqual(first.seen, [(4, {"loss": 0.5})])
        # Each sees the contributions before it.
        self.assertEqual(
            third.seen, [(4, {"loss": 0.5, "eval_return_mean": 3.0})]
        )

    def test_a_key_the_logs_hold_is_refused(self):
        with self.assertRaisesRegex(
            ValueError,
            r"Contributor.iteration_logs` returned keys the iteration's "
            r"logs already hold: \['loss'\].*"
            r"Received: iteration_logs keys=\['loss', 'x'\]$",
        ):
            loop_logs.contributed_logs(
                [Contributor({"loss": 1.0, "x": 2.0})], 0, {"loss": 0.5}
            )

    def test_a_return_value_that_is_not_a_dict_is_refused(self):
        with self.assertRaisesRegex(
            TypeError, r"Received: iteration_logs=\[1\.0\]$"
        ):
            loop_logs.contributed_logs([Contributor([1.0])], 0, {})


class StopLineTest(tf.test.TestCase):
    def test_lines(self):
        logs = {"env_steps": 4096.0, "iteration": 8.0}
        target = dict(logs, episode_return_mean=480.123)
        self.assertEqual(
            loop_logs.stop_line(
                "target", target, target_return=475.0, return_window=20
            ),
            "Stopped: reached target_return=475 (episode_return_mean=480.12 "
            "over the last 20 episodes) after 4096 env steps (8 iterations).",
        )
        self.assertEqual(
            loop_logs.stop_line(
                "already", target, target_return=475.0, return_window=20
            ),
            "Not training: target_return=475 already reached "
            "(episode_return_mean=480.12 over the last 20 episodes) after "
            "4096 env steps (8 iterations).",
        )
        self.assertEqual(
            loop_logs.stop_line("callback", {"env_steps": 1, "iteration": 1}),
            "Stopped by a callback (model.stop_training) after 1 env step "
            "(1 iteration).",
        )


if __name__ == "__main__":
    tf.test.main()

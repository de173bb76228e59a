"""Tests of keras_gae.agents.loop_logs: tags, contributed logs, read-back."""

import json
import os
import struct
import textwrap

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
                "restored", target, target_return=475.0, return_window=20
            ),
            "Not training: the restored run already reached "
            "target_return=475 (episode_return_mean=480.12 over the last 20 "
            "episodes) after 4096 env steps (8 iterations).",
        )
        self.assertEqual(
            loop_logs.stop_line("callback", {"env_steps": 1, "iteration": 1}),
            "Stopped by a callback (model.stop_training) after 1 env step "
            "(1 iteration).",
        )


if __name__ == "__main__":
    tf.test.main()

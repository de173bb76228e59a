"""Tests for keras_gae/agents/checkpointing.py: which checkpoint is restored.

Checkpoints are numbered by iteration, so a run past nine iterations has
`ckpt-9` and `ckpt-10`: "newest" means the largest number, never the last
name in lexicographic order (where `ckpt-9` sorts after `ckpt-10`).
"""

import glob
import os

import tensorflow as tf
from absl.testing import parameterized

from keras_gae.agents import checkpointing


def _loop_checkpoints(root_dir, iteration, value, max_to_keep=20):
    return checkpointing.LoopCheckpoints(
        root_dir,
        max_to_keep=max_to_keep,
        iteration=iteration,
        num_envs=1,
        value=value,
    )


def _save_numbered(root_dir, count):
    """Saves ckpt-1 ... ckpt-`count`; checkpoint n holds value 10 * n."""
    iteration = tf.Variable(0, dtype=tf.int64)
    value = tf.Variable(0.0)
    checkpoints = _loop_checkpoints(root_dir, iteration, value)
    for number in range(1, count + 1):
        iteration.assign(number)
        value.assign(10.0 * number)
        checkpoints.save()
    return checkpoints


def _corrupt(path):
    data = glob.glob(path + ".data-*")
    assert data, path
    for name in data:
        with open(name, "wb") as file:
            file.write(b"not a checkpoint")


class CheckpointNumberOrderTest(tf.test.TestCase, parameterized.TestCase):
    def _resume(self, root_dir):
        iteration = tf.Variable(0, dtype=tf.int64)
        value = tf.Variable(-1.0)
        checkpoints = _loop_checkpoints(root_dir, iteration, value)
        return checkpoints, int(iteration.numpy()), float(value.numpy())

    def test_checkpoint_paths_are_ordered_by_number(self):
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 12)
        names = [
            os.path.basename(path)
            for path in checkpointing.checkpoint_paths(saved.manager)
        ]
        self.assertEqual(names, [f"ckpt-{n}" for n in range(1, 13)])

    @parameterized.parameters(10, 11, 12)
    def test_newest_by_number_is_restored(self, count):
        root_dir = self.get_temp_dir()
        _save_numbered(root_dir, count)
        checkpoints, iteration, value = self._resume(root_dir)
        self.assertEqual(
            os.path.basename(checkpoints.restored), f"ckpt-{count}"
        )
        self.assertEqual(iteration, count)
        self.assertEqual(value, 10.0 * count)

    @parameterized.named_parameters(
        ("ten_newest_corrupt", 10, (10,), 9),
        ("eleven_newest_corrupt", 11, (11,), 10),
        ("twelve_three_corrupt", 12, (12, 11, 10), 9),
    )
    def test_fallback_restores_the_newest_readable_by_number(
        self, count, corrupt, expected
    ):
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, count)
        prefix = os.path.join(saved.manager.directory, "ckpt")
        for number in corrupt:
            _corrupt(f"{prefix}-{number}")
        with self.assertWarnsRegex(
            RuntimeWarning, f"Restored {prefix}-{expected} instead"
        ) as caught:
            checkpoints, iteration, value = self._resume(root_dir)
        for number in corrupt:
            self.assertIn(f"ckpt-{number}:", str(caught.warning))
        self.assertEqual(
            os.path.basename(checkpoints.restored), f"ckpt-{expected}"
        )
        self.assertEqual(iteration, expected)
        self.assertEqual(value, 10.0 * expected)

    def test_missing_state_file_restores_the_newest_by_number(self):
        # Without the manager's state file the checkpoints come from the
        # directory listing alone.
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 11)
        os.remove(os.path.join(saved.manager.directory, "checkpoint"))
        with self.assertWarnsRegex(RuntimeWarning, "restored .*ckpt-11,"):
            checkpoints, iteration, value = self._resume(root_dir)
        self.assertEqual(os.path.basename(checkpoints.restored), "ckpt-11")
        self.assertEqual(iteration, 11)
        self.assertEqual(value, 110.0)

    def test_missing_state_file_and_corrupt_newest(self):
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 11)
        os.remove(os.path.join(saved.manager.directory, "checkpoint"))
        _corrupt(os.path.join(saved.manager.directory, "ckpt-11"))
        with self.assertWarnsRegex(RuntimeWarning, "ckpt-10 instead"):
            checkpoints, iteration, value = self._resume(root_dir)
        self.assertEqual(os.path.basename(checkpoints.restored), "ckpt-10")
        self.assertEqual(iteration, 10)
        self.assertEqual(value, 100.0)

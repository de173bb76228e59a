"""Tests for keras_gae/agents/checkpointing.py (and checkpoint_files.py,
checkpoint_restore.py, saved_directory.py): which checkpoint is restored.

Checkpoints are numbered by iteration, so a run past nine iterations has
`ckpt-9` and `ckpt-10`: "newest" means the largest number, never the last
name in lexicographic order (where `ckpt-9` sorts after `ckpt-10`).
"""

import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import tensorflow as tf
from absl.testing import parameterized

from keras_gae.agents import checkpointing
from tests import fresh_process


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

    def assert_resumes_from(self, root_dir, number, warning=None):
        """Resuming `root_dir` restores ckpt-`number` (iteration `number`,
        value 10 * `number`), with a RuntimeWarning matching `warning`
        where one is given; returns what caught that warning."""
        with (
            self.assertWarnsRegex(RuntimeWarning, warning)
            if warning is not None
            else contextlib.nullcontext()
        ) as caught:
            checkpoints, iteration, value = self._resume(root_dir)
        self.assertEqual(
            os.path.basename(checkpoints.restored), f"ckpt-{number}"
        )
        self.assertEqual(iteration, number)
        self.assertEqual(value, 10.0 * number)
        return caught

    def test_checkpoint_paths_are_ordered_by_number(self):
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 12)
        names = [
            os.path.basename(path)
            for path in checkpointing.checkpoint_paths(saved.manager)
        ]
        self.assertEqual(names, [f"ckpt-{n}" for n in range(1, 13)])

    def test_checkpoint_has_the_layout_of_the_managers_checkpoints(self):
        # A saved agent writes `checkpoint()`; the loop, its manager's:
        # one layout, so each reads the other's variables.
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 3)
        written = saved.checkpoint().write(
            os.path.join(self.get_temp_dir(), "agent")
        )

        def keys(path):
            names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
            return {name for name in names if not name.startswith("save_")}

        self.assertEqual(keys(written), keys(saved.latest))
        self.assertIn("iteration/.ATTRIBUTES/VARIABLE_VALUE", keys(written))
        self.assertIn("value/.ATTRIBUTES/VARIABLE_VALUE", keys(written))
        iteration = tf.Variable(0, dtype=tf.int64)
        value = tf.Variable(0.0)
        fresh = checkpointing.LoopCheckpoints(
            None, max_to_keep=1, iteration=iteration, value=value
        )
        fresh.checkpoint().read(written).assert_existing_objects_matched()
        self.assertEqual(
            (int(iteration.numpy()), float(value.numpy())), (3, 30.0)
        )

    @parameterized.parameters(10, 11, 12)
    def test_newest_by_number_is_restored(self, count):
        root_dir = self.get_temp_dir()
        _save_numbered(root_dir, count)
        self.assert_resumes_from(root_dir, count)

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
        caught = self.assert_resumes_from(
            root_dir, expected, f"Restored {prefix}-{expected} instead"
        )
        for number in corrupt:
            self.assertIn(f"ckpt-{number}:", str(caught.warning))

    def test_missing_state_file_restores_the_newest_by_number(self):
        # Without the manager's state file the checkpoints come from the
        # directory listing alone.
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 11)
        os.remove(os.path.join(saved.manager.directory, "checkpoint"))
        self.assert_resumes_from(root_dir, 11, "restored .*ckpt-11,")

    def test_missing_state_file_and_corrupt_newest(self):
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 11)
        os.remove(os.path.join(saved.manager.directory, "checkpoint"))
        _corrupt(os.path.join(saved.manager.directory, "ckpt-11"))
        self.assert_resumes_from(root_dir, 10, "ckpt-10 instead")


def _files(directory):
    """{relative path: bytes} of every file under `directory`."""
    contents = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as file:
                contents[os.path.relpath(path, directory)] = file.read()
    return contents


class CheckpointFaultsTest(tf.test.TestCase, parameterized.TestCase):
    """Faults of the checkpoint directory: fall back and say so, or refuse
    at once; nothing unreadable is replaced."""

    def _resume(self, root_dir, **objects):
        iteration = tf.Variable(0, dtype=tf.int64)
        value = tf.Variable(-1.0)
        checkpoints = _loop_checkpoints(root_dir, iteration, value)
        return checkpoints, int(iteration.numpy()), float(value.numpy())

    @parameterized.named_parameters(
        ("garbage", b"x"),
        ("empty", b""),
        ("not_utf8", b"\xff\xfe\x00"),
        ("no_latest_path", b'all_model_checkpoint_paths: "ckpt-2"\n'),
        ("a_directory", None),
    )
    def test_unreadable_state_file_is_kept_and_the_newest_restored(
        self, content
    ):
        root_dir = self.get_temp_dir()
        _save_numbered(root_dir, 3)
        directory = os.path.join(root_dir, "checkpoints")
        state = os.path.join(directory, "checkpoint")
        os.remove(state)
        if content is None:
            os.mkdir(state)
        else:
            with open(state, "wb") as file:
                file.write(content)
        with self.assertWarnsRegex(
            RuntimeWarning, "state file .*checkpoint cannot be read.*moved to"
        ):
            checkpoints, iteration, value = self._resume(root_dir)
        self.assertEqual(os.path.basename(checkpoints.restored), "ckpt-3")
        self.assertEqual((iteration, value), (3, 30.0))
        # Kept, byte for byte, where the next save does not write.
        kept = os.path.join(directory, "checkpoint.unreadable-1")
        if content is None:
            self.assertTrue(os.path.isdir(kept))
        else:
            with open(kept, "rb") as file:
                self.assertEqual(file.read(), content)
        # And the run goes on saving.
        checkpoints.save()
        self.assertEqual(os.path.basename(checkpoints.latest), "ckpt-3")
        self.assertEqual(
            tf.train.latest_checkpoint(directory), checkpoints.latest
        )

    def test_a_data_file_without_its_index_is_set_aside(self):
        # With the state file unparsable too, only the directory listing
        # knows about ckpt-3: its data file must not be overwritten by the
        # next save of number 3.
        root_dir = self.get_temp_dir()
        _save_numbered(root_dir, 3)
        directory = os.path.join(root_dir, "checkpoints")
        os.remove(os.path.join(directory, "ckpt-3.index"))
        with open(os.path.join(directory, "checkpoint"), "w") as file:
            file.write("garbage")
        orphan = {
            name: content
            for name, content in _files(directory).items()
            if name.startswith("ckpt-3.")
        }
        self.assertLen(orphan, 1)
        with self.assertWarnsRegex(
            RuntimeWarning, "Restored .*ckpt-2 instead.*unreadable-1.*ckpt-3"
        ):
            checkpoints, iteration, _ = self._resume(root_dir)
        self.assertEqual(iteration, 2)
        checkpoints._iteration.assign(3)
        checkpoints.save()
        self.assertEqual(
            _files(os.path.join(directory, "unreadable-1")), orphan
        )

    def test_a_state_file_naming_a_missing_checkpoint(self):
        # Its files were deleted: nothing to set aside, and the warning
        # says what happened instead of calling it unreadable.
        root_dir = self.get_temp_dir()
        _save_numbered(root_dir, 3)
        directory = os.path.join(root_dir, "checkpoints")
        for name in glob.glob(os.path.join(directory, "ckpt-3.*")):
            os.remove(name)
        with self.assertWarnsRegex(
            RuntimeWarning, "names .*ckpt-3, which has no files; restored"
        ) as caught:
            checkpoints, iteration, _ = self._resume(root_dir)
        self.assertNotIn("could not be read", str(caught.warning))
        self.assertEqual(iteration, 2)
        self.assertEqual(os.path.basename(checkpoints.restored), "ckpt-2")
        self.assertFalse(
            os.path.exists(os.path.join(directory, "unreadable-1"))
        )

    def test_latest_names_the_restored_checkpoint_after_a_fallback(self):
        # What a NonFiniteLossError names as holding the last good weights
        # before the next save: never the unreadable one set aside.
        root_dir = self.get_temp_dir()
        saved = _save_numbered(root_dir, 3)
        _corrupt(os.path.join(saved.manager.directory, "ckpt-3"))
        with self.assertWarnsRegex(RuntimeWarning, "ckpt-2 instead"):
            checkpoints, _, _ = self._resume(root_dir)
        self.assertEqual(checkpoints.latest, checkpoints.restored)
        self.assertEqual(os.path.basename(checkpoints.latest), "ckpt-2")

    @parameterized.named_parameters(
        ("checkpoints_is_a_file", "run", "run/checkpoints"),
        ("root_dir_is_a_file", "file/run", "file"),
    )
    def test_a_path_that_is_a_file_is_refused_at_once(self, run, file_name):
        # Not after an iteration's training, when the first save fails.
        parent = self.get_temp_dir()
        root_dir = os.path.join(parent, run)
        blocker = os.path.join(parent, file_name)
        os.makedirs(os.path.dirname(blocker), exist_ok=True)
        with open(blocker, "w") as file:
            file.write("mine")
        with self.assertRaisesRegex(
            ValueError,
            "not a directory.*Received: root_dir=" + re.escape(repr(root_dir)),
        ):
            _loop_checkpoints(
                root_dir, tf.Variable(0, dtype=tf.int64), tf.Variable(0.0)
            )
        with open(blocker) as file:
            self.assertEqual(file.read(), "mine")

    def test_a_checkpoint_of_other_objects_is_a_mismatch(self):
        # Readable files saved with other objects (a setting that adds a
        # variable) are a mismatch, not "none can be restored".
        root_dir = self.get_temp_dir()
        _save_numbered(root_dir, 2)
        with self.assertRaisesRegex(
            checkpointing.CheckpointMismatchError,
            "ckpt-2 does not fit this run.*Received: ",
        ):
            checkpointing.LoopCheckpoints(
                root_dir,
                max_to_keep=20,
                iteration=tf.Variable(0, dtype=tf.int64),
                num_envs=1,
                value=tf.Variable(0.0),
                extra=tf.Variable(0.0),
            )


class SaveDirectoryTest(tf.test.TestCase):
    def test_a_save_through_a_symbolic_link_replaces_its_target(self):
        parent = self.get_temp_dir()
        target = os.path.join(parent, "target")
        link = os.path.join(parent, "link")
        os.makedirs(target)
        os.symlink(target, link)
        for text in ("first", "second"):

            def write(directory, text=text):
                with open(os.path.join(directory, "saved"), "w") as file:
                    file.write(text)

            self.assertEqual(
                checkpointing.save_directory(
                    link, write, owns=lambda name: name == "saved"
                ),
                link,
            )
        self.assertEqual(os.readlink(link), target)
        self.assertEqual(_files(target), {"saved": b"second"})
        self.assertEqual(sorted(os.listdir(parent)), ["link", "target"])

    def test_a_directory_another_save_moves_away_mid_check_is_replaced(self):
        # Another process's save renames the earlier directory out of the
        # way between this save's existence check and its listing.
        parent = self.get_temp_dir()
        path = os.path.join(parent, "agent")
        os.makedirs(path)
        real_listdir = os.listdir

        def listdir_after_another_save_moved(directory):
            if directory == path:
                os.rename(path, os.path.join(parent, "moved"))
            return real_listdir(directory)

        def write(directory):
            with open(os.path.join(directory, "saved"), "w") as file:
                file.write("mine")

        with mock.patch.object(
            checkpointing.os, "listdir", listdir_after_another_save_moved
        ):
            checkpointing.save_directory(
                path, write, owns=lambda name: name == "saved"
            )
        self.assertEqual(_files(path), {"saved": b"mine"})


_READ_ONLY_RESUME = """
import sys
import tensorflow as tf
from keras_gae.agents import checkpointing
try:
    checkpointing.LoopCheckpoints(
        sys.argv[1], max_to_keep=20, iteration=tf.Variable(0, dtype=tf.int64),
        num_envs=1, value=tf.Variable(0.0), restart=sys.argv[2] == "restart")
except ValueError as error:
    print(type(error).__name__, error)
else:
    print("constructed")
"""

_READ_ONLY_SAVE = """
import os, sys
from keras_gae.agents import checkpointing
try:
    checkpointing.save_directory(
        sys.argv[1], lambda directory: None, owns=lambda name: True)
except ValueError as error:
    print(type(error).__name__, error)
else:
    print("saved")
"""


class ReadOnlyDirectoryTest(tf.test.TestCase):
    """As a user without write permission (root writes anyway)."""

    def read_only_run(self):
        parent = tempfile.mkdtemp(dir="/tmp")
        self.addCleanup(shutil.rmtree, parent)
        os.chmod(parent, 0o755)
        root_dir = os.path.join(parent, "run")
        _save_numbered(root_dir, 2)
        for directory in (root_dir, os.path.join(root_dir, "checkpoints")):
            os.chmod(directory, 0o555)
        return root_dir

    def run_as_user(self, code, *args):
        command = [sys.executable, "-c", code, *args]
        if os.geteuid() == 0:
            command = [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ] + command
        environment = dict(
            os.environ, PYTHONPATH=fresh_process.REPO_ROOT, HOME="/tmp"
        )
        environment.pop("TF_USE_LEGACY_KERAS", None)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environment,
            cwd="/tmp",
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return result.stdout

    def assert_loop_refused(self, mode, pattern):
        """LoopCheckpoints in a read-only run (`mode` "resume" or
        "restart") says `pattern` and leaves its files as they were;
        returns the run's root_dir."""
        root_dir = self.read_only_run()
        before = _files(root_dir)
        self.assertRegex(
            self.run_as_user(_READ_ONLY_RESUME, root_dir, mode), pattern
        )
        self.assertEqual(_files(root_dir), before)
        return root_dir

    def test_a_read_only_root_dir_is_refused_before_training(self):
        self.assert_loop_refused(
            "resume",
            r"cannot write checkpoints to .*run/checkpoints.*"
            r"Received: root_dir=",
        )

    def test_restart_and_saves_in_a_read_only_directory(self):
        root_dir = self.assert_loop_refused(
            "restart",
            r"^CheckpointError .*cannot move the checkpoints of .*run/"
            r"checkpoints aside.*Received: root_dir=",
        )
        path = os.path.join(root_dir, "agent")
        self.assertRegex(
            self.run_as_user(_READ_ONLY_SAVE, path),
            r"^ValueError .*written beside it.*cannot be written.*"
            r"Received: path=",
        )

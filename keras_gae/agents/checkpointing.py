"""Checkpoints: the collect-and-fit loop's, a binary's and a saved agent's.

A run's state (the model's weights, the optimizer's state, the counters
and the episode statistics) is saved with a `tf.train.CheckpointManager`
under `root_dir/checkpoints`, numbered by iteration. `LoopCheckpoints`
does it for `OnPolicyTrainer` and for the example binaries
(`examples/train_lm_ppo.py`), so every run resumes the same way. A
checkpoint that cannot be read is never silently skipped or replaced
(docs/design.md, "Errors"):

* `prepare` readies `root_dir/checkpoints` before anything is built or
  trained: it refuses a path that is not a writable directory, moves the
  old checkpoints to `checkpoints.old-<n>` when the run starts over
  (`restart`), and moves a state file (`checkpoint`) that cannot be read
  to `checkpoint.unreadable-<n>`; the checkpoints are then found by their
  files.
* `restore_latest` restores the newest readable checkpoint by number;
  newer ones that cannot be read are moved to `unreadable-<n>`, where no
  later save (saves reuse iteration numbers) replaces them, with a warning
  naming them. It refuses when none can be read, and refuses a readable
  checkpoint saved with other settings (another number of environments,
  other networks: `CheckpointMismatchError`, the setting named).
* `restore_checkpoint` restores one checkpoint with those errors; a saved
  agent (`OnPolicyAgent.load`) is read with it.
* `save_directory` writes a directory (a saved agent) beside its place and
  renames it into place: an interrupted save leaves the previous one
  intact, and concurrent saves to one path leave the last one whole.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Mapping
from typing import Any
from typing import Callable
from typing import Optional

import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"
# The manager's state file: which checkpoints it keeps, the latest.
STATE_FILE = "checkpoint"
# A variable with one entry per environment (`EpisodeStatistics`): its
# saved shape is the number of environments of the run that saved it.
EPISODE_STATISTICS_KEY = (
    "episode_statistics/_return_sums/.ATTRIBUTES/VARIABLE_VALUE"
)
# Only in checkpoints written by `Checkpoint.save` (a manager's), which
# `Checkpoint.restore` then expects; `Checkpoint.write` leaves it out.
_SAVE_COUNTER_KEY = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
RESUME_REMEDY = (
    "Resume with the settings it was saved with, or start a new run "
    "(restart=True, --restart) or another root_dir."
)

# What restoring a checkpoint that cannot be read raises: a missing or
# corrupt file (an OpError, or IndexError and RuntimeError from the C++
# reader, ValueError for some).
_UNREADABLE = (tf.errors.OpError, IndexError, RuntimeError, ValueError)


class CheckpointError(ValueError):
    """A checkpoint directory or a checkpoint a run cannot use."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint that does not fit this run's settings."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read (truncated, missing)."""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"


def _free(path: str) -> str:
    """`path-<n>` with the first n >= 1 that does not exist."""
    number = 1
    while tf.io.gfile.exists(f"{path}-{number}"):
        number += 1
    return f"{path}-{number}"


def _rename_with_warning(
    path: str, name: str, message: Callable[[str], str]
) -> str:
    """Renames `path` to `<name>-<n>` (the first free n) and warns.

    `message(kept)` is the warning, given the new path; returns that path.
    """
    kept = _free(name)
    tf.io.gfile.rename(path, kept)
    # The warning points at the caller of the public function that calls
    # this one.
    warnings.warn(message(kept), RuntimeWarning, stacklevel=4)
    return kept


def _number(path: str) -> int:
    suffix = path.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def _paths_on_disk(prefix: str) -> set:
    """The `<prefix>-<number>` checkpoints with an index or a data file."""
    paths = set()
    for name in tf.io.gfile.glob(f"{prefix}-*.index"):
        paths.add(name[: -len(".index")])
    for name in tf.io.gfile.glob(f"{prefix}-*.data-*"):
        paths.add(name[: name.rindex(".data-")])
    return {path for path in paths if _number(path) >= 0}


def _check_directory(root_dir: str) -> str:
    """Makes `root_dir/checkpoints`; refuses it unless a writable directory.

    Checked before a run builds or trains anything: otherwise the first
    save, after an iteration, is where it fails.
    """

    def unusable(why: str) -> CheckpointError:
        return CheckpointError(
            f"`root_dir` cannot hold checkpoints: {why}. "
            f"Received: root_dir={root_dir!r}"
        )

    def attempt(action: Callable[[], None], why: str) -> None:
        try:
            action()
        except tf.errors.OpError as error:
            raise unusable(f"{why} ({_one_line(error)})") from None

    def write_probe() -> None:
        probe = os.path.join(directory, f".write-test-{uuid.uuid4().hex}")
        with tf.io.gfile.GFile(probe, "w") as file:
            file.write("")
        tf.io.gfile.remove(probe)

    directory = os.path.join(root_dir, CHECKPOINT_DIR)
    attempt(
        lambda: tf.io.gfile.makedirs(directory),
        f"{directory} cannot be made: a path on the way is not a directory, "
        "or is not writable",
    )
    if not tf.io.gfile.isdir(directory):
        raise unusable(f"{directory} is not a directory")
    attempt(
        write_probe,
        f"cannot write checkpoints to {directory}: make it writable, or "
        "choose another root_dir",
    )
    return directory


def _set_aside_state_file(directory: str) -> None:
    """Moves a state file the manager cannot read out of its way."""
    state = os.path.join(directory, STATE_FILE)
    if not tf.io.gfile.exists(state):
        return
    reason = None
    if tf.io.gfile.isdir(state):
        reason = "it is a directory"
    else:
        try:
            # None (and a logged warning) for text it cannot parse.
            if tf.train.get_checkpoint_state(directory) is None:
                reason = "it cannot be parsed"
        except (ValueError, UnicodeDecodeError) as error:
            reason = _one_line(error)
    if reason is None:
        return
    _rename_with_warning(
        state,
        f"{state}.unreadable",
        lambda kept: (
            f"The state file {state} cannot be read ({reason}); "
            f"it was moved to {kept}, and the checkpoints are found by their "
            "files."
        ),
    )


def move_aside(root_dir: str) -> Optional[str]:
    """Moves `root_dir/checkpoints` to a new backup directory; its path.

    What starting over does with the checkpoints of an earlier run: they
    are kept, never overwritten, as `root_dir/checkpoints.old-<n>` (the
    first free n). None when there is nothing to move (a path that is not
    a directory is left for `prepare` to refuse).
    """
    directory = os.path.join(root_dir, CHECKPOINT_DIR)
    if not tf.io.gfile.isdir(directory) or not tf.io.gfile.listdir(directory):
        return None
    return _rename_with_warning(
        directory,
        f"{directory}.old",
        lambda kept: (
            "Starting over: the checkpoints of the earlier run in "
            f"{directory} were moved to {kept}."
        ),
    )


def prepare(root_dir: str, *, restart: bool = False) -> list:
    """Readies `root_dir/checkpoints` for a run; the checkpoints it holds.

    Moves the old checkpoints aside with `restart` (`move_aside`), makes
    the directory and refuses it unless it is a writable directory, and
    moves an unreadable state file to `checkpoint.unreadable-<n>` with a
    warning. A binary that builds differently when it resumes (it skips
    pretraining) calls it first; `LoopCheckpoints` calls it again.

    Args:
      root_dir: the run's directory.
      restart: start over: move the old checkpoints aside first.

    Returns:
      The paths of the checkpoints with files in the directory, oldest
      first by number (not yet read: `restore_latest` tells which can be).

    Raises:
      CheckpointError (a ValueError): `root_dir/checkpoints` is not a
        directory, cannot be made or is not writable, or (`restart`) the
        old checkpoints cannot be moved aside.
    """
    root_dir = os.fspath(root_dir)
    if restart:
        try:
            move_aside(root_dir)
        except tf.errors.OpError as error:
            directory = os.path.join(root_dir, CHECKPOINT_DIR)
            raise CheckpointError(
                f"Starting over: cannot move the checkpoints of {directory} "
                f"aside ({_one_line(error)}); they are kept where they are. "
                "Make root_dir writable, or choose another root_dir. "
                f"Received: root_dir={root_dir!r}"
            ) from None
    directory = _check_directory(root_dir)
    _set_aside_state_file(directory)
    return sorted(_paths_on_disk(os.path.join(directory, "ckpt")), key=_number)


def make_checkpoint_manager(
    root_dir: str,
    *,
    max_to_keep: int,
    step_counter: tf.Variable,
    **objects: Any,
) -> tf.train.CheckpointManager:
    """A manager of checkpoints of `objects` under `root_dir/checkpoints`.

    Call `prepare(root_dir)` first: a state file the manager cannot read
    makes it raise.

    Args:
      root_dir: the run's directory.
      max_to_keep: how many checkpoints to keep.
      step_counter: the variable that numbers the checkpoints.
      **objects: the trackables to save (keyword = name in the checkpoint).
    """
    return tf.train.CheckpointManager(
        tf.train.Checkpoint(**objects),
        os.path.join(root_dir, CHECKPOINT_DIR),
        max_to_keep=max_to_keep,
        step_counter=step_counter,
    )


def checkpoint_paths(manager: tf.train.CheckpointManager) -> list:
    """Every checkpoint of `manager`'s directory, oldest first by number.

    A checkpoint is there when a `<prefix>-<number>.index` or `.data-*`
    file of it is, whatever the manager's state file (`checkpoint`) says:
    a missing or unparsable state file, or a lost index, hides none, and
    a checkpoint the state file names whose files are gone is not one.
    """
    prefix = manager._checkpoint_prefix  # what `save` numbers
    return sorted(_paths_on_disk(prefix), key=_number)


def _check_settings(
    reader: tf.train.CheckpointReader,
    path: str,
    settings: Mapping[str, tuple],
    remedy: str,
) -> None:
    """Refuses a checkpoint saved by a run with other `settings`."""
    shapes = reader.get_variable_to_shape_map()
    for key, (name, value) in settings.items():
        saved = shapes.get(key)
        if saved and saved[0] != value:
            raise CheckpointMismatchError(
                f"The checkpoint {path} was saved by a run with "
                f"{name}={saved[0]}; this run has {name}={value}. "
                f"{remedy} Received: {name}={value}"
            )


def _mismatch(path: str, error: BaseException, remedy: str):
    """The CheckpointMismatchError of a restore that does not fit."""
    # TensorFlow's text: "Received incompatible tensor with shape S when
    # attempting to restore variable with shape M and name N."
    shapes = re.search(
        r"with shape (.+) when attempting to restore variable with "
        r"shape (.+) and name (.+?)\.?$",
        str(error),
    )
    if shapes:
        received = (
            f"saved shape={shapes[1]}, this model's shape={shapes[2]} "
            f"(variable {shapes[3]})"
        )
    else:
        # assert_existing_objects_matched: objects the checkpoint lacks.
        received = f"error={_one_line(error)[:500]!r}"
    return CheckpointMismatchError(
        f"The checkpoint {path} does not fit this run's model: it was saved "
        "with other networks, action space or settings. "
        f"{remedy} Received: {received}"
    )


def restore_checkpoint(
    checkpoint: tf.train.Checkpoint,
    path: str,
    *,
    settings: Optional[Mapping[str, tuple]] = None,
    partial: bool = False,
    remedy: str = RESUME_REMEDY,
) -> None:
    """Restores the checkpoint `path` into `checkpoint`, or says why not.

    Every object of `checkpoint` must be matched by a saved value.

    Args:
      checkpoint: the `tf.train.Checkpoint` to restore into.
      path: the checkpoint's prefix (`.../ckpt-3`, `.../agent`).
      settings: checkpoint key -> (setting name, value): the first
        dimension of that saved variable must equal `value`; the error
        names the setting otherwise (e.g. the number of environments).
      partial: saved values no object takes are expected (not warned of).
      remedy: what the user can do, in a mismatch's message.

    Raises:
      UnreadableCheckpointError (a ValueError): a file of `path` is
        missing, truncated or corrupt.
      CheckpointMismatchError (a ValueError): `path` was saved with other
        settings or by another model.
    """
    try:
        reader = tf.train.load_checkpoint(path)
        _check_settings(reader, path, settings or {}, remedy)
        if reader.has_tensor(_SAVE_COUNTER_KEY):
            status = checkpoint.restore(path)
        else:
            status = checkpoint.read(path)
        status.assert_existing_objects_matched()
        if partial:
            status.expect_partial()
    except CheckpointMismatchError:
        raise
    except AssertionError as error:
        raise _mismatch(path, error, remedy) from error
    except _UNREADABLE as error:
        if isinstance(error, ValueError) and (
            "incompatible tensor with shape" in str(error)
        ):
            raise _mismatch(path, error, remedy) from error
        raise UnreadableCheckpointError(
            f"The checkpoint {path} cannot be read: a file of it is "
            f"missing, truncated or corrupt. Received: {_one_line(error)}"
        ) from error


def restore_latest(
    manager: tf.train.CheckpointManager,
    *,
    settings: Optional[Mapping[str, tuple]] = None,
    partial: bool = False,
) -> Optional[str]:
    """Restores the newest readable checkpoint of `manager`.

    Unreadable checkpoints (a truncated or corrupt file) are passed over,
    newest first, moved to `unreadable-<n>` and named in a warning. The
    checkpoints are those of `checkpoint_paths`, so an unparsable state
    file loses nothing; a restore of another checkpoint than the state
    file's latest says so.

    Args:
      manager: the checkpoint manager.
      settings: as in `restore_checkpoint`.
      partial: as in `restore_checkpoint`.

    Returns:
      The path restored, or None when `manager` has no checkpoint.

    Raises:
      CheckpointMismatchError (a ValueError): the newest readable
        checkpoint was saved with other settings or another model.
      CheckpointError (a ValueError): there are checkpoints but none can
        be read.
    """
    failures = []
    for path in reversed(checkpoint_paths(manager)):
        try:
            restore_checkpoint(
                manager.checkpoint, path, settings=settings, partial=partial
            )
        except UnreadableCheckpointError as error:
            failures.append((path, f"{path}: {_one_line(error.__cause__)}"))
            continue
        if failures:
            kept = _set_aside([failure[0] for failure in failures])
            warnings.warn(
                f"Restored {path} instead of newer checkpoints that could "
                f"not be read; their files were moved to {kept}, where no "
                "new save overwrites them: "
                + "; ".join(failure[1] for failure in failures),
                RuntimeWarning,
                stacklevel=2,
            )
        elif manager.latest_checkpoint is None:
            warnings.warn(
                f"The state file of {manager.directory} (`{STATE_FILE}`) is "
                f"missing or cannot be parsed; restored {path}, the newest "
                "checkpoint of the directory.",
                RuntimeWarning,
                stacklevel=2,
            )
        elif manager.latest_checkpoint != path:
            latest = manager.latest_checkpoint
            state = (
                "which has no files"
                if not tf.io.gfile.glob(f"{latest}.*")
                else "not the newest"
            )
            warnings.warn(
                f"The state file of {manager.directory} (`{STATE_FILE}`) "
                f"names {latest}, {state}; restored {path}, the newest "
                "checkpoint of the directory.",
                RuntimeWarning,
                stacklevel=2,
            )
        return path
    if failures:
        raise CheckpointError(
            "None of the checkpoints under "
            f"{manager.directory} can be restored; refusing to start over "
            "from scratch on top of them. Move them away, or start a new "
            "run with restart=True (--restart in the example binaries), "
            "which moves them to a backup directory. Received: "
            + "; ".join(failure[1] for failure in failures)
        )
    return None


def _set_aside(paths: list) -> str:
    """Moves the files of the checkpoints `paths` to an `unreadable-<n>`
    directory beside them, so that saves reusing their numbers (the loop
    numbers checkpoints by iteration) cannot replace them; its path."""
    target = _free(os.path.join(os.path.dirname(paths[0]), "unreadable"))
    tf.io.gfile.makedirs(target)
    for path in paths:
        for name in tf.io.gfile.glob(f"{path}.*"):
            tf.io.gfile.rename(
                name, os.path.join(target, os.path.basename(name))
            )
    return target


class LoopCheckpoints:
    """A run's checkpoints under `root_dir` (or none).

    Construction readies the directory (`prepare`: old checkpoints moved
    aside with `restart`; refused unless a writable directory), makes the
    manager of `objects` under `root_dir/checkpoints` and restores the
    newest readable checkpoint (`restore_latest`), refusing one saved with
    another number of environments (`num_envs`, the first dimension of
    the episode statistics) when `num_envs` is given. With `root_dir=None`
    nothing is saved or restored.

    Args:
      root_dir: the run's directory, or None.
      max_to_keep: how many checkpoints to keep.
      iteration: the iteration counter, which numbers the checkpoints.
      num_envs: the run's number of environments, or None (a run without
        episode statistics).
      restart: move old checkpoints aside instead of resuming.
      partial: the checkpoints may hold values no object takes (e.g. a
        pretraining optimizer's slots a resumed run does not rebuild).
      **objects: the trackables to save (keyword = name in the checkpoint).

    Raises:
      CheckpointError (a ValueError): `root_dir` cannot hold checkpoints,
        or none of its checkpoints can be read.
      CheckpointMismatchError (a ValueError): the newest readable
        checkpoint was saved with other settings.
    """

    def __init__(
        self,
        root_dir: Optional[str],
        *,
        max_to_keep: int,
        iteration: tf.Variable,
        num_envs: Optional[int] = None,
        restart: bool = False,
        partial: bool = False,
        **objects: Any,
    ):
        self._iteration = iteration
        self._settings = (
            {}
            if num_envs is None
            else {EPISODE_STATISTICS_KEY: ("num_envs", num_envs)}
        )
        self._partial = partial
        self.manager = None
        self.restored = None
        self._latest = None
        if root_dir is None:
            return
        root_dir = os.fspath(root_dir)
        prepare(root_dir, restart=restart)
        self.manager = make_checkpoint_manager(
            root_dir,
            max_to_keep=max_to_keep,
            step_counter=iteration,
            iteration=iteration,
            **objects,
        )
        self.restored = self.restore()

    def restore(self) -> Optional[str]:
        """Restores the newest readable checkpoint; its path or None."""
        if self.manager is None:
            return None
        restored = restore_latest(
            self.manager, settings=self._settings, partial=self._partial
        )
        self._latest = restored
        return restored

    def save(self) -> Optional[str]:
        """Saves a checkpoint numbered by the iteration; its path or None."""
        if self.manager is None:
            return None
        self._latest = self.manager.save(checkpoint_number=self._iteration)
        return self._latest

    @property
    def latest(self) -> Optional[str]:
        """The checkpoint restored or saved last: the last good state."""
        return self._latest


# A saved directory.


def save_directory(
    path: str, write: Callable[[str], None], *, owns: Callable[[str], bool]
) -> str:
    """Writes a directory at `path` with `write(directory)`, atomically.

    `write` fills a new directory beside `path` (a hidden
    `.<name>.saving-<id>` in the same parent), which is then renamed to
    `path`; an earlier directory there is renamed out of the way first
    and deleted after. A failure or crash while writing leaves `path` as
    it was (a crash may leave the hidden directory behind); between the
    two renames the earlier directory is `.<name>.replaced-<id>`. Of
    saves to one path at once, the last rename wins and the result is
    whole. A symbolic link is followed: its target is replaced.

    Args:
      path: the directory to write.
      write: fills the directory it is given.
      owns: whether a file name is one `write` writes: a directory at
        `path` holding other names is refused, not replaced.

    Returns:
      `path`.

    Raises:
      ValueError: `path` is a file, or a directory holding other files,
        or its parent directory is not writable.
    """
    given = os.fspath(path)
    path = os.path.realpath(given)
    parent, name = os.path.split(path)
    # Other saves to `path` may move it away at any moment: each look at
    # it is one call, and a vanished directory counts as none.
    try:
        entries = os.listdir(path)
    except FileNotFoundError:
        entries = []
    except NotADirectoryError:
        raise ValueError(
            f"`path` must be a directory to save into; {path} is a file. "
            f"Received: path={given!r}"
        ) from None
    others = sorted(entry for entry in entries if not owns(entry))
    if others:
        raise ValueError(
            f"`path` holds files that are not part of a save "
            f"({', '.join(others[:5])}); a save replaces the whole "
            "directory, so it refuses to. Save to a new or empty "
            f"directory. Received: path={given!r}"
        )
    staging = os.path.join(parent, f".{name}.saving-{uuid.uuid4().hex}")
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(staging)
    except OSError as error:
        raise ValueError(
            f"`path` cannot be saved: a save is first written beside it, "
            f"in {parent}, which cannot be written ({_one_line(error)}). "
            f"Received: path={given!r}"
        ) from None
    try:
        write(staging)
        _rename_into_place(staging, path)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return given


def _rename_into_place(staging: str, path: str) -> None:
    """Renames `staging` to `path`, moving what is there out of the way."""
    parent, name = os.path.split(path)
    replaced = []
    try:
        # Another process may put its save back in between; each round
        # moves one out of the way, so a few suffice.
        for _ in range(1000):
            try:
                os.rename(staging, path)
                return
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            old = os.path.join(parent, f".{name}.replaced-{uuid.uuid4().hex}")
            try:
                os.rename(path, old)
                replaced.append(old)
            except FileNotFoundError:
                pass
        raise OSError(errno.EBUSY, f"{path} kept being replaced by other saves")
    finally:
        for old in replaced:
            shutil.rmtree(old, ignore_errors=True)


def replaced_saves(path: str) -> list:
    """Earlier saves at `path` that an interrupted save left renamed."""
    parent, name = os.path.split(os.path.realpath(os.fspath(path)))
    if not os.path.isdir(parent):
        return []
    return sorted(
        os.path.join(parent, entry)
        for entry in os.listdir(parent)
        if entry.startswith(f".{name}.replaced-")
    )

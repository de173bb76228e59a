"""Where a run's checkpoints live, and which files on disk are one.

`prepare` readies `root_dir/checkpoints` before anything is built or
trained: it refuses a path that is not a writable directory, moves the old
checkpoints to `checkpoints.old-<n>` when the run starts over (`restart`),
and moves a state file (`checkpoint`) that cannot be read to
`checkpoint.unreadable-<n>`. The checkpoints are then found by their files
(`checkpoint_paths`), whatever the state file says, and unreadable ones
are moved out of the way of later saves (`set_aside`). The errors of
`keras_gae.agents.checkpointing` are defined here.
"""

from __future__ import annotations

import os
import uuid
import warnings
from typing import Callable
from typing import Optional

import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"
# The name `make_checkpoint_manager` gives the manager: its checkpoints are
# `<directory>/ckpt-<number>`.
CHECKPOINT_NAME = "ckpt"
# The manager's state file: which checkpoints it keeps, the latest.
STATE_FILE = "checkpoint"


class CheckpointError(ValueError):
    """A checkpoint directory or a checkpoint a run cannot use."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint that does not fit this run's settings."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read (truncated, missing)."""


def one_line(error: BaseException) -> str:
    """`error`'s type and message on one line, for messages."""
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
            raise unusable(f"{why} ({one_line(error)})") from None

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
            reason = one_line(error)
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
                f"aside ({one_line(error)}); they are kept where they are. "
                "Make root_dir writable, or choose another root_dir. "
                f"Received: root_dir={root_dir!r}"
            ) from None
    directory = _check_directory(root_dir)
    _set_aside_state_file(directory)
    return sorted(
        _paths_on_disk(os.path.join(directory, CHECKPOINT_NAME)), key=_number
    )


def checkpoint_paths(manager: tf.train.CheckpointManager) -> list:
    """Every checkpoint of `manager`'s directory, oldest first by number.

    A checkpoint is there when a `<prefix>-<number>.index` or `.data-*`
    file of it is, whatever the manager's state file (`checkpoint`) says:
    a missing or unparsable state file, or a lost index, hides none, and
    a checkpoint the state file names whose files are gone is not one.
    `manager` is one of `make_checkpoint_manager`'s, whose checkpoints are
    named `CHECKPOINT_NAME-<number>` (a manager keeps its prefix private).
    """
    prefix = os.path.join(manager.directory, CHECKPOINT_NAME)
    return sorted(_paths_on_disk(prefix), key=_number)


def set_aside(paths: list) -> str:
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

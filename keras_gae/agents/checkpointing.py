"""Checkpoints of the collect-and-fit loop.

The loop's state (the model's weights, the optimizer's state, the counters
and the episode statistics) is saved with a `tf.train.CheckpointManager`
under `root_dir/checkpoints`, numbered by iteration. A checkpoint that
cannot be read is never silently skipped (docs/design.md, "Errors"):
`restore_latest` falls back to the newest readable one with a warning that
names the unreadable ones, and refuses when none can be read (unless the
run starts over: `move_aside` keeps the old checkpoints in a backup
directory). A readable checkpoint saved with other settings (another number
of environments, other networks) is refused with the setting named.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from typing import Any
from typing import Optional

import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"
# A variable with one entry per environment (`EpisodeStatistics`): its
# saved shape is the number of environments of the run that saved it.
EPISODE_STATISTICS_KEY = (
    "episode_statistics/_return_sums/.ATTRIBUTES/VARIABLE_VALUE"
)

# What restoring a checkpoint that cannot be read raises: a missing or
# corrupt file (an OpError, or IndexError and RuntimeError from the C++
# reader), a structure that does not match the objects (AssertionError,
# ValueError).
_UNREADABLE = (
    tf.errors.OpError,
    AssertionError,
    IndexError,
    RuntimeError,
    ValueError,
)


def make_checkpoint_manager(
    root_dir: str,
    *,
    max_to_keep: int,
    step_counter: tf.Variable,
    **objects: Any,
) -> tf.train.CheckpointManager:
    """A manager of checkpoints of `objects` under `root_dir/checkpoints`.

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


def _number(path: str) -> int:
    suffix = path.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def checkpoint_paths(manager: tf.train.CheckpointManager) -> list:
    """Every checkpoint of `manager`'s directory, oldest first.

    The manager's state file (`checkpoint`) lists the checkpoints it kept;
    when that file is missing or cannot be parsed the manager sees none,
    so the directory's `<prefix>-<number>.index` files are listed too.
    """
    paths = set(manager.checkpoints)
    if manager.latest_checkpoint is not None:
        paths.add(manager.latest_checkpoint)
    prefix = manager._checkpoint_prefix  # what `save` numbers
    for index in tf.io.gfile.glob(f"{prefix}-*.index"):
        paths.add(index[: -len(".index")])
    return sorted((path for path in paths if _number(path) >= 0), key=_number)


def _check_settings(path: str, settings: Mapping[str, tuple]) -> None:
    """Refuses a checkpoint saved by a run with other `settings`."""
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    for key, (name, value) in settings.items():
        saved = shapes.get(key)
        if saved and saved[0] != value:
            raise CheckpointMismatchError(
                f"The checkpoint {path} was saved by a run with "
                f"{name}={saved[0]}; this run has {name}={value}. Resume "
                f"with {name}={saved[0]}, or start a new run (restart=True, "
                f"--restart) or another root_dir. Received: {name}={value}"
            )


class CheckpointMismatchError(ValueError):
    """A readable checkpoint that does not fit this run's settings."""


def restore_latest(
    manager: tf.train.CheckpointManager,
    *,
    settings: Optional[Mapping[str, tuple]] = None,
) -> Optional[str]:
    """Restores the newest readable checkpoint of `manager`.

    Every object of the manager's checkpoint must be matched by the saved
    one. Unreadable checkpoints (a truncated or corrupt file) are passed
    over, newest first, with a warning naming them. The checkpoints are
    those of the manager's state file and every `<prefix>-<number>.index`
    file of its directory, so an unparsable state file loses nothing.

    Args:
      manager: the checkpoint manager.
      settings: checkpoint key -> (setting name, value): the first
        dimension of that saved variable must equal `value`; it names the
        setting in the error otherwise (e.g. the number of environments).

    Returns:
      The path restored, or None when `manager` has no checkpoint.

    Raises:
      CheckpointMismatchError (a ValueError): the newest readable
        checkpoint was saved with other settings or another model.
      ValueError: there are checkpoints but none can be restored.
    """
    failures = []
    for path in reversed(checkpoint_paths(manager)):
        try:
            _check_settings(path, settings or {})
            status = manager.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except CheckpointMismatchError:
            raise
        except ValueError as error:
            if "incompatible tensor with shape" not in str(error):
                failures.append(
                    (path, f"{path}: {type(error).__name__}: {error}")
                )
                continue
            # TensorFlow's text: "Received incompatible tensor with shape
            # S when attempting to restore variable with shape M and name N."
            shapes = re.search(
                r"with shape (.+) when attempting to restore variable with "
                r"shape (.+) and name (.+?)\.?$",
                str(error),
            )
            received = (
                f"saved shape={shapes[1]}, this model's shape={shapes[2]} "
                f"(variable {shapes[3]})"
                if shapes
                else f"error={str(error)!r}"
            )
            raise CheckpointMismatchError(
                f"The checkpoint {path} does not fit this run's model: it "
                "was saved with other networks, action space or settings. "
                "Resume with the settings it was saved with, or start a new "
                "run (restart=True, --restart) or another root_dir. "
                f"Received: {received}"
            ) from error
        except _UNREADABLE as error:
            failures.append((path, f"{path}: {type(error).__name__}: {error}"))
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
                f"The state file of {manager.directory} (`checkpoint`) is "
                f"missing or cannot be parsed; restored {path}, the newest "
                "checkpoint of the directory.",
                RuntimeWarning,
                stacklevel=2,
            )
        return path
    if failures:
        raise ValueError(
            "None of the checkpoints under "
            f"{manager.directory} can be restored; refusing to start over "
            "from scratch on top of them. Move them away, or start a new "
            "run with restart=True (train_ppo.py --restart), which moves "
            "them to a backup directory. Received: "
            + "; ".join(failure[1] for failure in failures)
        )
    return None


def _set_aside(paths: list) -> str:
    """Moves the files of the checkpoints `paths` to an `unreadable-<n>`
    directory beside them, so that saves reusing their numbers (the loop
    numbers checkpoints by iteration) cannot replace them; its path."""
    directory = os.path.dirname(paths[0])
    number = 1
    while tf.io.gfile.exists(os.path.join(directory, f"unreadable-{number}")):
        number += 1
    target = os.path.join(directory, f"unreadable-{number}")
    tf.io.gfile.makedirs(target)
    for path in paths:
        for name in tf.io.gfile.glob(f"{path}.*"):
            tf.io.gfile.rename(
                name, os.path.join(target, os.path.basename(name))
            )
    return target


def move_aside(root_dir: str) -> Optional[str]:
    """Moves `root_dir/checkpoints` to a new backup directory; its path.

    What starting over does with the checkpoints of an earlier run: they
    are kept, never overwritten, as `root_dir/checkpoints.old-<n>` (the
    first free n). None when there is nothing to move.
    """
    directory = os.path.join(root_dir, CHECKPOINT_DIR)
    if not tf.io.gfile.exists(directory) or not tf.io.gfile.listdir(directory):
        return None
    number = 1
    while tf.io.gfile.exists(f"{directory}.old-{number}"):
        number += 1
    backup = f"{directory}.old-{number}"
    tf.io.gfile.rename(directory, backup)
    warnings.warn(
        f"Starting over: the checkpoints of the earlier run in {directory} "
        f"were moved to {backup}.",
        RuntimeWarning,
        stacklevel=2,
    )
    return backup


class LoopCheckpoints:
    """The collect-and-fit loop's checkpoints under `root_dir` (or none).

    Construction makes the manager of `objects` under
    `root_dir/checkpoints` (after moving old checkpoints aside with
    `restart`) and restores the newest readable checkpoint, refusing one
    saved with another number of environments (`num_envs`, the first
    dimension of the episode statistics). With `root_dir=None` nothing is
    saved or restored.

    Args:
      root_dir: the run's directory, or None.
      max_to_keep: how many checkpoints to keep.
      iteration: the iteration counter, which numbers the checkpoints.
      num_envs: the run's number of environments.
      restart: move old checkpoints aside instead of resuming.
      **objects: the trackables to save (keyword = name in the checkpoint).
    """

    def __init__(
        self,
        root_dir: Optional[str],
        *,
        max_to_keep: int,
        iteration: tf.Variable,
        num_envs: int,
        restart: bool = False,
        **objects: Any,
    ):
        self._iteration = iteration
        self._settings = {EPISODE_STATISTICS_KEY: ("num_envs", num_envs)}
        self.manager = None
        self.restored = None
        if root_dir is None:
            return
        if restart:
            move_aside(os.fspath(root_dir))
        self.manager = make_checkpoint_manager(
            os.fspath(root_dir),
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
        return restore_latest(self.manager, settings=self._settings)

    def save(self) -> Optional[str]:
        """Saves a checkpoint numbered by the iteration; its path or None."""
        if self.manager is None:
            return None
        return self.manager.save(checkpoint_number=self._iteration)

    @property
    def latest(self) -> Optional[str]:
        return None if self.manager is None else self.manager.latest_checkpoint

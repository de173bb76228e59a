"""Restoring a checkpoint, or saying why it cannot be restored.

`restore_checkpoint` restores one checkpoint into a `tf.train.Checkpoint`,
refusing one whose files are missing or truncated
(`UnreadableCheckpointError`) and one saved with other settings or another
model (`CheckpointMismatchError`, the setting named); a saved agent
(`OnPolicyAgent.load`) is read with it. `restore_latest` restores the
newest readable checkpoint of a manager by number: newer ones that cannot
be read are moved to `unreadable-<n>`, where no later save (saves reuse
iteration numbers) replaces them, with a warning naming them, and it
refuses when none can be read (docs/design.md, "Errors").
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Optional

import tensorflow as tf

from keras_gae.agents.checkpoint_files import STATE_FILE
from keras_gae.agents.checkpoint_files import CheckpointError
from keras_gae.agents.checkpoint_files import CheckpointMismatchError
from keras_gae.agents.checkpoint_files import UnreadableCheckpointError
from keras_gae.agents.checkpoint_files import checkpoint_paths
from keras_gae.agents.checkpoint_files import one_line
from keras_gae.agents.checkpoint_files import set_aside

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
        received = f"error={one_line(error)[:500]!r}"
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
            f"missing, truncated or corrupt. Received: {one_line(error)}"
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
            failures.append((path, f"{path}: {one_line(error.__cause__)}"))
            continue
        if failures:
            kept = set_aside([failure[0] for failure in failures])
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

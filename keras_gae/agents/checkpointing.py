"""Checkpoints of the collect-and-fit loop.

The loop's state (the model's weights, the optimizer's state, the counters
and the episode statistics) is saved with a `tf.train.CheckpointManager`
under `root_dir/checkpoints`, numbered by iteration. A checkpoint that
cannot be read is never silently skipped (docs/design.md, "Errors"):
`restore_latest` falls back to the newest readable one with a warning that
names the unreadable ones, and refuses when none can be read.
"""

from __future__ import annotations

import os
import warnings
from typing import Any
from typing import Optional

import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"

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


def restore_latest(manager: tf.train.CheckpointManager) -> Optional[str]:
    """Restores the newest readable checkpoint of `manager`.

    Every object of the manager's checkpoint must be matched by the saved
    one. Unreadable checkpoints are passed over, newest first, with a
    warning naming them.

    Returns:
      The path restored, or None when `manager` has no checkpoint.

    Raises:
      ValueError: there are checkpoints but none can be restored.
    """
    paths = list(manager.checkpoints)
    latest = manager.latest_checkpoint
    if latest is not None and latest not in paths:
        paths.append(latest)
    failures = []
    for path in reversed(paths):
        try:
            status = manager.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except _UNREADABLE as error:
            failures.append(f"{path}: {type(error).__name__}: {error}")
            continue
        if failures:
            warnings.warn(
                f"Restored {path} instead of newer checkpoints that could "
                "not be read (they stay on disk until the manager deletes "
                "them or a new save reuses their number): "
                + "; ".join(failures),
                RuntimeWarning,
                stacklevel=2,
            )
        return path
    if failures:
        raise ValueError(
            "None of the checkpoints under "
            f"{manager.directory} can be restored; refusing to start over "
            "from scratch on top of them. Move them away to start a new "
            "run. Received: " + "; ".join(failures)
        )
    return None

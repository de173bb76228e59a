"""Checkpoints: the collect-and-fit loop's, a binary's and a saved agent's.

A run's state (the model's weights, the optimizer's state, the counters
and the episode statistics) is saved with a `tf.train.CheckpointManager`
under `root_dir/checkpoints`, numbered by iteration. `LoopCheckpoints`
does it for `OnPolicyTrainer` and for the example binaries
(`examples/train_lm_ppo.py`), so every run resumes the same way. A
checkpoint that cannot be read is never silently skipped or replaced
(docs/design.md, "Errors"):

This module holds `LoopCheckpoints` and the manager it makes, and is
where the other checkpoint functions are imported from; they are defined
by concept in `checkpoint_files` (the directory, the checkpoints on disk),
`checkpoint_restore` (restoring with clear errors) and `saved_directory`
(atomic saves):

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

import os
from typing import Any
from typing import Optional

import tensorflow as tf

from keras_gae.agents.checkpoint_files import CHECKPOINT_DIR
from keras_gae.agents.checkpoint_files import CHECKPOINT_NAME
from keras_gae.agents.checkpoint_files import STATE_FILE
from keras_gae.agents.checkpoint_files import CheckpointError
from keras_gae.agents.checkpoint_files import CheckpointMismatchError
from keras_gae.agents.checkpoint_files import UnreadableCheckpointError
from keras_gae.agents.checkpoint_files import checkpoint_paths
from keras_gae.agents.checkpoint_files import move_aside
from keras_gae.agents.checkpoint_files import prepare
from keras_gae.agents.checkpoint_restore import EPISODE_STATISTICS_KEY
from keras_gae.agents.checkpoint_restore import RESUME_REMEDY
from keras_gae.agents.checkpoint_restore import restore_checkpoint
from keras_gae.agents.checkpoint_restore import restore_latest
from keras_gae.agents.saved_directory import replaced_saves
from keras_gae.agents.saved_directory import save_directory

__all__ = [
    "CHECKPOINT_DIR",
    "EPISODE_STATISTICS_KEY",
    "RESUME_REMEDY",
    "STATE_FILE",
    "CheckpointError",
    "CheckpointMismatchError",
    "LoopCheckpoints",
    "UnreadableCheckpointError",
    "checkpoint_paths",
    "make_checkpoint_manager",
    "move_aside",
    "prepare",
    "replaced_saves",
    "restore_checkpoint",
    "restore_latest",
    "save_directory",
]


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
        checkpoint_name=CHECKPOINT_NAME,
        step_counter=step_counter,
    )


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
        # What every checkpoint of the run holds, by name: the layout of
        # the manager's checkpoints and of `checkpoint()`.
        self._objects = dict(iteration=iteration, **objects)
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
            **self._objects,
        )
        self.restored = self.restore()

    def checkpoint(self) -> tf.train.Checkpoint:
        """A new `tf.train.Checkpoint` of the objects the run saves.

        The layout of the manager's checkpoints, with or without
        `root_dir`: what a saved agent writes and reads
        (`OnPolicyAgent.save`, `load`).
        """
        return tf.train.Checkpoint(**self._objects)

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

"""Saving a directory atomically: a saved agent's directory.

`save_directory` writes a directory beside its place and renames it into
place: an interrupted save leaves the previous one intact, and concurrent
saves to one path leave the last one whole. `replaced_saves` finds the
earlier saves an interrupted save left renamed.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from typing import Callable

from keras_gae.agents.checkpoint_files import one_line


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
            f"in {parent}, which cannot be written ({one_line(error)}). "
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

"""Runs code as a user would type it: a fresh Python process.

Tests of what a newcomer sees (the first error, a warning, a log line) run
the user's code in a new interpreter, so nothing this test process imported
or configured hides or causes it. `TF_USE_LEGACY_KERAS` is removed (a user
has not set it) and the repository root is on `PYTHONPATH`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping
from typing import Optional
from typing import Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(
    code: Optional[str] = None,
    *,
    args: Sequence[str] = (),
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Runs `python -c code` (or `python *args`) in a fresh process.

    Args:
      code: Python source to run with `-c`; None runs `args` alone.
      args: further command-line arguments (a script and its flags).
      cwd: working directory; default the repository root.
      env: variables added to (or replacing) this process's environment.
      timeout: seconds before the process is killed.

    Returns:
      The `subprocess.CompletedProcess`, with text `stdout` and `stderr`.
    """
    environment = dict(os.environ)
    environment.pop("TF_USE_LEGACY_KERAS", None)
    environment["PYTHONPATH"] = REPO_ROOT
    environment.update(env or {})
    command = [sys.executable]
    if code is not None:
        command += ["-c", code]
    command += list(args)
    return subprocess.run(
        command,
        cwd=cwd or REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )

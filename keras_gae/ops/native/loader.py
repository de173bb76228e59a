"""Builds the native GAE op on first use and loads it into TensorFlow.

`gae_op.cc` is compiled with the system C++ compiler (`$CXX`, else `g++`)
against the installed TensorFlow's headers and framework library
(`tf.sysconfig.get_compile_flags()` / `get_link_flags()`), into a cache
directory keyed by the TensorFlow version and a hash of the source and the
build command:

    $KERAS_GAE_CACHE/<tf version>-<hash>/gae_op.so
    (default $XDG_CACHE_HOME/keras_gae, else ~/.cache/keras_gae)

The library is written to a temporary file and renamed into place, and a
lock file next to it lets one process build while others (pytest-xdist
workers) wait, so none ever loads a partial file. Any failure (no compiler,
a compile error, a library that does not load) logs one warning and leaves
the op unavailable. Nothing here runs at `import keras_gae`, nor for GAE's
default `implementation="auto"`: only `implementation="native"` builds it.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time
from types import ModuleType
from typing import Optional

import tensorflow as tf
from absl import logging

try:
    import fcntl
except ImportError:  # Not POSIX: concurrent builds still rename atomically.
    fcntl = None

_SOURCE = pathlib.Path(__file__).with_name("gae_op.cc")
_LIBRARY_NAME = "gae_op.so"
_OP_NAME = "KerasGaeGeneralizedAdvantageEstimation"
# -fno-trapping-math lets the compiler turn the flag selects of the inner loop
# into vector blends (the op raises no floating-point exceptions anyway); -w
# keeps TensorFlow's header warnings from burying a compile error in the log.
_OPTIMIZATION_FLAGS = (
    "-shared",
    "-fPIC",
    "-O3",
    "-fno-trapping-math",
    "-std=c++17",
    "-w",
)

# A build takes 10-30 s on two cores; a hung compiler must not hang training.
_BUILD_TIMEOUT_S = 600

_lock = threading.Lock()
_state: dict = {}


def cache_root() -> pathlib.Path:
    """Where built libraries go: $KERAS_GAE_CACHE or the user cache."""
    configured = os.environ.get("KERAS_GAE_CACHE")
    if configured:
        return pathlib.Path(configured).expanduser()
    user_cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return pathlib.Path(user_cache).expanduser() / "keras_gae"


def _build_command(compiler: str, output: str) -> list:
    return [
        compiler,
        *_OPTIMIZATION_FLAGS,
        str(_SOURCE),
        "-o",
        output,
        *tf.sysconfig.get_compile_flags(),
        *tf.sysconfig.get_link_flags(),
    ]


def default_compiler() -> str:
    """The C++ compiler to build with: $CXX, else g++."""
    return os.environ.get("CXX") or "g++"


def library_path(
    cache_dir: Optional[pathlib.Path] = None, compiler: Optional[str] = None
) -> pathlib.Path:
    """The cached library's path for this TensorFlow, source and compiler."""
    compiler = compiler or default_compiler()
    digest = hashlib.sha256(_SOURCE.read_bytes())
    digest.update("\0".join(_build_command(compiler, "")).encode())
    key = f"{tf.__version__}-{digest.hexdigest()[:16]}"
    return (cache_dir or cache_root()) / key / _LIBRARY_NAME


def build(target: pathlib.Path, compiler: str) -> float:
    """Compiles `gae_op.cc` into `target` atomically; returns the seconds.

    Raises:
      OSError: `compiler` is not found or the output cannot be written.
      RuntimeError: the compiler failed; the message holds its output.
    """
    executable = shutil.which(compiler)
    if executable is None:
        raise OSError(f"C++ compiler {compiler!r} not found on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.stem}-", suffix=".so", dir=target.parent
    )
    os.close(handle)
    start = time.perf_counter()
    try:
        result = subprocess.run(
            _build_command(executable, temporary),
            capture_output=True,
            text=True,
            check=False,
            timeout=_BUILD_TIMEOUT_S,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{compiler} exited with status {result.returncode}:\n"
                f"{result.stderr[-4000:]}"
            )
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return time.perf_counter() - start


def load_library(
    cache_dir: Optional[pathlib.Path] = None,
    compiler: Optional[str] = None,
) -> Optional[ModuleType]:
    """Loads the op library, building it first if it is not cached.

    Returns the module `tf.load_op_library` gives, or None after logging a
    warning when the compiler is missing, the build fails or the library
    does not load. Callers normally use `get_library()`, which does this once
    per process.
    """
    compiler = compiler or default_compiler()
    try:
        target = library_path(cache_dir, compiler)
        if not target.exists():
            _build_once(target, compiler)
        return tf.load_op_library(str(target))
    except Exception as error:  # Any failure: the op is unavailable.
        logging.warning(
            "keras_gae's native GAE op is unavailable (%s: %s); "
            "implementation='native' cannot run here, the default 'auto' "
            "needs no compiler.",
            type(error).__name__,
            error,
        )
        return None


def _build_once(target: pathlib.Path, compiler: str) -> None:
    """Builds `target` unless another process does: waits for its lock."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        if fcntl is not None:
            # Released by the OS if the holder dies, so no stale locks.
            fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return
        seconds = build(target, compiler)
    logging.info(
        "Built keras_gae's native GAE op in %.1f s: %s", seconds, target
    )


def get_library() -> Optional[ModuleType]:
    """The loaded op library (built on the first call), or None."""
    with _lock:
        if "library" not in _state:
            _state["library"] = load_library()
            if _state["library"] is not None:
                # Both outputs are regression targets: no gradient flows.
                tf.no_gradient(_OP_NAME)
        return _state["library"]


def available() -> bool:
    """Whether the native op can run here (builds it on the first call)."""
    return get_library() is not None

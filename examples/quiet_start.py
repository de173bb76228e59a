"""Quiet start for the example binaries: no C++ start-up log lines.

Imported first by each binary (before TensorFlow): it sets TensorFlow's C++
logging to errors-off (TF_CPP_MIN_LOG_LEVEL=3), and
`native_start_up_logs_filtered()` drops the few start-up lines TensorFlow's
libraries print regardless (oneDNN, CUDA stubs) from standard error while
TensorFlow loads; any other text written meanwhile is passed on. It imports
nothing of keras_gae, so `evaluate_policy.py` can use it too.
"""

import contextlib
import os
import re
import sys
import tempfile

# TensorFlow's C++ logging: errors and below off, set before TensorFlow
# loads (it reads the variable once).
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

# A C++ log line ("I0000 00:00:1796023381.285184   13750 port.cc:153] ..."),
# absl's note before its first one, and the continuation of TensorFlow's
# CPU-feature line.
NATIVE_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions:)"
)


@contextlib.contextmanager
def native_start_up_logs_filtered():
    """Drops C++ log lines written to standard error (fd 2) meanwhile.

    TensorFlow's libraries log a few lines when they load whatever
    TF_CPP_MIN_LOG_LEVEL says (oneDNN, CUDA stubs). Standard error is a
    temporary file while the block runs; its lines that are not C++ log
    lines (`NATIVE_LOG_LINE`) are written to the real one afterwards.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            for line in text.splitlines(keepends=True):
                if not NATIVE_LOG_LINE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()

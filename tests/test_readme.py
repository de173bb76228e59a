"""Every ```python block of README.md runs as written, in a fresh process."""

import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from absl.testing import parameterized

_ROOT = os.path.dirname(os.path.dirname(__file__))


def _python_blocks() -> list:
    with open(os.path.join(_ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


_BLOCKS = _python_blocks()


@pytest.mark.slow
class ReadmeTest(tf.test.TestCase, parameterized.TestCase):
    def test_readme_has_python_blocks(self):
        self.assertGreaterEqual(len(_BLOCKS), 4)

    @parameterized.parameters(*range(len(_BLOCKS)))
    def test_block_runs_as_written(self, index):
        env = dict(os.environ)
        env.pop("TF_USE_LEGACY_KERAS", None)
        env["PYTHONPATH"] = _ROOT
        result = subprocess.run(
            [sys.executable, "-c", _BLOCKS[index]],
            cwd=self.get_temp_dir(),
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        self.assertEqual(
            result.returncode,
            0,
            f"README block {index}:\n{_BLOCKS[index]}\n{result.stderr[-4000:]}",
        )

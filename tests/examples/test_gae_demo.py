"""The GAE demonstration binary: its function, and the script as typed
(`--help`, bad flags, a clean run ending with its summary line)."""

import os

import numpy as np
import tensorflow as tf

from examples import gae_demo
from examples import quiet_start
from tests import fresh_process


class GAEDemoTest(tf.test.TestCase):
    def test_boundaries_in_demo_table(self):
        result = gae_demo.gae_demo(num_steps=6, gamma=0.9, lambda_=0.8)
        # Terminated at t=3: the return is the reward alone.
        self.assertAllClose(result["returns"][0, 3], 1.0)
        # Truncated at t=3: reward plus gamma times the final obs' value.
        self.assertAllClose(result["returns"][1, 3], 1.0 + 0.9 * 5.0)
        # After the boundary both environments see the same new episode.
        np.testing.assert_allclose(
            result["advantage"][0, 4:], result["advantage"][1, 4:]
        )


SCRIPT = os.path.join("examples", "gae_demo.py")


def run_script(*args):
    """`python -X importtime examples/gae_demo.py *args`, fresh, as typed
    in the repository root (no PYTHONPATH): `(result, stderr lines other
    than the import times, modules imported)`."""
    result = fresh_process.run_python(
        args=["-X", "importtime", SCRIPT, *args],
        env={"PYTHONPATH": ""},
        timeout=300,
    )
    lines, imported = [], set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            lines.append(line)
    return result, lines, imported


class GAEDemoCommandLineTest(tf.test.TestCase):
    def test_help_exits_0_without_tensorflow(self):
        result, errors, imported = run_script("--help")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("--num_steps", result.stdout + "\n".join(errors))
        self.assertNotIn("tensorflow", imported)
        self.assertNotIn("keras_gae", imported)

    def test_bad_flags_are_one_error_line_with_status_2(self):
        for args, message in (
            (["--bogus"], "Unknown command line flag 'bogus'"),
            (["--num_steps=1"], "--num_steps=1"),
            (["--gamma=1.5"], "--gamma=1.5"),
            (["--lambda_=nan"], "--lambda_=nan: must be a finite number"),
            (["extra"], "unexpected arguments ['extra']"),
        ):
            result, errors, imported = run_script(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertLen(errors, 1, msg=result.stderr[-2000:])
            self.assertStartsWith(errors[0], "gae_demo.py: error: ")
            self.assertIn(message, errors[0])
            self.assertEqual(result.stdout, "")
            self.assertNotIn("tensorflow", imported, msg=args)

    def test_run_prints_no_log_line_nor_warning_and_ends_with_a_summary(self):
        result = fresh_process.run_python(
            args=[SCRIPT, "--num_steps=4", "--gamma=0.5"],
            env={"PYTHONPATH": ""},
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        output = result.stdout + result.stderr
        for line in output.splitlines():
            self.assertIsNone(quiet_start.NATIVE_LOG_LINE.match(line), line)
        self.assertNotIn("warning", output.lower())
        self.assertEqual(result.stderr, "")
        # Terminated after step 2: the return is the reward alone;
        # truncated: reward + gamma * V(final observation) = 1 + 0.5 * 5.
        self.assertEqual(
            result.stdout.splitlines()[-1],
            "After step 2: the terminated episode's return is its reward "
            "(1.0000), the truncated one's adds gamma * V(final observation)"
            " = 0.5 * 5.0 (3.5000); neither trace crosses the end.",
        )

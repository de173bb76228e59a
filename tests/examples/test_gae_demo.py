"""The GAE demonstration binary: its function, and the script as typed
(`--help`, bad flags, a clean run ending with its summary line)."""

import numpy as np
import tensorflow as tf

from examples import gae_demo
from tests.examples import binary_checks


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


SCRIPT = "gae_demo.py"


class GAEDemoCommandLineTest(binary_checks.CommandLineTests, tf.test.TestCase):
    SCRIPT = SCRIPT
    HELP_FLAG = "--num_steps"
    NOT_IMPORTED_BY_HELP = ("tensorflow", "keras_gae")
    BAD_FLAGS = (
        (["--num_steps=1"], "--num_steps=1"),
        (["--gamma=1.5"], "--gamma=1.5"),
        (["--lambda_=nan"], "--lambda_=nan: must be a finite number"),
        (["extra"], "unexpected arguments ['extra']"),
    )

    def test_run_prints_no_log_line_nor_warning_and_ends_with_a_summary(self):
        result, _, _ = binary_checks.run_script(
            SCRIPT, "--num_steps=4", "--gamma=0.5", importtime=False
        )
        binary_checks.assert_quiet_run(self, result)
        # Terminated after step 2: the return is the reward alone;
        # truncated: reward + gamma * V(final observation) = 1 + 0.5 * 5.
        self.assertEqual(
            result.stdout.splitlines()[-1],
            "After step 2: the terminated episode's return is its reward "
            "(1.0000), the truncated one's adds gamma * V(final observation)"
            " = 0.5 * 5.0 (3.5000); neither trace crosses the end.",
        )

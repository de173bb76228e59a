"""Test-wide set-up: two logical CPUs and quiet logs.

Runs before any test module imports TensorFlow, so the environment variables
and the logical device split take effect in every pytest(-xdist) worker.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices let MirroredStrategy tests run on one CPU.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

import keras_gae  # noqa: E402, F401
import keras_gae.agents  # noqa: E402, F401  (tf-agents, as tests import it)


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase defines a deprecated `test_session` context manager
    # that pytest collects as a test and reports as skipped; it is not one.
    items[:] = [item for item in items if item.name != "test_session"]

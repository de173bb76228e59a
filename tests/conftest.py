"""Test-wide set-up: two logical CPUs and quiet logs.

Runs before any test module imports TensorFlow, so the environment variables
and the logical device split take effect in every pytest(-xdist) worker.
"""

# Sets TF_CPP_MIN_LOG_LEVEL=3 before TensorFlow loads; the start-up lines
# TensorFlow's libraries print regardless are filtered out below, so none
# reaches the end of the test summary.
import os

from examples import quiet_start

# Ray tests run on loopback (docs/scaling.md); this keeps macOS and Windows
# from refusing a local multi-node cluster.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

with quiet_start.native_start_up_logs_filtered():
    import tensorflow as tf

    # Two logical CPU devices let MirroredStrategy tests run on one CPU.
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )

    import keras_gae  # noqa: F401
    import keras_gae.agents  # noqa: F401  (tf-agents, as tests import it)


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase defines a deprecated `test_session` context manager
    # that pytest collects as a test and reports as skipped; it is not one.
    items[:] = [item for item in items if item.name != "test_session"]

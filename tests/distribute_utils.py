"""A MirroredStrategy over the two logical CPUs that tests/conftest.py makes.

Every test builds its strategy here: with the default collective all-reduce,
several MirroredStrategy instances in one process (one pytest-xdist worker
runs many test files) can reuse collective instance keys and abort with
"Shape mismatch in the collective instance". Reducing through one device
uses no collective ops, and the numbers are the same.
"""

import tensorflow as tf


def two_cpu_strategy() -> tf.distribute.MirroredStrategy:
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, devices
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )

"""keras_gae.distributed.ray_runtime: ray imported late, clusters' lifetimes."""

import os
import sys

import pytest
import tensorflow as tf

from keras_gae.distributed import ray_runtime
from tests import fresh_process
from tests.distributed import shared_cluster

# Every test that starts Ray shares one pytest-xdist worker (make test runs
# `--dist loadgroup`), so one machine never runs two clusters at once.
pytestmark = pytest.mark.xdist_group("ray")

# What a user's fresh process sees, in one process (each imports
# TensorFlow: seconds): whether importing keras_gae imported ray, then the
# error import_ray gives where ray cannot be imported.
_FRESH_PROCESS = """
import sys
import keras_gae, keras_gae.agents, keras_gae.distributed
print('ray imported:', 'ray' in sys.modules)
sys.modules['ray'] = None
from keras_gae.distributed import ray_runtime
try:
    ray_runtime.import_ray()
except ImportError as error:
    print('import_ray:', error)
"""


class ImportTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fresh = fresh_process.run_python(_FRESH_PROCESS)

    def test_keras_gae_and_its_agents_do_not_import_ray(self):
        self.assertEqual(self.fresh.returncode, 0, self.fresh.stderr[-2000:])
        self.assertIn("ray imported: False", self.fresh.stdout.splitlines())

    def test_a_missing_ray_is_an_error_naming_the_extra(self):
        self.assertEqual(self.fresh.returncode, 0, self.fresh.stderr[-2000:])
        (line,) = [
            line
            for line in self.fresh.stdout.splitlines()
            if line.startswith("import_ray:")
        ]
        self.assertIn("pip install 'keras_gae[ray]'", line)


class RayClusterTest(tf.test.TestCase):
    def test_bad_arguments_are_named(self):
        with self.assertRaisesRegex(TypeError, "Received: address=6379"):
            with ray_runtime.ray_cluster(6379):
                pass
        with self.assertRaisesRegex(ValueError, "num_cpus"):
            with ray_runtime.ray_cluster(num_cpus=0):
                pass

    # Without the package's shared cluster (conftest.py runs this after
    # the tests that use it).
    @pytest.mark.usefixtures("ray_stopped")
    def test_a_local_cluster_lives_for_the_block(self):
        ray = ray_runtime.import_ray()
        self.assertFalse(ray.is_initialized())
        with ray_runtime.ray_cluster(num_cpus=1) as started:
            self.assertTrue(started.is_initialized())
            # A lambda travels by value: the worker imports os, not this
            # module (and TensorFlow with it).
            worker_pid = started.get(
                started.remote(lambda: os.getpid()).remote()
            )
            self.assertNotEqual(worker_pid, os.getpid())
        self.assertFalse(ray.is_initialized())

    def test_a_cluster_the_program_started_stays(self):
        # The package's cluster, started by ray.init as a user would.
        ray = shared_cluster.start()
        gcs_address = ray.get_runtime_context().gcs_address
        with ray_runtime.ray_cluster() as joined:
            self.assertIs(joined, ray)
            self.assertEqual(
                joined.get_runtime_context().gcs_address, gcs_address
            )
        self.assertTrue(ray.is_initialized())
        self.assertEqual(ray.get_runtime_context().gcs_address, gcs_address)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

"""keras_gae.distributed.ray_runtime: ray imported late, clusters' lifetimes."""

import os
import sys

import pytest
import tensorflow as tf

from keras_gae.distributed import ray_runtime
from tests import fresh_process

# Every test that starts Ray shares one pytest-xdist worker (make test runs
# `--dist loadgroup`), so one machine never runs two clusters at once.
pytestmark = pytest.mark.xdist_group("ray")


def _pid():
    return os.getpid()


class RayRuntimeTest(tf.test.TestCase):
    def test_keras_gae_and_its_agents_do_not_import_ray(self):
        result = fresh_process.run_python(
            "import sys, keras_gae, keras_gae.agents, keras_gae.distributed\n"
            "print('ray' in sys.modules)\n"
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stdout.strip().splitlines()[-1], "False")

    def test_a_missing_ray_is_an_error_naming_the_extra(self):
        result = fresh_process.run_python(
            "import sys\n"
            "sys.modules['ray'] = None\n"
            "from keras_gae.distributed import ray_runtime\n"
            "try:\n"
            "    ray_runtime.import_ray()\n"
            "except ImportError as error:\n"
            "    print(error)\n"
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("pip install 'keras_gae[ray]'", result.stdout)

    def test_bad_arguments_are_named(self):
        with self.assertRaisesRegex(TypeError, "Received: address=6379"):
            with ray_runtime.ray_cluster(6379):
                pass
        with self.assertRaisesRegex(ValueError, "num_cpus"):
            with ray_runtime.ray_cluster(num_cpus=0):
                pass

    def test_a_local_cluster_lives_for_the_block_and_a_users_stays(self):
        ray = ray_runtime.import_ray()
        self.assertFalse(ray.is_initialized())
        with ray_runtime.ray_cluster(num_cpus=1) as started:
            self.assertTrue(started.is_initialized())
            worker_pid = started.get(started.remote(_pid).remote())
            self.assertNotEqual(worker_pid, os.getpid())
        self.assertFalse(ray.is_initialized())
        ray.init(
            address="local",
            num_cpus=1,
            include_dashboard=False,
            configure_logging=False,
        )
        try:
            with ray_runtime.ray_cluster() as joined:
                self.assertTrue(joined.is_initialized())
            self.assertTrue(ray.is_initialized())
        finally:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

"""Rollout-worker arguments refused with errors naming them, before Ray."""

import sys

import gymnasium
import pytest
import tensorflow as tf

from keras_gae import agents
from keras_gae.distributed import RolloutWorkers
from keras_gae.distributed import ray_runtime
from tests.distributed import worker_fixtures

# With the other Ray tests, after them and without their cluster: these
# assert Ray is not running (tests/distributed/conftest.py).
pytestmark = [
    pytest.mark.xdist_group("ray"),
    pytest.mark.usefixtures("ray_stopped"),
]


def _workers(**overrides):
    arguments = dict(
        model_fn=worker_fixtures.small_ppo,
        num_workers=2,
        num_envs=2,
        rollout_length=8,
    )
    arguments.update(overrides)
    return RolloutWorkers("CartPole-v1", **arguments)


class WorkerArgumentsTest(tf.test.TestCase):
    def test_bad_arguments_are_named(self):
        with self.assertRaisesRegex(ValueError, "Received: num_workers=0"):
            _workers(num_workers=0)
        with self.assertRaisesRegex(TypeError, "Received: model_fn=3"):
            _workers(model_fn=3)
        with self.assertRaisesRegex(ValueError, "Received: worker_timeout_s=0"):
            _workers(worker_timeout_s=0.0)

    def test_workers_need_a_running_ray(self):
        self.assertFalse(ray_runtime.import_ray().is_initialized())
        with self.assertRaisesRegex(
            RuntimeError, "inside `with keras_gae.distributed.ray_cluster"
        ):
            _workers()

    def test_an_agent_refuses_what_workers_cannot_make(self):
        vector_env = gymnasium.make_vec("CartPole-v1", num_envs=4)
        with self.assertRaisesRegex(
            ValueError, "Rollout workers make their own environments"
        ):
            agents.PPO(vector_env, num_workers=2, verbose=0)
        with self.assertRaisesRegex(ValueError, "pass num_workers too"):
            agents.PPO("CartPole-v1", ray_address="HEAD:6379", verbose=0)
        with self.assertRaisesRegex(ValueError, "Received: num_workers=0"):
            agents.PPO("CartPole-v1", num_workers=0, verbose=0)
        # None of it started Ray.
        self.assertFalse(ray_runtime.import_ray().is_initialized())


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

"""CartPole-v1 reaches a mean return of 475 with two Ray rollout workers.

The preset's global batch (32 environments x 64 steps) as 2 workers x 16
environments, on the package's shared cluster; it runs after the modules
whose workers hold the cluster's CPUs have closed them.
"""

import pytest
import tensorflow as tf

from keras_gae import agents
from tests.distributed import shared_cluster

pytestmark = pytest.mark.xdist_group("ray")


class WorkerLearningTest(tf.test.TestCase):
    def test_cartpole_reaches_475_with_two_workers(self):
        shared_cluster.start()
        with agents.PPO(
            "CartPole-v1", num_workers=2, num_envs=16, seed=0, verbose=0
        ) as agent:
            history = agent.learn(total_env_steps=100_000, target_return=475)
        returns = history.history["episode_return_mean"]
        self.assertGreaterEqual(returns[-1], 475.0)
        # A random policy's mean return is about 22: it learned.
        self.assertLess(returns[0], 100.0)
        self.assertLess(agent.env_steps, 100_000)

"""Rollout workers on Ray: remote rounds equal in-process collection."""

import contextlib
import os
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from keras_gae import agents
from keras_gae.agents.collection import RolloutCollector
from keras_gae.distributed import RolloutWorkers
from keras_gae.distributed import ray_cluster
from keras_gae.distributed.rollout_worker import build_policy_model
from keras_gae.distributed.rollout_worker import policy_variables
from tests.distributed import worker_fixtures

# One local cluster for the module, on the xdist worker all Ray tests share.
pytestmark = pytest.mark.xdist_group("ray")

_cluster = contextlib.ExitStack()
SEED = 7
NUM_WORKERS = 2
NUM_ENVS = 2
T = 16


def setUpModule():
    _cluster.enter_context(ray_cluster(num_cpus=2))


def tearDownModule():
    _cluster.close()


def _learner_weights(env, seed):
    """A learner's weights: a model initialized unlike any worker's."""
    tf.keras.utils.set_random_seed(seed)
    model = build_policy_model(worker_fixtures.small_ppo, env)
    return [v.numpy() for v in policy_variables(model)]


class RolloutWorkersTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hang_file = os.path.join(tempfile.mkdtemp(), "hang")
        cls.env_kwargs = {"hang_file": cls.hang_file}
        cls.workers = RolloutWorkers(
            worker_fixtures.cartpole,
            model_fn=worker_fixtures.small_ppo,
            num_workers=NUM_WORKERS,
            num_envs=NUM_ENVS,
            rollout_length=T,
            seed=SEED,
            env_kwargs=cls.env_kwargs,
        )

    @classmethod
    def tearDownClass(cls):
        cls.workers.close()
        super().tearDownClass()

    def test_remote_rounds_equal_in_process_collectors(self):
        # Worker i with seed s_i = SEED + i * NUM_ENVS against an in-process
        # collector made as a single process makes its own: environments
        # seeded s_i + j, sampling under the global seed s_i.
        self.assertEqual(self.workers.generations, [0] * NUM_WORKERS)
        # Made first: the collectors trace their sampling under the
        # global seed set just before they are made.
        learner_env = agents.make_tf_environment("CartPole-v1", num_envs=1)
        rounds = [_learner_weights(learner_env, 100 + v) for v in range(2)]
        references = []
        for i in range(NUM_WORKERS):
            seed_i = SEED + i * NUM_ENVS
            tf.random.set_seed(seed_i)
            env = agents.make_tf_environment(
                worker_fixtures.cartpole,
                num_envs=NUM_ENVS,
                seed=seed_i,
                env_kwargs=self.env_kwargs,
            )
            model = build_policy_model(worker_fixtures.small_ppo, env)
            collector = RolloutCollector(
                model,
                env,
                rollout_length=T,
                return_window=20,
                update_statistics=False,
            )
            # Traced now, under seed_i.
            collector.run_driver.get_concrete_function()
            references.append((model, collector))
        for version, weights in enumerate(rounds):
            results = self.workers.collect(weights, version=version)
            for i, (model, collector) in enumerate(references):
                for variable, value in zip(policy_variables(model), weights):
                    variable.assign(value)
                expected = tf.nest.map_structure(
                    lambda x: x.numpy(), collector.collect()
                )
                self.assertEqual(results[i]["version"], version)
                self.assertEqual(results[i]["worker_index"], i)
                got = results[i]["batch"]
                self.assertEqual(sorted(got), sorted(expected))
                for key in expected:
                    np.testing.assert_array_equal(
                        got[key], expected[key], err_msg=key
                    )
                self.assertEqual(
                    results[i]["env_steps"], int(np.sum(expected["mask"]))
                )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

"""keras_gae.distributed.GenerationWorkers: workers equal one process."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_gae import lm
from keras_gae.distributed import generation_workers
from tests.distributed import shared_cluster
from tests.lm import keras_hub_models as khm

# The package's one Ray cluster, on the pytest-xdist worker of the group.
pytestmark = pytest.mark.xdist_group("ray")

PAD = 0
EOS = 9
# Left-padded prompts of different lengths; 3 prompts over 2 workers.
PROMPTS = np.array([[0, 0, 5, 7], [3, 4, 9, 1], [0, 6, 11, 8]], np.int32)


def build_policy(seed=0):
    """The picklable builder: a tiny GPT-2 policy from its config."""
    return lm.CausalLMPolicy(khm.gpt2(seed=seed), value_head="shared")


SETTINGS = dict(
    max_new_tokens=6, top_k=1, eos_id=EOS, pad_id=PAD, num_samples=2
)


class GenerationWorkersTest(tf.test.TestCase):
    # One pair of workers serves the tests (each process imports
    # TensorFlow and keras-hub: seconds).
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        shared_cluster.start()
        cls.workers = generation_workers.GenerationWorkers(
            build_policy, num_workers=2
        )
        # Before any test sends weights: the round the workers decode
        # with the policy their builder made.
        cls.first_round = cls.workers.generate(PROMPTS, **SETTINGS)

    @classmethod
    def tearDownClass(cls):
        cls.workers.shutdown()
        super().tearDownClass()

    def assert_same_outputs(self, got, want):
        for name in ("tokens", "mask", "done", "prompt_length"):
            self.assertAllEqual(getattr(got, name), getattr(want, name))
        # Float rounding only: a worker's smaller batch may sum the
        # matmuls in another order.
        for name in ("log_probs", "values"):
            self.assertAllClose(
                getattr(got, name), getattr(want, name), atol=1e-5, rtol=0
            )

    def test_greedy_worker_generation_equals_one_process(self):
        # The builder's policy, as the workers made theirs.
        reference = build_policy(seed=0)
        trained = build_policy(seed=1)
        # Round 1 kept the workers' own weights; round 2 sends others.
        first = self.first_round
        second = self.workers.generate(
            PROMPTS, weights=trained.get_weights(), **SETTINGS
        )
        with self.assertRaisesRegex(ValueError, "top_k"):
            self.workers.generate(PROMPTS, max_new_tokens=2, top_k=99)
        # One in-process policy decodes both rounds' references: one
        # compile.
        want = lm.generate(reference, PROMPTS, **SETTINGS)
        self.assert_same_outputs(first, want)
        reference.set_weights(trained.get_weights())
        want = lm.generate(reference, PROMPTS, **SETTINGS)
        self.assert_same_outputs(second, want)
        self.assertEqual(second.tokens.shape, (6, 4 + 6))
        # Rows that stopped early and rows cut at the limit, on both workers.
        self.assertAllEqual(second.done, [True, True, False, False, True, True])
        self.assertNotAllClose(first.log_probs, second.log_probs)

    def test_collect_through_workers_equals_colocated_collect(self):
        model = lm.CausalLMPPOModel(
            build_policy(seed=1),
            vocab_size=khm.VOCAB,
            eos_id=EOS,
            pad_id=PAD,
            advantage_estimator="grpo",
            value_coef=0.0,
        )

        def score(tokens, mask):
            return np.mean(np.where(mask, tokens % 2, 0), axis=1)

        settings = dict(max_new_tokens=6, top_k=1, num_samples=2)
        # The workers hold other weights (their builder's, or the other
        # test's, seed 1 in a fresh model): collect sends the network's.
        remote = model.collect(
            PROMPTS, score, generation_workers=self.workers, **settings
        )
        local = model.collect(PROMPTS, score, **settings)
        for name in local.batch:
            self.assertAllClose(
                remote.batch[name], local.batch[name], atol=1e-5, msg=name
            )
        self.assertAllEqual(remote.scores, local.scores)
        with self.assertRaisesRegex(TypeError, "generation_workers=3"):
            model.collect(PROMPTS, score, generation_workers=3, **settings)

    def test_bad_arguments_are_named(self):
        with self.assertRaisesRegex(TypeError, "Received: builder=3"):
            generation_workers.GenerationWorkers(3, num_workers=1)
        with self.assertRaisesRegex(ValueError, "num_workers"):
            generation_workers.GenerationWorkers(build_policy, num_workers=0)
        with self.assertRaisesRegex(ValueError, "Received: num_cpus=0"):
            generation_workers.GenerationWorkers(
                build_policy, num_workers=1, num_cpus=0
            )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

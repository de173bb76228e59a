"""keras_gae.distributed.LearnerGroup: N learner actors equal one learner."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gae.distributed import learner_group
from keras_gae.models import PPOModel
from keras_gae.models import rollout_dataset
from tests.distributed import shared_cluster
from tests.models import test_ppo_model

# The package's one Ray cluster, on the pytest-xdist worker of the group.
pytestmark = pytest.mark.xdist_group("ray")

ROWS = 8
MINIBATCHES = 2
EPOCHS = 2


def build_model():
    """The picklable builder each learner process runs."""
    model = test_ppo_model.linear_model(
        PPOModel, seed=3, max_grad_norm=0.5, value_clip=0.3, entropy_coef=0.01
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    return model


def build_uncompiled():
    return test_ppo_model.linear_model(PPOModel, seed=3)


class LearnerGroupTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        shared_cluster.start()

    def test_two_learners_equal_one_learner_on_the_global_batch(self):
        batch = test_ppo_model.random_batch(seed=31, rows=ROWS)
        # The in-process learner on the global batch, the run's
        # minibatches in the group's order (a new permutation each epoch).
        reference = build_model()
        initial = [w + 0.1 for w in reference.get_weights()]
        reference.set_weights(initial)
        order = learner_group.minibatch_order(
            ROWS, num_minibatches=MINIBATCHES, epochs=EPOCHS, seed=5
        )
        self.assertFalse(np.array_equal(order[:ROWS], order[ROWS:]))
        ordered = {key: value[order] for key, value in batch.items()}
        reference.fit(
            rollout_dataset(
                ordered, num_minibatches=MINIBATCHES * EPOCHS, shuffle=False
            ),
            epochs=1,
            verbose=0,
        )
        expected = reference.get_weights()

        with learner_group.LearnerGroup(build_model, num_learners=2) as group:
            self.assertEqual(group.num_replicas, 2)
            with self.assertRaisesRegex(
                ValueError, "Received: num_minibatches=3"
            ):
                group.fit(batch, num_minibatches=3)
            group.set_weights(initial)
            metrics = group.fit(
                batch, num_minibatches=MINIBATCHES, epochs=EPOCHS, seed=5
            )
            got = group.get_weights()
            every = [
                group._gather([learner.get_weights.remote()], "reading")[0]
                for learner in group._actors
            ]
        self.assertIn("loss", metrics)
        self.assertTrue(np.all(np.isfinite(list(metrics.values()))))
        # Training moved the weights, so the comparison is not vacuous.
        self.assertGreater(
            max(np.abs(a - b).max() for a, b in zip(expected, initial)), 1e-2
        )
        # Float rounding only: two half-minibatch means all-reduced are
        # summed in another order than one mean over the minibatch.
        for got_w, want_w in zip(got, expected):
            self.assertAllClose(got_w, want_w, atol=1e-6, rtol=0)
        for other, mine in zip(every[1], every[0]):
            self.assertAllEqual(other, mine)

    def test_bad_arguments_are_named(self):
        with self.assertRaisesRegex(TypeError, "Received: builder=3"):
            learner_group.LearnerGroup(3, num_learners=2)
        with self.assertRaisesRegex(ValueError, "num_learners"):
            learner_group.LearnerGroup(build_model, num_learners=0)
        with self.assertRaisesRegex(ValueError, "timeout_s"):
            learner_group.LearnerGroup(build_model, num_learners=1, timeout_s=0)
        with self.assertRaisesRegex(ValueError, "num_minibatches=3"):
            learner_group.minibatch_order(
                8, num_minibatches=3, epochs=1, seed=None
            )

    def test_a_builder_without_a_compiled_model_is_named(self):
        # The check each learner runs on what `builder` returned (a
        # learner's ValueError reaches the driver naming the learner, as
        # test_generation_workers checks for its workers).
        with self.assertRaisesRegex(ValueError, "compiled Keras model"):
            learner_group.check_compiled(build_uncompiled(), build_uncompiled)
        learner_group.check_compiled(build_model(), build_model)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

"""A recurrent PPO learns CartPole without velocities (slow).

`keras_gae.agents.masked_velocity.SETTINGS` (8 environments x 32 steps, 4
epochs over the whole rollout, Adam 3e-3, normalized rewards, an LSTM of 64
then MLPs of 64), seed 0, 24k environment steps. A uniformly random
policy's episodes average about 22 steps; a policy blind to the velocities
must remember past positions to do much better. Measured on the loaded
2-core machine over 30k steps: the LSTM policy's training mean rose from 13
to about 120 (a greedy evaluation of 181), the MLP policy's stayed below
50 (evaluation 36), in about a minute each; the long run to 475 is
`benchmarks/memory_task.py`'s.
"""

import pytest
import tensorflow as tf

import keras_gae
from keras_gae.agents import masked_velocity

STEPS = 24_576
RANDOM_RETURN = 22.0


@pytest.mark.slow
class MemoryTaskLearningTest(tf.test.TestCase):
    def test_lstm_learns_well_above_random(self):
        agent = keras_gae.agents.PPO(
            masked_velocity.make_cartpole_no_velocity,
            policy="lstm",
            seed=0,
            verbose=0,
            **masked_velocity.SETTINGS,
        )
        history = agent.learn(STEPS, target_return=None)
        returns = history.history["episode_return_mean"]
        self.assertLess(returns[0], 2 * RANDOM_RETURN)
        self.assertGreater(max(returns[-5:]), 2.5 * RANDOM_RETURN, returns)
        evaluation = agent.evaluate(num_episodes=5)
        self.assertGreater(evaluation["return_mean"], 3 * RANDOM_RETURN)

"""PPO learns CartPole-v1 through the collect-and-fit loop (slow).

8 environments x 128 steps per iteration, 10 epochs of 4 minibatches, Adam
2e-3, tanh 64x64 actor and critic, no entropy bonus. Measured on a 2-core
machine: seeds 0-9 reached a mean return of 475 over the last 20 episodes
after 22k-53k environment steps, in 10-20 seconds of training each; the
budget below leaves about twice the slowest of those.
"""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gae.agents import make_tf_environment
from keras_gae.agents import train
from keras_gae.layers import CategoricalPolicyHead
from keras_gae.models import PPOModel

SEED = 0
TARGET_RETURN = 475.0
ENV_STEP_BUDGET = 100_000


def mlp(output):
    return keras.Sequential(
        [
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(64, activation="tanh"),
            output,
        ]
    )


@pytest.mark.slow
class CartPoleLearningTest(tf.test.TestCase):
    def test_ppo_reaches_475(self):
        keras.utils.set_random_seed(SEED)
        env = make_tf_environment("CartPole-v1", num_envs=8, seed=SEED)
        model = PPOModel(
            mlp(CategoricalPolicyHead(2)),
            mlp(keras.layers.Dense(1)),
            gamma=0.99,
            lambda_=0.95,
            clip_ratio=0.2,
            value_coef=0.5,
            entropy_coef=0.0,
            max_grad_norm=0.5,
        )
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
        start = time.perf_counter()
        history = train(
            model,
            env,
            rollout_length=128,
            total_env_steps=ENV_STEP_BUDGET,
            epochs=10,
            num_minibatches=4,
            seed=SEED,
            target_return=TARGET_RETURN,
            return_window=20,
            verbose=0,
        )
        seconds = time.perf_counter() - start
        env_steps = history.history["env_steps"][-1]
        final_return = history.history["episode_return_mean"][-1]
        print(
            f"\nCartPole-v1: mean return {final_return:.1f} over the last "
            f"20 episodes after {env_steps:.0f} environment steps, "
            f"{len(history.history['iteration'])} iterations, {seconds:.1f} s"
        )
        self.assertGreaterEqual(final_return, TARGET_RETURN)
        self.assertGreaterEqual(history.history["episodes"][-1], 20)
        self.assertLessEqual(env_steps, ENV_STEP_BUDGET + 8 * 128)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))

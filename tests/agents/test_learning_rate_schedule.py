"""The agents' learning rate: constant, or linear to 0 over the budget."""

import tensorflow as tf

from keras_gae import presets
from keras_gae.agents import PPO
from keras_gae.agents.learning_rate_schedule import learning_rate


def _linear(rate, step, total_steps):
    return rate * max(0.0, 1.0 - step / total_steps)


class LearningRateTest(tf.test.TestCase):
    def test_constant(self):
        config = presets.config_for("CartPole-v1")
        self.assertEqual(learning_rate(config, 2048), config["learning_rate"])

    def test_linear_over_the_budget(self):
        config = dict(presets.config_for("ALE/Breakout-v5"))
        self.assertEqual(config["learning_rate_schedule"], "linear")
        # 10 iterations of 1024 rows (the last one partly needed), 4
        # epochs x 4 minibatches each: 160 gradient steps to 0.
        config["total_env_steps"] = 9_500
        schedule = learning_rate(config, 1024)
        for step in (0, 1, 80, 159, 160, 400):
            self.assertAllClose(
                schedule(step),
                _linear(2.5e-4, step, 160),
                rtol=1e-5,
                atol=1e-12,
            )

    def test_agent_optimizer_decays_with_its_steps(self):
        agent = PPO(
            "CartPole-v1",
            num_envs=2,
            rollout_length=8,
            epochs=2,
            num_minibatches=1,
            learning_rate=1e-3,
            learning_rate_schedule="linear",
            total_env_steps=160,
            verbose=0,
        )
        optimizer = agent.model.optimizer
        # 10 iterations of 16 rows, 2 gradient steps each: 0 at step 20.
        for steps in (0, 5, 20):
            optimizer.iterations.assign(steps)
            self.assertAllClose(
                optimizer.learning_rate,
                _linear(1e-3, steps, 20),
                rtol=1e-5,
                atol=1e-12,
            )
        self.assertEqual(agent.settings["learning_rate_schedule"], "linear")


if __name__ == "__main__":
    tf.test.main()

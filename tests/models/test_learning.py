"""Learning tests: the models solve tiny tasks from their own rollouts.

The environments are vectorized NumPy classes; rollouts are collected with
the model's own `act` (stateless seeded sampling), turned into rollout
batches (docs/design.md) and trained on with `fit`. Seeds and op determinism
make every run identical.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

# TensorFlow exports no way to switch op determinism back off; the
# learning tests restore the process-wide flag for the tests after them.
from tensorflow.python.framework import config as framework_config

from keras_gae.layers import CategoricalPolicyHead
from keras_gae.models import A2CModel
from keras_gae.models import PPOModel
from keras_gae.models import rollout_dataset


class TwoArmedBandit:
    """One-step episodes; arm 1 pays 1 on average, arm 0 pays 0.5."""

    observation_size = 1

    def __init__(self, num_envs, seed):
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)

    def observation(self):
        return np.ones((self.num_envs, 1), np.float32)

    def step(self, actions):
        means = np.where(actions == 1, 1.0, 0.5)
        rewards = means + 0.1 * self.rng.normal(size=self.num_envs)
        return rewards.astype(np.float32), np.ones(self.num_envs, bool)


class CodeChain:
    """Episodes of `horizon` steps; reward 1 at the last step only.

    The episode pays only if the action at every step t matched `code[t]`,
    so the early actions are credited solely through the return that GAE
    carries back from the last step. The observation is one-hot(t) and a
    flag telling whether every action so far was right.
    """

    def __init__(self, num_envs, code):
        self.code = np.asarray(code)
        self.horizon = len(code)
        self.observation_size = self.horizon + 1
        self.num_envs = num_envs
        self.time = np.zeros(num_envs, int)
        self.on_track = np.ones(num_envs, bool)

    def observation(self):
        observation = np.zeros(
            (self.num_envs, self.observation_size), np.float32
        )
        observation[np.arange(self.num_envs), self.time] = 1.0
        observation[:, -1] = self.on_track
        return observation

    def step(self, actions):
        self.on_track &= actions == self.code[self.time]
        done = self.time == self.horizon - 1
        rewards = np.where(done & self.on_track, 1.0, 0.0)
        self.time = np.where(done, 0, self.time + 1)
        self.on_track = np.where(done, True, self.on_track)
        return rewards.astype(np.float32), done


def stateless_seed(rng):
    """A shape-[2] int32 seed for tfp's stateless sampling."""
    return tf.constant(rng.integers(0, 2**31 - 1, size=2), tf.int32)


def collect(env, act, num_steps, seeds):
    """A rollout batch of `num_steps` steps from every environment."""
    steps = {
        key: []
        for key in ("observation", "action", "log_prob", "value", "reward")
    }
    steps["terminated"] = []
    observation = env.observation()
    for _ in range(num_steps):
        outputs = act(observation, stateless_seed(seeds))
        action = outputs.action.numpy()
        reward, terminated = env.step(action)
        for key, value in (
            ("observation", observation),
            ("action", action),
            ("log_prob", outputs.log_prob.numpy()),
            ("value", outputs.value.numpy()),
            ("reward", reward),
            ("terminated", terminated),
        ):
            steps[key].append(value)
        observation = env.observation()
    batch = {key: np.stack(value, axis=1) for key, value in steps.items()}
    batch["truncated"] = np.zeros_like(batch["terminated"])
    # V(s_T) of the observation after the last step; the GAE ignores it
    # where that step terminated.
    final = act(observation, stateless_seed(seeds))
    batch["bootstrap_value"] = final.value.numpy()
    return batch


def networks(observation_size, num_actions, hidden):
    actor = keras.Sequential(
        [
            keras.Input((observation_size,)),
            CategoricalPolicyHead(num_actions),
        ]
    )
    critic_layers = [keras.Input((observation_size,))]
    if hidden:
        critic_layers.append(keras.layers.Dense(hidden, "tanh"))
    critic_layers.append(keras.layers.Dense(1))
    return actor, keras.Sequential(critic_layers)


class LearningTest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)
        self.determinism_was_enabled = (
            framework_config.is_op_determinism_enabled()
        )
        tf.config.experimental.enable_op_determinism()

    def tearDown(self):
        if not self.determinism_was_enabled:
            framework_config.disable_op_determinism()
        super().tearDown()

    def train(self, model, env, iterations, num_steps, fit_kwargs):
        act = tf.function(lambda obs, seed: model.act(obs, seed=seed))
        seeds = np.random.default_rng(1)
        for iteration in range(iterations):
            batch = collect(env, act, num_steps, seeds)
            model.fit(
                rollout_dataset(
                    batch,
                    num_minibatches=fit_kwargs["num_minibatches"],
                    seed=iteration,
                ),
                epochs=fit_kwargs["epochs"],
                verbose=0,
                shuffle=False,
            )
        return batch

    def test_ppo_prefers_the_better_arm(self):
        env = TwoArmedBandit(num_envs=64, seed=0)
        actor, critic = networks(1, 2, hidden=0)
        model = PPOModel(actor, critic, entropy_coef=0.0)
        model.compile(optimizer=keras.optimizers.Adam(0.05))
        self.train(model, env, 12, 1, dict(num_minibatches=4, epochs=4))
        params, _ = model(env.observation()[:1])
        probabilities = tf.nn.softmax(params)[0].numpy()
        self.assertGreater(probabilities[1], 0.95)

    @parameterized.named_parameters(
        (
            "a2c",
            A2CModel,
            dict(learning_rate=0.05, iterations=50),
            dict(num_minibatches=1, epochs=1),
        ),
        (
            "ppo",
            PPOModel,
            dict(learning_rate=0.02, iterations=15),
            dict(num_minibatches=4, epochs=4),
        ),
    )
    def test_credit_flows_back_through_gae(
        self, model_class, settings, fit_kwargs
    ):
        code = [1, 0, 0, 1]
        env = CodeChain(num_envs=32, code=code)
        actor, critic = networks(env.observation_size, 2, hidden=16)
        model = model_class(actor, critic, gamma=0.99, lambda_=0.95)
        model.compile(
            optimizer=keras.optimizers.Adam(settings["learning_rate"])
        )
        # Rows of 6 steps: episodes of 4 cross row ends and start mid-row.
        self.train(model, env, settings["iterations"], 6, fit_kwargs)

        on_track = np.zeros((4, env.observation_size), np.float32)
        on_track[np.arange(4), np.arange(4)] = 1.0
        on_track[:, -1] = 1.0
        params, values = model(on_track)
        probabilities = tf.nn.softmax(params).numpy()
        right = probabilities[np.arange(4), code]
        # Every step, the first included, learned its action.
        self.assertGreater(np.prod(right), 0.8)
        # The critic learned that staying on track pays at the end.
        self.assertAllGreater(values, 0.5)


if __name__ == "__main__":
    tf.test.main()

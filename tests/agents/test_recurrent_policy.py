"""Recurrent policies: collection carries the state; PPO(policy="lstm")."""

import functools

import gymnasium
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gae
from keras_gae._src import rollout_batch as rb
from keras_gae.agents import make_tf_environment
from keras_gae.agents.masked_velocity import KeepObservationEntries
from keras_gae.agents.masked_velocity import make_cartpole_no_velocity
from keras_gae.agents.recurrent_networks import build_recurrent_network
from keras_gae.agents.rollout_collector import RolloutCollector
from keras_gae.models.recurrent import SequenceInputs

B, T = 3, 40


def recurrent_collector(cell="lstm"):
    keras.utils.set_random_seed(0)
    # Episodes of at most 15 steps: terminations and truncations inside
    # every rollout.
    env = make_tf_environment(
        functools.partial(make_cartpole_no_velocity, max_episode_steps=15),
        num_envs=B,
        seed=0,
    )
    network = build_recurrent_network(
        env.observation_spec(),
        env.action_spec(),
        cell=cell,
        units=8,
        hidden_sizes=(16,),
    )
    model = keras_gae.models.PPOModel(shared=network)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model, RolloutCollector(
        model, env, rollout_length=T, return_window=5
    )


def recomputed(model, batch):
    """Log-probs and values `[rows, T]` of the model's forward pass over a
    recurrent rollout batch, from each row's initial state."""
    starts = rb.episode_starts(batch)
    params, values = model(
        SequenceInputs(batch[rb.OBSERVATION], batch[rb.INITIAL_STATE], starts)
    )
    actions = tf.reshape(batch[rb.ACTION], [-1])
    log_probs = model.distribution(params).log_prob(actions)
    shape = tf.shape(batch[rb.LOG_PROB])
    return tf.reshape(log_probs, shape), tf.reshape(values, shape)


class RecurrentCollectionTest(tf.test.TestCase):
    def test_training_recomputes_what_was_collected(self):
        model, collector = recurrent_collector()
        final_states = None
        for _ in range(3):
            batch = collector.collect()
            ends = batch[rb.TERMINATED] | batch[rb.TRUNCATED]
            self.assertGreater(
                int(tf.reduce_sum(tf.cast(batch[rb.TERMINATED], tf.int32))), 0
            )
            self.assertGreater(
                int(tf.reduce_sum(tf.cast(batch[rb.TRUNCATED], tf.int32))), 0
            )
            self.assertGreater(int(tf.reduce_sum(tf.cast(ends, tf.int32))), B)
            if final_states is None:
                # The first rollout starts every environment afresh.
                for state in batch[rb.INITIAL_STATE]:
                    self.assertAllEqual(state, tf.zeros([B, 8]))
            else:
                # Later ones go on from the state the last one left
                # (zeros only where an episode starts at the first step).
                for state, last in zip(batch[rb.INITIAL_STATE], final_states):
                    self.assertGreater(float(tf.reduce_max(tf.abs(state))), 0.0)
                    self.assertTrue(
                        np.all(
                            np.isclose(state, last).all(axis=1)
                            | (np.asarray(state) == 0).all(axis=1)
                        )
                    )
            log_probs, values = recomputed(model, batch)
            # Every row, boundary rows included.
            self.assertAllClose(log_probs, batch[rb.LOG_PROB], atol=1e-5)
            self.assertAllClose(values, batch[rb.VALUE], atol=1e-5)
            final_states = [np.asarray(v) for v in collector._policy_state]
            model.fit(
                keras_gae.models.rollout_dataset(batch, num_minibatches=3),
                epochs=2,
                verbose=0,
            )

    def test_policy_state_spec_and_info(self):
        model, collector = recurrent_collector("gru")
        policy = collector.policy
        self.assertEqual(
            policy.policy_state_spec,
            (tf.TensorSpec([8], tf.float32, "state_0"),),
        )
        self.assertIn(rb.INITIAL_STATE, policy.info_spec)


class ObservationWrapperTest(tf.test.TestCase):
    def test_keeps_position_and_angle(self):
        env = make_cartpole_no_velocity()
        full = gymnasium.make("CartPole-v1")
        observation, _ = env.reset(seed=3)
        expected, _ = full.reset(seed=3)
        self.assertAllEqual(observation, expected[[0, 2]])
        self.assertEqual(env.observation_space.shape, (2,))
        observation, *_ = env.step(1)
        expected, *_ = full.step(1)
        self.assertAllEqual(observation, expected[[0, 2]])

    def test_bad_indices(self):
        with pytest.raises(ValueError, match="indices"):
            KeepObservationEntries(gymnasium.make("CartPole-v1"), (0, 4))


class RecurrentAgentTest(tf.test.TestCase):
    def make_agent(self, **settings):
        return keras_gae.agents.PPO(
            make_cartpole_no_velocity,
            policy="lstm",
            verbose=0,
            num_envs=4,
            rollout_length=16,
            num_minibatches=2,
            epochs=2,
            recurrent_units=8,
            hidden_sizes=(8,),
            **settings,
        )

    def test_learn_save_load_evaluate(self):
        agent = self.make_agent()
        self.assertEqual(agent.policy, "lstm")
        self.assertTrue(agent.model.recurrent)
        agent.learn(128, target_return=None)
        evaluation = agent.evaluate(num_episodes=2)
        path = agent.save(self.get_temp_dir() + "/agent")
        loaded = keras_gae.agents.PPO.load(
            path, env=make_cartpole_no_velocity, verbose=0
        )
        self.assertEqual(loaded.policy, "lstm")
        for saved, restored in zip(
            agent.model.get_weights(), loaded.model.get_weights()
        ):
            self.assertAllEqual(saved, restored)
        # Greedy evaluation from the same seeds: the same episodes.
        self.assertEqual(loaded.evaluate(num_episodes=2), evaluation)
        loaded.learn(64, target_return=None)
        self.check_export(loaded)

    def check_export(self, agent):
        """The SavedModel carries the state as the model does."""
        exported = tf.saved_model.load(
            agent.export(self.get_temp_dir() + "/exported")
        )
        model = agent.model
        observations = np.random.default_rng(0).normal(size=(5, 2, 2))
        observations = observations.astype("float32")
        starts = np.zeros((5, 2), bool)
        starts[0] = starts[3, 1] = True
        state = model.initial_state(2)
        carried = {"state_0": np.zeros((2, 8)), "state_1": np.zeros((2, 8))}
        for t in range(5):
            expected = model.act(
                observations[t],
                deterministic=True,
                state=state,
                episode_start=starts[t],
            )
            state = expected.state
            outputs = exported.signatures["action"](
                observation=observations[t],
                episode_start=starts[t],
                **{k: tf.constant(v, tf.float32) for k, v in carried.items()},
            )
            self.assertAllEqual(outputs["action"], expected.action)
            carried = {k: outputs[k] for k in carried}
            self.assertAllClose(carried["state_0"], state[0], atol=1e-6)
            self.assertAllClose(carried["state_1"], state[1], atol=1e-6)
        value = exported.signatures["value"](
            observation=observations[0],
            episode_start=np.ones(2, bool),
            **{k: tf.constant(v, tf.float32) for k, v in carried.items()},
        )["value"]
        fresh = model.act(observations[0], deterministic=True).value
        self.assertAllClose(value, fresh, atol=1e-6)

    def test_predict_carries_the_state(self):
        agent = self.make_agent()
        model = agent.model
        observations = np.random.default_rng(1).normal(size=(4, 3, 2))
        starts = np.zeros((4, 3), bool)
        starts[0] = starts[2, 1] = True
        state, expected_state = None, model.initial_state(3)
        for t in range(4):
            action, state = agent.predict(
                observations[t], state=state, episode_start=starts[t]
            )
            expected = model.act(
                observations[t].astype("float32"),
                deterministic=True,
                state=expected_state,
                episode_start=starts[t],
            )
            expected_state = expected.state
            self.assertAllEqual(action, expected.action)
            for got, want in zip(state, expected_state):
                self.assertAllClose(got, want, atol=1e-6)
        # One unbatched observation: one action, a state of one row.
        action, state = agent.predict(observations[0, 0])
        self.assertEqual(np.shape(action), ())
        self.assertEqual([s.shape for s in state], [(1, 8), (1, 8)])
        with self.assertRaisesRegex(ValueError, r"`state` must be"):
            agent.predict(observations[0], state=state)
        with self.assertRaisesRegex(ValueError, r"`episode_start` must"):
            agent.predict(observations[0], episode_start=[True])

    def test_predict_refuses_a_state_without_recurrence(self):
        agent = keras_gae.agents.PPO("CartPole-v1", verbose=0, num_envs=4)
        with self.assertRaisesRegex(ValueError, r"`state` is for recurrent"):
            agent.predict(np.zeros(4), state=(np.zeros((1, 8)),))
        with self.assertRaisesRegex(ValueError, r"`episode_start` is for"):
            agent.predict(np.zeros(4), episode_start=[True])

    def test_a2c_with_a_gru(self):
        agent = keras_gae.agents.A2C(
            make_cartpole_no_velocity,
            policy="gru",
            verbose=0,
            num_envs=2,
            rollout_length=8,
            recurrent_units=4,
        )
        self.assertEqual(agent.settings["recurrent_cell"], "gru")
        self.assertLen(agent.model.state_spec(), 1)
        history = agent.learn(32, target_return=None)
        self.assertTrue(np.isfinite(history.history["loss"]).all())

    def test_settings_conflicts(self):
        with pytest.raises(ValueError, match="recurrent_cell"):
            self.make_agent(recurrent_cell="gru")
        with pytest.raises(ValueError, match="minibatch_mode"):
            self.make_agent(minibatch_mode="steps")

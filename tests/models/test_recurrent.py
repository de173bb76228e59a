"""Recurrent actor-critic models: sequences, resets, batch checks, training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

import keras_gae
from keras_gae._src import rollout_batch as rb
from keras_gae.models.recurrent import RecurrentActorCritic
from keras_gae.models.recurrent import SequenceInputs

B, T, OBS = 3, 6, 4


def make_model(cell="lstm", seed=0):
    keras.utils.set_random_seed(seed)
    cells = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}
    network = RecurrentActorCritic(
        encoder=keras.layers.Dense(8, activation="tanh"),
        cell=cells[cell](5),
        actor=keras.Sequential(
            [
                keras.layers.Dense(8, activation="tanh"),
                keras_gae.layers.CategoricalPolicyHead(3),
            ]
        ),
        critic=keras.layers.Dense(1),
    )
    return keras_gae.models.PPOModel(shared=network)


def random_inputs(seed=1):
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(B, T, OBS)).astype("float32")
    starts = np.zeros((B, T), bool)
    starts[0, 2] = starts[2, 4] = starts[2, 5] = True
    return observations, starts


class RecurrentModelTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("lstm", "gru")
    def test_sequence_equals_step_by_step(self, cell):
        model = make_model(cell)
        observations, starts = random_inputs()
        initial = tuple(
            np.random.default_rng(2).normal(size=(B, 5)).astype("float32")
            for _ in model.state_spec()
        )
        params, values = model(
            SequenceInputs(observations, initial, tf.constant(starts))
        )
        # Step by step, the state reset by hand (zeros) where a row starts.
        state, step_params, step_values = initial, [], []
        for t in range(T):
            keep = (~starts[:, t])[:, None].astype("float32")
            state = tuple(np.asarray(s) * keep for s in state)
            p, v, state = model.forward(observations[:, t], state)
            step_params.append(p)
            step_values.append(v)
        self.assertAllClose(
            tf.reshape(tf.stack(step_params, 1), [B * T, -1]), params, atol=1e-6
        )
        self.assertAllClose(
            tf.reshape(tf.stack(step_values, 1), [-1]), values, atol=1e-6
        )

    def test_reset_starts_afresh(self):
        model = make_model()
        observations, starts = random_inputs()
        initial = tuple(tf.ones([B, 5]) for _ in model.state_spec())
        _, values = model(
            SequenceInputs(observations, initial, tf.constant(starts))
        )
        values = tf.reshape(values, [B, T])
        # Row 0 restarts at step 2: the same as a fresh row from step 2.
        _, fresh = model(
            SequenceInputs(
                observations[:1, 2:],
                model.initial_state(1),
                tf.zeros([1, T - 2], tf.bool),
            )
        )
        self.assertAllClose(values[0, 2:], fresh, atol=1e-6)
        # Without the reset the values differ: the state matters.
        _, carried = model(
            SequenceInputs(observations, initial, tf.zeros([B, T], tf.bool))
        )
        carried = tf.reshape(carried, [B, T])
        self.assertAllClose(values[1], carried[1])
        self.assertGreater(
            float(tf.reduce_max(tf.abs(values[0, 2:] - carried[0, 2:]))), 1e-4
        )

    def test_act_carries_the_state(self):
        model = make_model()
        observations, _ = random_inputs()
        first = model.act(observations[:, 0], deterministic=True)
        self.assertLen(first.state, 2)
        second = model.act(
            observations[:, 1], deterministic=True, state=first.state
        )
        reset = model.act(
            observations[:, 1],
            deterministic=True,
            state=first.state,
            episode_start=tf.ones([B], tf.bool),
        )
        fresh = model.act(observations[:, 1], deterministic=True)
        self.assertAllClose(reset.value, fresh.value)
        self.assertNotAllClose(second.value, fresh.value)

    def test_feed_forward_model_has_no_state(self):
        actor = keras.Sequential([keras_gae.layers.CategoricalPolicyHead(2)])
        model = keras_gae.models.PPOModel(actor, keras.layers.Dense(1))
        self.assertFalse(model.recurrent)
        self.assertIsNone(model.initial_state(2))
        self.assertIsNone(model.act(np.zeros((2, 3), "float32")).state)


def rollout_batch(model, seed=3):
    """A batch whose log-probs and values are the model's own."""
    observations, _ = random_inputs(seed)
    rng = np.random.default_rng(seed)
    terminated = np.zeros((B, T), bool)
    terminated[0, 1] = True
    mask = np.ones((B, T), bool)
    mask[0, 2] = False  # tf-agents' boundary row after the termination
    batch = {
        rb.OBSERVATION: observations,
        rb.ACTION: rng.integers(0, 3, size=(B, T)).astype("int32"),
        rb.REWARD: rng.normal(size=(B, T)).astype("float32"),
        rb.TERMINATED: terminated,
        rb.MASK: mask,
        rb.BOOTSTRAP_VALUE: np.zeros(B, "float32"),
        rb.INITIAL_STATE: model.initial_state(B),
    }
    starts = rb.episode_starts({rb.LOG_PROB: batch[rb.REWARD], **batch})
    params, values = model(
        SequenceInputs(observations, batch[rb.INITIAL_STATE], starts)
    )
    log_probs = model.distribution(params).log_prob(
        tf.reshape(batch[rb.ACTION], [-1])
    )
    batch[rb.LOG_PROB] = tf.reshape(log_probs, [B, T]).numpy()
    batch[rb.VALUE] = tf.reshape(values, [B, T]).numpy()
    return batch


class EpisodeStartsTest(tf.test.TestCase):
    def test_boundary_rows_and_plain_ends(self):
        # Row 0: tf-agents layout (end, boundary row, new episode).
        # Row 1: no boundary rows (a new episode right after the end).
        ended = np.array([[0, 1, 0, 0, 0], [1, 0, 0, 1, 0]], bool)
        mask = np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], bool)
        starts = rb.episode_starts(
            {
                rb.LOG_PROB: np.zeros((2, 5), "float32"),
                rb.TRUNCATED: ended,
                rb.MASK: mask,
            }
        )
        expected = np.array([[0, 0, 0, 1, 0], [0, 1, 0, 0, 1]], bool)
        self.assertAllEqual(starts, expected)

    def test_without_flags_nothing_starts(self):
        starts = rb.episode_starts({rb.LOG_PROB: np.zeros((2, 3), "float32")})
        self.assertAllEqual(starts, np.zeros((2, 3), bool))


class RecurrentTrainingTest(tf.test.TestCase):
    def test_first_step_recomputes_the_collected_policy(self):
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        batch = rollout_batch(model)
        logs = model.train_on_batch(batch, return_dict=True)
        # The recomputed log-probs equal the recorded ones: no KL, no clip.
        self.assertAllClose(logs["approx_kl"], 0.0, atol=1e-6)
        self.assertEqual(float(logs["clip_fraction"]), 0.0)
        again = model.train_on_batch(batch, return_dict=True)
        self.assertGreater(float(again["approx_kl"]), 0.0)

    def test_fit_on_whole_rows(self):
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        batch = rollout_batch(model)
        dataset = keras_gae.models.rollout_dataset(batch, num_minibatches=3)
        history = model.fit(dataset, epochs=2, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"]).all())

    def test_single_steps_are_refused(self):
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        batch = rollout_batch(model)
        dataset = keras_gae.models.step_dataset(model, batch, num_minibatches=2)
        with pytest.raises(ValueError, match="initial_state"):
            model.fit(dataset, epochs=1, verbose=0)

    def test_batch_checks(self):
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        batch = rollout_batch(model)
        with pytest.raises(ValueError, match="B = 3"):
            model.train_on_batch(
                {**batch, rb.INITIAL_STATE: model.initial_state(2)}
            )
        actor = keras.Sequential([keras_gae.layers.CategoricalPolicyHead(3)])
        feed_forward = keras_gae.models.PPOModel(actor, keras.layers.Dense(1))
        feed_forward.compile(optimizer=keras.optimizers.Adam(1e-3))
        with pytest.raises(ValueError, match="feed-forward"):
            feed_forward.train_on_batch(batch)


class SerializationTest(tf.test.TestCase):
    def test_config_round_trip(self):
        model = make_model("gru")
        observations, starts = random_inputs()
        inputs = SequenceInputs(
            observations, model.initial_state(B), tf.constant(starts)
        )
        params, values = model(inputs)
        network = model.shared
        restored = RecurrentActorCritic.from_config(network.get_config())
        restored_model = keras_gae.models.PPOModel(shared=restored)
        restored_model(inputs)
        restored_model.set_weights(model.get_weights())
        again_params, again_values = restored_model(inputs)
        self.assertAllClose(params, again_params)
        self.assertAllClose(values, again_values)

"""Rollout workers on Ray: exact rounds, merged statistics, faults.

One agent made with `num_workers=2` on the package's cluster starts the
workers, which serve every test (starting processes that import TensorFlow
is what costs); the test classes run in file order, the one that hangs the
workers last. The agent's policy is recurrent (an LSTM): the workers carry
its state across rounds and ship each row's initial state, the case with
the most to get wrong (test_worker_learning.py trains an MLP policy on
workers).
"""

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gae import agents
from keras_gae._src import rollout_batch as rb
from keras_gae.agents.rollout_collector import RolloutCollector
from keras_gae.agents.rollout_collector import statistics_layers
from keras_gae.distributed import WorkerTimeoutError
from keras_gae.distributed.rollout_worker import build_policy_model
from keras_gae.distributed.rollout_worker import policy_variables
from keras_gae.distributed.rollout_worker import worker_seed
from tests.agents.test_recurrent_policy import recomputed
from tests.distributed import shared_cluster
from tests.distributed import worker_fixtures

# The package's one Ray cluster, on the pytest-xdist worker of the group.
pytestmark = pytest.mark.xdist_group("ray")

SEED = 7
NUM_WORKERS = 2
NUM_ENVS = 2
B = NUM_WORKERS * NUM_ENVS
T = 16
VECTORIZATION = "sync"

_module = contextlib.ExitStack()
HANG_FILE = os.path.join(tempfile.mkdtemp(), "hang")
ENV_KWARGS = {"hang_file": HANG_FILE}
AGENT = WORKERS = MODEL_FN = None


def setUpModule():
    global AGENT, WORKERS, MODEL_FN
    # The agent joins it and leaves it running when it closes.
    shared_cluster.start()
    AGENT = _module.enter_context(
        agents.PPO(
            worker_fixtures.cartpole,
            env_kwargs=ENV_KWARGS,
            num_workers=NUM_WORKERS,
            num_envs=NUM_ENVS,
            rollout_length=T,
            epochs=2,
            num_minibatches=2,
            hidden_sizes=(16,),
            policy="lstm",
            recurrent_units=8,
            # Both: the learner merges and broadcasts them.
            normalize_observations=True,
            normalize_rewards=True,
            vectorization_mode=VECTORIZATION,
            seed=SEED,
            verbose=0,
        )
    )
    WORKERS = AGENT.rollout_workers
    # The agent's model recipe, as the workers build it.
    MODEL_FN = WORKERS.model_fn


def tearDownModule():
    _module.close()


def _learner_model(seed):
    """A learner's model of B environments, initialized unlike a worker's."""
    keras.utils.set_random_seed(seed)
    env = agents.make_tf_environment("CartPole-v1", num_envs=1)
    return MODEL_FN(env.observation_spec(), env.action_spec(), B)


def _learner_weights(seed):
    return [v.numpy() for v in policy_variables(_learner_model(seed))]


def _concatenated(results, key):
    return np.concatenate([r["batch"][key] for r in results])


class RolloutWorkersTest(tf.test.TestCase):
    def test_remote_rounds_equal_in_process_collectors(self):
        # Worker i with seed s_i = SEED + i * NUM_ENVS against an in-process
        # collector made as a single process makes its own: environments
        # seeded s_i + j, sampling under the global seed s_i.
        self.assertEqual(WORKERS.generations, [0] * NUM_WORKERS)
        # Made first: the collectors trace their sampling under the
        # global seed set just before they are made.
        rounds = [_learner_weights(100 + v) for v in range(2)]
        references = []
        for i in range(NUM_WORKERS):
            seed_i = SEED + i * NUM_ENVS
            tf.random.set_seed(seed_i)
            env = agents.make_tf_environment(
                worker_fixtures.cartpole,
                num_envs=NUM_ENVS,
                seed=seed_i,
                env_kwargs=ENV_KWARGS,
                vectorization_mode=VECTORIZATION,
            )
            model = build_policy_model(MODEL_FN, env)
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
            results = WORKERS.collect(weights, version=version)
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
                self.assertIn(rb.INITIAL_STATE, got)
                for key in expected:
                    np.testing.assert_array_equal(
                        got[key], expected[key], err_msg=key
                    )
                self.assertEqual(
                    results[i]["env_steps"], int(np.sum(expected["mask"]))
                )
                # The policy recomputes the worker's log-probs and values
                # from each row's initial state; the second round's states
                # go on from the first's (zeros only at the first).
                carried = max(np.abs(s).max() for s in got[rb.INITIAL_STATE])
                self.assertEqual(carried > 0, version > 0)
                log_probs, values = recomputed(model, got)
                self.assertAllClose(log_probs, got[rb.LOG_PROB], atol=1e-5)
                self.assertAllClose(values, got[rb.VALUE], atol=1e-5)


class LearnerStatisticsTest(tf.test.TestCase):
    def test_learner_statistics_equal_one_process_on_the_same_rows(self):
        model = _learner_model(5)
        collector = WORKERS.make_collector(
            model, rollout_length=T, return_window=20
        )
        # One process's statistics over the same B rows: a reward
        # normalization of B environments, observation statistics.
        rewards = agents.RewardNormalization(B)
        observations = agents.ObservationNormalization()
        observations.build((None, 4))
        learner_observations = statistics_layers(model)[0].normalization
        for _ in range(2):
            results = collector.run_driver()
            # Before each round: the rows of the rounds before it.
            for name in ("mean", "variance", "count"):
                self.assertAllClose(
                    getattr(learner_observations, name),
                    getattr(observations, name),
                    rtol=1e-6,
                )
            raw = _concatenated(results, rb.REWARD)
            ended = _concatenated(results, rb.TERMINATED) | _concatenated(
                results, rb.TRUNCATED
            )
            mask = _concatenated(results, rb.MASK)
            steps_before = int(collector.env_steps.numpy())
            batch = collector.to_batch(results)
            expected = rewards.update_and_scale(raw, ended, mask)
            self.assertAllClose(batch[rb.REWARD], expected, rtol=1e-5)
            learner_rewards = model.reward_normalization
            for name in ("return_mean", "return_variance", "count"):
                self.assertAllClose(
                    getattr(learner_rewards, name),
                    getattr(rewards, name),
                    rtol=1e-5,
                )
            # The workers' running returns, recorded at the learner.
            self.assertAllClose(
                collector.worker_state.returns, rewards.returns, rtol=1e-5
            )
            observations.update(_concatenated(results, rb.OBSERVATION))
            # Each row keeps its initial state in the merged batch.
            for merged, *rows in zip(
                batch[rb.INITIAL_STATE],
                *(r["batch"][rb.INITIAL_STATE] for r in results),
            ):
                self.assertAllEqual(merged, np.concatenate(rows))
            self.assertEqual(
                int(collector.env_steps.numpy()) - steps_before,
                int(np.sum(mask)),
            )


class AgentTest(tf.test.TestCase):
    def test_the_agent_trains_on_its_workers(self):
        self.assertIsNone(AGENT.trainer.policy)
        # A round is B * T rows less the boundary rows: one round stays
        # below B * T + 1 steps, two reach it.
        history = AGENT.learn(total_env_steps=B * T + 1)
        self.assertEqual(AGENT.trainer.iteration, 2)
        self.assertLen(history.history["env_steps"], 2)
        self.assertEqual(AGENT.env_steps, history.history["env_steps"][-1])
        self.assertBetween(AGENT.env_steps, B * T + 1, 2 * B * T)
        self.assertTrue(np.isfinite(history.history["loss"]).all())
        observations = np.random.default_rng(0).normal(size=(5, 4))
        actions, _ = AGENT.predict(observations.astype(np.float32))

        # A save records the workers; it loads into one process of all
        # their environments as well.
        path = os.path.join(self.get_temp_dir(), "saved")
        AGENT.save(path)
        with open(os.path.join(path, "settings.json")) as file:
            self.assertEqual(json.load(file)["num_workers"], NUM_WORKERS)
        loaded = agents.PPO.load(
            path, env=worker_fixtures.cartpole, num_workers=None, num_envs=B
        )
        self.assertIsNone(loaded.rollout_workers)
        self.assertEqual(loaded.env_steps, AGENT.env_steps)
        self.assertEqual(loaded.trainer.iteration, 2)
        loaded_actions, _ = loaded.predict(observations.astype(np.float32))
        self.assertAllEqual(loaded_actions, actions)


class _KillWorkerAt(keras.callbacks.Callback):
    """Hangs the environments, SIGKILLs worker 0 mid-round, lets go."""

    def __init__(self, iteration):
        super().__init__()
        self.iteration = iteration
        self.killed = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.iteration:
            return
        pid = WORKERS.describe()[0]["pid"]
        open(HANG_FILE, "w").close()

        def kill():
            time.sleep(1.0)
            os.kill(pid, signal.SIGKILL)
            self.killed = pid
            os.remove(HANG_FILE)

        threading.Thread(target=kill, daemon=True).start()


class _InterruptAt(keras.callbacks.Callback):
    def __init__(self, iteration):
        super().__init__()
        self.iteration = iteration

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.iteration:
            raise KeyboardInterrupt


def _trainer(root_dir, trained_steps):
    model = _learner_model(11)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    trainer = agents.OnPolicyTrainer(
        model,
        WORKERS,
        rollout_length=T,
        epochs=1,
        num_minibatches=2,
        root_dir=root_dir,
        seed=SEED,
    )
    fit = trainer.fit

    def recording_fit(batch):
        # The steps the learner trains on, counted from the batch itself.
        mask = batch[rb.MASK].numpy()
        assert mask.shape == (B, T), mask.shape
        trained_steps.append(int(mask.sum()))
        return fit(batch)

    trainer.fit = recording_fit
    return trainer


class FaultsTest(tf.test.TestCase):
    def test_killed_worker_is_replaced_and_an_interrupted_run_resumes(self):
        root_dir = self.get_temp_dir()
        trained = []
        generations = list(WORKERS.generations)
        trainer = _trainer(root_dir, trained)
        killer = _KillWorkerAt(1)
        with self.assertRaises(KeyboardInterrupt):
            trainer.run(
                total_env_steps=10 * B * T,
                callbacks=[killer, _InterruptAt(3)],
                verbose=0,
            )
        self.assertIsNotNone(killer.killed)
        # Worker 0 was made again once; its round's share came from the
        # new worker, and every trained step was counted once.
        self.assertEqual(
            WORKERS.generations, [generations[0] + 1, generations[1]]
        )
        self.assertNotEqual(WORKERS.describe()[0]["pid"], killer.killed)
        self.assertEqual(trainer.iteration, 3)
        self.assertLen(trained, 3)
        self.assertEqual(trainer.env_steps, sum(trained))
        saved_returns = trainer._collector.worker_state.returns.numpy()

        # The driver "interrupted": a new one resumes from the checkpoint.
        resumed_trained = []
        resumed = _trainer(root_dir, resumed_trained)
        self.assertEqual(resumed.iteration, 3)
        self.assertEqual(resumed.env_steps, sum(trained))
        state = resumed._collector.worker_state
        self.assertAllEqual(state.returns, saved_returns)
        pids = [found["pid"] for found in WORKERS.describe()]
        resumed.run(total_env_steps=resumed.env_steps + 1, verbose=0)
        self.assertEqual(resumed.iteration, 4)
        self.assertEqual(resumed.env_steps, sum(trained + resumed_trained))
        # Every worker at its next generation, in its own process: new
        # episodes, from seeds the run had not used.
        self.assertEqual(
            WORKERS.generations, [generations[0] + 2, generations[1] + 1]
        )
        described = WORKERS.describe()
        self.assertEqual([found["pid"] for found in described], pids)
        self.assertEqual(
            [found["generation"] for found in described], WORKERS.generations
        )
        self.assertNotEqual(
            worker_seed(SEED, 1, NUM_ENVS, WORKERS.generations[1]),
            worker_seed(SEED, 1, NUM_ENVS, 0),
        )


class HungWorkerTest(tf.test.TestCase):
    # Last in the module: it leaves the workers killed.
    def test_a_hung_worker_is_an_error_naming_it_not_a_hang(self):
        weights = _learner_weights(3)
        WORKERS.describe()
        generations = np.array(WORKERS.generations)
        timeout = WORKERS.worker_timeout_s
        WORKERS.worker_timeout_s = 2.0
        open(HANG_FILE, "w").close()
        start = time.monotonic()
        try:
            # Both hang; the first past its deadline is named, and the
            # other is stopped too.
            with self.assertRaisesRegex(
                WorkerTimeoutError,
                r"Rollout worker 0 \(host .+, pid \d+\)(, 1 \(host .+, pid "
                r"\d+\))? returned no rollout within worker_timeout_s=2.0",
            ):
                WORKERS.collect(weights, version=0)
            self.assertAllEqual(WORKERS.generations, generations + 1)
        finally:
            os.remove(HANG_FILE)
            WORKERS.worker_timeout_s = timeout
        self.assertLess(time.monotonic() - start, 30.0)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

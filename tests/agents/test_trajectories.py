"""Tests for keras_gae.agents.trajectories."""

import collections

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.drivers import dynamic_step_driver
from tf_agents.policies import tf_policy
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory as trajectory_lib

from keras_gae.agents import make_tf_environment
from keras_gae.agents import trajectory_to_rollout_batch
from keras_gae.ops import generalized_advantage_estimation
from tests.agents.scripted_env import SCRIPTED_ENV_ID
from tests.agents.scripted_env import episode_length
from tests.agents.scripted_env import episode_terminates
from tests.agents.scripted_env import scripted_reward

FIRST, MID, LAST = (
    int(ts.StepType.FIRST),
    int(ts.StepType.MID),
    int(ts.StepType.LAST),
)
GAMMA = 0.9
LAMBDA = 0.8


def value_of(episode, step):
    """The scripted critic: V(obs) for obs = (episode, step)."""
    return 1.0 + 0.5 * step - 0.25 * episode


def log_prob_of(episode, step):
    return -0.125 * (step + 1.0) - 0.0625 * episode


class ScriptedValuePolicy(tf_policy.TFPolicy):
    """Acts by the step index and records a scripted value and log-prob."""

    def __init__(self, time_step_spec, action_spec):
        info_spec = {
            "log_prob": tf.TensorSpec([], tf.float32),
            "value": tf.TensorSpec([], tf.float32),
        }
        super().__init__(time_step_spec, action_spec, info_spec=info_spec)

    def _action(self, time_step, policy_state, seed):
        episode = time_step.observation[:, 0]
        step = time_step.observation[:, 1]
        info = {
            "log_prob": log_prob_of(episode, step),
            "value": value_of(episode, step),
        }
        action = tf.math.floormod(tf.cast(step, tf.int64), 3)
        return policy_step.PolicyStep(action, policy_state, info)

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError("The scripted policy is deterministic.")


def collect(num_envs, steps_per_env):
    """Collects from seeded scripted envs with disjoint episode ids.

    Returns:
      (replay buffer holding [B, T] items, bootstrap_value [B]), with
      T >= steps_per_env.
    """
    tf_env = make_tf_environment(
        SCRIPTED_ENV_ID,
        num_envs=num_envs,
        seed=0,
        env_kwargs={"episode_stride": num_envs},
    )
    policy = ScriptedValuePolicy(tf_env.time_step_spec(), tf_env.action_spec())
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        policy.trajectory_spec, batch_size=num_envs, max_length=64
    )
    # The driver counts non-boundary steps only, so T varies a little.
    driver = dynamic_step_driver.DynamicStepDriver(
        tf_env,
        policy,
        observers=[buffer.add_batch],
        num_steps=num_envs * steps_per_env,
    )
    final_time_step, _ = driver.run()
    bootstrap_value = policy.action(final_time_step).info["value"]
    return buffer, bootstrap_value


def reference_advantages(present, gamma, lambda_):
    """Per-episode float64 GAE from the script, keyed by (episode, step).

    Args:
      present: dict episode -> steps of that episode in the batch.

    The reward of step k is k + 1 and V(s) is `value_of`; an episode's last
    step bootstraps from V(final observation) when truncated and from 0
    when terminated; a step cut by the end of the batch bootstraps from
    V of the next observation and has no following advantage.
    """
    advantages = {}
    for episode, steps in present.items():
        steps = sorted(steps)
        assert steps == list(range(steps[0], steps[-1] + 1)), steps
        length = episode_length(episode)
        following = 0.0
        for step in reversed(steps):
            if step == length - 1:
                next_value = (
                    0.0
                    if episode_terminates(episode)
                    else value_of(episode, length)
                )
                following = 0.0
            else:
                next_value = value_of(episode, step + 1)
            delta = (
                scripted_reward(step)
                + gamma * next_value
                - value_of(episode, step)
            )
            following = delta + gamma * lambda_ * following
            advantages[(episode, step)] = following
    return advantages


def rows_by_step(batch):
    """(env, row) of every valid row keyed by (episode, step)."""
    observation = batch["observation"].numpy().astype(np.int64)
    mask = batch["mask"].numpy()
    rows = {}
    for env, row in zip(*np.nonzero(mask)):
        episode, step = observation[env, row]
        rows[(int(episode), int(step))] = (env, row)
    return rows


def advantages_of(num_envs, steps_per_env):
    buffer, bootstrap_value = collect(num_envs, steps_per_env)
    batch = trajectory_to_rollout_batch(buffer.gather_all(), bootstrap_value)
    outputs = generalized_advantage_estimation(
        batch["reward"],
        batch["value"],
        batch["bootstrap_value"],
        gamma=GAMMA,
        lambda_=LAMBDA,
        terminated=batch["terminated"],
        truncated=batch["truncated"],
        mask=batch["mask"],
        time_major=False,
    )
    return batch, outputs.advantages.numpy()


def docstring_example():
    """The B=2, T=6 example of the module docstring, with numbers.

    Observations are (episode, step) with episodes a=0, b=1 (env 0) and
    c=2, d=3 (env 1).
    """
    step_type = [
        [FIRST, MID, MID, LAST, FIRST, MID],
        [FIRST, MID, LAST, FIRST, MID, MID],
    ]
    next_step_type = [
        [MID, MID, LAST, FIRST, MID, MID],
        [MID, LAST, FIRST, MID, MID, LAST],
    ]
    observation = [
        [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1]],
        [[2, 0], [2, 1], [2, 2], [3, 0], [3, 1], [3, 2]],
    ]
    reward = [[1, 1, 1, 0, 1, 1], [1, 2, 0, 1, 1, 1]]
    discount = [[1, 1, 0, 1, 1, 1], [1, 1, 1, 1, 1, 0]]
    # V(a3) = 50 and V(d3) = 100 must never be used.
    value = [[0, 0, 0, 50, 0, 0], [0, 0, 4, 0, 0, 0]]
    log_prob = [[-1.0] * 6, [-2.0] * 6]
    trajectory = trajectory_lib.Trajectory(
        step_type=tf.constant(step_type, tf.int32),
        observation=tf.constant(observation, tf.float32),
        action=tf.zeros([2, 6], tf.int64),
        policy_info={
            "log_prob": tf.constant(log_prob, tf.float32),
            "value": tf.constant(value, tf.float32),
        },
        next_step_type=tf.constant(next_step_type, tf.int32),
        reward=tf.constant(reward, tf.float32),
        discount=tf.constant(discount, tf.float32),
    )
    bootstrap_value = tf.constant([2.0, 100.0])
    return trajectory, bootstrap_value


class DocstringExampleTest(tf.test.TestCase, parameterized.TestCase):
    def test_fields(self):
        trajectory, bootstrap_value = docstring_example()
        batch = trajectory_to_rollout_batch(trajectory, bootstrap_value)
        self.assertCountEqual(
            batch,
            [
                "observation",
                "action",
                "reward",
                "terminated",
                "truncated",
                "log_prob",
                "value",
                "bootstrap_value",
                "mask",
            ],
        )
        false, true = False, True
        self.assertAllEqual(
            batch["terminated"],
            [
                [false, false, true, false, false, false],
                [false, false, false, false, false, true],
            ],
        )
        self.assertAllEqual(
            batch["truncated"],
            [
                [false, false, false, false, false, false],
                [false, true, false, false, false, false],
            ],
        )
        self.assertAllEqual(
            batch["mask"],
            [
                [true, true, true, false, true, true],
                [true, true, false, true, true, true],
            ],
        )
        for key in ("terminated", "truncated", "mask"):
            self.assertEqual(batch[key].dtype, tf.bool)
        self.assertAllEqual(batch["value"], trajectory.policy_info["value"])
        self.assertAllEqual(
            batch["log_prob"], trajectory.policy_info["log_prob"]
        )
        self.assertAllEqual(batch["reward"], trajectory.reward)
        self.assertAllEqual(batch["observation"], trajectory.observation)
        self.assertAllEqual(batch["action"], trajectory.action)
        self.assertAllEqual(batch["bootstrap_value"], bootstrap_value)

    def test_hand_computed_advantages(self):
        # gamma = 0.5, lambda = 1, every value 0 except V(c2) = 4 (the
        # truncation bootstrap), V(b2) = 2 (bootstrap_value[0]) and the
        # unused V(a3) = 50, V(d3) = 100:
        #   a (terminated, r = 1, 1, 1): 1 + .5 (1 + .5 * 1) = 1.75, 1.5, 1
        #   b (cut by the batch end): A_b1 = 1 + .5 * 2 = 2, A_b0 = 1 + .5 * 2
        #   c (truncated, r = 1, 2): A_c1 = 2 + .5 * 4 = 4, A_c0 = 1 + .5 * 4
        #   d (terminated): 1.75, 1.5, 1
        trajectory, bootstrap_value = docstring_example()
        batch = trajectory_to_rollout_batch(trajectory, bootstrap_value)
        outputs = generalized_advantage_estimation(
            batch["reward"],
            batch["value"],
            batch["bootstrap_value"],
            gamma=0.5,
            lambda_=1.0,
            terminated=batch["terminated"],
            truncated=batch["truncated"],
            mask=batch["mask"],
            time_major=False,
        )
        self.assertAllClose(
            outputs.advantages,
            [[1.75, 1.5, 1.0, 0.0, 2.0, 2.0], [3.0, 4.0, 0.0, 1.75, 1.5, 1.0]],
        )

    def test_in_tf_function_with_unknown_time(self):
        trajectory, bootstrap_value = docstring_example()

        @tf.function(
            input_signature=[
                tf.nest.map_structure(
                    lambda t: (
                        tf.TensorSpec([None, None], t.dtype)
                        if t.shape.rank == 2
                        else tf.TensorSpec([None, None, None], t.dtype)
                    ),
                    trajectory,
                ),
                tf.TensorSpec([None], tf.float32),
            ]
        )
        def convert(trajectory, bootstrap_value):
            batch = trajectory_to_rollout_batch(trajectory, bootstrap_value)
            return batch["terminated"], batch["truncated"], batch["mask"]

        eager = trajectory_to_rollout_batch(trajectory, bootstrap_value)
        graph = convert(trajectory, bootstrap_value)
        for key, value in zip(("terminated", "truncated", "mask"), graph):
            self.assertAllEqual(value, eager[key])

    def test_numpy_trajectory(self):
        trajectory, bootstrap_value = docstring_example()
        as_numpy = tf.nest.map_structure(lambda t: t.numpy(), trajectory)
        batch = trajectory_to_rollout_batch(as_numpy, bootstrap_value.numpy())
        expected = trajectory_to_rollout_batch(trajectory, bootstrap_value)
        tf.nest.map_structure(self.assertAllEqual, batch, expected)


class CollectedTrajectoryTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(1, 4)
    def test_advantages_match_per_episode_reference(self, num_envs):
        batch, advantages = advantages_of(
            num_envs, steps_per_env=24 // num_envs
        )
        observation = batch["observation"].numpy().astype(np.int64)
        mask = batch["mask"].numpy()
        present = collections.defaultdict(list)
        for env in range(num_envs):
            # Env `env` plays episodes env, env + B, env + 2B, ... in turn.
            episodes = sorted(set(observation[env, :, 0]))
            self.assertEqual(
                episodes, list(range(env, episodes[-1] + 1, num_envs))
            )
            for row in range(observation.shape[1]):
                episode, step = observation[env, row]
                if mask[env, row]:
                    present[int(episode)].append(int(step))
                else:
                    # A boundary row holds the episode's final observation.
                    self.assertEqual(step, episode_length(int(episode)))
                    self.assertEqual(advantages[env, row], 0.0)
        self.assertFalse(mask.all())
        # Both kinds of episode end occur and are told apart.
        self.assertTrue(batch["terminated"].numpy().any())
        self.assertTrue(batch["truncated"].numpy().any())
        reference = reference_advantages(present, GAMMA, LAMBDA)
        rows = rows_by_step(batch)
        self.assertCountEqual(rows, reference)
        for key, expected in reference.items():
            self.assertAllClose(
                advantages[rows[key]], expected, atol=1e-5, msg=str(key)
            )

    def test_one_env_and_four_envs_agree_per_episode(self):
        results = []
        for num_envs, steps_per_env in ((1, 24), (4, 8)):
            batch, advantages = advantages_of(num_envs, steps_per_env)
            by_episode = collections.defaultdict(dict)
            for (episode, step), row in rows_by_step(batch).items():
                by_episode[episode][step] = advantages[row]
            # Keep the episodes whose every step is in the batch.
            results.append(
                {
                    episode: [steps[k] for k in sorted(steps)]
                    for episode, steps in by_episode.items()
                    if sorted(steps) == list(range(episode_length(episode)))
                }
            )
        shared = sorted(set(results[0]) & set(results[1]))
        self.assertGreaterEqual(len(shared), 4)
        for episode in shared:
            self.assertAllClose(
                results[0][episode], results[1][episode], msg=str(episode)
            )

    def test_deterministic_dataset_gives_the_same_batch(self):
        buffer, bootstrap_value = collect(2, steps_per_env=6)
        gathered = buffer.gather_all()
        num_steps = gathered.step_type.shape[1]
        dataset = buffer.as_dataset(
            sample_batch_size=2,
            num_steps=num_steps,
            single_deterministic_pass=True,
        )
        ((from_dataset, _),) = list(dataset)
        batch = trajectory_to_rollout_batch(from_dataset, bootstrap_value)
        expected = trajectory_to_rollout_batch(gathered, bootstrap_value)
        tf.nest.map_structure(self.assertAllEqual, batch, expected)

    def test_truncation_bootstraps_and_termination_does_not(self):
        # Episode 0 terminates after 2 steps, episode 1 is truncated after
        # 3 steps: compare their last advantages with the one-step formula.
        batch, advantages = advantages_of(1, steps_per_env=8)
        rows = rows_by_step(batch)
        terminated_last = advantages[rows[(0, 1)]]
        truncated_last = advantages[rows[(1, 2)]]
        self.assertAllClose(
            terminated_last, scripted_reward(1) - value_of(0, 1)
        )
        self.assertAllClose(
            truncated_last,
            scripted_reward(2) + GAMMA * value_of(1, 3) - value_of(1, 2),
        )
        self.assertTrue(batch["terminated"].numpy()[rows[(0, 1)]])
        self.assertTrue(batch["truncated"].numpy()[rows[(1, 2)]])


class ErrorTest(tf.test.TestCase, parameterized.TestCase):
    def test_not_a_trajectory(self):
        _, bootstrap_value = docstring_example()
        with self.assertRaisesRegex(TypeError, "Received: trajectory="):
            trajectory_to_rollout_batch({"reward": 1.0}, bootstrap_value)

    def test_policy_info_not_a_dict(self):
        trajectory, bootstrap_value = docstring_example()
        trajectory = trajectory._replace(policy_info=())
        with self.assertRaisesRegex(TypeError, "policy_info"):
            trajectory_to_rollout_batch(trajectory, bootstrap_value)

    @parameterized.parameters("value_key", "log_prob_key")
    def test_missing_policy_info_key(self, argument):
        trajectory, bootstrap_value = docstring_example()
        with self.assertRaisesRegex(
            ValueError, f"Received: {argument}='missing'"
        ):
            trajectory_to_rollout_batch(
                trajectory, bootstrap_value, **{argument: "missing"}
            )

    def test_wrong_rank(self):
        trajectory, bootstrap_value = docstring_example()
        trajectory = trajectory._replace(
            reward=trajectory.reward[..., tf.newaxis]
        )
        with self.assertRaisesRegex(ValueError, "trajectory.reward.*rank 2"):
            trajectory_to_rollout_batch(trajectory, bootstrap_value)

    def test_mismatched_shape(self):
        trajectory, bootstrap_value = docstring_example()
        info = dict(trajectory.policy_info)
        info["value"] = info["value"][:, :5]
        trajectory = trajectory._replace(policy_info=info)
        with self.assertRaisesRegex(ValueError, "'value'.*same shape"):
            trajectory_to_rollout_batch(trajectory, bootstrap_value)

    def test_integer_reward(self):
        trajectory, bootstrap_value = docstring_example()
        trajectory = trajectory._replace(
            reward=tf.cast(trajectory.reward, tf.int32)
        )
        with self.assertRaisesRegex(TypeError, "trajectory.reward"):
            trajectory_to_rollout_batch(trajectory, bootstrap_value)

    @parameterized.parameters([[1.0, 2.0, 3.0]], [[[1.0], [2.0]]])
    def test_bootstrap_value_shape(self, bootstrap_value):
        trajectory, _ = docstring_example()
        with self.assertRaisesRegex(ValueError, "Received: bootstrap_value="):
            trajectory_to_rollout_batch(trajectory, bootstrap_value)

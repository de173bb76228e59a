"""Critic-free sequence estimators and loss aggregation against NumPy."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.lm import loss_aggregation


def ragged_batch(seed=0, groups=3, n=4, length=7):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=[groups * n, length])
    mask = np.zeros([groups * n, length], bool)
    for b in range(groups * n):
        start = rng.integers(0, 3)
        mask[b, start : start + rng.integers(1, length - start + 1)] = True
    rewards[~mask] = np.nan  # never read
    # One group whose rows all return the same.
    rewards[:n] = np.where(mask[:n], 0.0, np.nan)
    for b in range(n):
        last = np.flatnonzero(mask[b])[-1]
        rewards[b, last] = 1.0
    return rewards, mask


def numpy_returns_to_go(rewards, mask, gamma):
    """G_t = sum_{s >= t} gamma^(s - t) * mask_s * r_s, by a reverse loop."""
    safe = np.where(mask, rewards, 0.0)
    returns = np.zeros_like(safe)
    for b in range(safe.shape[0]):
        running = 0.0
        for t in reversed(range(safe.shape[1])):
            running = safe[b, t] + gamma * running
            returns[b, t] = running
    return returns


def row_returns(rewards, mask):
    return np.where(mask, rewards, 0.0).sum(axis=1)


class EstimatorTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("group", "batch", "none")
    def test_grpo_matches_numpy(self, scale_rewards):
        rewards, mask = ragged_batch()
        returns = row_returns(rewards, mask).reshape(3, 4)
        centred = returns - returns.mean(axis=1, keepdims=True)
        if scale_rewards == "group":
            centred = centred / (
                returns.std(axis=1, ddof=1, keepdims=True) + 1e-6
            )
        elif scale_rewards == "batch":  # TRL: torch.std of all rewards
            centred = centred / (np.std(returns, ddof=1) + 1e-6)
        expected = np.where(mask, centred.reshape(-1, 1), 0.0)
        out = lm.grpo_advantages(
            rewards, mask, group_size=4, scale_rewards=scale_rewards
        )
        self.assertAllClose(out, expected, atol=1e-5)
        self.assertAllEqual(out[:4], np.zeros([4, 7]))  # equal rewards
        grouped = lm.grpo_advantages(
            rewards.reshape(3, 4, 7),
            mask.reshape(3, 4, 7),
            scale_rewards=scale_rewards,
        )
        self.assertAllClose(grouped, expected.reshape(3, 4, 7), atol=1e-5)

    def test_rloo_matches_numpy(self):
        rewards, mask = ragged_batch(seed=1)
        returns = row_returns(rewards, mask).reshape(3, 4)
        baseline = np.array(
            [[np.delete(g, i).mean() for i in range(4)] for g in returns]
        )
        expected = np.where(mask, (returns - baseline).reshape(-1, 1), 0.0)
        out = lm.rloo_advantages(rewards, mask, group_size=4)
        self.assertAllClose(out, expected, atol=1e-5)
        self.assertAllEqual(out[:4], np.zeros([4, 7]))

    @parameterized.parameters(1.0, 0.9)
    def test_reinforce_pp_matches_numpy(self, gamma):
        rewards, mask = ragged_batch(seed=2)
        returns = numpy_returns_to_go(rewards, mask, gamma)
        valid = returns[mask]
        expected = np.where(
            mask, (returns - valid.mean()) / np.sqrt(valid.var() + 1e-8), 0.0
        )
        out = lm.reinforce_pp_advantages(rewards, mask, gamma=gamma)
        self.assertAllClose(out, expected, atol=1e-5)

    def test_errors_name_the_argument(self):
        rewards, mask = ragged_batch()
        with self.assertRaisesRegex(ValueError, "group_size"):
            lm.grpo_advantages(rewards, mask, group_size=5)
        with self.assertRaisesRegex(ValueError, "group_size"):
            lm.rloo_advantages(rewards, mask, group_size=1)
        with self.assertRaisesRegex(ValueError, "estimator"):
            lm.advantages.critic_free_targets(rewards, mask, estimator="ppo")

    @parameterized.parameters(1.0, 0.9, 0.0)
    def test_reward_to_go_matches_numpy(self, gamma):
        rewards, mask = ragged_batch(seed=4)
        mask[2, 3] = False  # A gap inside a row adds nothing, cuts nothing.
        mask[5, :] = False
        expected = numpy_returns_to_go(rewards, mask, gamma)
        out = lm.reward_to_go(rewards, mask, gamma=gamma)
        self.assertAllClose(out, np.where(mask, expected, 0.0), atol=1e-5)
        grouped = lm.reward_to_go(
            rewards.reshape(3, 4, 7), mask.reshape(3, 4, 7), gamma=gamma
        )
        self.assertAllClose(grouped, out.numpy().reshape(3, 4, 7))

    @parameterized.parameters(
        ("grpo", dict(group_size=4, scale_rewards="batch")),
        ("dr_grpo", dict(group_size=4)),
        ("rloo", dict(group_size=4)),
        ("reinforce_pp", dict(gamma=0.9)),
    )
    def test_critic_free_targets_are_the_estimators(self, estimator, kwargs):
        rewards, mask = ragged_batch(seed=5)
        advantages, returns = lm.advantages.critic_free_targets(
            rewards, mask, estimator=estimator, **kwargs
        )
        gamma = kwargs.pop("gamma", 1.0)
        if estimator == "reinforce_pp":
            expected = lm.reinforce_pp_advantages(rewards, mask, gamma=gamma)
        elif estimator == "rloo":
            expected = lm.rloo_advantages(rewards, mask, **kwargs)
        else:
            if estimator == "dr_grpo":
                kwargs["scale_rewards"] = "none"
            expected = lm.grpo_advantages(rewards, mask, **kwargs)
        self.assertAllEqual(advantages, expected)
        self.assertAllEqual(
            returns, lm.reward_to_go(rewards, mask, gamma=gamma)
        )


class LossAggregationTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        "token_mean", "sequence_sum", "sequence_mean", "dr_grpo"
    )
    def test_modes_match_numpy(self, mode):
        _, mask = ragged_batch(seed=3)
        mask[5] = False  # a row without valid tokens does not count
        losses = np.random.default_rng(4).normal(size=mask.shape)
        rows = [losses[b][mask[b]] for b in range(len(mask)) if mask[b].any()]
        # Dr. GRPO: every row of the batch (the empty one too) times the
        # constant maximum completion length.
        expected = {
            "token_mean": np.concatenate(rows).mean(),
            "sequence_sum": np.mean([r.sum() for r in rows]),
            "sequence_mean": np.mean([r.mean() for r in rows]),
            "dr_grpo": np.concatenate(rows).sum() / (len(mask) * 9),
        }[mode]
        length = 9 if mode == "dr_grpo" else None
        self.assertAllClose(
            lm.aggregate_loss(losses, mask, mode, length), expected, atol=1e-5
        )
        scale = loss_aggregation.advantage_scale(mask, mode, length)
        self.assertAllClose(
            np.mean((np.asarray(scale) * losses)[mask]), expected, atol=1e-5
        )


class InputChecksTest(tf.test.TestCase, parameterized.TestCase):
    """Issue 20: shapes and group sizes of the estimators."""

    @parameterized.parameters(
        lm.grpo_advantages, lm.rloo_advantages, lm.reinforce_pp_advantages
    )
    def test_grouped_mask_of_another_shape(self, estimator):
        rewards, mask = ragged_batch(groups=2, n=2)
        grouped = rewards.reshape(2, 2, -1)
        with self.assertRaisesRegex(
            ValueError, "`mask` must have the same shape as `rewards`"
        ):
            estimator(grouped, mask.reshape(2, 2, -1)[..., :-1])

    @parameterized.parameters(
        (0, ValueError), (5, ValueError), (2.0, TypeError)
    )
    def test_reinforce_pp_group_size(self, group_size, error):
        rewards, mask = ragged_batch()  # 12 rows
        with self.assertRaisesRegex(error, "group_size"):
            lm.reinforce_pp_advantages(rewards, mask, group_size=group_size)

    def test_loss_aggregation_mask_of_another_shape(self):
        _, mask = ragged_batch()
        losses = np.zeros(mask.shape)
        with self.assertRaisesRegex(
            ValueError, "`mask` must have the same shape as `per_token`"
        ):
            lm.aggregate_loss(losses, mask[:, :-1], "token_mean")
        with self.assertRaisesRegex(ValueError, "`mask` must have rank 2"):
            lm.aggregate_loss(losses[0], mask[0], "token_mean")


class NonFiniteRewardsTest(tf.test.TestCase, parameterized.TestCase):
    """Issue 20: a NaN or Inf reward on a valid token is refused by name
    (on invalid tokens it is never read: see `ragged_batch`)."""

    @parameterized.parameters(
        (lm.grpo_advantages, dict(group_size=4)),
        (lm.rloo_advantages, dict(group_size=4)),
        (lm.reinforce_pp_advantages, {}),
        (lm.reward_to_go, {}),
    )
    def test_at_a_valid_token(self, estimator, kwargs):
        rewards, mask = ragged_batch()
        row = 6
        rewards[row, np.flatnonzero(mask[row])[0]] = np.inf
        with self.assertRaisesRegex(
            ValueError, rf"`rewards` must be finite.*rows \[{row}\]"
        ):
            estimator(rewards, mask, **kwargs)


class LossAggregationNonFiniteTest(tf.test.TestCase):
    def test_nan_loss_at_a_valid_token(self):
        _, mask = ragged_batch()
        losses = np.where(mask, 1.0, np.nan)
        self.assertAllClose(lm.aggregate_loss(losses, mask, "token_mean"), 1.0)
        losses[7, np.flatnonzero(mask[7])[-1]] = np.nan
        with self.assertRaisesRegex(
            ValueError, r"`per_token` must be finite.*rows \[7\]"
        ):
            lm.aggregate_loss(losses, mask, "sequence_mean")

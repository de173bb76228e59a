"""Tests of token-level rollout batches against a per-sequence NumPy loop."""

from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.losses import AdaptiveKLController
from tests import distribute_utils

EOS = 2
PAD = 0


def reference_sequence(
    tokens,
    start,
    log_probs,
    ref_log_probs,
    values,
    score,
    bootstrap,
    *,
    kl_coef,
    gamma,
    lambda_,
    pad_id=None,
):
    """One row, float64, token by token: (mask, rewards, advantages, kl)."""
    length = len(tokens)
    mask = np.zeros(length, bool)
    last = None
    for t in range(start, length):
        if pad_id is not None and tokens[t] == pad_id and pad_id != EOS:
            break
        mask[t] = True
        last = t
        if tokens[t] == EOS:
            break
    kl = np.zeros(length)
    rewards = np.zeros(length)
    for t in range(length):
        if mask[t]:
            kl[t] = float(log_probs[t]) - float(ref_log_probs[t])
            rewards[t] = -kl_coef * kl[t]
    advantages = np.zeros(length)
    if last is None:
        return mask, rewards, advantages, kl
    rewards[last] += score
    # After EOS the state is terminal; at the generation limit it is not.
    next_value = 0.0 if tokens[last] == EOS else float(bootstrap)
    following = 0.0
    for t in range(last, start - 1, -1):
        delta = rewards[t] + gamma * next_value - float(values[t])
        following = delta + gamma * lambda_ * following
        advantages[t] = following
        next_value = float(values[t])
    return mask, rewards, advantages, kl


def make_batch(seed=0):
    """Rows: EOS mid-way, truncated at L, EOS at the last position,
    left-padded prompt, and a right-padded row; NaN wherever invalid."""
    rng = np.random.default_rng(seed)
    length = 9
    tokens = np.array(
        [
            [5, 6, 7, 8, EOS, 9, 9, 9, 9],
            [5, 6, 7, 8, 4, 3, 4, 3, 4],
            [5, 6, 7, 3, 4, 3, 4, 3, EOS],
            [PAD, 5, 7, 4, 3, EOS, 3, 3, 3],
            [5, 6, 7, 4, 4, PAD, PAD, PAD, PAD],
        ],
        np.int32,
    )
    batch = tokens.shape[0]
    log_probs = rng.normal(size=(batch, length)) - 1.0
    ref_log_probs = rng.normal(size=(batch, length)) - 1.0
    values = rng.normal(size=(batch, length))
    scores = rng.normal(size=batch)
    bootstrap = rng.normal(size=batch)
    return tokens, 3, log_probs, ref_log_probs, values, scores, bootstrap


def rollout_of_make_batch(**arguments):
    """`lm.sequence_rollout_batch` of `make_batch()`'s rows, `eos_id=EOS`,
    `kl_coef=0.1` and their bootstrap values; `arguments` replace or add
    to these."""
    tokens, start, lp, ref, values, scores, boot = make_batch()
    defaults = dict(
        tokens=tokens,
        prompt_length=start,
        log_probs=lp,
        ref_log_probs=ref,
        values=values,
        scores=scores,
        eos_id=EOS,
        kl_coef=0.1,
        bootstrap_value=boot,
    )
    return lm.sequence_rollout_batch(**dict(defaults, **arguments))


def poison(array, mask):
    return np.where(mask, array, np.nan)


class ResponseMaskTest(tf.test.TestCase, parameterized.TestCase):
    def test_hand_computed_fixture(self):
        tokens = [[1, 1, EOS, 4, EOS, 4], [PAD, 1, 4, 4, 4, 4]]
        mask = lm.response_mask(tokens, [2, 2], EOS)
        self.assertAllEqual(mask, [[0, 0, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]])

    def test_pad_ends_the_response(self):
        tokens = [[1, 4, 4, PAD, 4], [1, 4, EOS, PAD, PAD]]
        mask = lm.response_mask(tokens, 1, EOS, pad_id=PAD)
        self.assertAllEqual(mask, [[0, 1, 1, 0, 0], [0, 1, 1, 0, 0]])

    def test_per_row_prompt_length(self):
        tokens = [[1, 1, 1, 4, EOS], [1, 4, 4, 4, 4]]
        mask = lm.response_mask(tokens, tf.constant([3, 1]), EOS)
        self.assertAllEqual(mask, [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]])

    def test_errors_name_the_argument(self):
        with self.assertRaisesRegex(TypeError, "tokens"):
            lm.response_mask([[1.0, 2.0]], 1, EOS)
        with self.assertRaisesRegex(ValueError, "prompt_length"):
            lm.response_mask([[1, 2]], [1, 1, 1], EOS)
        with self.assertRaisesRegex(TypeError, "eos_id"):
            lm.response_mask([[1, 2]], 1, 2.0)

    def test_prompt_longer_than_the_row_is_refused(self):
        # It used to give an all-False mask: nothing to train on, silently.
        tokens = [[1, 4, 4, 4], [1, 4, EOS, 4]]
        with self.assertRaisesRegex(ValueError, "prompt_length.*L=4"):
            lm.response_mask(tokens, 5, EOS)
        with self.assertRaisesRegex(ValueError, "prompt_length.*L=4"):
            lm.response_mask(tokens, [2, 9], EOS)
        # A prompt filling the whole row leaves an empty response.
        self.assertAllEqual(lm.response_mask(tokens, 4, EOS), [[0] * 4] * 2)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
        def dynamic(prompt_length):
            return lm.response_mask(tokens, prompt_length, EOS)

        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "prompt_length"
        ):
            dynamic(tf.constant([2, 9]))
        self.assertAllEqual(dynamic(tf.constant([2, 1]))[1], [0, 1, 1, 0])


class SequenceRolloutBatchTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        (1.0, 0.95, 0.1, False), (0.9, 0.7, 0.0, False), (1.0, 0.9, 0.2, True)
    )
    def test_matches_per_sequence_reference(
        self, gamma, lambda_, kl_coef, per_row_prompt
    ):
        tokens, start, lp, ref, values, scores, boot = make_batch()
        if per_row_prompt:
            start = np.array([3, 2, 4, 3, 1], np.int32)
        starts = np.broadcast_to(start, [len(tokens)])
        expected = [
            reference_sequence(
                tokens[b],
                starts[b],
                lp[b],
                ref[b],
                values[b],
                scores[b],
                boot[b],
                kl_coef=kl_coef,
                gamma=gamma,
                lambda_=lambda_,
                pad_id=PAD,
            )
            for b in range(len(tokens))
        ]
        mask = np.stack([e[0] for e in expected])
        batch = lm.sequence_rollout_batch(
            tokens,
            start,
            poison(lp, mask).astype(np.float32),
            poison(ref, mask).astype(np.float32),
            poison(values, mask).astype(np.float32),
            scores.astype(np.float32),
            eos_id=EOS,
            kl_coef=kl_coef,
            bootstrap_value=boot.astype(np.float32),
            pad_id=PAD,
        )
        self.assertAllEqual(batch["mask"], mask)
        self.assertAllClose(
            batch["reward"], np.stack([e[1] for e in expected]), atol=1e-5
        )
        self.assertAllEqual(
            batch["terminated"],
            [
                [0, 0, 0, 0, 1, 0, 0, 0, 0],
                [0] * 9,
                [0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 1, 0, 0, 0],
                [0] * 9,
            ],
        )
        self.assertAllEqual(
            batch["truncated"],
            [
                [0] * 9,
                [0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0] * 9,
                [0] * 9,
                [0, 0, 0, 0, 1, 0, 0, 0, 0],
            ],
        )
        outputs = lm.sequence_advantages(batch, gamma=gamma, lambda_=lambda_)
        advantages = np.stack([e[2] for e in expected])
        self.assertAllClose(outputs.advantages, advantages, atol=1e-4)
        self.assertAllEqual(np.isfinite(outputs.returns), np.ones_like(mask))
        self.assertAllEqual(
            np.asarray(outputs.advantages)[~mask], np.zeros((~mask).sum())
        )

    def test_eos_does_not_bootstrap_and_truncation_does(self):
        tokens = np.array([[1, 4, EOS], [1, 4, 4]], np.int32)
        zeros = np.zeros((2, 3), np.float32)
        values = np.array([[0.0, 0.5, 0.25], [0.0, 0.5, 0.25]], np.float32)
        batch = lm.sequence_rollout_batch(
            tokens,
            1,
            zeros,
            zeros,
            values,
            np.array([1.0, 1.0], np.float32),
            eos_id=EOS,
            kl_coef=0.0,
            bootstrap_value=np.array([100.0, 10.0], np.float32),
        )
        advantages = lm.sequence_advantages(batch, gamma=1.0, lambda_=1.0)
        # Row 0: return 1 at every step (no bootstrap after EOS).
        # Row 1: return 1 + V(s_3) = 11.
        self.assertAllClose(
            advantages.advantages,
            [[0.0, 0.5, 0.75], [0.0, 10.5, 10.75]],
        )

    def test_masked_positions_do_not_affect_others(self):
        tokens, start, lp, ref, values, scores, boot = make_batch()
        mask = np.asarray(lm.response_mask(tokens, start, EOS, pad_id=PAD))
        rng = np.random.default_rng(7)

        def advantages(noise):
            batch = lm.sequence_rollout_batch(
                tokens,
                start,
                np.where(mask, lp, noise),
                np.where(mask, ref, noise),
                np.where(mask, values, noise),
                scores,
                eos_id=EOS,
                kl_coef=0.2,
                bootstrap_value=boot,
                pad_id=PAD,
            )
            return lm.sequence_advantages(batch).advantages

        first = advantages(rng.normal(size=mask.shape) * 100)
        second = advantages(rng.normal(size=mask.shape) * 100)
        self.assertAllClose(first, second)

    def test_missing_bootstrap_value_for_truncated_row_raises(self):
        tokens = np.array([[1, 4, 4]], np.int32)
        zeros = np.zeros((1, 3), np.float32)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "bootstrap_value"
        ):
            lm.sequence_rollout_batch(
                tokens,
                1,
                zeros,
                zeros,
                zeros,
                np.ones([1], np.float32),
                eos_id=EOS,
                kl_coef=0.1,
            )

    def test_values_shape_error_names_argument(self):
        tokens = np.array([[1, 4, EOS]], np.int32)
        zeros = np.zeros((1, 3), np.float32)
        with self.assertRaisesRegex(ValueError, "values"):
            lm.sequence_rollout_batch(
                tokens,
                1,
                zeros,
                zeros,
                np.zeros((1, 4), np.float32),
                np.ones([1], np.float32),
                eos_id=EOS,
                kl_coef=0.1,
            )

    def test_whiten_rewards_rescales_valid_rewards(self):
        tokens, start, lp, ref, values, scores, boot = make_batch()
        kwargs = dict(eos_id=EOS, kl_coef=0.1, bootstrap_value=boot, pad_id=PAD)
        args = (tokens, start, lp, ref, values, scores)
        plain = lm.sequence_rollout_batch(*args, **kwargs)
        whitened = lm.sequence_rollout_batch(
            *args, whiten_rewards=True, **kwargs
        )
        mask = np.asarray(plain["mask"])
        rewards = np.asarray(plain["reward"], np.float64)[mask]
        expected = (rewards - rewards.mean()) / np.sqrt(
            rewards.var() + 1e-8
        ) + rewards.mean()
        self.assertAllClose(
            np.asarray(whitened["reward"])[mask], expected, atol=1e-5
        )
        self.assertAllEqual(
            np.asarray(whitened["reward"])[~mask], np.zeros((~mask).sum())
        )


class TokenRewardsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("k1", "k2", "k3")
    def test_kl_shaping(self, estimator):
        log_probs = np.array([[-1.0, -2.0, -0.5, np.nan]])
        ref_log_probs = np.array([[-1.5, -1.0, -0.5, np.nan]])
        mask = np.array([[1, 1, 1, 0]], bool)
        rewards, kl = lm.token_rewards(
            np.array([3.0]),
            log_probs,
            ref_log_probs,
            mask,
            kl_coef=0.5,
            estimator=estimator,
        )
        log_r = ref_log_probs[0, :3] - log_probs[0, :3]
        expected_kl = {
            "k1": -log_r,
            "k2": 0.5 * log_r**2,
            "k3": np.expm1(log_r) - log_r,
        }[estimator]
        self.assertAllClose(kl[0, :3], expected_kl)
        self.assertAllClose(
            rewards[0], np.append(-0.5 * expected_kl + [0, 0, 3.0], 0.0)
        )
        self.assertEqual(float(kl[0, 3]), 0.0)

    def test_adaptive_kl_controller_update_with_measured_kl(self):
        tokens, start, lp, ref, values, scores, boot = make_batch()
        mask = lm.response_mask(tokens, start, EOS, pad_id=PAD)
        _, kl = lm.token_rewards(scores, lp, ref, mask, kl_coef=0.1)
        measured = lm.sequence_kl(kl, mask)
        valid = np.asarray(mask)
        expected_kl = np.where(valid, lp - ref, 0.0).sum(axis=1).mean()
        self.assertAllClose(measured, expected_kl)
        controller = AdaptiveKLController(0.1, target_kl=0.5, horizon=100.0)
        controller.update(measured, n_steps=len(tokens))
        error = np.clip(expected_kl / 0.5 - 1.0, -0.2, 0.2)
        self.assertAllClose(
            controller.value, 0.1 * (1 + error * len(tokens) / 100.0)
        )

    def test_negative_kl_coef_raises(self):
        with self.assertRaisesRegex(ValueError, "kl_coef"):
            lm.token_rewards([1.0], [[0.0]], [[0.0]], [[True]], kl_coef=-1.0)


class WhitenAdvantagesTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(True, False)
    def test_valid_tokens_only_and_nan_does_not_leak(self, shift_mean):
        rng = np.random.default_rng(3)
        x = rng.normal(size=(3, 6)) * 2 + 1
        mask = rng.random((3, 6)) < 0.6
        out = lm.whiten_advantages(
            np.where(mask, x, np.nan).astype(np.float32),
            mask,
            shift_mean=shift_mean,
        )
        valid = x[mask]
        expected = (valid - valid.mean()) / np.sqrt(valid.var() + 1e-8)
        if not shift_mean:
            expected += valid.mean()
        self.assertAllClose(np.asarray(out)[mask], expected, atol=1e-5)
        self.assertAllEqual(np.asarray(out)[~mask], np.zeros((~mask).sum()))

    def test_global_statistics_under_mirrored_strategy(self):
        strategy = distribute_utils.two_cpu_strategy()
        rng = np.random.default_rng(4)
        x = rng.normal(size=(4, 5)).astype(np.float32)
        mask = rng.random((4, 5)) < 0.7
        mask[:2] = False  # the first replica holds no valid token
        mask[2, 0] = True
        dataset = tf.data.Dataset.from_tensors((x, mask)).unbatch().batch(4)
        inputs = next(iter(strategy.experimental_distribute_dataset(dataset)))
        calls = []
        all_reduce = tf.distribute.ReplicaContext.all_reduce

        def counting_all_reduce(context, reduce_op, value, options=None):
            calls.append(reduce_op)
            return all_reduce(context, reduce_op, value, options)

        with mock.patch.object(
            tf.distribute.ReplicaContext, "all_reduce", counting_all_reduce
        ):
            per_replica = strategy.run(
                lambda a, m: lm.whiten_advantages(a, m), args=inputs
            )
        # Two passes per replica (sum and N, then the centred squares), one
        # all-reduce(SUM) each.
        self.assertLen(calls, 2 * strategy.num_replicas_in_sync)
        self.assertAllEqual(calls, [tf.distribute.ReduceOp.SUM] * len(calls))
        out = np.concatenate(
            [
                np.asarray(t)
                for t in strategy.experimental_local_results(per_replica)
            ]
        )
        valid = x[mask].astype(np.float64)
        expected = (valid - valid.mean()) / np.sqrt(valid.var() + 1e-8)
        self.assertAllClose(out[mask], expected, atol=1e-5)

    def test_errors_name_the_argument(self):
        with self.assertRaisesRegex(TypeError, "advantages"):
            lm.whiten_advantages([[1, 2]], [[True, True]])
        with self.assertRaisesRegex(ValueError, "mask"):
            lm.whiten_advantages([[1.0, 2.0]], [[True, True, True]])


class InputChecksTest(tf.test.TestCase, parameterized.TestCase):
    """Issue 20: scores, kl_coef, stop ids and masks of the reward path."""

    @parameterized.parameters(np.nan, np.inf, -np.inf)
    def test_non_finite_score_of_a_row_with_response_tokens(self, bad):
        scores = make_batch()[5].copy()
        scores[3] = bad
        with self.assertRaisesRegex(
            ValueError, r"`scores` must be finite.*rows \[3\]"
        ):
            rollout_of_make_batch(scores=scores, pad_id=PAD)
        mask = np.ones([2, 3], bool)
        mask[1] = False  # A row without response tokens gets no score.
        rewards, _ = lm.token_rewards(
            [1.0, bad], np.zeros([2, 3]), np.zeros([2, 3]), mask, kl_coef=0.1
        )
        self.assertAllEqual(rewards, [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
        with self.assertRaisesRegex(ValueError, r"`scores`.*rows \[0\]"):
            lm.token_rewards(
                [bad, 1.0],
                np.zeros([2, 3]),
                np.zeros([2, 3]),
                mask,
                kl_coef=0.1,
            )

    @parameterized.named_parameters(
        ("negative", tf.constant(-0.1), ValueError, ">= 0"),
        ("nan", tf.constant(np.nan), ValueError, ""),
        ("inf", tf.constant(np.inf), ValueError, "finite"),
        ("negative_variable", tf.Variable(-0.1), Exception, ">= 0"),
        ("vector", tf.constant([0.1, 0.2]), ValueError, "scalar"),
        ("none", None, TypeError, ""),
        ("string", "0.1", TypeError, ""),
    )
    def test_kl_coef_is_checked_whatever_its_type(self, kl_coef, error, why):
        with self.assertRaisesRegex(error, f"`kl_coef`.*{why}"):
            lm.token_rewards(
                [1.0], [[0.0, -1.0]], [[0.0, -2.0]], [[0, 1]], kl_coef=kl_coef
            )

    def test_stop_token_ids_must_be_a_sequence(self):
        with self.assertRaisesRegex(TypeError, "Received: stop_token_ids=4"):
            rollout_of_make_batch(stop_token_ids=4)

    @parameterized.named_parameters(
        ("narrower_mask", [2, 5], [2, 4], "`mask` must have the same shape"),
        ("broadcast_mask", [2, 5], [1, 5], "`mask` must have the same shape"),
        ("rank_1", [5], [5], "`kl` must have rank 2"),
        ("rank_3", [1, 2, 5], [1, 2, 5], "`kl` must have rank 2"),
    )
    def test_sequence_kl_shapes(self, kl_shape, mask_shape, message):
        with self.assertRaisesRegex(ValueError, message):
            lm.sequence_kl(np.zeros(kl_shape, np.float32), np.ones(mask_shape))


class NonFiniteDataTest(tf.test.TestCase, parameterized.TestCase):
    """Issue 20: NaN or Inf where a row's data is read is refused by name;
    invalid positions may hold anything (see `poison` above)."""

    def batch(self, **changes):
        _, _, lp, ref, values, _, boot = make_batch()
        arguments = dict(
            log_probs=lp, ref_log_probs=ref, values=values, bootstrap=boot
        )
        for name, (row, column, value) in changes.items():
            arguments[name] = arguments[name].copy()
            if column is None:
                arguments[name][row] = value
            else:
                arguments[name][row, column] = value
        arguments["bootstrap_value"] = arguments.pop("bootstrap")
        return rollout_of_make_batch(pad_id=PAD, **arguments)

    @parameterized.parameters(
        ("log_probs", (1, 4, np.nan)),
        ("ref_log_probs", (1, 4, -np.inf)),
        ("values", (2, 5, np.inf)),
        ("bootstrap_value", ("bootstrap", (1, None, np.nan))),
    )
    def test_at_a_valid_position(self, name, change):
        key, change = (name, change) if name != "bootstrap_value" else change
        with self.assertRaisesRegex(
            ValueError, rf"`{name}` must be finite.*rows \[[12]\]"
        ):
            self.batch(**{key: change})

    def test_where_it_is_not_read(self):
        # Row 0 ends with EOS: no bootstrap; position 6 is after its EOS.
        batch = self.batch(
            bootstrap=(0, None, np.nan),
            values=(0, 6, np.nan),
            log_probs=(0, 1, np.inf),
        )
        for value in batch.values():
            if value.dtype.is_floating:
                self.assertAllEqual(np.isfinite(value), np.ones(value.shape))

    def test_sequence_kl(self):
        kl = np.array([[0.1, np.nan, 0.2], [0.3, 0.0, 0.0]], np.float32)
        with self.assertRaisesRegex(
            ValueError, r"`kl` must be finite.*rows \[0\]"
        ):
            lm.sequence_kl(kl, np.ones([2, 3], bool))
        self.assertAllClose(
            lm.sequence_kl(kl, [[1, 0, 1], [1, 1, 1]]), (0.3 + 0.3) / 2
        )


class MoreInputChecksTest(tf.test.TestCase):
    def test_mask_of_another_shape_than_the_tokens(self):
        for shape in ([5, 8], [4, 9]):
            with self.assertRaisesRegex(
                ValueError, "`mask` must have the same shape as `tokens`"
            ):
                rollout_of_make_batch(mask=np.ones(shape, bool))

    def test_whiten_advantages_at_a_valid_position(self):
        x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0]])
        with self.assertRaisesRegex(
            ValueError, r"`advantages` must be finite.*rows \[0\]"
        ):
            lm.whiten_advantages(x, [[1, 1, 1], [0, 1, 1]])
        out = lm.whiten_advantages(x, [[1, 0, 1], [0, 1, 1]])
        self.assertAllEqual(np.isfinite(out), np.ones([2, 3], bool))

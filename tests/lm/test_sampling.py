"""Tests for keras_gae/lm/sampling.py: the top-k / top-p filter and the draw.

The reference is nucleus sampling as Holtzman et al. (2020) define it, in
float64 NumPy: rank the tokens by probability, ties by the lower token id
first, and keep the shortest prefix of that ranking whose mass reaches p.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.lm import sampling


def nucleus_reference(logits, top_p):
    """Kept-token mask of one row of logits (slow, float64)."""
    logits = np.asarray(logits, np.float64)
    finite = np.isfinite(logits)
    probs = np.zeros_like(logits)
    shifted = np.exp(logits[finite] - logits[finite].max())
    probs[finite] = shifted / shifted.sum()
    # A stable sort of -probs ranks equal probabilities by token id.
    order = np.argsort(-probs, kind="stable")
    kept = np.zeros(logits.shape, bool)
    total = 0.0
    for token in order:
        kept[token] = True
        total += probs[token]
        if total >= top_p:
            break
    return kept


def kept_mask(logits, top_k=None, top_p=None, jit_compile=False):
    filter_logits = tf.function(
        lambda x: sampling.filter_logits(x, top_k, top_p),
        jit_compile=jit_compile,
    )
    filtered = filter_logits(tf.constant(logits, tf.float32)).numpy()
    return np.isfinite(filtered)


class TopPTieTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(False, True)
    def test_two_equal_top_logits_keep_the_lower_token_id(self, jit_compile):
        # Two tokens of probability exactly 0.5 each: {token 0} alone
        # reaches p = 0.5, so exactly one token is kept, the lower id.
        logits = [[1.0, 1.0, -np.inf, -np.inf], [-np.inf, 2.0, -np.inf, 2.0]]
        kept = kept_mask(logits, top_p=0.5, jit_compile=jit_compile)
        self.assertAllEqual(
            kept,
            [[True, False, False, False], [False, True, False, False]],
        )
        for row, row_kept in zip(logits, kept):
            self.assertAllEqual(row_kept, nucleus_reference(row, 0.5))

    def test_tie_through_top_k(self):
        # top-k = 2 leaves two tied logits; top-p = 0.5 then keeps one.
        kept = kept_mask([[0.0, 3.0, -1.0, 3.0]], top_k=2, top_p=0.5)
        self.assertAllEqual(kept, [[False, True, False, False]])

    @parameterized.parameters(
        # Four equal logits (0.25 each, exact in float32): the lowest ids
        # until the mass reaches p.
        (0.25, [True, False, False, False]),
        (0.5, [True, True, False, False]),
        (0.5001, [True, True, True, False]),
        (0.75, [True, True, True, False]),
        (1.0, [True, True, True, True]),
    )
    def test_equal_logits_keep_the_shortest_prefix(self, top_p, expected):
        logits = [5.0, 5.0, 5.0, 5.0]
        self.assertAllEqual(kept_mask([logits], top_p=top_p)[0], expected)
        self.assertAllEqual(nucleus_reference(logits, top_p), expected)

    def test_mass_exactly_p_stops_the_nucleus(self):
        # Probabilities 0.5, 0.25, 0.125, 0.125 (exact in float32).
        logits = np.log([[0.125, 0.5, 0.125, 0.25]])
        for top_p, expected in [
            (0.5, [False, True, False, False]),
            (0.75, [False, True, False, True]),
            (0.875, [True, True, False, True]),
            (0.9, [True, True, True, True]),
        ]:
            self.assertAllEqual(kept_mask(logits, top_p=top_p)[0], expected)
            self.assertAllEqual(nucleus_reference(logits[0], top_p), expected)

    @parameterized.parameters(0.1, 0.3, 0.6, 0.9, 0.99)
    def test_random_logits_match_the_reference(self, top_p):
        rng = np.random.default_rng(7)
        # Rounded to a coarse grid so that some rows hold ties.
        logits = np.round(rng.normal(size=(16, 11)) * 2.0) / 2.0
        kept = kept_mask(logits, top_p=top_p)
        for row, row_kept in zip(logits, kept):
            self.assertAllEqual(row_kept, nucleus_reference(row, top_p))

    def test_the_draw_only_returns_the_kept_token(self):
        # sample_step draws from the filtered logits but reports the log-prob
        # of the unfiltered distribution.
        logits = tf.constant([[0.0, 0.0, -np.inf]] * 64)
        for seed in range(5):
            token, log_prob = sampling.sample_step(
                logits,
                tf.constant([seed, 1]),
                temperature=1.0,
                top_k=None,
                top_p=0.5,
            )
            self.assertAllEqual(token, np.zeros(64))
            self.assertAllClose(log_prob, np.full(64, np.log(0.5)))


def penalty_reference(logits, seen, penalty):
    """Hugging Face's repetition penalty on one row (float64)."""
    out = np.asarray(logits, np.float64).copy()
    for token in np.flatnonzero(seen):
        x = out[token]
        out[token] = x / penalty if x > 0 else x * penalty
    return out


def min_p_reference(logits, min_p):
    """Kept-token mask: probability >= min_p * the largest (float64)."""
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return probs >= min_p * probs.max()


class PenaltyAndMinPTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(1.3, 0.7)
    def test_repetition_penalty_matches_the_reference(self, penalty):
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(4, 11)) * 3
        seen = rng.random((4, 11)) < 0.4
        out = sampling.penalize_repetitions(
            tf.constant(logits, tf.float32), tf.constant(seen), penalty
        )
        expected = [
            penalty_reference(x, s, penalty) for x, s in zip(logits, seen)
        ]
        self.assertAllClose(out, expected, rtol=1e-6)

    @parameterized.parameters(0.05, 0.3, 0.9, 1.0)
    def test_min_p_matches_the_reference(self, min_p):
        rng = np.random.default_rng(1)
        logits = rng.normal(size=(6, 17)) * 2
        filtered = sampling.filter_logits(
            tf.constant(logits, tf.float32), None, None, min_p
        )
        expected = [min_p_reference(x, min_p) for x in logits]
        kept = np.isfinite(filtered.numpy())
        self.assertAllEqual(kept, expected)
        self.assertAllEqual(kept.sum(axis=1) >= 1, [True] * 6)

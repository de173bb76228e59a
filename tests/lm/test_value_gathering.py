"""Values `keras_gae.lm.generate` gathers from a value function run after
decoding: a separate critic (`CausalLMPolicy(..., critic=...)`) or a post-hoc
`value_head`, both read by `_decoding.gather_values`.

The reference runs the critic's formula in NumPy on each row alone, cut
after its last generated token: values[b, j] = V(prompt + new tokens < j),
values[b, N] = V(whole row) for a row that reached the length limit and 0
for a row that stopped (EOS terminates: no bootstrap), and 0 after a stop.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from tests.lm import keras_hub_models as khm

EOS = khm.VOCAB - 1
PROMPT = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 6], [0, 0, 0, 7, 8]])
N = 6


class CumulativeCritic(keras.Model):
    """V(prefix) = sum of a learned per-token weight over the prefix:
    causal, and different at every position of a row."""

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.weight_of_token = keras.layers.Embedding(
            khm.VOCAB,
            1,
            embeddings_initializer=keras.initializers.RandomNormal(seed=seed),
        )

    def call(self, tokens):
        return tf.cumsum(self.weight_of_token(tokens), axis=1)

    def reference(self, row):
        table = self.weight_of_token.embeddings.numpy()[:, 0]
        return np.cumsum(table[np.asarray(row)].astype(np.float64))


def expected_values(out, critic):
    tokens = np.asarray(out.tokens)
    mask = np.asarray(out.mask)
    expected = np.zeros((len(tokens), N + 1))
    for b, p in enumerate(np.asarray(out.prompt_length)):
        length = int(mask[b].sum())
        row_values = critic.reference(tokens[b, : p + length])
        for j in range(length):
            expected[b, j] = row_values[p + j - 1]
        if not out.done[b]:
            expected[b, N] = row_values[p + N - 1]
    return expected


class GatheredValuesTest(tf.test.TestCase, parameterized.TestCase):
    def generate(self, value_source):
        causal_lm = khm.gpt2(seed=0)
        critic = CumulativeCritic(seed=1)
        if value_source == "critic":
            model = lm.CausalLMPolicy(causal_lm, value_head=None, critic=critic)
            value_head = None
        else:
            model, value_head = causal_lm, critic
        out = lm.generate(
            model,
            PROMPT,
            pad_id=0,
            max_new_tokens=N,
            seed=0,
            eos_id=EOS,
            value_head=value_head,
            jit_compile=False,  # the graph kernels' random stream
        )
        # The setting under test: with this seed row 1 draws EOS as its
        # second new token, rows 0 and 2 run to the length limit.
        self.assertAllEqual(out.prompt_length, [3, 5, 2])
        self.assertAllEqual(out.done, [False, True, False])
        self.assertAllEqual(out.mask[1], [True, True] + [False] * 4)
        self.assertEqual(int(out.tokens[1, 5 + 1]), EOS)
        return out, critic

    @parameterized.parameters("critic", "value_head")
    def test_values_match_the_critic_on_each_row_alone(self, value_source):
        out, critic = self.generate(value_source)
        self.assertAllClose(out.values, expected_values(out, critic), atol=1e-5)

    @parameterized.parameters("critic", "value_head")
    def test_a_row_stopped_at_eos_does_not_bootstrap(self, value_source):
        out, critic = self.generate(value_source)
        self.assertEqual(float(out.values[1, N]), 0.0)
        self.assertAllEqual(out.values[1, 2:], np.zeros(N - 1))
        # Its value before the EOS token is the critic's, not 0.
        row = np.asarray(out.tokens[1, : 5 + 1])
        self.assertAllClose(
            out.values[1, 1], critic.reference(row)[-1], atol=1e-5
        )
        self.assertNotEqual(float(out.values[1, 1]), 0.0)

    @parameterized.parameters("critic", "value_head")
    def test_values_equal_a_full_uncached_pass(self, value_source):
        # The critic run once over the final packed rows, read at the column
        # before each new token and at the row's last column.
        out, critic = self.generate(value_source)
        full = np.asarray(critic(out.tokens))[..., 0]
        p = np.asarray(out.prompt_length)
        for b in (0, 2):
            self.assertAllClose(
                out.values[b], full[b, p[b] - 1 : p[b] + N], atol=1e-5
            )
        self.assertAllClose(out.values[1, :2], full[1, 4:6], atol=1e-5)

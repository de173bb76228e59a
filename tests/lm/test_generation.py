"""Tests of sampling from a tiny Keras causal language model."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm

VOCAB = 7
EOS = 6


def tiny_model(seed=0, with_values=False):
    """Embedding + Dense: position-wise, hence causal."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input([None], dtype=tf.int32)
    hidden = keras.layers.Embedding(VOCAB, 8)(tokens)
    logits = keras.layers.Dense(VOCAB)(hidden)
    outputs = logits
    if with_values:
        values = keras.layers.Dense(1)(hidden)
        outputs = (logits, values)
    return keras.Model(tokens, outputs)


class CountingModel(keras.Model):
    """Next token = current + 1 (mod VOCAB) almost surely; value = token."""

    def call(self, tokens):
        following = tf.math.floormod(tokens + 1, VOCAB)
        logits = 30.0 * tf.one_hot(following, VOCAB)
        return logits, tf.cast(tokens, tf.float32)


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class GenerateTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters((1.0, None), (0.7, 3))
    def test_log_probs_match_recomputation(self, temperature, top_k):
        model = tiny_model()
        prompt = np.array([[1, 2, 3], [4, 0, 5]], np.int32)
        out = lm.generate(
            model,
            prompt,
            max_new_tokens=5,
            temperature=temperature,
            top_k=top_k,
            seed=3,
        )
        self.assertAllEqual(out.tokens[:, :3], prompt)
        self.assertIsNone(out.values)
        logits = np.asarray(model(out.tokens), np.float64)
        tokens = np.asarray(out.tokens)
        for b in range(2):
            for i in range(5):
                step = logits[b, 3 + i - 1] / temperature
                expected = log_softmax(step)[tokens[b, 3 + i]]
                self.assertAllClose(out.log_probs[b, i], expected, atol=1e-5)
                if top_k is not None:
                    rank = (step > step[tokens[b, 3 + i]]).sum()
                    self.assertLess(rank, top_k)

    def test_top_k_one_is_greedy(self):
        model = tiny_model(seed=1)
        prompt = np.array([[1, 2], [3, 4], [5, 0]], np.int32)
        out = lm.generate(model, prompt, max_new_tokens=6, top_k=1, seed=0)
        tokens = prompt.copy()
        for _ in range(6):
            logits = np.asarray(model(tokens))
            following = logits[:, -1].argmax(axis=-1).astype(np.int32)
            tokens = np.concatenate([tokens, following[:, None]], axis=1)
        self.assertAllEqual(out.tokens, tokens)

    def test_eos_stops_a_row(self):
        prompt = np.array([[0, 3], [0, 0], [0, 5]], np.int32)
        out = lm.generate(
            CountingModel(), prompt, max_new_tokens=4, eos_id=EOS, seed=0
        )
        self.assertAllEqual(
            out.tokens,
            [[0, 3, 4, 5, 6, 6], [0, 0, 1, 2, 3, 4], [0, 5, 6, 6, 6, 6]],
        )
        self.assertAllEqual(
            out.mask, [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
        )
        self.assertAllEqual(out.done, [True, False, True])
        log_probs = np.asarray(out.log_probs)
        self.assertAllEqual(log_probs[~np.asarray(out.mask)], [0.0] * 4)
        # values[:, i] = V(tokens[:, :P + i]) = the token at P + i - 1.
        self.assertAllClose(
            out.values,
            [[3, 4, 5, 0, 0], [0, 1, 2, 3, 4], [5, 0, 0, 0, 0]],
        )

    def test_outputs_feed_a_rollout_batch(self):
        model = tiny_model(with_values=True)
        prompt = np.array([[1, 2], [3, 4]], np.int32)
        out = lm.generate(model, prompt, max_new_tokens=4, eos_id=EOS, seed=5)
        pad = tf.zeros([2, 2])
        batch = lm.sequence_rollout_batch(
            out.tokens,
            2,
            tf.concat([pad, out.log_probs], 1),
            tf.concat([pad, out.log_probs], 1),
            tf.concat([pad, out.values[:, :4]], 1),
            tf.ones([2]),
            eos_id=EOS,
            kl_coef=0.1,
            bootstrap_value=out.values[:, 4],
        )
        self.assertAllEqual(batch["mask"][:, 2:], out.mask)
        _, values = model(out.tokens)
        self.assertAllClose(
            np.where(out.mask, out.values[:, :4], 0.0),
            np.where(out.mask, np.asarray(values)[:, 1:5, 0], 0.0),
            atol=1e-6,
        )

    def test_seed_reproducibility(self):
        model = tiny_model()
        prompt = np.array([[1, 2], [3, 4], [5, 0], [2, 2]], np.int32)

        def sample(seed):
            return lm.generate(
                model, prompt, max_new_tokens=12, temperature=3.0, seed=seed
            ).tokens

        self.assertAllEqual(sample(11), sample(11))
        self.assertNotAllEqual(sample(11), sample(12))

    def test_errors_name_the_argument(self):
        model = tiny_model()
        prompt = np.array([[1, 2]], np.int32)
        with self.assertRaisesRegex(ValueError, "temperature"):
            lm.generate(model, prompt, max_new_tokens=2, temperature=0.0)
        with self.assertRaisesRegex(ValueError, "max_new_tokens"):
            lm.generate(model, prompt, max_new_tokens=0)
        with self.assertRaisesRegex(ValueError, "top_k"):
            lm.generate(model, prompt, max_new_tokens=2, top_k=0)
        with self.assertRaisesRegex(TypeError, "prompt_tokens"):
            lm.generate(model, [[1.0]], max_new_tokens=2)
        with self.assertRaisesRegex(ValueError, "eos_id.*Received: eos_id=7"):
            lm.generate(model, prompt, max_new_tokens=2, eos_id=VOCAB)
        with self.assertRaisesRegex(ValueError, "top_k.*Received: top_k=8"):
            lm.generate(model, prompt, max_new_tokens=2, top_k=VOCAB + 1)
        with self.assertRaisesRegex(TypeError, "seed"):
            lm.generate(model, prompt, max_new_tokens=2, seed=1.5)

    def test_tf_keras_model_gets_the_keras_3_message(self):
        import tf_keras

        model = tf_keras.Sequential(
            [tf_keras.layers.Embedding(VOCAB, 4), tf_keras.layers.Dense(VOCAB)]
        )
        with self.assertRaisesRegex(TypeError, "model.*Keras 2.*Keras 3"):
            lm.generate(model, [[1, 2]], max_new_tokens=2)


class PositionalLM(keras.Model):
    """Token and position embeddings (a table of `positions` rows)."""

    def __init__(self, positions=8, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = keras.layers.Embedding(VOCAB, 8)
        self.position_embedding = keras.layers.Embedding(positions, 8)
        self.logits = keras.layers.Dense(VOCAB)

    def call(self, tokens):
        positions = tf.range(tf.shape(tokens)[1])[tf.newaxis]
        hidden = self.token_embedding(tokens)
        return self.logits(hidden + self.position_embedding(positions))


def keras_hub_positions_model(positions=8):
    """A functional model on keras-hub's TokenAndPositionEmbedding."""
    import keras_hub

    keras.utils.set_random_seed(0)
    tokens = keras.Input([None], dtype="int32")
    hidden = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=VOCAB, sequence_length=positions, embedding_dim=8
    )(tokens)
    return keras.Model(tokens, keras.layers.Dense(VOCAB)(hidden))


def constant_model(logits, values=None):
    """Logits (and values) of one constant everywhere."""

    def model(tokens):
        shape = tf.concat([tf.shape(tokens), [VOCAB]], axis=0)
        out = tf.fill(shape, logits)
        if values is None:
            return out
        return out, tf.fill(tf.shape(tokens), values)

    return model


class GenerationInputChecksTest(tf.test.TestCase, parameterized.TestCase):
    """Issue 20: ids, positions and non-finite data entering `generate`."""

    def test_prompt_ids_outside_a_plain_models_vocabulary(self):
        # A functional model has no `vocab_size`: the logits' last axis is.
        model = tiny_model()
        for bad in (VOCAB, -1):
            with self.assertRaisesRegex(
                ValueError,
                r"`prompt_tokens` must hold ids in \[0, 7\).*"
                rf"Received: prompt_tokens with ids \[{bad}\]",
            ):
                lm.generate(model, [[1, 2], [3, bad]], max_new_tokens=2)
        with self.assertRaisesRegex(ValueError, "Received: pad_id=7"):
            lm.generate(model, [[1, 2]], max_new_tokens=2, pad_id=VOCAB)
        # Padding is not read: any id may sit under a False prompt_mask.
        out = lm.generate(
            model,
            [[-1, 2], [3, 4]],
            max_new_tokens=2,
            prompt_mask=[[0, 1], [1, 1]],
            seed=0,
        )
        self.assertAllEqual(out.prompt_length, [1, 2])
        self.assertAllInRange(out.tokens, 0, VOCAB - 1)

    def test_prompt_ids_are_asserted_inside_a_graph(self):
        model = tiny_model()
        decode = tf.function(
            lambda prompt: lm.generate(model, prompt, max_new_tokens=2).tokens
        )
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "prompt_tokens.*vocabulary"
        ):
            decode(tf.constant([[1, VOCAB]]))

    @parameterized.named_parameters(
        ("embedding", PositionalLM),
        ("keras_hub_position_embedding", keras_hub_positions_model),
    )
    def test_prompt_and_new_tokens_past_the_positions(self, build):
        model = build(positions=8)
        prompt = np.array([[1, 2, 3]], np.int32)
        # 3 + 5 = 8 positions: the last one fits.
        out = lm.generate(model, prompt, max_new_tokens=5, seed=0)
        self.assertEqual(out.tokens.shape, (1, 8))
        with self.assertRaisesRegex(
            ValueError, "8 positions.*Received: max_new_tokens=6"
        ):
            lm.generate(model, prompt, max_new_tokens=6)
        with self.assertRaisesRegex(
            ValueError, "8 positions.*Received: prompt_tokens="
        ):
            lm.generate(model, np.ones([1, 9], np.int32), max_new_tokens=1)

    def test_pad_id_after_the_first_prompt_token_is_a_prompt_token(self):
        # The issue's case: with GPT-2's pad = end-of-text, [5, 0, 2, 6]
        # is four prompt tokens; only leading pad ids are padding.
        model = tiny_model()
        out = lm.generate(
            model, [[5, 0, 2, 6], [0, 0, 3, 0]], max_new_tokens=2, pad_id=0
        )
        self.assertAllEqual(out.prompt_length, [4, 2])
        self.assertAllEqual(out.tokens[0, :4], [5, 0, 2, 6])
        self.assertAllEqual(out.tokens[1, :2], [3, 0])
        alone = lm.generate(model, [[3, 0]], max_new_tokens=2, top_k=1)
        together = lm.generate(
            model,
            [[5, 0, 2, 6], [0, 0, 3, 0]],
            max_new_tokens=2,
            pad_id=0,
            top_k=1,
        )
        self.assertAllEqual(together.tokens[1, :4], alone.tokens[0])
        with self.assertRaisesRegex(ValueError, "at least one token"):
            lm.generate(model, [[0, 0], [1, 2]], max_new_tokens=2, pad_id=0)

    def test_prompt_mask_gaps_are_refused_and_sides_agree(self):
        model = tiny_model()
        with self.assertRaisesRegex(
            ValueError, r"`prompt_mask`.*one run.*rows \[0\]"
        ):
            lm.generate(
                model,
                [[1, 2, 3], [3, 4, 5]],
                max_new_tokens=2,
                prompt_mask=[[1, 0, 1], [1, 1, 1]],
            )
        # Left and right padding give the same rows.
        left = lm.generate(
            model,
            [[0, 0, 1], [3, 4, 5]],
            max_new_tokens=3,
            prompt_mask=[[0, 0, 1], [1, 1, 1]],
            top_k=1,
        )
        right = lm.generate(
            model,
            [[1, 0, 0], [3, 4, 5]],
            max_new_tokens=3,
            prompt_mask=[[1, 0, 0], [1, 1, 1]],
            top_k=1,
        )
        self.assertAllEqual(left.tokens, right.tokens)

    def test_response_mask_is_mask_in_the_layout_of_tokens(self):
        out = lm.generate(
            tiny_model(seed=2),
            [[0, 0, 1], [3, 4, 5]],
            max_new_tokens=5,
            pad_id=0,
            stop_token_ids=[1, 2, 3],
            temperature=3.0,
            seed=1,
        )
        tokens = np.asarray(out.tokens)
        expected = np.zeros(tokens.shape, bool)
        for b, p in enumerate(np.asarray(out.prompt_length)):
            expected[b, p : p + 5] = np.asarray(out.mask)[b]
        self.assertAllEqual(out.response_mask, expected)
        self.assertFalse(np.asarray(out.mask).all())  # a row stopped early

    def test_prompt_mask_of_another_shape(self):
        with self.assertRaisesRegex(
            ValueError, r"`prompt_mask`.*shape.*Received: prompt_mask="
        ):
            lm.generate(
                tiny_model(),
                [[1, 2, 3]],
                max_new_tokens=2,
                prompt_mask=[[1, 1]],
            )

    @parameterized.named_parameters(
        ("nan", np.nan, False),
        ("inf", np.inf, False),
        ("all_minus_inf", -np.inf, False),
        ("nan_xla", np.nan, True),
    )
    def test_non_finite_logits_name_the_model(self, logits, jit_compile):
        with self.assertRaisesRegex(
            ValueError, "`model` gave NaN or Inf logits.*Received: model="
        ):
            lm.generate(
                constant_model(logits),
                [[1, 2], [3, 4]],
                max_new_tokens=3,
                jit_compile=jit_compile,
            )

    def test_non_finite_values_name_their_source(self):
        with self.assertRaisesRegex(
            ValueError, "`model` gave NaN or Inf values.*Received: model="
        ):
            lm.generate(constant_model(0.0, np.nan), [[1, 2]], max_new_tokens=2)
        with self.assertRaisesRegex(
            ValueError, "`value_head` gave NaN or Inf values"
        ):
            lm.generate(
                tiny_model(),
                [[1, 2]],
                max_new_tokens=2,
                value_head=lambda t: tf.fill(tf.shape(t), np.inf),
            )

    def test_something_that_is_not_a_language_model(self):
        with self.assertRaisesRegex(TypeError, "`model`.*Received: model=3"):
            lm.generate(3, [[1, 2]], max_new_tokens=2)
        with self.assertRaisesRegex(
            ValueError, "`model`.*logits \\[B, L, V\\]"
        ):
            lm.generate(
                lambda t: tf.zeros([1, VOCAB]), [[1, 2]], max_new_tokens=2
            )

    def test_seed_outside_int64(self):
        with self.assertRaisesRegex(
            ValueError, "Received: seed=9223372036854775808"
        ):
            lm.generate(tiny_model(), [[1, 2]], max_new_tokens=2, seed=2**63)


class TemperatureOverflowTest(tf.test.TestCase):
    """Issue 20: a temperature that makes logits / temperature overflow."""

    def test_temperature_zero_in_float32(self):
        with self.assertRaisesRegex(
            ValueError, "`temperature`.*float32.*Received: temperature=1e-46"
        ):
            lm.generate(
                tiny_model(), [[1, 2]], max_new_tokens=2, temperature=1e-46
            )

    def test_overflow_names_the_temperature(self):
        with self.assertRaisesRegex(
            ValueError, "logits / temperature.*temperature=1e-38"
        ):
            lm.generate(
                constant_model(10.0),
                [[1, 2]],
                max_new_tokens=2,
                temperature=1e-38,
            )


class ValuesShapeTest(tf.test.TestCase):
    """Issue 20: values of another shape than [B, L] (or [B, L, 1])."""

    def test_value_head(self):
        for values in (
            lambda t: tf.zeros(tf.shape(t)[:1]),
            lambda t: tf.zeros(tf.concat([tf.shape(t), [2]], axis=0)),
        ):
            with self.assertRaisesRegex(
                ValueError, r"`value_head` must give values \[B, L\]"
            ):
                lm.generate(
                    tiny_model(), [[1, 2]], max_new_tokens=2, value_head=values
                )

    def test_model(self):
        model = tiny_model()

        def two_values_per_token(tokens):
            shape = tf.concat([tf.shape(tokens), [2]], axis=0)
            return model(tokens), tf.zeros(shape)

        with self.assertRaisesRegex(
            ValueError, r"`model` must give values \[B, L\]"
        ):
            lm.generate(two_values_per_token, [[1, 2]], max_new_tokens=2)
        with self.assertRaisesRegex(
            ValueError, "`model` must return logits or a pair"
        ):
            lm.generate(
                lambda t: (model(t), model(t), model(t)),
                [[1, 2]],
                max_new_tokens=2,
            )

"""Cached generation with keras-hub causal LMs against uncached references."""

from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.lm import kv_cache
from tests.lm import keras_hub_models as khm

STOP = khm.VOCAB - 1


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class CachedGenerationTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("gpt2", "llama", "gemma")
    def test_log_probs_and_values_match_an_uncached_full_pass(self, name):
        causal_lm = khm.BUILDERS[name]()
        policy = lm.CausalLMPolicy(causal_lm, value_head="shared")
        prompt = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 6], [0, 0, 0, 7, 8]])
        out = lm.generate(
            policy, prompt, pad_id=0, max_new_tokens=6, seed=3, eos_id=STOP
        )
        self.assertAllEqual(out.prompt_length, [3, 5, 2])
        tokens = np.asarray(out.tokens)
        logits = khm.full_logits(causal_lm, tokens)
        _, values = policy(tokens)
        values = np.asarray(values)
        for b, p in enumerate([3, 5, 2]):
            self.assertAllEqual(tokens[b, :p], prompt[b][prompt[b] > 0])
            for j in range(6):
                if not out.mask[b, j]:
                    self.assertEqual(float(out.log_probs[b, j]), 0.0)
                    continue
                expected = log_softmax(logits[b, p + j - 1])[tokens[b, p + j]]
                self.assertAllClose(out.log_probs[b, j], expected, atol=1e-4)
                self.assertAllClose(
                    out.values[b, j], values[b, p + j - 1], atol=1e-4
                )
            if not out.done[b]:
                # The bootstrap value is the value head at the row's last
                # generated position, not the one before it.
                self.assertAllClose(
                    out.values[b, 6], values[b, p + 5], atol=1e-4
                )
                self.assertNotAllClose(out.values[b, 6], values[b, p + 4])

    @parameterized.product(name=["gpt2", "llama", "gemma"], new=[4, 70, 140])
    def test_own_cache_equals_an_uncached_pass_at_buffer_widths(
        self, name, new
    ):
        # Buffers of 9, 75 and 145 columns: one cache block of
        # `kv_cache.BLOCK` (64) columns, then two and three, so steps cross
        # block edges. The
        # cached step attends with other summation orders than the full
        # pass (one column of queries against the cache): float32 rounding,
        # observed below 1e-6 on log-probs, hence atol 1e-5.
        builder = khm.BUILDERS[name]
        causal_lm = builder(max_length=160) if name == "gpt2" else builder()
        policy = lm.CausalLMPolicy(causal_lm, value_head="shared")
        self.assertIsNotNone(policy._family)
        prompt = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 6]])
        kwargs = dict(pad_id=0, max_new_tokens=new, top_k=1, seed=0)
        cached = lm.generate(policy, prompt, **kwargs)
        uncached = lm.generate(
            lambda t: policy(t), prompt, jit_compile=False, **kwargs
        )
        self.assertAllEqual(cached.tokens, uncached.tokens)
        self.assertAllClose(cached.log_probs, uncached.log_probs, atol=1e-5)
        self.assertAllClose(cached.values, uncached.values, atol=1e-5)

    def test_a_prompt_of_unknown_width_decodes_as_one_of_known_width(self):
        # A signature with a `[None, None]` prompt (an export's) traces the
        # cache at an unknown width: one block over the whole buffer.
        policy = lm.CausalLMPolicy(
            khm.gpt2(max_length=160), value_head="shared"
        )
        prompt = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 6]], np.int32)
        kwargs = dict(pad_id=0, max_new_tokens=70, top_k=1, seed=0)
        known = lm.generate(policy, prompt, **kwargs)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def unknown_width(prompt):
            out = lm.generate(policy, prompt, **kwargs)
            return out.tokens, out.log_probs, out.values

        tokens, log_probs, values = unknown_width(prompt)
        self.assertAllEqual(tokens, known.tokens)
        self.assertAllClose(log_probs, known.log_probs, atol=1e-5)
        self.assertAllClose(values, known.values, atol=1e-5)

    @parameterized.parameters("gpt2", "llama", "gemma")
    def test_keras_hub_call_with_cache_path_equals_the_own_cache(self, name):
        # A backbone keras_gae cannot decode its own way goes through
        # keras-hub's `call_with_cache` with a cache sized from its config.
        causal_lm = khm.BUILDERS[name](seed=6)
        prompt = np.array([[0, 3, 4], [5, 6, 7]])
        kwargs = dict(pad_id=0, max_new_tokens=6, top_k=1)
        own = lm.generate(
            lm.CausalLMPolicy(causal_lm, value_head=None), prompt, **kwargs
        )
        with mock.patch.object(kv_cache, "FAMILIES", ()):
            policy = lm.CausalLMPolicy(causal_lm, value_head=None)
            self.assertIsNone(policy._family)
            theirs = lm.generate(policy, prompt, **kwargs)
        self.assertAllEqual(own.tokens, theirs.tokens)
        self.assertAllClose(own.log_probs, theirs.log_probs, atol=1e-5)

    @parameterized.parameters(False, True)
    def test_repetition_penalty_greedy_equals_a_numpy_reference(self, jit):
        # Greedy tokens under the penalty, recomputed step by step from
        # the full pass: argmax of the logits with every token already in
        # the row (prompt without padding, then the new tokens) penalized.
        causal_lm = khm.gpt2(seed=8)
        prompt = np.array([[0, 3, 4, 3], [5, 6, 7, 8]])
        out = lm.generate(
            causal_lm,
            prompt,
            pad_id=0,
            max_new_tokens=8,
            top_k=1,
            repetition_penalty=2.5,
            jit_compile=jit,
        )
        tokens = np.asarray(out.tokens)
        logits = khm.full_logits(causal_lm, tokens)
        plain = 0
        for b, p in enumerate(np.asarray(out.prompt_length)):
            for j in range(8):
                column = p + j - 1
                penalized = logits[b, column].copy()
                for token in set(tokens[b, : column + 1].tolist()):
                    x = penalized[token]
                    penalized[token] = x / 2.5 if x > 0 else x * 2.5
                self.assertEqual(tokens[b, p + j], np.argmax(penalized))
                plain += tokens[b, p + j] != np.argmax(logits[b, column])
                # The recorded log-prob is the plain policy's.
                self.assertAllClose(
                    out.log_probs[b, j],
                    log_softmax(logits[b, column])[tokens[b, p + j]],
                    atol=1e-5,
                )
        self.assertGreater(plain, 0)  # the penalty changed some choices

    def test_min_p_draws_only_tokens_above_the_floor(self):
        causal_lm = khm.gpt2(seed=9)
        prompt = np.array([[1, 2], [3, 4], [5, 6]])
        out = lm.generate(
            causal_lm,
            prompt,
            max_new_tokens=10,
            temperature=0.05,
            min_p=0.3,
            seed=4,
            num_samples=4,
        )
        tokens = np.asarray(out.tokens)
        logits = khm.full_logits(causal_lm, tokens) / 0.05
        excluded = 0
        for b in range(tokens.shape[0]):
            for j in range(10):
                probs = np.exp(log_softmax(logits[b, 1 + j]))
                floor = 0.3 * probs.max()
                self.assertGreaterEqual(probs[tokens[b, 2 + j]], floor - 1e-6)
                excluded += (probs < floor).sum()
        self.assertGreater(excluded, 12 * 10)  # the floor cut tokens out
        self.assertGreater(len(set(tokens[:, 2:].ravel().tolist())), 1)

    @parameterized.parameters(None, 3.0)
    def test_attend_blocks_equals_numpy_attention_over_filled_columns(
        self, soft_cap
    ):
        # One query column against a 3-block cache, 2 key/value heads of 2
        # query heads each. Columns after the query's and every block's
        # scratch column hold junk that must get no weight. Columns 0,
        # BLOCK - 1, BLOCK and 3 * BLOCK - 1 cross block edges.
        rng = np.random.default_rng(0)
        block = kv_cache.BLOCK
        width = 3 * block
        query = rng.normal(size=(2, 1, 4, 8)).astype(np.float32)
        keys = rng.normal(size=(2, 2, width, 8)).astype(np.float32)
        values = rng.normal(size=(2, 2, width, 8)).astype(np.float32)

        def blocks(columns):
            junk = rng.normal(size=(2, 2, 1, 8)).astype(np.float32) * 50
            return tuple(
                np.concatenate([columns[:, :, at : at + block], junk], axis=2)
                for at in range(0, width, block)
            )

        key_blocks, value_blocks = blocks(keys), blocks(values)
        for start in (0, 5, block - 1, block, 2 * block + 2, width - 1):
            # A traced column (a decoding step's) and a static one.
            got, got_static = (
                kv_cache.attend_blocks(
                    tf.constant(query), key_blocks, value_blocks, at, soft_cap
                )
                for at in (tf.constant(start), start)
            )
            expected = np.zeros((2, 1, 4, 8))
            for b in range(2):
                for head in range(4):
                    kv = head // 2
                    scores = keys[b, kv, : start + 1] @ query[b, 0, head]
                    if soft_cap is not None:
                        scores = np.tanh(scores / soft_cap) * soft_cap
                    weights = np.exp(scores - scores.max())
                    weights /= weights.sum()
                    expected[b, 0, head] = weights @ values[b, kv, : start + 1]
            self.assertAllClose(got, expected, atol=1e-5)
            self.assertAllClose(got_static, expected, atol=1e-5)

    def test_write_columns_places_each_column_in_its_block(self):
        # A traced column index: the column lands at its place in its own
        # block, every other block changes only in its scratch column;
        # a static index (a prefill) and a several-column write at a
        # traced index land the same way and leave every scratch column
        # as it was.
        block = kv_cache.BLOCK
        rng = np.random.default_rng(1)
        blocks = tuple(
            rng.normal(size=(2, 3, block + 1, 4)).astype(np.float32)
            for _ in range(3)
        )
        whole = np.concatenate([part[:, :, :block] for part in blocks], 2)
        for start, length, traced in [
            (0, 1, True),
            (block + 3, 1, True),
            (3 * block - 1, 1, True),
            (0, block + 5, False),
            (block - 2, 4, True),
        ]:
            columns = rng.normal(size=(2, 3, length, 4)).astype(np.float32)
            at = tf.constant(start) if traced else start
            written = kv_cache.write_columns(blocks, columns, at)
            expected = whole.copy()
            expected[:, :, start : start + length] = columns
            self.assertAllEqual(kv_cache.filled_columns(written), expected)
            if length == 1:
                continue
            for old, new in zip(blocks, written):
                self.assertAllEqual(new[:, :, block], old[:, :, block])

    @parameterized.parameters((1.0, None, None), (0.8, 5, 0.9), (1.0, 1, None))
    def test_cached_equals_uncached_token_for_token(self, temp, top_k, top_p):
        policy = lm.CausalLMPolicy(khm.gpt2(seed=1), value_head="shared")
        prompt = np.array([[0, 3, 4], [5, 6, 7], [0, 0, 9]])
        kwargs = dict(
            pad_id=0,
            max_new_tokens=8,
            seed=7,
            temperature=temp,
            top_k=top_k,
            top_p=top_p,
            stop_token_ids=[STOP, STOP - 1],
            # Sampled tokens: one random stream (XLA draws another).
            jit_compile=False,
        )
        cached = lm.generate(policy, prompt, **kwargs)
        uncached = lm.generate(lambda t: policy(t), prompt, **kwargs)
        self.assertAllEqual(cached.tokens, uncached.tokens)
        self.assertAllEqual(cached.mask, uncached.mask)
        self.assertAllClose(cached.log_probs, uncached.log_probs, atol=1e-5)
        self.assertAllClose(cached.values, uncached.values, atol=1e-5)

    def test_xla_matches_graph_greedy_and_the_full_pass_sampled(self):
        # XLA draws other random streams than the graph kernels, so sampled
        # tokens are compared through their log-probs, greedy ones exactly.
        causal_lm = khm.gpt2(seed=2)
        prompt = np.array([[1, 3, 4], [5, 6, 7]])
        graph = lm.generate(causal_lm, prompt, max_new_tokens=5, top_k=1)
        xla = lm.generate(
            causal_lm, prompt, max_new_tokens=5, top_k=1, jit_compile=True
        )
        self.assertAllEqual(graph.tokens, xla.tokens)
        sampled = lm.generate(
            causal_lm, prompt, max_new_tokens=5, seed=1, jit_compile=True
        )
        tokens = np.asarray(sampled.tokens)
        logits = khm.full_logits(causal_lm, tokens)
        expected = [
            [log_softmax(logits[b, 2 + j])[tokens[b, 3 + j]] for j in range(5)]
            for b in range(2)
        ]
        self.assertAllClose(sampled.log_probs, expected, atol=1e-4)

    @parameterized.parameters("gpt2", "llama")
    def test_left_padded_rows_equal_each_row_alone(self, name):
        causal_lm = khm.BUILDERS[name](seed=3)
        prompts = [[3, 4, 5, 6], [7], [8, 9]]
        batch = np.zeros([3, 4], np.int32)
        for b, p in enumerate(prompts):
            batch[b, 4 - len(p) :] = p
        together = lm.generate(
            causal_lm, batch, pad_id=0, max_new_tokens=5, top_k=1
        )
        for b, p in enumerate(prompts):
            alone = lm.generate(
                causal_lm, np.array([p]), max_new_tokens=5, top_k=1
            )
            n = len(p)
            self.assertAllEqual(
                together.tokens[b, : n + 5], alone.tokens[0, : n + 5]
            )
            self.assertAllClose(
                together.log_probs[b], alone.log_probs[0], atol=1e-5
            )

    def test_stop_ids_end_rows_and_fill(self):
        causal_lm = khm.gpt2(seed=4)
        out = lm.generate(
            causal_lm,
            np.array([[1, 2], [3, 4], [5, 6], [7, 8]]),
            max_new_tokens=10,
            temperature=5.0,
            stop_token_ids=[2, 3, 4, 5, 6],
            seed=0,
        )
        tokens = np.asarray(out.tokens)[:, 2:]
        mask = np.asarray(out.mask)
        for b in range(4):
            stops = np.flatnonzero(np.isin(tokens[b], [2, 3, 4, 5, 6]))
            if out.done[b]:
                first = stops[0]
                self.assertAllEqual(mask[b], np.arange(10) <= first)
                self.assertTrue((tokens[b, first + 1 :] == 2).all())
            else:
                self.assertTrue(mask[b].all())

    def test_num_samples_repeats_prompts_in_groups(self):
        out = lm.generate(
            khm.gpt2(),
            np.array([[1, 2, 3], [0, 4, 5]]),
            pad_id=0,
            max_new_tokens=4,
            num_samples=3,
            temperature=3.0,
            seed=1,
        )
        self.assertEqual(out.tokens.shape, (6, 7))
        self.assertAllEqual(out.prompt_length, [3, 3, 3, 2, 2, 2])
        self.assertAllEqual(out.tokens[:3, :3], [[1, 2, 3]] * 3)
        self.assertAllEqual(out.tokens[3:, :2], [[4, 5]] * 3)
        self.assertNotAllEqual(out.tokens[0], out.tokens[1])

    def test_top_p_keeps_the_nucleus(self):
        from keras_gae.lm import sampling

        logits = tf.math.log([[0.5, 0.3, 0.15, 0.05]])
        kept = np.isfinite(sampling.filter_logits(logits, None, 0.8).numpy())
        self.assertAllEqual(kept, [[True, True, False, False]])
        kept = np.isfinite(sampling.filter_logits(logits, None, 0.81).numpy())
        self.assertAllEqual(kept, [[True, True, True, False]])
        kept = np.isfinite(sampling.filter_logits(logits, 3, 1.0).numpy())
        self.assertAllEqual(kept, [[True, True, True, False]])

    def test_range_checks_name_the_argument(self):
        causal_lm = khm.gpt2()
        prompt = np.array([[1, 2]])
        with self.assertRaisesRegex(ValueError, "prompt_tokens"):
            lm.generate(causal_lm, [[1, khm.VOCAB]], max_new_tokens=2)
        with self.assertRaisesRegex(ValueError, "Received: stop_token_ids=13"):
            lm.generate(
                causal_lm, prompt, max_new_tokens=2, stop_token_ids=[khm.VOCAB]
            )
        with self.assertRaisesRegex(ValueError, "Received: eos_id=13"):
            lm.generate(causal_lm, prompt, max_new_tokens=2, eos_id=khm.VOCAB)
        with self.assertRaisesRegex(ValueError, "Received: top_k=14"):
            lm.generate(causal_lm, prompt, max_new_tokens=2, top_k=14)
        with self.assertRaisesRegex(ValueError, "top_p"):
            lm.generate(causal_lm, prompt, max_new_tokens=2, top_p=0.0)
        with self.assertRaisesRegex(ValueError, "max_new_tokens=31"):
            lm.generate(causal_lm, prompt, max_new_tokens=khm.MAX_LENGTH - 1)
        with self.assertRaisesRegex(ValueError, "num_samples"):
            lm.generate(causal_lm, prompt, max_new_tokens=2, num_samples=0)
        with self.assertRaisesRegex(ValueError, "at least one token"):
            lm.generate(causal_lm, [[0, 0]], pad_id=0, max_new_tokens=2)

    def test_policy_refuses_ids_outside_the_vocabulary(self):
        policy = lm.CausalLMPolicy(khm.gpt2(), value_head="shared")
        tokens = np.array([[1, khm.VOCAB]])
        for call in (policy, policy.reference_logits):
            with self.assertRaisesRegex(
                ValueError, r"`tokens`.*\[0, 13\).*ids \[13\]"
            ):
                call(tokens)

    def test_lora_reference_equals_the_base_model(self):
        base = khm.gpt2(seed=5)
        tokens = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
        before = khm.full_logits(base, tokens)
        policy = lm.CausalLMPolicy(base, value_head="shared", lora_rank=2)
        for layer in base._flatten_layers():
            if getattr(layer, "lora_enabled", False):
                layer.lora_kernel_b.assign(
                    np.random.default_rng(0).normal(
                        size=layer.lora_kernel_b.shape
                    )
                )
        adapted, _ = policy(tokens)
        self.assertNotAllClose(adapted, before, atol=1e-3)
        self.assertAllClose(policy.reference_logits(tokens), before, atol=1e-5)
        # The adapters are back on afterwards.
        self.assertAllClose(policy(tokens)[0], adapted, atol=1e-6)

"""lm.evaluate_completions against a NumPy greedy decoder."""

import keras
import numpy as np
import tensorflow as tf

from keras_gae import lm
from tests.lm.test_lm_models import EOS
from tests.lm.test_lm_models import VOCAB
from tests.lm.test_lm_models import make_network
from tests.lm.test_lm_models import numpy_forward

PROMPTS = np.array([[1, 2], [3, 0], [2, 2], [4, 1], [0, 3]], np.int32)
NEW = 4


def digits_score(tokens, mask):
    """Sum of the response's token ids (EOS counts 0)."""
    tokens, mask = np.asarray(tokens), np.asarray(mask)
    return np.where(mask & (tokens != EOS), tokens, 0).sum(1).astype("f4")


def numpy_greedy(network, prompts):
    """Rows decoded one argmax at a time, stopping at EOS."""
    rows, lengths, done = [], [], []
    for prompt in prompts:
        row = list(prompt)
        for _ in range(NEW):
            logits, _ = numpy_forward(network, np.array([row]))
            row.append(int(np.argmax(logits[0, -1])))
            if row[-1] == EOS:
                break
        rows.append(row[len(prompt) :])
        lengths.append(len(row) - len(prompt))
        done.append(row[-1] == EOS)
    scores = [sum(t for t in r if t != EOS) for r in rows]
    return np.array(scores, float), np.array(lengths), np.array(done)


class EvaluateCompletionsTest(tf.test.TestCase):
    def test_greedy_matches_numpy(self):
        network = make_network(30)
        model = lm.CausalLMPPOModel(
            network, vocab_size=VOCAB, eos_id=EOS, advantage_estimator="grpo"
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        before = [w.numpy() for w in network.weights]
        results = lm.evaluate_completions(
            model, PROMPTS, digits_score, max_new_tokens=NEW
        )
        scores, lengths, done = numpy_greedy(network, PROMPTS)
        self.assertAllClose(results["reward"], scores.mean())
        self.assertAllClose(results["reward_std"], scores.std())
        self.assertAllClose(results["response_length"], lengths.mean())
        self.assertAllClose(results["truncated_fraction"], 1 - done.mean())
        for w, b in zip(network.weights, before):
            self.assertAllEqual(w, b)

    def test_samples(self):
        model = lm.CausalLMPPOModel(
            make_network(31), vocab_size=VOCAB, eos_id=EOS
        )
        results = lm.evaluate_completions(
            model,
            PROMPTS,
            digits_score,
            max_new_tokens=NEW,
            greedy=False,
            num_samples=3,
            seed=0,
        )
        again = lm.evaluate_completions(
            model,
            PROMPTS,
            digits_score,
            max_new_tokens=NEW,
            greedy=False,
            num_samples=3,
            seed=0,
        )
        self.assertEqual(results, again)
        self.assertBetween(results["response_length"], 1.0, NEW)
        with self.assertRaisesRegex(ValueError, "Received: num_samples=3"):
            lm.evaluate_completions(
                model, PROMPTS, digits_score, max_new_tokens=NEW, num_samples=3
            )

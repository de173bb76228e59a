"""A keras-hub CausalLM passed straight to CausalLMPPOModel.

It is wrapped in a `CausalLMPolicy` with the value head its estimator
needs, so the whole flow (construct, compile, collect, fit) equals wrapping
it yourself; a model on named inputs that is not a keras-hub CausalLM is
refused at construction, naming `CausalLMPolicy`.
"""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae.models import rollout_dataset
from tests import fresh_process
from tests.lm import keras_hub_models as khm

STOP = khm.VOCAB - 1
PROMPTS = np.array([[0, 1, 2], [3, 4, 5]], np.int32)


def count_even(tokens, mask):
    even = tf.equal(tokens % 2, 0)
    return tf.reduce_sum(tf.cast(mask & even, tf.float32), axis=1)


def one_iteration(wrap, estimator):
    """Builds the model on `wrap(causal_lm)` and `wrap(reference)` (value
    head initialized from the same seed), collects and fits once."""
    causal_lm, reference = khm.gpt2(seed=0), khm.gpt2(seed=0)
    keras.utils.set_random_seed(7)
    model = lm.CausalLMPPOModel(
        wrap(causal_lm, estimator),
        vocab_size=khm.VOCAB,
        eos_id=STOP,
        pad_id=0,
        reference_network=wrap(reference, None),
        reward_kl_coef=0.05,
        advantage_estimator=estimator,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rollout = model.collect(
        PROMPTS, count_even, max_new_tokens=4, num_samples=2, seed=0
    )
    history = model.fit(
        rollout_dataset(rollout.batch, num_minibatches=2, seed=0),
        epochs=1,
        verbose=0,
        shuffle=False,
    ).history
    return model, rollout, history


class RawCausalLMTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        ("gae", "shared"),
        ("grpo", None),
        ("dr_grpo", None),
        ("rloo", None),
        ("reinforce_pp", None),
    )
    def test_wrapped_with_the_estimators_value_head(self, estimator, head):
        causal_lm = khm.gpt2(seed=0)
        model = lm.CausalLMPPOModel(
            causal_lm,
            vocab_size=khm.VOCAB,
            eos_id=STOP,
            reference_network=khm.gpt2(seed=0),
            advantage_estimator=estimator,
        )
        self.assertIsInstance(model.network, lm.CausalLMPolicy)
        self.assertIs(model.network.causal_lm, causal_lm)
        self.assertEqual(model.network.value_head, head)
        self.assertIsNone(model.network.critic)
        self.assertIsNone(model.network.lora_rank)
        self.assertIsInstance(model.reference_network, lm.CausalLMPolicy)
        self.assertIsNone(model.reference_network.value_head)
        self.assertFalse(model.reference_network.trainable)

    def test_saved_and_loaded_as_the_wrapped_policy(self):
        model = lm.CausalLMPPOModel(
            khm.gpt2(seed=2), vocab_size=khm.VOCAB, eos_id=STOP
        )
        restored = lm.CausalLMPPOModel.from_config(model.get_config())
        self.assertIsInstance(restored.network, lm.CausalLMPolicy)
        self.assertEqual(restored.network.value_head, "shared")

    @parameterized.parameters("network", "reference_network")
    def test_named_inputs_model_is_refused_naming_the_wrapper(self, name):
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        hidden = keras.layers.Embedding(khm.VOCAB, 4)(token_ids)
        dict_model = keras.Model(
            {"token_ids": token_ids, "padding_mask": padding_mask},
            keras.layers.Dense(khm.VOCAB)(hidden),
        )
        arguments = dict(
            network=lm.CausalLMPolicy(khm.gpt2(seed=0)),
            vocab_size=khm.VOCAB,
            eos_id=STOP,
        )
        arguments[name] = dict_model
        with self.assertRaisesRegex(
            TypeError,
            rf"`{name}` takes several inputs \['padding_mask', 'token_ids'\]"
            rf"(.|\n)*CausalLMPolicy(.|\n)*Received: {name}=",
        ):
            lm.CausalLMPPOModel(**arguments)

    def test_keras_hub_backbone_is_refused_naming_the_wrapper(self):
        with self.assertRaisesRegex(
            TypeError, r"`network` takes several inputs.*CausalLMPolicy"
        ):
            lm.CausalLMPPOModel(
                khm.gpt2(seed=0).backbone, vocab_size=khm.VOCAB, eos_id=STOP
            )


@pytest.mark.slow
class RawCausalLMIterationTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("gae", "grpo")
    def test_one_iteration_equals_wrapping_it_yourself(self, estimator):
        def explicitly(causal_lm, estimator):
            if estimator is None:  # the reference
                return lm.CausalLMPolicy(causal_lm, value_head=None)
            head = "shared" if estimator == "gae" else None
            return lm.CausalLMPolicy(causal_lm, value_head=head)

        raw, raw_rollout, raw_history = one_iteration(
            lambda causal_lm, _: causal_lm, estimator
        )
        explicit, rollout, history = one_iteration(explicitly, estimator)
        self.assertEqual(
            [w.path for w in raw.trainable_weights],
            [w.path for w in explicit.trainable_weights],
        )
        for key, value in rollout.batch.items():
            self.assertAllClose(raw_rollout.batch[key], value, msg=key)
        for key, value in history.items():
            self.assertAllClose(raw_history[key], value, msg=key)
        for got, expected in zip(raw.weights, explicit.weights):
            self.assertAllClose(got, expected, msg=got.path)
        # The two runs trained, not merely built.
        self.assertGreater(np.ptp(raw_rollout.scores), 0.0)
        self.assertNotAllClose(
            raw.network.causal_lm.backbone.weights,
            khm.gpt2(seed=0).backbone.weights,
        )


USER_CODE = textwrap.dedent(
    """
    import keras
    import keras_hub
    import numpy as np
    from keras_gae import lm
    from keras_gae.models import rollout_dataset

    V, PAD, EOS = 16, 0, 1
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=32)
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    prompts = np.array([[PAD, 5, 6, 7], [8, 9, 10, 11]], "int32")


    def reward(tokens, mask):
        return np.mean(np.where(mask, tokens % 2 == 0, 0), axis=1)


    for estimator in ("gae", "grpo"):
        model = lm.CausalLMPPOModel(
            causal_lm, vocab_size=V, eos_id=EOS, pad_id=PAD,
            advantage_estimator=estimator)
        model.compile(optimizer=keras.optimizers.Adam(3e-4))
        rollout = model.collect(prompts, lm.RewardFunction(reward),
                                max_new_tokens=6, num_samples=2, seed=0)
        history = model.fit(rollout_dataset(rollout.batch, num_minibatches=2),
                            epochs=2, verbose=0)
        print(estimator, type(model.network).__name__,
              model.network.value_head, len(history.history["loss"]),
              bool(np.isfinite(history.history["loss"]).all()))
    """
)


@pytest.mark.slow
class FirstFitTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("gae", "grpo")
    def test_the_train_step_is_traced_once(self, estimator):
        # Every variable exists once the model is made, so the optimizer
        # is built before the first trace (`FitHooks`), which then makes
        # none: one trace, not two.
        model = lm.CausalLMPPOModel(
            khm.gpt2(seed=0),
            vocab_size=khm.VOCAB,
            eos_id=STOP,
            pad_id=0,
            advantage_estimator=estimator,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        rollout = model.collect(
            PROMPTS, count_even, max_new_tokens=4, num_samples=2, seed=0
        )
        traces = []
        train_step = model.train_step
        model.train_step = lambda data: traces.append(1) or train_step(data)
        model.fit(
            rollout_dataset(rollout.batch, num_minibatches=2, seed=0),
            epochs=1,
            verbose=0,
        )
        self.assertLen(traces, 1)
        self.assertEqual(int(model.optimizer.iterations), 2)


def test_raw_causal_lm_as_the_user_types_it():
    result = fresh_process.run_python(USER_CODE, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "gae CausalLMPolicy shared 2 True",
        "grpo CausalLMPolicy None 2 True",
    ], result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr

"""The LM train step with and without XLA, side by side in one process.

To run:

  .venv/bin/python benchmarks/lm_train_step_xla.py
  .venv/bin/python benchmarks/lm_train_step_xla.py --sizes=2x16,4x256 \\
      --max_new_tokens=32 --rounds=10

For each size in --sizes (LAYERSxWIDTH), two identical keras-hub
GPT2CausalLMs built from a config with random weights (nothing is
downloaded; 2 heads per 64 of width, intermediate 4 x width,
--vocabulary_size) are wrapped in `CausalLMPPOModel`s (GRPO, no value
function) compiled with `jit_compile=False` and `jit_compile=True`. One
rollout (4 prompts of 8 tokens x 8 samples, --max_new_tokens new tokens)
is collected once; each model then fits it as one minibatch: the first
fit (tracing, and XLA compilation for the XLA model) is reported on its
own, then --rounds rounds alternate the two models' fits (the order
flips every round) and the medians and their ratio are printed.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_gae import lm  # noqa: E402
from keras_gae.models import rollout_dataset  # noqa: E402

flags.DEFINE_list("sizes", ["2x16", "4x256"], "LAYERSxWIDTH of each model.")
flags.DEFINE_integer("vocabulary_size", 512, "Vocabulary size.", lower_bound=2)
flags.DEFINE_integer("max_new_tokens", 32, "New tokens per row.", lower_bound=1)
flags.DEFINE_integer("rounds", 10, "Alternating rounds.", lower_bound=1)
flags.DEFINE_integer(
    "threads", 1, "TensorFlow intra- and inter-op threads.", lower_bound=1
)
FLAGS = flags.FLAGS


def _model(layers, width, vocab, jit_compile):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocab,
        num_layers=layers,
        num_heads=max(2, width // 64),
        hidden_dim=width,
        intermediate_dim=4 * width,
        max_sequence_length=256,
        dropout=0.0,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    model = lm.CausalLMPPOModel(
        lm.CausalLMPolicy(causal_lm, value_head=None),
        vocab_size=vocab,
        eos_id=0,
        advantage_estimator="grpo",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-6), jit_compile=jit_compile
    )
    return model


def _timed_fit(model, dataset):
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    return time.perf_counter() - start


def run(layers, width):
    vocab = FLAGS.vocabulary_size
    prompts = np.random.default_rng(0).integers(1, vocab, size=(4, 8))
    models = {jit: _model(layers, width, vocab, jit) for jit in (False, True)}
    rollout = models[False].collect(
        prompts.astype(np.int32),
        lambda tokens, mask: tf.reduce_sum(tf.cast(mask, tf.float32), 1),
        max_new_tokens=FLAGS.max_new_tokens,
        num_samples=8,
        seed=0,
    )
    batch = {key: np.asarray(value) for key, value in rollout.batch.items()}
    dataset = rollout_dataset(batch, num_minibatches=1, seed=0)
    first = {jit: _timed_fit(models[jit], dataset) for jit in (False, True)}
    times = {False: [], True: []}
    for index in range(FLAGS.rounds):
        for jit in (False, True) if index % 2 == 0 else (True, False):
            times[jit].append(_timed_fit(models[jit], dataset))
    plain, xla = (np.median(times[jit]) for jit in (False, True))
    print(
        f"{layers}x{width}, 32 rows x {batch['mask'].shape[1]} positions: "
        f"first fit {first[False]:.1f} s without XLA, {first[True]:.1f} s "
        f"with; median step {plain * 1e3:.0f} ms without, {xla * 1e3:.0f} "
        f"ms with: XLA / no XLA {xla / plain:.2f}",
        flush=True,
    )


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    for size in FLAGS.sizes:
        layers, width = (int(part) for part in size.split("x"))
        run(layers, width)


if __name__ == "__main__":
    app.run(main)

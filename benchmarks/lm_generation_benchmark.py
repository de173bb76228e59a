"""Times `keras_gae.lm.generate` against keras-hub's own `generate`.

To run:

  .venv/bin/python benchmarks/lm_generation_benchmark.py
  .venv/bin/python benchmarks/lm_generation_benchmark.py \\
      --batch_size=64 --new_tokens=256 --jit=false --repeats=3

One GPT2CausalLM built from a config with random weights (nothing is
downloaded; --num_layers, --hidden_dim, --vocabulary_size), prompts of
--prompt_length random tokens, --new_tokens sampled per row with no stop
token (every row runs to the limit). Contenders, all sampling at
temperature 1 from the full vocabulary, with the same jit setting (--jit):

* keras_hub: `causal_lm.generate({"token_ids", "padding_mask"},
  stop_token_ids=None)` after `compile(sampler="random")` (its KV cache);
* keras_gae: `keras_gae.lm.generate(causal_lm, ...)` (the same model's
  `call_with_cache`, also recording log-probs and the mask);
* uncached: `keras_gae.lm.generate` on the model as a plain callable,
  rerunning it on the whole `[B, P + N]` buffer each step (the loop before
  the cache; --uncached_repeats rounds, 0 to skip).

One warm-up call each (tracing / XLA compilation), then timed rounds
interleaved; medians in seconds and each contender's ratio to keras_hub.
Timings on a shared machine are noisy: compare ratios from one run.
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

flags.DEFINE_integer("batch_size", 64, "Rows B.")
flags.DEFINE_integer("prompt_length", 8, "Prompt tokens P.")
flags.DEFINE_integer("new_tokens", 256, "New tokens N per row.")
flags.DEFINE_integer("num_layers", 2, "GPT-2 blocks.")
flags.DEFINE_integer("hidden_dim", 64, "GPT-2 width (2 heads).")
flags.DEFINE_integer("vocabulary_size", 512, "Vocabulary size V.")
flags.DEFINE_boolean("jit", True, "XLA-compile both loops.")
flags.DEFINE_integer("repeats", 3, "Timed rounds (cached contenders).")
flags.DEFINE_integer("uncached_repeats", 1, "Timed rounds, uncached loop.")
FLAGS = flags.FLAGS


def build_model():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=FLAGS.vocabulary_size,
        num_layers=FLAGS.num_layers,
        num_heads=2,
        hidden_dim=FLAGS.hidden_dim,
        intermediate_dim=4 * FLAGS.hidden_dim,
        max_sequence_length=FLAGS.prompt_length + FLAGS.new_tokens,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    causal_lm.compile(sampler="random")
    causal_lm.jit_compile = FLAGS.jit
    return causal_lm


def main(argv):
    del argv
    causal_lm = build_model()
    rng = np.random.default_rng(0)
    batch, p, n = FLAGS.batch_size, FLAGS.prompt_length, FLAGS.new_tokens
    prompts = rng.integers(1, FLAGS.vocabulary_size, size=(batch, p))
    prompts = prompts.astype(np.int32)
    token_ids = np.zeros((batch, p + n), np.int32)
    token_ids[:, :p] = prompts
    padding_mask = np.zeros((batch, p + n), bool)
    padding_mask[:, :p] = True

    def keras_hub_fn():
        out = causal_lm.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask},
            stop_token_ids=None,
        )
        return out["token_ids"]

    def keras_gae_fn():
        return lm.generate(
            causal_lm, prompts, max_new_tokens=n, jit_compile=FLAGS.jit
        ).tokens.numpy()

    def uncached_fn():
        return lm.generate(
            lambda tokens: causal_lm(
                {"token_ids": tokens, "padding_mask": tf.ones_like(tokens)}
            ),
            prompts,
            max_new_tokens=n,
            jit_compile=FLAGS.jit,
        ).tokens.numpy()

    contenders = {"keras_hub": keras_hub_fn, "keras_gae": keras_gae_fn}
    if FLAGS.uncached_repeats:
        contenders["uncached"] = uncached_fn
    times = {name: [] for name in contenders}
    for name, fn in contenders.items():
        shape = fn().shape  # warm-up: tracing and compilation
        assert shape == (batch, p + n), (name, shape)
    for round_index in range(FLAGS.repeats):
        for name, fn in contenders.items():
            if name == "uncached" and round_index >= FLAGS.uncached_repeats:
                continue
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = np.median(times["keras_hub"])
    print(
        f"GPT2CausalLM {FLAGS.num_layers} layers, width {FLAGS.hidden_dim}, "
        f"V={FLAGS.vocabulary_size}; B={batch}, P={p}, N={n}, "
        f"jit={FLAGS.jit}; medians over {FLAGS.repeats} rounds "
        f"({FLAGS.uncached_repeats} uncached)"
    )
    print(f"{'contender':<10} {'seconds':>9} {'ratio to keras_hub':>19}")
    for name, values in times.items():
        median = np.median(values)
        print(f"{name:<10} {median:9.3f} {median / base:19.2f}")


if __name__ == "__main__":
    app.run(main)

"""Per-new-token cost of `keras_gae.lm.generate` as the buffer grows.

To run:

  .venv/bin/python benchmarks/lm_generation_benchmark.py
  .venv/bin/python benchmarks/lm_generation_benchmark.py \\
      --new_tokens=32,256 --repeats=5 --peers_python=

One GPT2CausalLM built from a config with random weights (nothing is
downloaded; --num_layers, --hidden_dim, --num_heads, --vocabulary_size),
--batch_size rows of --prompt_length random tokens, each --new_tokens
count sampled at temperature 1 with no stop token (every row runs to the
limit), on --threads CPU threads. Contenders:

* keras_gae: `lm.generate(causal_lm, ...)`, its defaults (keras_gae's own
  cached step, XLA);
* keras_gae_graph: the same with `jit_compile=False`;
* keras_hub_cache: keras_gae's loop through keras-hub's `call_with_cache`
  (the path before keras_gae's own step, still used for other backbones);
* keras_hub: `causal_lm.generate(...)` after `compile(sampler="random")`
  with `jit_compile=True`;
* hf: Hugging Face transformers' `GPT2LMHeadModel.generate` (same
  configuration, its own random weights, sampling, `min_new_tokens` set)
  in the interpreter --peers_python names (a separate virtual environment
  with torch and transformers; empty to skip).

One warm-up call each, then timed rounds interleaved (hf runs in its own
process after them); medians in milliseconds per new token, by buffer
width P + N, and each contender's ratio of its widest buffer to its
narrowest. Then keras_gae's first call and what a new prompt width costs:
one in the same width bucket (no new trace) and one in the next bucket;
then its first call at each further N (a new buffer width: one new XLA
program, each call's time including one run).
Timings on a shared machine are noisy: compare ratios from one run.
"""

import json
import os
import subprocess
import sys
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_gae import lm  # noqa: E402
from keras_gae.lm import kv_cache  # noqa: E402

flags.DEFINE_integer("batch_size", 32, "Rows B (4 prompts x 8 samples).")
flags.DEFINE_integer("prompt_length", 9, "Prompt tokens P.")
flags.DEFINE_list("new_tokens", ["32", "128", "256"], "New tokens N per run.")
flags.DEFINE_integer("num_layers", 4, "GPT-2 blocks.")
flags.DEFINE_integer("hidden_dim", 256, "GPT-2 width.")
flags.DEFINE_integer("num_heads", 4, "Attention heads.")
flags.DEFINE_integer("vocabulary_size", 512, "Vocabulary size V.")
flags.DEFINE_integer("threads", 1, "CPU threads per side.")
flags.DEFINE_integer("repeats", 3, "Timed rounds.")
flags.DEFINE_string(
    "peers_python",
    ".venv-peers/bin/python",
    "Python with torch and transformers for the hf contender ('' skips).",
)
FLAGS = flags.FLAGS

_HF_SCRIPT = """
import json, sys, time
import torch, transformers
config = json.loads(sys.argv[1])
torch.set_num_threads(config["threads"])
torch.manual_seed(0)
model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
    vocab_size=config["vocab"], n_positions=config["positions"],
    n_embd=config["hidden"], n_layer=config["layers"],
    n_head=config["heads"])).eval()
prompts = torch.randint(1, config["vocab"], (config["batch"], config["p"]))
out = {}
for n in config["new"]:
    def run():
        with torch.no_grad():
            return model.generate(
                prompts, attention_mask=torch.ones_like(prompts),
                do_sample=True, top_k=0, max_new_tokens=n,
                min_new_tokens=n, pad_token_id=0)
    run()
    times = []
    for _ in range(config["repeats"]):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    out[n] = sorted(times)[len(times) // 2]
print(json.dumps(out))
"""


def build_model(max_length):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=FLAGS.vocabulary_size,
        num_layers=FLAGS.num_layers,
        num_heads=FLAGS.num_heads,
        hidden_dim=FLAGS.hidden_dim,
        intermediate_dim=4 * FLAGS.hidden_dim,
        max_sequence_length=max_length,
        dropout=0.0,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    causal_lm.compile(sampler="random")
    causal_lm.jit_compile = True
    return causal_lm


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hf_times(news):
    if not FLAGS.peers_python or not os.path.exists(FLAGS.peers_python):
        return None
    config = dict(
        threads=FLAGS.threads,
        vocab=FLAGS.vocabulary_size,
        positions=FLAGS.prompt_length + max(news),
        hidden=FLAGS.hidden_dim,
        layers=FLAGS.num_layers,
        heads=FLAGS.num_heads,
        batch=FLAGS.batch_size,
        p=FLAGS.prompt_length,
        new=news,
        repeats=FLAGS.repeats,
    )
    result = subprocess.run(
        [FLAGS.peers_python, "-c", _HF_SCRIPT, json.dumps(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {int(n): t for n, t in json.loads(result.stdout).items()}


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    news = [int(n) for n in FLAGS.new_tokens]
    batch, p = FLAGS.batch_size, FLAGS.prompt_length
    causal_lm = build_model(p + max(news) + 40)
    rng = np.random.default_rng(0)
    prompts = rng.integers(1, FLAGS.vocabulary_size, size=(batch, p))
    prompts = prompts.astype(np.int32)
    with mock.patch.object(kv_cache, "FAMILIES", ()):
        through_keras_hub = lm.CausalLMPolicy(causal_lm, value_head=None)

    # keras_gae's first call (tracing and XLA compilation), then new
    # prompt widths: one in the same bucket, one in the next.
    first = {}
    for name, width in (("first call", p), ("new width, same bucket", p + 3)):
        first[name] = timed(
            lambda w=width: lm.generate(
                causal_lm, prompts[:, :1].repeat(w, 1), max_new_tokens=news[0]
            ).tokens.numpy()
        )
    first["new width, next bucket"] = timed(
        lambda: lm.generate(
            causal_lm, prompts.repeat(3, 1)[:, :20], max_new_tokens=news[0]
        ).tokens.numpy()
    )

    seconds = {}
    keras_hub_inputs = {}
    for n in news:
        token_ids = np.zeros((batch, p + n), np.int32)
        token_ids[:, :p] = prompts
        padding_mask = np.zeros((batch, p + n), bool)
        padding_mask[:, :p] = True
        keras_hub_inputs[n] = {
            "token_ids": token_ids,
            "padding_mask": padding_mask,
        }
        contenders = {
            "keras_gae": lambda n=n: lm.generate(
                causal_lm, prompts, max_new_tokens=n
            ),
            "keras_gae_graph": lambda n=n: lm.generate(
                causal_lm, prompts, max_new_tokens=n, jit_compile=False
            ),
            "keras_hub_cache": lambda n=n: lm.generate(
                through_keras_hub, prompts, max_new_tokens=n, jit_compile=True
            ),
            "keras_hub": lambda n=n: causal_lm.generate(
                keras_hub_inputs[n], stop_token_ids=None
            ),
        }
        times = {name: [] for name in contenders}
        for name, fn in contenders.items():
            # Warm-up: tracing and compilation. keras_gae's is its first
            # call at this buffer width (already compiled for news[0]).
            warm_up = timed(fn)
            if name == "keras_gae" and n != news[0]:
                first[f"new N={n} (buffer {p + n})"] = warm_up
        for _ in range(FLAGS.repeats):
            for name, fn in contenders.items():
                times[name].append(timed(fn))
        for name, values in times.items():
            seconds.setdefault(name, {})[n] = float(np.median(values))
    hf = hf_times(news)
    if hf is not None:
        seconds["hf"] = hf

    print(
        f"GPT-2 {FLAGS.num_layers} layers x {FLAGS.hidden_dim} "
        f"({FLAGS.num_heads} heads), V={FLAGS.vocabulary_size}; B={batch}, "
        f"P={p}, {FLAGS.threads} thread(s); medians over {FLAGS.repeats} "
        "rounds; ms per new token by buffer width P + N"
    )
    header = "".join(f"{p + n:>9}" for n in news)
    print(f"{'contender':<16}{header}{'widest/narrowest':>18}")
    for name, by_n in seconds.items():
        per_token = [1000 * by_n[n] / n for n in news]
        row = "".join(f"{ms:9.2f}" for ms in per_token)
        print(f"{name:<16}{row}{per_token[-1] / per_token[0]:18.2f}")
    print(
        f"keras_gae (XLA) first calls (trace, compile, one run), "
        f"N={news[0]} unless named:"
    )
    for name, value in first.items():
        print(f"  {name:<24}{value:8.2f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)

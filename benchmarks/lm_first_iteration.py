"""Where the first GRPO iteration of keras_gae goes, phase by phase.

To run:

  .venv/bin/python benchmarks/lm_first_iteration.py
  .venv/bin/python benchmarks/lm_first_iteration.py --size=2x64 \\
      --new_tokens=32 --optimizer=adam

keras_gae's side of benchmarks/trl_comparison.py, in this process alone:
the same random-weight GPT-2 (--size LAYERSxWIDTH, vocabulary 512), 4
prompts x 8 samples of 8 tokens, GRPO with the token-mean loss, one
thread. It times --iterations iterations (the first traces and compiles
the generation loop and the train step): `generate` (the sampling call
inside `collect`), the rest of `collect`, and `update` (one `fit` epoch
over one minibatch), with `keras_gae.optimizers.FusedAdam` or
`keras.optimizers.Adam` (--optimizer).
"""

import os
import sys
import time

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trl_comparison  # noqa: E402

flags.DEFINE_string("size", "4x256", "GPT-2 LAYERSxWIDTH.")
flags.DEFINE_integer("new_tokens", 128, "New tokens per response.")
flags.DEFINE_enum(
    "optimizer", "fused_adam", ["fused_adam", "adam"], "The optimizer."
)
flags.DEFINE_integer("iterations", 3, "Iterations, the first included.")
FLAGS = flags.FLAGS


class _Prompts:
    vocabulary_size, prompt_length, num_prompts = 512, 8, 4


def main(argv):
    del argv
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from keras_gae.models import rollout_dataset
    from keras_gae.optimizers import FusedAdam

    generate_seconds = trl_comparison.time_generation()
    adam = {"fused_adam": FusedAdam, "adam": keras.optimizers.Adam}
    model, _ = trl_comparison.keras_gae_model(
        FLAGS.size,
        _Prompts.vocabulary_size,
        8 + FLAGS.new_tokens,
        adam=adam[FLAGS.optimizer],
    )
    score = trl_comparison.score_rows

    print(f"{FLAGS.size}, {FLAGS.new_tokens} new tokens, {FLAGS.optimizer}")
    print("| iteration | generate s | rest of collect s | update s | total s |")
    print("|---:|---:|---:|---:|---:|")
    for step in range(FLAGS.iterations):
        del generate_seconds[:]
        start = time.perf_counter()
        rollout = model.collect(
            trl_comparison.make_prompts(_Prompts, 0, step),
            score,
            max_new_tokens=FLAGS.new_tokens,
            num_samples=8,
            seed=step,
        )
        collected = time.perf_counter()
        model.fit(
            rollout_dataset(rollout.batch, num_minibatches=1, seed=step),
            epochs=1,
            verbose=0,
        )
        done = time.perf_counter()
        generate = sum(generate_seconds)
        print(
            f"| {step} | {generate:.2f} | {collected - start - generate:.2f} "
            f"| {done - collected:.2f} | {done - start:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)

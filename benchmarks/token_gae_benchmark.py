"""Times keras_gae's masked token-level GAE against per-token Python loops.

To run:

  .venv/bin/python benchmarks/token_gae_benchmark.py  # all 6 shapes
  .venv/bin/python benchmarks/token_gae_benchmark.py \\
      --batch_sizes=64 --lengths=4096 --repeats=7 --loop_repeats=1
  .venv/bin/python benchmarks/token_gae_benchmark.py \\
      --contenders=keras_gae,numpy_loop

The inputs are what a language-model trainer holds after sampling: `[B, L]`
response tokens, batch-major, every row ending with EOS somewhere in its
second half and padding after it; rewards are a small per-token KL term plus
a score on the EOS token; values are noise. The contenders:

* keras_gae: `generalized_advantage_estimation(..., mask=mask,
  terminated=eos, time_major=False)` inside a `tf.function` (the default
  `implementation="auto"`), transposes included.
* tf_eager_loop: the reverse per-token loop PyTorch RLHF trainers run
  (`for t in reversed(range(L)): delta = r[:, t] + gamma * V[:, t + 1] -
  V[:, t]; ...`, on rewards and values zeroed after EOS), written here with
  eager TensorFlow ops as a stand-in for eager torch ops.
* numpy_loop: the same loop on NumPy arrays.

Every contender must agree with a float64 NumPy run of the loop (masked
entries compared as 0) before it is timed. Timings are interleaved round by
round; medians in milliseconds, and each loop's ratio to keras_gae. The
loops are slow at L = 16k (the eager loop at B = 512 takes seconds per
call): `--loop_repeats=1` times them once per shape while keras_gae keeps
`--repeats`. Contenders left out by `--contenders` are reported as such.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import keras_gae  # noqa: E402, F401
from keras_gae import ops  # noqa: E402

CONTENDERS = ("keras_gae", "tf_eager_loop", "numpy_loop")

flags.DEFINE_list("batch_sizes", ["64", "512"], "Batch sizes B.")
flags.DEFINE_list("lengths", ["1024", "4096", "16384"], "Lengths L.")
flags.DEFINE_list(
    "contenders", list(CONTENDERS), f"Contenders to run, among {CONTENDERS}."
)
flags.DEFINE_integer("repeats", 7, "Timed rounds for keras_gae.")
flags.DEFINE_integer(
    "loop_repeats",
    None,
    "Timed rounds for the loop contenders (default: --repeats). Use 1 for "
    "the large shapes.",
)
flags.DEFINE_float("gamma", 1.0, "Discount (1 is usual for language).")
flags.DEFINE_float("lambda_", 0.95, "GAE lambda.")
FLAGS = flags.FLAGS


def make_inputs(batch, length, seed=0):
    """Float32 rewards, values, bool mask and EOS flags, `[B, L]`."""
    rng = np.random.default_rng(seed)
    eos_position = rng.integers(length // 2, length, size=batch)
    positions = np.arange(length)[np.newaxis, :]
    mask = positions <= eos_position[:, np.newaxis]
    eos = positions == eos_position[:, np.newaxis]
    rewards = -0.01 * rng.random((batch, length)) + eos * rng.normal(
        size=(batch, 1)
    )
    values = rng.normal(size=(batch, length))
    rewards = np.where(mask, rewards, 0.0).astype(np.float32)
    values = np.where(mask, values, 0.0).astype(np.float32)
    return rewards, values, mask, eos


def numpy_loop(rewards, values, gamma, lambda_):
    """The trainer loop: values are 0 after EOS, so EOS bootstraps from 0."""
    length = rewards.shape[1]
    last = np.zeros(rewards.shape[0], rewards.dtype)
    reversed_advantages = []
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lambda_ * last
        reversed_advantages.append(last)
    return np.stack(reversed_advantages[::-1], axis=1)


def tf_eager_loop(rewards, values, gamma, lambda_):
    """The same loop, one eager TensorFlow op at a time."""
    length = int(rewards.shape[1])
    last = tf.zeros_like(rewards[:, 0])
    reversed_advantages = []
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lambda_ * last
        reversed_advantages.append(last)
    return tf.stack(reversed_advantages[::-1], axis=1)


def make_contenders(gamma, lambda_):
    @tf.function
    def keras_gae_fn(rewards, values, mask, eos):
        return ops.generalized_advantage_estimation(
            rewards,
            values,
            tf.zeros_like(rewards[:, 0]),
            gamma=gamma,
            lambda_=lambda_,
            terminated=eos,
            mask=mask,
            time_major=False,
        ).advantages

    def tf_loop_fn(rewards, values, mask, eos):
        del eos
        advantages = tf_eager_loop(rewards, values, gamma, lambda_)
        return tf.where(mask, advantages, 0.0)

    def numpy_fn(rewards, values, mask, eos):
        del eos
        advantages = numpy_loop(rewards, values, gamma, lambda_)
        return np.where(mask, advantages, 0.0)

    return {
        "keras_gae": (keras_gae_fn, "tf"),
        "tf_eager_loop": (tf_loop_fn, "tf"),
        "numpy_loop": (numpy_fn, "np"),
    }


def time_shape(contenders, batch, length, repeats, loop_repeats):
    inputs_np = make_inputs(batch, length)
    inputs_tf = tuple(tf.constant(x) for x in inputs_np)
    rewards, values, mask, _ = inputs_np
    reference = np.where(
        mask,
        numpy_loop(
            rewards.astype(np.float64),
            values.astype(np.float64),
            FLAGS.gamma,
            FLAGS.lambda_,
        ),
        0.0,
    )
    scale = max(np.max(np.abs(reference)), 1.0)

    def call(name):
        fn, kind = contenders[name]
        out = fn(*(inputs_tf if kind == "tf" else inputs_np))
        return np.asarray(out)

    for name in contenders:
        error = np.max(np.abs(call(name) - reference)) / scale
        if error > 1e-4:
            raise AssertionError(
                f"{name} disagrees with the float64 loop at B={batch}, "
                f"L={length}: max error {error:.2e} relative to max |A|"
            )
    times = {name: [] for name in contenders}
    for round_index in range(max(repeats, loop_repeats)):
        for name in contenders:
            wanted = repeats if name == "keras_gae" else loop_repeats
            if round_index >= wanted:
                continue
            start = time.perf_counter()
            call(name)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.contenders) - set(CONTENDERS))
    if unknown:
        raise app.UsageError(
            f"--contenders must be among {CONTENDERS}. "
            f"Received: contenders={unknown}"
        )
    all_contenders = make_contenders(FLAGS.gamma, FLAGS.lambda_)
    contenders = {
        name: all_contenders[name]
        for name in CONTENDERS
        if name in FLAGS.contenders
    }
    left_out = [name for name in CONTENDERS if name not in contenders]
    repeats = FLAGS.repeats
    loop_repeats = (
        FLAGS.repeats if FLAGS.loop_repeats is None else FLAGS.loop_repeats
    )
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
        f"devices {[d.name for d in tf.config.list_logical_devices()]}; "
        f"medians of {repeats} rounds (keras_gae) and {loop_repeats} "
        "(loops), milliseconds, interleaved"
    )
    if left_out:
        print(f"Not run (left out by --contenders): {', '.join(left_out)}")
    rows = []
    for batch in (int(b) for b in FLAGS.batch_sizes):
        for length in (int(n) for n in FLAGS.lengths):
            medians = time_shape(
                contenders, batch, length, repeats, loop_repeats
            )
            rows.append((f"{batch}x{length}", medians))
            print(
                f"  B x L = {batch}x{length}: "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items()),
                flush=True,
            )
    print(
        f"\n{'B x L':>10} | " + " | ".join(f"{name:>16}" for name in contenders)
    )
    for shape, medians in rows:
        print(
            f"{shape:>10} | "
            + " | ".join(f"{medians[name]:>13.2f} ms" for name in contenders)
        )
    if "keras_gae" in contenders and len(contenders) > 1:
        print("\nLoop time / keras_gae time:")
        others = [name for name in contenders if name != "keras_gae"]
        print(f"{'B x L':>10} | " + " | ".join(f"{n:>16}" for n in others))
        for shape, medians in rows:
            base = medians["keras_gae"]
            print(
                f"{shape:>10} | "
                + " | ".join(
                    f"{medians[name] / base:>15.1f}x" for name in others
                )
            )
    print(
        "\nAll contenders agree with the float64 loop within 1e-4 of max |A|."
    )


if __name__ == "__main__":
    app.run(main)

"""Times keras_gae's GAE against tf-agents' and a NumPy reverse loop.

To run:

  .venv/bin/python benchmarks/gae_benchmark.py            # all shapes
  .venv/bin/python benchmarks/gae_benchmark.py --shapes=128x8 --repeats=21

All contenders get the same inputs (time-major float32 rewards and values,
V(s_T), terminations at a 1% rate; tf-agents gets the equivalent discounts)
and must agree with a float64 NumPy reference within 1e-5 relative before
they are timed. Timings are interleaved round by round, so drifts in the
machine's load hit every contender alike; the table shows medians and the
ratio of each to keras_gae's default ("auto").
"""

import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from tf_agents.utils import value_ops  # noqa: E402

import keras_gae  # noqa: E402, F401
from keras_gae import ops  # noqa: E402
from keras_gae.ops import gae as gae_lib  # noqa: E402

flags.DEFINE_list(
    "shapes", ["128x8", "128x2048", "2048x4096"], "TxB shapes to time."
)
flags.DEFINE_integer("repeats", 15, "Timed rounds per shape.")
flags.DEFINE_float("gamma", 0.99, "Discount.")
flags.DEFINE_float("lambda_", 0.95, "GAE lambda.")
FLAGS = flags.FLAGS


def numpy_gae(rewards, values, bootstrap_value, terminated, gamma, lambda_):
    """The stable-baselines3 / CleanRL style reverse loop over time."""
    advantages = np.zeros_like(rewards)
    following = np.zeros_like(bootstrap_value)
    next_values = bootstrap_value
    not_terminated = 1.0 - terminated.astype(rewards.dtype)
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * not_terminated[t] * next_values - values[t]
        following = delta + gamma * lambda_ * not_terminated[t] * following
        advantages[t] = following
        next_values = values[t]
    return advantages


def make_contenders(gamma, lambda_):
    def keras_gae_fn(implementation):
        @tf.function
        def run(rewards, values, bootstrap_value, terminated, discounts):
            del discounts
            return ops.generalized_advantage_estimation(
                rewards,
                values,
                bootstrap_value,
                gamma=gamma,
                lambda_=lambda_,
                terminated=terminated,
                implementation=implementation,
            ).advantages

        return run

    @tf.function
    def tf_agents_fn(rewards, values, bootstrap_value, terminated, discounts):
        del terminated
        return value_ops.generalized_advantage_estimation(
            values,
            bootstrap_value,
            discounts,
            rewards,
            td_lambda=lambda_,
            time_major=True,
        )

    def numpy_fn(rewards, values, bootstrap_value, terminated, discounts):
        del discounts
        return numpy_gae(
            rewards, values, bootstrap_value, terminated, gamma, lambda_
        )

    return {
        "keras_gae auto": (keras_gae_fn("auto"), "tf"),
        "keras_gae xla": (keras_gae_fn("xla"), "tf"),
        "keras_gae scan": (keras_gae_fn("scan"), "tf"),
        "tf-agents value_ops": (tf_agents_fn, "tf"),
        "numpy loop": (numpy_fn, "np"),
    }


def main(argv):
    del argv
    contenders = make_contenders(FLAGS.gamma, FLAGS.lambda_)
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
        f"{FLAGS.repeats} interleaved rounds, median milliseconds; "
        f"keras_gae auto runs {gae_lib._resolve('auto')!r} here"
    )
    header = f"{'T x B':>12} | " + " | ".join(
        f"{name:>16}" for name in contenders
    )
    rows = []
    for shape in FLAGS.shapes:
        num_steps, batch = (int(x) for x in shape.split("x"))
        rng = np.random.default_rng(0)
        inputs_np = (
            rng.normal(size=(num_steps, batch)).astype(np.float32),
            rng.normal(size=(num_steps, batch)).astype(np.float32),
            rng.normal(size=batch).astype(np.float32),
            rng.random((num_steps, batch)) < 0.01,
        )
        discounts = (FLAGS.gamma * (1.0 - inputs_np[3])).astype(np.float32)
        inputs_np = inputs_np + (discounts,)
        inputs_tf = tuple(tf.constant(x) for x in inputs_np)
        reference = numpy_gae(
            *(x.astype(np.float64) for x in inputs_np[:3]),
            inputs_np[3],
            FLAGS.gamma,
            FLAGS.lambda_,
        )
        scale = np.max(np.abs(reference))
        for name, (fn, kind) in contenders.items():
            args = inputs_tf if kind == "tf" else inputs_np
            out = np.asarray(fn(*args))
            error = np.max(np.abs(out - reference)) / scale
            if error > 1e-5:
                raise AssertionError(
                    f"{name} disagrees with the float64 reference at {shape}:"
                    f" max error {error:.2e} relative to max |A|"
                )
        times = {name: [] for name in contenders}
        for _ in range(FLAGS.repeats):
            for name, (fn, kind) in contenders.items():
                args = inputs_tf if kind == "tf" else inputs_np
                start = time.perf_counter()
                out = fn(*args)
                if kind == "tf":
                    out.numpy()
                times[name].append(time.perf_counter() - start)
        medians = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        rows.append((shape, medians))

    print(header)
    for shape, medians in rows:
        print(
            f"{shape:>12} | "
            + " | ".join(f"{medians[name]:>13.2f} ms" for name in contenders)
        )
    print("\nSpeed-up of keras_gae auto (contender time / keras_gae time):")
    print(
        f"{'T x B':>12} | " + " | ".join(f"{name:>16}" for name in contenders)
    )
    for shape, medians in rows:
        base = medians["keras_gae auto"]
        print(
            f"{shape:>12} | "
            + " | ".join(
                f"{medians[name] / base:>15.2f}x" for name in contenders
            )
        )
    print("\nAll contenders agree with the float64 reference within 1e-5.")


if __name__ == "__main__":
    app.run(main)

"""Times keras_gae's GAE against tf-agents' and a NumPy reverse loop.

To run:

  .venv/bin/python benchmarks/gae_benchmark.py            # all shapes
  .venv/bin/python benchmarks/gae_benchmark.py --shapes=128x8 --repeats=21

All contenders get the same inputs (time-major float32 rewards and values,
V(s_T), terminations at a 1% rate; tf-agents gets the equivalent discounts)
and must agree with a float64 NumPy reference within 1e-5 relative before
they are timed. Timings are interleaved round by round, so drifts in the
machine's load hit every contender alike. Two tables, each with medians and
the ratio of each contender to keras_gae's default ("auto"):

* one `tf.function` call per GAE, with its Python dispatch and the copy of
  the result to NumPy, a fixed cost of a few tenths of a millisecond that
  every TensorFlow contender pays and that dominates at small shapes;
* `--chained_calls` GAE computations inside one `tf.function`, each fed the
  last one's advantages, timed per computation: GAE as it runs inside a
  compiled train step.
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
flags.DEFINE_integer(
    "chained_calls", 10, "GAE computations per function in the chained run."
)
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
    """name -> (core function of the five inputs, "tf" or "np")."""

    def keras_gae_core(implementation):
        def core(rewards, values, bootstrap_value, terminated, discounts):
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

        return core

    def tf_agents_core(rewards, values, bootstrap_value, terminated, discounts):
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
        "keras_gae auto": (keras_gae_core("auto"), "tf"),
        "keras_gae xla": (keras_gae_core("xla"), "tf"),
        "keras_gae scan": (keras_gae_core("scan"), "tf"),
        "tf-agents value_ops": (tf_agents_core, "tf"),
        "numpy loop": (numpy_fn, "np"),
    }


def chained(core, calls):
    """`calls` GAE computations in one tf.function, each fed the last.

    The next call's rewards depend on the previous advantages, so no call
    can be skipped or merged; this is how GAE runs inside a compiled train
    step, without Python dispatch per call.
    """

    @tf.function
    def run(rewards, values, bootstrap_value, terminated, discounts):
        advantages = rewards
        for _ in range(calls):
            advantages = core(
                rewards + 1e-3 * advantages,
                values,
                bootstrap_value,
                terminated,
                discounts,
            )
        return advantages

    return run


def time_contenders(contenders, inputs_tf, inputs_np, repeats, divide_by):
    """Interleaved rounds; median milliseconds per GAE computation."""
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, (fn, kind) in contenders.items():
            args = inputs_tf if kind == "tf" else inputs_np
            start = time.perf_counter()
            out = fn(*args)
            if kind == "tf":
                out.numpy()
            elapsed = time.perf_counter() - start
            times[name].append(elapsed / (divide_by if kind == "tf" else 1))
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def print_tables(title, rows, names):
    print(f"\n{title}")
    print(f"{'T x B':>12} | " + " | ".join(f"{name:>16}" for name in names))
    for shape, medians in rows:
        print(
            f"{shape:>12} | "
            + " | ".join(f"{medians[name]:>13.3f} ms" for name in names)
        )
    print("Speed-up of keras_gae auto (contender time / keras_gae time):")
    for shape, medians in rows:
        base = medians["keras_gae auto"]
        print(
            f"{shape:>12} | "
            + " | ".join(f"{medians[name] / base:>15.2f}x" for name in names)
        )


def main(argv):
    del argv
    cores = make_contenders(FLAGS.gamma, FLAGS.lambda_)
    per_call = {
        name: (tf.function(core) if kind == "tf" else core, kind)
        for name, (core, kind) in cores.items()
    }
    in_graph = {
        name: (
            chained(core, FLAGS.chained_calls) if kind == "tf" else core,
            kind,
        )
        for name, (core, kind) in cores.items()
    }
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
        f"{FLAGS.repeats} interleaved rounds, median milliseconds; "
        f"keras_gae auto runs {gae_lib._resolve('auto')!r} here"
    )
    rows, chained_rows = [], []
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
        for name, (fn, kind) in per_call.items():
            args = inputs_tf if kind == "tf" else inputs_np
            out = np.asarray(fn(*args))
            error = np.max(np.abs(out - reference)) / scale
            if error > 1e-5:
                raise AssertionError(
                    f"{name} disagrees with the float64 reference at {shape}:"
                    f" max error {error:.2e} relative to max |A|"
                )
        chained_out = {
            name: np.asarray(fn(*inputs_tf))
            for name, (fn, kind) in in_graph.items()
            if kind == "tf"
        }
        for name, out in chained_out.items():
            expected = chained_out["keras_gae scan"]
            error = np.max(np.abs(out - expected)) / np.max(np.abs(expected))
            if error > 1e-4:
                raise AssertionError(
                    f"{name} disagrees in the chained run at {shape}: "
                    f"{error:.2e}"
                )
        rows.append(
            (
                shape,
                time_contenders(
                    per_call, inputs_tf, inputs_np, FLAGS.repeats, 1
                ),
            )
        )
        chained_rows.append(
            (
                shape,
                time_contenders(
                    in_graph,
                    inputs_tf,
                    inputs_np,
                    FLAGS.repeats,
                    FLAGS.chained_calls,
                ),
            )
        )

    names = list(per_call)
    print_tables(
        "One tf.function call per GAE (Python dispatch and the copy of the "
        "result to NumPy included):",
        rows,
        names,
    )
    print_tables(
        f"Inside one tf.function, {FLAGS.chained_calls} chained GAE "
        "computations, time per computation (numpy loop: per call):",
        chained_rows,
        names,
    )
    print("\nAll contenders agree with the float64 reference within 1e-5.")


if __name__ == "__main__":
    app.run(main)

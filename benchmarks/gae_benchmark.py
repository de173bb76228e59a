"""Times keras_gae's GAE against tf-agents' and a NumPy reverse loop.

To run:

  .venv/bin/python benchmarks/gae_benchmark.py            # default shapes
  .venv/bin/python benchmarks/gae_benchmark.py --shapes=128x8 --repeats=21
  .venv/bin/python benchmarks/gae_benchmark.py --format=markdown

All contenders get the same inputs (time-major float32 rewards and values,
V(s_T), terminations at a 1% rate; tf-agents gets the equivalent discounts)
and must agree with a float64 NumPy reference within 1e-5 relative before
they are timed. Timings are interleaved round by round, in a new random
order each round, so drifts in the machine's load hit every contender
alike. keras_gae runs as "auto" (the
default, which never compiles C++), "xla", "scan" and "native" (the opt-in
g++-built op, built or loaded from the cache before timing). Four tables,
each cell the median milliseconds per GAE and, in parentheses, that time
over keras_gae auto's (above 1: slower than auto):

* eager: one call from Python, no `tf.function`;
* one `tf.function` call per GAE, with its Python dispatch and the copy of
  the result to NumPy, a fixed cost of a few tenths of a millisecond that
  every TensorFlow contender pays and that dominates at small shapes;
* `--chained_calls` GAE computations inside one `tf.function`, each fed the
  last one's advantages, timed per computation: GAE as it runs inside a
  compiled train step without XLA (Keras' default on CPU);
* the same chain inside one `tf.function(jit_compile=True)`: a train step
  compiled with XLA (native cannot run there).

These tables are what `implementation="auto"` is chosen by (see
keras_gae/ops/_gae_implementations.py); `--format=markdown` prints them as
the tables of docs/benchmarks.md, "GAE", which holds the figures.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

import keras_gae.agents  # noqa: E402, F401
from keras_gae import ops  # noqa: E402
from keras_gae.ops import native  # noqa: E402

flags.DEFINE_list(
    "shapes", ["128x8", "128x2048", "2048x4096"], "TxB shapes to time."
)
flags.DEFINE_integer("repeats", 15, "Timed rounds per shape.")
flags.DEFINE_integer(
    "chained_calls", 10, "GAE computations per function in the chained run."
)
flags.DEFINE_enum(
    "format",
    "text",
    ["text", "markdown"],
    "Plain tables, or markdown tables as in docs/benchmarks.md.",
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
    # After keras_gae.agents, which imports tf-agents with the Keras 2 it
    # needs (docs/design.md, "Keras version").
    from tf_agents.utils import value_ops

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

    contenders = {
        "keras_gae auto": (keras_gae_core("auto"), "tf"),
        "keras_gae xla": (keras_gae_core("xla"), "tf"),
        "keras_gae scan": (keras_gae_core("scan"), "tf"),
        "keras_gae native": (keras_gae_core("native"), "tf"),
        "tf-agents value_ops": (tf_agents_core, "tf"),
        "numpy loop": (numpy_fn, "np"),
    }
    if not native.available():
        print("The native op could not be built here; it is left out.")
        del contenders["keras_gae native"]
    return contenders


def chained(core, calls, jit_compile=False):
    """`calls` GAE computations in one tf.function, each fed the last.

    The next call's rewards depend on the previous advantages, so no call
    can be skipped or merged; this is how GAE runs inside a compiled train
    step, without Python dispatch per call.
    """

    @tf.function(jit_compile=jit_compile)
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
    """Interleaved rounds; median milliseconds per GAE computation.

    Each round runs the contenders in a new random order: the first
    TensorFlow call after a pause pays for waking TensorFlow's thread pool,
    and a fixed order would always charge that to the same contender.
    """
    times = {name: [] for name in contenders}
    names = list(contenders)
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for name in rng.permutation(names):
            fn, kind = contenders[name]
            args = inputs_tf if kind == "tf" else inputs_np
            start = time.perf_counter()
            out = fn(*args)
            if kind == "tf":
                out.numpy()
            elapsed = time.perf_counter() - start
            times[name].append(elapsed / (divide_by if kind == "tf" else 1))
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def cell(medians, name):
    """'median (ratio to auto)', or 'n/a' for a contender that cannot run."""
    if name not in medians:
        return "n/a"
    ratio = medians[name] / medians["keras_gae auto"]
    return f"{medians[name]:.3f} ({ratio:.2f}x)"


def print_table(title, rows, names, markdown):
    print(f"\n{title}")
    if markdown:
        print("| T x B | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for shape, medians in rows:
            cells = [cell(medians, name) for name in names]
            print(
                f"| {shape.replace('x', ' x ')} | " + " | ".join(cells) + " |"
            )
        return
    width = max(len(name) for name in names) + 1
    print(f"{'T x B':>10} |" + "|".join(f"{name:>{width}}" for name in names))
    for shape, medians in rows:
        cells = [cell(medians, name) for name in names]
        print(f"{shape:>10} |" + "|".join(f"{c:>{width}}" for c in cells))


def make_inputs(shape):
    """float32 NumPy and tf inputs, and the float64 reference advantages."""
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
    return inputs_np, inputs_tf, reference


def check_agreement(contexts, inputs_tf, inputs_np, reference, shape):
    """Each single GAE against the float64 reference; chains against scan's.

    A chain feeds each GAE the last one's advantages, so it has no float64
    reference of its own: the reference scan path's chain stands in.
    """
    for context, (contenders, _) in contexts.items():
        outputs = {
            name: (
                np.asarray(fn(*(inputs_tf if kind == "tf" else inputs_np))),
                kind,
            )
            for name, (fn, kind) in contenders.items()
        }
        for name, (out, kind) in outputs.items():
            if context.startswith("chained") and kind == "tf":
                expected, tolerance = outputs["keras_gae scan"][0], 1e-4
            else:
                expected, tolerance = reference, 1e-5
            error = np.max(np.abs(out - expected)) / np.max(np.abs(expected))
            if error > tolerance:
                raise AssertionError(
                    f"{name} ({context}) disagrees at {shape}: max error "
                    f"{error:.2e} relative to max |A|"
                )


def main(argv):
    del argv
    # Each contender's chain is its own tf.function: TensorFlow's retracing
    # warning counts them as one and would fire on every shape.
    tf.get_logger().setLevel("ERROR")
    logging.set_verbosity(logging.ERROR)
    cores = make_contenders(FLAGS.gamma, FLAGS.lambda_)
    calls = FLAGS.chained_calls

    def wrap(wrapper, skip_native=False):
        return {
            name: (wrapper(core) if kind == "tf" else core, kind)
            for name, (core, kind) in cores.items()
            if not (skip_native and name == "keras_gae native")
        }

    contexts = {
        "eager": (wrap(lambda core: core), 1),
        "per call": (wrap(tf.function), 1),
        "chained": (wrap(lambda core: chained(core, calls)), calls),
        "chained, XLA": (
            wrap(lambda core: chained(core, calls, True), skip_native=True),
            calls,
        ),
    }
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
        f"{FLAGS.repeats} interleaved rounds. keras_gae auto runs 'xla' "
        "outside XLA-compiled functions and 'scan' inside them."
    )
    rows = {context: [] for context in contexts}
    for shape in FLAGS.shapes:
        inputs_np, inputs_tf, reference = make_inputs(shape)
        check_agreement(contexts, inputs_tf, inputs_np, reference, shape)
        for context, (contenders, divide_by) in contexts.items():
            medians = time_contenders(
                contenders, inputs_tf, inputs_np, FLAGS.repeats, divide_by
            )
            rows[context].append((shape, medians))

    names = list(cores)
    titles = {
        "eager": "Eager, one call per GAE:",
        "per call": "One tf.function call per GAE (Python dispatch and the "
        "copy of the result to NumPy included):",
        "chained": f"Inside one tf.function, {calls} chained GAE "
        "computations, time per computation (numpy loop: per call):",
        "chained, XLA": f"Inside one tf.function(jit_compile=True), {calls} "
        "chained GAE computations, time per computation (numpy loop: per "
        "call; native cannot run under XLA):",
    }
    print(
        "\nMedian milliseconds per GAE; in parentheses, the time over "
        "keras_gae auto's in the same table."
    )
    for context in contexts:
        print_table(
            titles[context],
            rows[context],
            names,
            FLAGS.format == "markdown",
        )
    print(
        "\nEvery single GAE agrees with the float64 reference within 1e-5 "
        "relative, every chain with the scan path's within 1e-4."
    )


if __name__ == "__main__":
    app.run(main)

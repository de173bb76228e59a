"""What one filled cache column costs a decoding step, against a plain read.

To run:

  .venv/bin/python benchmarks/kv_read_cost.py

The per-new-token cost of `keras_gae.lm.generate` grows with the filled
length of the key/value cache (benchmarks/lm_generation_benchmark.py).
This script times that part alone, XLA-compiled, on one thread, for the
cache of --num_layers layers of keys and values in `[B, H, BLOCK + 1, D]`
blocks (`kv_cache.empty_cache`'s layout; float32; the defaults are the
4 x 256 GPT-2 of the LM benchmarks at 32 rows):

* attend: `keras_gae.lm.kv_cache.attend_blocks` (one query column over
  the filled blocks: what a decoding step runs per layer) for every
  layer;
* read: a sum over the same filled columns of every layer's keys and
  values, given as arrays of exactly that width (no loop, contiguous: the
  memory floor of reading them).

Each at --filled columns; printed: milliseconds per call and microseconds
per filled column (the slope between the first and the last width).
"""

import os
import time

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

flags.DEFINE_integer("batch_size", 32, "Rows B.")
flags.DEFINE_integer("num_layers", 4, "Layers.")
flags.DEFINE_integer("num_heads", 4, "Key/value heads H.")
flags.DEFINE_integer("head_dim", 64, "Head size D.")
flags.DEFINE_list("filled", ["25", "137", "265"], "Filled columns.")
flags.DEFINE_integer("repeats", 200, "Timed calls per measurement.")
FLAGS = flags.FLAGS


def _time(fn, *args):
    fn(*args)  # Traces and compiles.
    start = time.perf_counter()
    for _ in range(FLAGS.repeats):
        fn(*args).numpy()
    return (time.perf_counter() - start) / FLAGS.repeats


def main(argv):
    del argv
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_gae.lm import kv_cache

    filled = [int(n) for n in FLAGS.filled]
    batch, heads, size = FLAGS.batch_size, FLAGS.num_heads, FLAGS.head_dim
    block = kv_cache.BLOCK
    count = -(-max(filled) // block)
    shape = [batch, heads, block + 1, size]

    def blocks():
        return tuple(tf.random.normal(shape) for _ in range(count))

    caches = [(blocks(), blocks()) for _ in range(FLAGS.num_layers)]
    query = tf.random.normal([batch, 1, heads, size])

    @tf.function(jit_compile=True)
    def attend(start):
        outputs = [
            kv_cache.attend_blocks(query, keys, values, start)
            for keys, values in caches
        ]
        return tf.add_n(outputs)

    @tf.function(jit_compile=True)
    def read(*tensors):
        return tf.add_n([tf.reduce_sum(tensor) for tensor in tensors])

    rows = []
    for columns in filled:
        # The query at column `columns - 1`: `columns` filled columns.
        attended = _time(attend, tf.constant(columns - 1))
        prefix = [
            kv_cache.filled_columns(part)[:, :, :columns] + 0.0
            for pair in caches
            for part in pair
        ]
        read_seconds = _time(read, *prefix)
        rows.append((columns, attended, read_seconds))
    kilobytes = 2 * FLAGS.num_layers * batch * heads * size * 4 / 1024
    print(
        f"B={batch}, {FLAGS.num_layers} layers, H={heads}, D={size}, "
        f"float32: {kilobytes:.0f} KiB of keys and values per column"
    )
    print("| filled columns | attend ms | read ms |")
    print("|---:|---:|---:|")
    for columns, attended, read_seconds in rows:
        print(
            f"| {columns} | {attended * 1e3:.3f} | {read_seconds * 1e3:.3f} |"
        )
    (first, a0, r0), (last, a1, r1) = rows[0], rows[-1]
    span = last - first
    print(
        f"per filled column: attend {(a1 - a0) / span * 1e6:.1f} us, "
        f"read {(r1 - r0) / span * 1e6:.1f} us"
    )


if __name__ == "__main__":
    app.run(main)

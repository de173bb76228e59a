"""Whether the graph being built will be compiled by XLA (a private TF API).

TensorFlow has no public way to ask this: `tf.function(jit_compile=True)`
marks the graph it traces only by entering an XLA control-flow context,
which nothing public reads. keras_gae needs the answer in two places, the
GAE kernel choice ("auto" must not nest a compiled function inside XLA,
"native" has no XLA kernel) and the warning that `check_numerics` has no
effect there, so TensorFlow's own reader, `control_flow_util`, is imported
here and nowhere else. setup.py pins TensorFlow to one minor release;
tests/ops/test_xla_context.py fails when a release moves or changes it.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util


def in_xla_context() -> bool:
    """Whether ops created now land in a graph that XLA compiles.

    True while tracing a `tf.function(jit_compile=True)` (which wraps tracing
    in an XLA control-flow context) or any function graph nested inside one,
    such as a `tf.while_loop` body or an inner `tf.function`. The native op
    has no XLA kernel, so callers must not create it there. False when
    executing eagerly.
    """
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))

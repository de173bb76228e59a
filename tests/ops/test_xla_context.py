"""The private TensorFlow API that keras_gae.ops._xla_context fences.

TensorFlow has no public test for "this graph will be compiled by XLA";
keras_gae reads TensorFlow's own, `control_flow_util.
GraphOrParentsInXlaContext`. These tests fail, with a message saying what
broke, when a TensorFlow release moves it or stops marking the graphs that
`tf.function(jit_compile=True)` traces.
"""

import importlib

import tensorflow as tf
from absl.testing import parameterized

from keras_gae.ops import _xla_context

_BROKEN = (
    "TensorFlow changed the private API keras_gae.ops._xla_context rests "
    "on (tensorflow.python.ops.control_flow_util."
    "GraphOrParentsInXlaContext); find its replacement and update that one "
    "module."
)


class PrivateXlaContextAPITest(parameterized.TestCase, tf.test.TestCase):
    def test_the_private_reader_is_still_there(self):
        module = importlib.import_module(
            "tensorflow.python.ops.control_flow_util"
        )
        reader = getattr(module, "GraphOrParentsInXlaContext", None)
        self.assertTrue(callable(reader), _BROKEN)

    @parameterized.named_parameters(
        ("jit_compile", True, True),
        ("plain_function", False, False),
    )
    def test_it_tells_xla_graphs_apart(self, jit_compile, expected):
        seen = []

        def body(i):
            # A graph nested inside the traced one, as a scan's body is.
            seen.append(_xla_context.in_xla_context())
            return i + 1

        @tf.function(jit_compile=jit_compile)
        def traced(x):
            seen.append(_xla_context.in_xla_context())
            return tf.while_loop(lambda i: i < 2, body, [x])

        traced(tf.constant(0))
        self.assertEqual(seen, [expected, expected], _BROKEN)
        self.assertFalse(_xla_context.in_xla_context())

"""The `Example:` sections of the public layer and loss classes run.

Both packages are covered here: the layers' and the losses' docstrings.
"""

import ast
import re
import textwrap

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import layers
from keras_gae import losses

_CODE = re.compile(r"```python\n(.*?)```", re.DOTALL)

PUBLIC_CLASSES = [getattr(layers, name) for name in layers.__all__] + [
    getattr(losses, name) for name in losses.__all__
]


def run_example(cls) -> tuple:
    """Runs the `Example:` code of `cls`'s docstring in a fresh namespace.

    Returns:
      `(namespace, value)`: the names the example defined and the value of
      its last line when that line is an expression (else None).
    """
    docstring = textwrap.dedent(cls.__doc__.split("\n", 1)[1])
    _, example = docstring.split("Example:", 1)
    (code,) = _CODE.findall(example)
    tree = ast.parse(code)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    namespace = {}
    exec(compile(tree, f"<{cls.__name__} example>", "exec"), namespace)
    value = None
    if last is not None:
        code = compile(last, f"<{cls.__name__} example>", "eval")
        value = eval(code, namespace)
    return namespace, value


class DocstringExamplesTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        (cls.__name__, cls) for cls in PUBLIC_CLASSES
    )
    def test_example_runs(self, cls):
        self.assertNotIn("DESIGN.md", cls.__doc__)
        run_example(cls)

    def test_stated_values(self):
        # The values the examples' comments state.
        namespace, _ = run_example(layers.GeneralizedAdvantageEstimation)
        self.assertAllClose(
            namespace["advantages"],
            [[1.4375, 1.75, 3.0], [1.3125, 1.25, 1.0]],
        )
        _, normalized = run_example(layers.AdvantageNormalization)
        self.assertAllClose(normalized, [[-1.0, 1.0, 0.0]])
        _, mode = run_example(layers.SquashedGaussian)
        self.assertAllClose(mode, [0.0, 0.5])
        namespace, _ = run_example(layers.GaussianPolicyHead)
        action = namespace["action"].numpy()
        self.assertTrue(np.all((action >= -1.0) & (action <= 1.0)))
        self.assertEqual(namespace["log_prob"].shape, [3])
        expected_losses = {
            losses.PPOClipLoss: -0.2,
            losses.PolicyGradientLoss: 1.25,
            losses.ValueLoss: 0.16,
            losses.EntropyLoss: -1.0,
            losses.KLPenaltyLoss: 0.25,
            losses.FixedKLController: 0.05,
            losses.AdaptiveKLController: 0.100512,
        }
        for cls, expected in expected_losses.items():
            _, value = run_example(cls)
            self.assertAllClose(value, expected, msg=cls.__name__)


if __name__ == "__main__":
    tf.test.main()

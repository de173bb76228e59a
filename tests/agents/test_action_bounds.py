"""Box action spaces with infinite bounds through `policy_head_for` and
`build_networks`: the bound each `action_bound` gives."""

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.agents import build_networks
from keras_gae.agents import policy_head_for
from keras_gae.agents import space_types

UNBOUNDED = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
PARTLY = gymnasium.spaces.Box(
    np.array([-1.0, 0.0], np.float32),
    np.array([1.0, np.inf], np.float32),
)


def action_spec(space):
    return space_types.space_to_spec(space, "action", nested=False)


class UnboundedBoxTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.named_parameters(
        ("unbounded", UNBOUNDED, r"\[0, 1\]"),
        ("partly_unbounded", PARTLY, r"\[1\]"),
    )
    def test_tanh_refused_when_built(self, space, dimensions):
        message = (
            rf"tanh squashing needs a finite box; action dimensions "
            rf"{dimensions} are unbounded.*use bound='clip' or None"
        )
        with self.assertRaisesRegex(ValueError, message):
            policy_head_for(action_spec(space), action_bound="tanh")
        observation_spec = space_types.space_to_spec(
            gymnasium.spaces.Box(-1.0, 1.0, (3,)), "observation"
        )
        with self.assertRaisesRegex(ValueError, message):
            build_networks(
                observation_spec, action_spec(space), action_bound="tanh"
            )

    def test_clip_keeps_infinite_sides_infinite(self):
        head = policy_head_for(action_spec(PARTLY), action_bound="clip")
        self.assertAllEqual(head.low, [-1.0, 0.0])
        self.assertAllEqual(head.high, [1.0, np.inf])
        action = tf.constant([[3.0, 1e30]])
        self.assertAllEqual(
            head.postprocess_action(action), np.float32([[1.0, 1e30]])
        )

    @parameterized.named_parameters(
        ("unbounded", UNBOUNDED), ("bounded", gymnasium.spaces.Box(-1, 1, (2,)))
    )
    def test_no_bound_is_the_plain_gaussian(self, space):
        head = policy_head_for(action_spec(space), action_bound=None)
        self.assertIsNone(head.bound)
        self.assertIsNone(head.low)
        action = tf.constant([[3.0, -1e30]])
        self.assertAllEqual(head.postprocess_action(action), action)

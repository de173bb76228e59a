"""The space-type table (keras_gae/agents/space_types.py): each built-in
entry from space to spec, encoding and head, and a toy space type added
as one entry plus one layer."""

import dataclasses
from unittest import mock

import gymnasium
import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.environments import tf_py_environment
from tf_agents.specs import array_spec
from tf_agents.specs import tensor_spec

from keras_gae import layers
from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import KerasPolicy
from keras_gae.agents import ObservationEncoder
from keras_gae.agents import build_networks
from keras_gae.agents import policy_head_for
from keras_gae.agents import space_types
from keras_gae.agents.observation_features import LeafEncoding
from keras_gae.models import PPOModel
from tests.agents.space_envs import SpaceEnv

S = gymnasium.spaces


def box(n=3):
    return S.Box(-1.0, 1.0, (n,), np.float32)


# One space of each built-in type, the entry that takes it, the head it
# gets as an action space.
BUILT_IN = (
    ("Discrete", S.Discrete(4), layers.CategoricalPolicyHead),
    ("MultiBinary", S.MultiBinary(3), layers.BernoulliPolicyHead),
    (
        "MultiDiscrete",
        S.MultiDiscrete([3, 5]),
        layers.MultiCategoricalPolicyHead,
    ),
    ("Box", S.Box(-1.0, 1.0, (2,)), layers.GaussianPolicyHead),
)


class BuiltInTypesTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.parameters(*BUILT_IN)
    def test_space_and_its_spec_find_the_same_entry(self, name, space, head):
        entry = space_types.space_type_of(space)
        self.assertEqual(entry.name, name)
        spec = space_types.space_to_spec(space, "action", nested=False)
        # The networks get array specs, or tensor specs from a TF env.
        for each in (spec, tensor_spec.from_spec(spec)):
            self.assertIs(space_types.spec_type_of(each), entry)
            self.assertIsInstance(policy_head_for(each), head)

    @parameterized.parameters(*BUILT_IN[:3])
    def test_integer_heads_span_the_spec(self, name, space, head):
        spec = space_types.space_to_spec(space, "action", nested=False)
        maximum = policy_head_for(spec).action_maximum
        self.assertAllEqual(
            maximum, np.broadcast_to(spec.maximum, spec.shape), msg=name
        )

    def test_env_action(self):
        # What one environment's step gets from a checked action array.
        discrete = space_types.env_action(S.Discrete(3), np.int64(2))
        self.assertIs(type(discrete), int)
        self.assertEqual(discrete, 2)
        for space, action in (
            (S.Box(-1.0, 1.0, (2,), np.float64), np.float32([0.5, -2.0])),
            (S.MultiDiscrete([3, 2]), np.int64([2, 1])),
            (S.MultiBinary(2), np.int64([1, 0])),
        ):
            got = space_types.env_action(space, action)
            self.assertEqual(got.dtype, space.dtype)
            self.assertAllEqual(got, action)

    def test_multi_discrete_of_twos_is_multi_binary(self):
        # Their specs are the same: int64 in [0, 1].
        spec = space_types.space_to_spec(S.MultiDiscrete([2, 2]), "action")
        self.assertEqual(space_types.spec_type_of(spec).name, "MultiBinary")

    @parameterized.parameters(
        S.Discrete(3, start=1), S.MultiDiscrete([3, 2], start=[0, -1])
    )
    def test_integer_actions_start_at_zero(self, space):
        spec = space_types.space_to_spec(space, "action", nested=False)
        with self.assertRaisesRegex(ValueError, "action_spec.*start at 0"):
            policy_head_for(spec)

    def test_supported_space_names(self):
        # Each gymnasium class once, whatever the table's order.
        table = space_types.SPACE_TYPES
        names = {entry.space_class.__name__ for entry in table}
        acting = {
            entry.space_class.__name__
            for entry in table
            if entry.policy_head is not None
        }
        supported = space_types.SUPPORTED_SPACES
        self.assertCountEqual(supported, names | {"Dict", "Tuple"})
        self.assertCountEqual(space_types.ACTION_SPACES, acting)
        self.assertContainsSubset(
            ["Discrete", "MultiBinary", "MultiDiscrete", "Box"], acting
        )

    def test_no_single_spec(self):
        with self.assertRaisesRegex(TypeError, "Received: spec="):
            space_types.spec_type_of({"a": array_spec.ArraySpec((), "f4")})


class SpaceToSpecTest(tf.test.TestCase):
    def test_multi_binary(self):
        spec = space_types.space_to_spec(S.MultiBinary(4), "action")
        self.assertEqual(spec.shape, (4,))
        self.assertEqual(spec.dtype, np.int64)
        self.assertEqual((spec.minimum, spec.maximum), (0, 1))

    def test_dict_and_tuple_nest(self):
        space = S.Dict(
            {
                "pos": box(2),
                "mode": S.Discrete(3),
                "pair": S.Tuple((box(1), S.MultiDiscrete([2, 5]))),
            }
        )
        spec = space_types.space_to_spec(space, "observation")
        self.assertEqual(sorted(spec), ["mode", "pair", "pos"])
        self.assertEqual(spec["pos"].shape, (2,))
        self.assertEqual(spec["mode"].maximum, 2)
        self.assertIsInstance(spec["pair"], tuple)
        self.assertAllEqual(spec["pair"][1].maximum, [1, 4])

    def test_nested_action_refused(self):
        with self.assertRaisesRegex(TypeError, "action space.*Dict"):
            space_types.space_to_spec(
                S.Dict({"a": box()}), "action", nested=False
            )

    def test_text_space_refused(self):
        with self.assertRaisesRegex(TypeError, "observation space.*Text"):
            space_types.space_to_spec(S.Text(5), "observation")


@keras.saving.register_keras_serializable(package="keras_gae_tests")
class BoolFeatures(keras.layers.Layer):
    """The toy type's layer: 0/1 entries as -scale/+scale, `scale` a
    weight (so the encoder must track it)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x):
        flat = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        return (2.0 * flat - 1.0) * self.scale


def _is_int8(spec):
    return tf.as_dtype(spec.dtype) == tf.int8


# A Box of booleans, which the Box entry would treat as floats: int8
# specs in [0, 1], encoded by `BoolFeatures`, acted in by a Bernoulli head.
BOOL_BOX = space_types.SpaceType(
    name="Box of booleans",
    space_class=S.Box,
    accepts=lambda space: space.dtype == np.bool_,
    to_spec=lambda space, name: array_spec.BoundedArraySpec(
        space.shape, np.int8, 0, 1, name=name
    ),
    accepts_spec=_is_int8,
    encoding=lambda spec: LeafEncoding(
        BoolFeatures(), int(np.prod(spec.shape))
    ),
    policy_head=lambda spec, **options: layers.BernoulliPolicyHead(
        spec.shape[0], action_dtype="int64"
    ),
)


def with_entry(entry):
    """The table with `entry` first, for the duration of a `with`."""
    table = (entry,) + space_types.SPACE_TYPES
    return mock.patch.object(space_types, "SPACE_TYPES", table)


class ToySpaceTypeTest(tf.test.TestCase):
    """One entry plus one layer: spec, checks, encoder, head, policy and
    environment all follow."""

    def setUp(self):
        super().setUp()
        self.observation_space = S.Box(0, 1, (3,), np.bool_)
        self.action_space = S.Box(0, 1, (2,), np.bool_)

    def test_without_the_entry_a_bool_box_is_floats(self):
        spec = space_types.space_to_spec(self.observation_space, "observation")
        self.assertEqual(spec.dtype, np.float32)

    def test_collects_with_the_new_type(self):
        keras.utils.set_random_seed(0)
        with with_entry(BOOL_BOX):
            env = GymnasiumEnvironment(
                SpaceEnv(self.observation_space, self.action_space), seed=0
            )
            time_step_spec = env.time_step_spec()
            self.assertEqual(time_step_spec.observation.dtype, np.int8)
            self.assertEqual(env.action_spec().dtype, np.int8)
            actor, critic = build_networks(
                time_step_spec.observation, env.action_spec()
            )
            tf_env = tf_py_environment.TFPyEnvironment(env)
            policy = KerasPolicy(
                PPOModel(actor, critic),
                tf_env.time_step_spec(),
                tf_env.action_spec(),
            )
        # Built: the table is no longer needed.
        encoder = actor.encoder
        self.assertIs(critic.encoder, encoder)
        self.assertIsInstance(encoder.leaf_encoders[0], BoolFeatures)
        self.assertIsInstance(actor.output_layer, layers.BernoulliPolicyHead)
        scale = encoder.leaf_encoders[0].scale
        for network in (actor, critic):
            self.assertIn(id(scale), [id(v) for v in network.weights])
        step = tf_env.reset()
        observation = step.observation.numpy()
        self.assertEqual(observation.dtype, np.int8)
        scale.assign(0.5)
        self.assertAllClose(encoder(observation), observation - 0.5)
        for _ in range(3):
            action = policy.action(step).action
            self.assertEqual(action.dtype, tf.int8)
            self.assertAllInSet(action, [0, 1])
            step = tf_env.step(action)
            sent = env.gymnasium_env.unwrapped.actions[-1]
            self.assertEqual(sent.dtype, np.bool_)
            self.assertAllEqual(sent, action.numpy()[0].astype(bool))

    def test_observations_only_type(self):
        observations_only = dataclasses.replace(BOOL_BOX, policy_head=None)
        with with_entry(observations_only):
            with self.assertRaisesRegex(TypeError, "action space must be"):
                space_types.space_to_spec(
                    self.action_space, "action", nested=False
                )
            spec = array_spec.BoundedArraySpec((2,), np.int8, 0, 1)
            with self.assertRaisesRegex(TypeError, "observations only"):
                policy_head_for(spec)
            encoder = ObservationEncoder(spec)
            self.assertEqual(encoder.output_size, 2)

"""Image observations: uint8 specs, the shared Nature CNN, uint8 to the end."""

import os

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import layers
from keras_gae.agents import PPO
from keras_gae.agents import SharedEncoderNetwork
from keras_gae.agents import build_networks
from keras_gae.agents import space_types

S = gymnasium.spaces


class FrameEnv(gymnasium.Env):
    """Random (4, 36, 36) uint8 frame stacks; 5 steps an episode."""

    observation_space = S.Box(0, 255, (4, 36, 36), np.uint8)
    action_space = S.Discrete(3)

    def _frames(self):
        return self.np_random.integers(0, 256, (4, 36, 36), dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._steps = 0
        return self._frames(), {}

    def step(self, action):
        self._steps += 1
        reward = float(action == 0)
        return self._frames(), reward, self._steps == 5, False, {}


class ImageSpaceTest(tf.test.TestCase, parameterized.TestCase):
    def test_image_spec_stays_uint8(self):
        space = S.Box(0, 255, (84, 84, 3), np.uint8)
        spec = space_types.space_to_spec(space, "observation")
        self.assertEqual(spec.dtype, np.uint8)
        self.assertEqual(spec.shape, (84, 84, 3))
        self.assertEqual((spec.minimum, spec.maximum), (0, 255))
        self.assertEqual(space_types.spec_type_of(spec).name, "Image")
        self.assertEqual(space_types.space_type_of(space).name, "Image")

    @parameterized.named_parameters(
        ("other_bounds", S.Box(0, 10, (4, 36, 36), np.uint8)),
        ("rank_2", S.Box(0, 255, (36, 36), np.uint8)),
        ("float", S.Box(0.0, 255.0, (4, 36, 36), np.float32)),
    )
    def test_other_boxes_stay_boxes(self, space):
        spec = space_types.space_to_spec(space, "observation")
        self.assertEqual(spec.dtype, np.float32)
        self.assertEqual(space_types.spec_type_of(spec).name, "Box")

    def test_images_are_no_actions(self):
        with self.assertRaisesRegex(TypeError, "action_space"):
            space_types.space_to_spec(
                FrameEnv.observation_space, "action", nested=False
            )

    def test_actor_and_critic_share_one_nature_cnn(self):
        spec = space_types.space_to_spec(
            FrameEnv.observation_space, "observation"
        )
        action_spec = space_types.space_to_spec(
            FrameEnv.action_space, "action", nested=False
        )
        actor, critic = build_networks(spec, action_spec, hidden_sizes=())
        self.assertIs(actor.encoder, critic.encoder)
        (cnn,) = actor.encoder.leaf_encoders
        self.assertIsInstance(cnn, layers.NatureCNN)
        self.assertEqual(actor.encoder.output_size, 512)
        frames = np.random.default_rng(0).integers(
            0, 256, (3, 4, 36, 36), dtype=np.uint8
        )
        # The encoder takes the bytes and scales them itself.
        self.assertAllClose(
            critic(frames), critic(frames.astype(np.float32)), atol=1e-6
        )
        self.assertAllClose(
            actor.encoder(frames), cnn(frames.astype(np.float32))
        )


class SharedEncoderTest(tf.test.TestCase):
    def networks(self, hidden_sizes=(8,)):
        spec = space_types.space_to_spec(
            FrameEnv.observation_space, "observation"
        )
        action_spec = space_types.space_to_spec(
            FrameEnv.action_space, "action", nested=False
        )
        return build_networks(spec, action_spec, hidden_sizes=hidden_sizes)

    def test_one_encoder_pass_gives_both_networks_outputs(self):
        actor, critic = self.networks()
        shared = SharedEncoderNetwork(actor, critic)
        frames = np.random.default_rng(1).integers(
            0, 256, (3, 4, 36, 36), dtype=np.uint8
        )
        (cnn,) = actor.encoder.leaf_encoders
        calls = []
        original = cnn.call
        cnn.call = lambda images: calls.append(1) or original(images)
        params, values = shared(frames)
        self.assertLen(calls, 1)
        self.assertAllClose(params, actor(frames), atol=1e-6)
        self.assertAllClose(values, critic(frames), atol=1e-6)
        self.assertLen(calls, 3)

    def test_different_encoders_are_refused(self):
        actor, _ = self.networks()
        _, critic = self.networks()
        with self.assertRaisesRegex(ValueError, "share one encoder"):
            SharedEncoderNetwork(actor, critic)

    def test_agents_share_the_pass_only_for_encoders_with_weights(self):
        image_agent = PPO(FrameEnv, num_envs=2, num_minibatches=1, verbose=0)
        self.assertIsInstance(image_agent.model.shared, SharedEncoderNetwork)
        self.assertIsNone(image_agent.model.actor)
        vector_agent = PPO(
            "CartPole-v1", num_envs=2, num_minibatches=1, verbose=0
        )
        self.assertIsNone(vector_agent.model.shared)
        self.assertFalse(vector_agent.model.actor.encoder.has_weights)


class ImageAgentTest(tf.test.TestCase):
    def test_uint8_through_collection_and_export(self):
        agent = PPO(
            FrameEnv,
            num_envs=2,
            rollout_length=4,
            epochs=1,
            num_minibatches=1,
            hidden_sizes=(),
            seed=0,
            verbose=0,
        )
        self.assertEqual(agent.env.observation_spec().dtype, tf.uint8)
        batch = agent.trainer._collector.collect()
        self.assertEqual(batch["observation"].dtype, tf.uint8)
        self.assertEqual(batch["observation"].shape, (2, 4, 4, 36, 36))
        # The values the collection recorded are the network's on the
        # bytes (rows 0..3 of env 0; its boundary rows have values too).
        _, values = agent.model(batch["observation"][0], training=False)
        self.assertAllClose(values, batch["value"][0], atol=1e-5)
        path = agent.export(os.path.join(self.get_temp_dir(), "policy"))
        exported = tf.saved_model.load(path)
        signature = exported.signatures["value"]
        (spec,) = signature.structured_input_signature[1].values()
        self.assertEqual(spec.dtype, tf.uint8)
        frames = batch["observation"][1]
        _, values = agent.model(frames, training=False)
        (exported_values,) = signature(observation=frames).values()
        self.assertAllClose(exported_values, values, atol=1e-5)
        actions = exported.signatures["action"](observation=frames)
        self.assertEqual(actions["action"].shape, (4,))


if __name__ == "__main__":
    tf.test.main()

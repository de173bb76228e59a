"""Environment spec checks (keras_gae/agents/environment_checks.py) through
GymnasiumEnvironment, vector envs, make_tf_environment's arguments."""

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.environments import batched_py_environment
from tf_agents.specs import array_spec

from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import GymnasiumVectorEnvironment
from keras_gae.agents import environment_checks
from keras_gae.agents import make_tf_environment
from keras_gae.agents import space_types
from tests.agents.space_envs import SpaceEnv

S = gymnasium.spaces


def box(n=3):
    return S.Box(-1.0, 1.0, (n,), np.float32)


class _CountingBoundsSpec(array_spec.BoundedArraySpec):
    """Counts how often a check reads its bounds."""

    reads = 0

    @property
    def minimum(self):
        self.reads += 1
        return super().minimum

    @property
    def maximum(self):
        self.reads += 1
        return super().maximum


class SpecCheckTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.parameters(
        (
            "shape",
            box(3),
            ValueError,
            r"observation .*shape \(7,\), expected \(3,\)",
        ),
        ("nan", box(3), ValueError, "observation .*NaN"),
        (
            "dtype",
            S.Discrete(4),
            TypeError,
            "observation .*float64, expected integers",
        ),
        (
            "bounds",
            S.Discrete(4),
            ValueError,
            r"observation .*outside \[0, 3\]",
        ),
        ("reward_nan", box(3), ValueError, "reward .*NaN"),
        ("reward_shape", box(3), ValueError, r"reward .*shape \(2,\)"),
    )
    def test_broken_env_named(self, kind, space, error, message):
        env = GymnasiumEnvironment(
            SpaceEnv(space, S.Discrete(2), break_with=kind), seed=0
        )
        env.reset()
        env.step(np.int64(0))
        with self.assertRaisesRegex(error, "SpaceEnv.*" + message):
            env.step(np.int64(0))

    def test_dict_field_named(self):
        space = S.Dict({"pos": box(2), "mode": S.Discrete(3)})
        converter = environment_checks.ObservationConverter(
            space_types.space_to_spec(space, "observation"), "'Mine-v0'"
        )
        with self.assertRaisesRegex(
            ValueError, r"'Mine-v0'.*observation\['pos'\].*shape \(3,\)"
        ):
            converter({"pos": np.zeros(3), "mode": 1})
        with self.assertRaisesRegex(ValueError, r"keys \['mode', 'pos'\]"):
            converter({"pos": np.zeros(2)})

    def test_full_range_uint8_frames_skip_the_value_check(self):
        spec = _CountingBoundsSpec((2, 4, 4), np.uint8, 0, 255)
        converter = environment_checks.ObservationConverter(spec, "'Pix-v0'")
        frame = (np.arange(32, dtype=np.uint8) * 8).reshape(2, 4, 4)
        self.assertIs(converter(frame), frame)
        looked_up = spec.reads
        # Later frames are not compared with the bounds at all.
        for _ in range(3):
            self.assertIs(converter(frame), frame)
        self.assertEqual(spec.reads, looked_up)
        # Other integer dtypes are: the dtype does not bound them.
        with self.assertRaisesRegex(ValueError, r"outside \[0, 255\]"):
            converter(frame.astype(np.int64) + 250)
        self.assertGreater(spec.reads, looked_up)
        self.assertAllEqual(converter(frame.astype(np.int64)), frame)
        # The dtype and shape checks stay.
        with self.assertRaisesRegex(ValueError, r"shape \(4, 4\)"):
            converter(frame[0])
        with self.assertRaisesRegex(TypeError, "expected integers"):
            converter(frame.astype(np.float32))
        # Narrower integer bounds are still checked value by value.
        narrow = array_spec.BoundedArraySpec((2, 4, 4), np.uint8, 0, 200)
        with self.assertRaisesRegex(ValueError, r"outside \[0, 200\]"):
            environment_checks.ObservationConverter(narrow, "'Pix-v0'")(frame)
        # An image space's spec is such a full-range uint8 spec.
        image = space_types.space_to_spec(
            S.Box(0, 255, (2, 4, 4), np.uint8), "observation"
        )
        self.assertEqual(
            (image.dtype, image.minimum, image.maximum), (np.uint8, 0, 255)
        )

    def test_dict_observation_converted(self):
        space = S.Dict({"pos": box(2), "mode": S.Discrete(3)})
        env = GymnasiumEnvironment(SpaceEnv(space, S.Discrete(2)), seed=0)
        step = env.reset()
        self.assertEqual(step.observation["pos"].dtype, np.float32)
        self.assertEqual(step.observation["mode"].dtype, np.int64)


def reference_batch(env_id, num_envs, seed):
    """The per-copy environments the vector env must reproduce."""
    return batched_py_environment.BatchedPyEnvironment(
        [GymnasiumEnvironment(env_id, seed=seed + i) for i in range(num_envs)],
        multithreading=False,
    )


class VectorEnvironmentTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.parameters("sync", "async")
    def test_matches_per_copy_environments(self, mode):
        num_envs, seed = 3, 7
        vector = GymnasiumVectorEnvironment(
            gymnasium.make_vec(
                "CartPole-v1", num_envs=num_envs, vectorization_mode=mode
            ),
            seed=seed,
        )
        reference = reference_batch("CartPole-v1", num_envs, seed)
        rng = np.random.default_rng(0)
        got, want = vector.reset(), reference.reset()
        for _ in range(300):
            for field in ("step_type", "reward", "discount", "observation"):
                self.assertAllClose(getattr(got, field), getattr(want, field))
            action = rng.integers(0, 2, num_envs).astype(np.int64)
            got, want = vector.step(action), reference.step(action)
        returns = sum((e.episode_returns() for e in reference.envs), [])
        self.assertNotEmpty(returns)
        self.assertCountEqual(vector.episode_returns(), returns)
        vector.close()

    def test_same_step_autoreset_refused(self):
        env = gymnasium.make_vec(
            "CartPole-v1",
            num_envs=2,
            vectorization_mode="sync",
            vector_kwargs={
                "autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP
            },
        )
        with self.assertRaisesRegex(ValueError, "NEXT_STEP"):
            GymnasiumVectorEnvironment(env)

    def test_vector_reward_checked(self):
        env = gymnasium.vector.SyncVectorEnv(
            [lambda: SpaceEnv(box(), S.Discrete(2), break_with="reward_nan")]
            * 2
        )
        vector = GymnasiumVectorEnvironment(env, seed=0)
        vector.reset()
        vector.step(np.zeros(2, np.int64))
        with self.assertRaisesRegex(ValueError, "SpaceEnv.*reward .*NaN"):
            vector.step(np.zeros(2, np.int64))


class MakeTfEnvironmentTest(parameterized.TestCase, tf.test.TestCase):
    def test_accepts_id_instance_factory_vector_env(self):
        factory = lambda: gymnasium.make("CartPole-v1")  # noqa: E731
        cases = [
            (make_tf_environment("CartPole-v1", num_envs=2), 2),
            (make_tf_environment(gymnasium.make("CartPole-v1")), 1),
            (make_tf_environment(factory, num_envs=3), 3),
            (
                make_tf_environment(
                    gymnasium.make_vec("CartPole-v1", num_envs=4)
                ),
                4,
            ),
            (
                make_tf_environment(
                    factory, num_envs=2, vectorization_mode="sync"
                ),
                2,
            ),
            (
                make_tf_environment(
                    "CartPole-v1", num_envs=5, vectorization_mode="auto"
                ),
                5,
            ),
        ]
        for env, batch_size in cases:
            self.assertEqual(env.batch_size, batch_size)
            step = env.step(tf.zeros([batch_size], tf.int64))
            self.assertEqual(step.observation.shape, (batch_size, 4))

    def test_vector_entry_point_is_numpy_vectorized(self):
        env = make_tf_environment(
            "CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point"
        )
        self.assertIsInstance(
            env.pyenv.gymnasium_env,
            gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv,
        )

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "num_envs=3"):
            make_tf_environment(gymnasium.make("CartPole-v1"), num_envs=3)
        with self.assertRaisesRegex(ValueError, "num_envs=4"):
            make_tf_environment(
                gymnasium.make_vec("CartPole-v1", num_envs=2), num_envs=4
            )
        with self.assertRaisesRegex(ValueError, "vectorization_mode="):
            make_tf_environment("CartPole-v1", vectorization_mode="fast")
        with self.assertRaisesRegex(TypeError, "Received: env=3"):
            make_tf_environment(3)
        with self.assertRaisesRegex(TypeError, "factory must return"):
            make_tf_environment(lambda: 3)

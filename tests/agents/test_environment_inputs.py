"""What enters from an environment: non-finite values, episode-end flags,
results that break the gymnasium 1.x API (the old gym API included)."""

import re

import gymnasium
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.agents import GymnasiumEnvironment
from keras_gae.agents import GymnasiumVectorEnvironment
from keras_gae.agents import environment_checks
from keras_gae.agents import make_tf_environment
from keras_gae.agents import space_types
from keras_gae.agents import vector_environment
from tests.fresh_process import run_python

S = gymnasium.spaces
UNBOUNDED = S.Box(-np.inf, np.inf, (3,), np.float32)


class FixedEnv(gymnasium.Env):
    """Valid samples of `observation_space`, except `bad` as the observation
    of `where` ("reset" or "step"); every step returns `reward` and the
    flags `terminated` and `truncated` as given."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        observation_space,
        bad=None,
        where=None,
        reward=0.0,
        terminated=False,
        truncated=False,
    ):
        self.observation_space = observation_space
        self.action_space = S.Discrete(2)
        self.bad = bad
        self.where = where
        self.reward = reward
        self.terminated = terminated
        self.truncated = truncated

    def _observation(self, method):
        if self.where == method:
            return self.bad
        return self.observation_space.sample()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self._observation("reset"), {}

    def step(self, action):
        return (
            self._observation("step"),
            self.reward,
            self.terminated,
            self.truncated,
            {},
        )


def run(kind, space, bad, where):
    """Resets and steps one FixedEnv (kind "single") or a SyncVectorEnv of
    a valid copy and a broken one (kind "vector")."""
    if kind == "single":
        env = GymnasiumEnvironment(FixedEnv(space, bad, where), seed=0)
        action = np.int64(0)
    else:
        env = GymnasiumVectorEnvironment(
            gymnasium.vector.SyncVectorEnv(
                [lambda: FixedEnv(space), lambda: FixedEnv(space, bad, where)]
            ),
            seed=0,
        )
        action = np.zeros(2, np.int64)
    env.reset()
    env.step(action)


class NonFiniteObservationTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.product(
        kind=["single", "vector"],
        where=["reset", "step"],
        value=[np.inf, -np.inf],
    )
    def test_infinite_observation_refused(self, kind, where, value):
        # An unbounded Box allows any finite value, not an infinite one.
        bad = np.array([0.0, value, 1.0], np.float32)
        sub = r" \(sub-environments \[1\]\)" if kind == "vector" else ""
        with self.assertRaisesRegex(
            ValueError,
            rf"FixedEnv returned from {where}\(\) an observation that "
            rf"breaks its observation space: .*inf.*{sub}\. "
            r"Received: observation=",
        ):
            run(kind, UNBOUNDED, bad, where)

    @parameterized.product(
        kind=["single", "vector"],
        nest=["dict", "tuple"],
        value=[np.inf, -np.inf],
    )
    def test_infinite_leaf_of_a_nest_refused(self, kind, nest, value):
        leaf = S.Box(-1.0, 1.0, (2,), np.float32)
        if nest == "dict":
            space = S.Dict({"pos": leaf, "mode": S.Discrete(3)})
            bad, field = {"pos": np.array([value, 0.0]), "mode": 1}, "['pos']"
        else:
            space = S.Tuple((S.Discrete(3), leaf))
            bad, field = (1, np.array([0.0, value])), "[1]"
        with self.assertRaisesRegex(
            ValueError,
            r"FixedEnv returned from step\(\) an observation"
            + re.escape(field)
            + " that breaks.*inf",
        ):
            run(kind, space, bad, "step")

    def test_float32_range_is_the_limit(self):
        # A float64 observation beyond the float32 range would become inf
        # in the float32 spec; one inside it is a valid unbounded value.
        run("single", UNBOUNDED, np.array([1e38, -1e38, 0.0]), "step")
        with self.assertRaisesRegex(
            ValueError,
            r"FixedEnv .*observation .*beyond the float32 range.*"
            r"Received: observation=array\(\[1\.e\+39",
        ):
            with np.errstate(over="ignore"):
                run("single", UNBOUNDED, np.array([1e39, 0.0, 0.0]), "step")

    def test_ragged_observation_named(self):
        with self.assertRaisesRegex(
            ValueError,
            r"FixedEnv returned from reset\(\) an observation that breaks "
            r"its observation space: not an array.*Received: observation=",
        ):
            run("single", UNBOUNDED, [[0.0], [1.0, 2.0]], "reset")


class EpisodeEndFlagTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.parameters(
        ("terminated", "False", TypeError),
        ("terminated", None, TypeError),
        ("truncated", 0.5, TypeError),
        ("truncated", 2, ValueError),
        ("terminated", np.array([True, False]), ValueError),
    )
    def test_single_env_flag_checked(self, field, value, error):
        env = GymnasiumEnvironment(
            FixedEnv(S.Discrete(3), **{field: value}), seed=0
        )
        env.reset()
        with self.assertRaisesRegex(
            error,
            rf"FixedEnv returned from step\(\) a {field} flag that is not "
            rf"a bool.*Received: {field}=",
        ):
            env.step(np.int64(0))

    @parameterized.parameters(
        ("terminated", np.zeros(3, bool), ValueError, r"shape \(3,\)"),
        ("truncated", np.zeros(2, np.float32), TypeError, "float32"),
    )
    def test_vector_env_flags_checked(self, field, value, error, why):
        env = GymnasiumVectorEnvironment(FlagVectorEnv(**{field: value}))
        env.reset()
        with self.assertRaisesRegex(
            error,
            rf"FlagVectorEnv returned from step\(\) a {field} flag .*{why}"
            rf".*Received: {field}=",
        ):
            env.step(np.zeros(2, np.int64))


class FlagVectorEnv(gymnasium.vector.VectorEnv):
    """Two copies whose step returns the given `terminated`/`truncated`."""

    def __init__(self, terminated=None, truncated=None):
        self.num_envs = 2
        self.single_observation_space = S.Box(-1.0, 1.0, (3,), np.float32)
        self.single_action_space = S.Discrete(2)
        self.observation_space = gymnasium.vector.utils.batch_space(
            self.single_observation_space, 2
        )
        self.action_space = gymnasium.vector.utils.batch_space(
            self.single_action_space, 2
        )
        no = np.zeros(2, bool)
        self.flags = (
            no if terminated is None else terminated,
            no if truncated is None else truncated,
        )

    def reset(self, *, seed=None, options=None):
        return np.zeros((2, 3), np.float32), {}

    def step(self, action):
        return (np.zeros((2, 3), np.float32), np.zeros(2), *self.flags, {})


class GymV21Env(gymnasium.Env):
    """The gym 0.21 API: `reset()` takes no seed and returns the observation
    alone, `seed()` seeds, `step` returns (observation, reward, done, info)."""

    observation_space = S.Box(-1.0, 1.0, (3,), np.float32)
    action_space = S.Discrete(2)

    def seed(self, seed=None):
        return [seed]

    def reset(self):
        return np.zeros(3, np.float32)

    def step(self, action):
        return np.zeros(3, np.float32), 1.0, False, {}


class GymV25Env(GymV21Env):
    """The gym 0.22-0.25 API: `reset` takes a seed but returns the
    observation alone unless `return_info=True`."""

    def reset(self, *, seed=None, return_info=False, options=None):
        super(GymV21Env, self).reset(seed=seed)
        observation = np.zeros(3, np.float32)
        return (observation, {}) if return_info else observation


class FourValueStepEnv(GymV21Env):
    """A half-ported environment: gymnasium's reset, the old 4-value step."""

    def reset(self, *, seed=None, options=None):
        super(GymV21Env, self).reset(seed=seed)
        return np.zeros(3, np.float32), {}


class GymPackageEnv:
    """An environment that is no gymnasium.Env (as those of the old `gym`
    package are), with gymnasium's methods and spaces."""

    observation_space = S.Box(-1.0, 1.0, (3,), np.float32)
    action_space = S.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 1.0, False, False, {}


OLD_API_ENVS = {cls.__name__: cls for cls in (GymV21Env, GymV25Env)}
OLD_API_ENVS["FourValueStepEnv"] = FourValueStepEnv
for _name, _cls in OLD_API_ENVS.items():
    gymnasium.register(f"KerasGAETest{_name}-v0", entry_point=_cls)


def old_api_env(name, route):
    """The environment `name` made by `route`, reset and stepped twice."""
    cls, env_id = OLD_API_ENVS[name], f"KerasGAETest{name}-v0"
    if route == "instance":
        env = GymnasiumEnvironment(cls(), seed=0)
    elif route == "factory":
        env = GymnasiumEnvironment(cls, seed=0)
    elif route == "id":
        env = GymnasiumEnvironment(env_id, seed=0)
    elif route.startswith("make_vec_"):
        vector = gymnasium.make_vec(
            env_id, num_envs=2, vectorization_mode=route[len("make_vec_") :]
        )
        env = make_tf_environment(vector, seed=0).pyenv
    else:
        source, mode = route.split("_")
        env = make_tf_environment(
            cls if source == "factory" else env_id,
            num_envs=2,
            seed=0,
            vectorization_mode=mode,
        ).pyenv
    try:
        env.reset()
        action = np.zeros(2 if env.batched else (), np.int64)
        env.step(action)
        env.step(action)
    finally:
        env.close()


class OldGymAPITest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.product(
        name=sorted(OLD_API_ENVS),
        route=[
            "instance",
            "factory",
            "id",
            "factory_sync",
            "factory_async",
            "id_sync",
            "make_vec_sync",
            "make_vec_async",
        ],
    )
    def test_old_api_named(self, name, route):
        method = "step" if name == "FourValueStepEnv" else "reset"
        with self.assertRaisesRegex(
            TypeError,
            rf"The environment .*{name}.* uses the old gym API: "
            rf"(its sub-environments' )?{method}\(\).*gymnasium 1\.x API.*"
            r"Received: ",
        ):
            old_api_env(name, route)

    def test_old_api_message_says_how_to_port(self):
        with self.assertRaisesRegex(
            TypeError,
            r"reset\(\*, seed=None, options=None\) -> \(observation, "
            r"info\).*step\(action\) -> \(observation, reward, terminated, "
            r"truncated, info\).*convert_to_terminated_truncated_step_api",
        ):
            old_api_env("FourValueStepEnv", "instance")

    @parameterized.parameters("instance", "factory", "vector_factory")
    def test_non_gymnasium_env_points_to_shimmy(self, route):
        with self.assertRaisesRegex(
            TypeError,
            r"GymPackageEnv.* is not a gymnasium\.Env.*"
            r"shimmy\.GymV21CompatibilityV0\(env=env\).*Received: env=",
        ):
            if route == "instance":
                GymnasiumEnvironment(GymPackageEnv())
            elif route == "factory":
                GymnasiumEnvironment(GymPackageEnv)
            else:
                make_tf_environment(
                    GymPackageEnv, num_envs=2, vectorization_mode="sync"
                )

    def test_first_error_a_user_sees(self):
        code = (
            "import gymnasium, numpy as np\n"
            "import keras_gae\n"
            "class OldEnv(gymnasium.Env):\n"
            "    observation_space = gymnasium.spaces.Box(-1, 1, (3,))\n"
            "    action_space = gymnasium.spaces.Discrete(2)\n"
            "    def reset(self):\n"
            "        return np.zeros(3, np.float32)\n"
            "    def step(self, action):\n"
            "        return np.zeros(3, np.float32), 1.0, False, {}\n"
            "keras_gae.agents.PPO(OldEnv).learn(total_timesteps=64)\n"
        )
        result = run_python(code)
        self.assertNotEqual(result.returncode, 0)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(result.stderr.count("Traceback"), 1, result.stderr)
        self.assertRegex(
            lines[-1],
            r"^TypeError: The environment .*OldEnv.* uses the old gym API: "
            r"reset\(\) takes no seed.*Received: reset=",
        )


class ConverterTest(parameterized.TestCase, tf.test.TestCase):
    def test_reward_beyond_float32_range(self):
        with self.assertRaisesRegex(
            ValueError,
            r"'Mine-v0' .*reward .*beyond the float32 range.*Received: "
            r"reward=1e\+39",
        ):
            with np.errstate(over="ignore"):
                environment_checks.convert_reward(1e39, "'Mine-v0'")

    def test_ragged_reward_named(self):
        with self.assertRaisesRegex(
            ValueError, r"'Mine-v0' .*reward .*not an array.*Received: reward="
        ):
            environment_checks.convert_reward(
                [[1.0], [1.0, 2.0]], "'Mine-v0'", (2,)
            )

    def test_non_dict_observation_of_dict_space(self):
        converter = environment_checks.ObservationConverter(
            space_types.space_to_spec(
                S.Dict({"pos": S.Box(-1.0, 1.0, (2,))}), "observation"
            ),
            "'Mine-v0'",
        )
        with self.assertRaisesRegex(
            ValueError,
            r"expected a dict with keys \['pos'\], got list\. "
            r"Received: observation=",
        ):
            converter([np.zeros(2)])

    @parameterized.parameters((S.Dict({}),), (S.Tuple(()),))
    def test_empty_nest_space_refused(self, space):
        with self.assertRaisesRegex(
            ValueError, r"observation space .*no entries.*Received: "
        ):
            space_types.space_to_spec(space, "observation")


def step_once(env_id, action, vector):
    if vector:
        env = GymnasiumVectorEnvironment(
            gymnasium.make_vec(env_id, num_envs=2, vectorization_mode="sync")
        )
    else:
        env = GymnasiumEnvironment(env_id)
    env.reset()
    env.step(action)


class ActionTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.product(
        case=[
            ("CartPole-v1", 0.7, TypeError, "dtype float64, expected integers"),
            ("CartPole-v1", 2, ValueError, r"values outside \[0, 1\]"),
            ("CartPole-v1", -1, ValueError, r"values outside \[0, 1\]"),
            ("Pendulum-v1", [np.nan], ValueError, "a NaN or infinite value"),
            ("Pendulum-v1", [-np.inf], ValueError, "a NaN or infinite value"),
        ],
        vector=[False, True],
    )
    def test_action_checked(self, case, vector):
        env_id, value, error, why = case
        # The second sub-environment's action is the bad one.
        value = np.asarray(value)
        if vector:
            value = np.stack([np.zeros_like(value), value])
            why += r".*sub-environments \[1\]" if error is ValueError else ""
        with self.assertRaisesRegex(
            error,
            rf"The environment .*{env_id}.* received an action that breaks "
            rf"its action space: {why}.*Received: action=",
        ):
            step_once(env_id, value, vector)


class ArgumentTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.parameters((1.5, "seed=1.5"), ("a", "seed='a'"))
    def test_seed_method_checks_its_seed(self, seed, received):
        env = GymnasiumEnvironment("CartPole-v1")
        with self.assertRaisesRegex(TypeError, f"Received: {received}"):
            env.seed(seed)

    def test_handle_auto_reset_must_be_a_bool(self):
        with self.assertRaisesRegex(
            TypeError, "Received: handle_auto_reset='no'"
        ):
            GymnasiumEnvironment("CartPole-v1", handle_auto_reset="no")

    def test_env_kwargs_must_be_a_mapping(self):
        with self.assertRaisesRegex(TypeError, r"Received: env_kwargs=\[1\]"):
            GymnasiumEnvironment("CartPole-v1", env_kwargs=[1])
        with self.assertRaisesRegex(TypeError, r"Received: env_kwargs=\[1\]"):
            make_tf_environment("CartPole-v1", env_kwargs=[1])

    def test_make_vector_env_checks_its_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: num_envs=0"):
            vector_environment.make_vector_env("CartPole-v1", 0, "sync")
        with self.assertRaisesRegex(ValueError, "Received: mode='fast'"):
            vector_environment.make_vector_env("CartPole-v1", 2, "fast")

"""Tests of keras_gae.export: SavedModels that load without keras_gae."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import export
from keras_gae import layers
from keras_gae._src import export_signatures
from keras_gae.models import PPOModel
from tests.fresh_process import run_python

# Runs in a fresh interpreter where `import keras_gae` fails, so only
# TensorFlow can be used to load and run the export.
_LOADER = r"""
import json, sys
sys.modules["keras_gae"] = None
import numpy as np
import tensorflow as tf
path, obs_file = sys.argv[1], sys.argv[2]
obs = np.load(obs_file)
loaded = tf.saved_model.load(path)
sig = loaded.signatures
seed = tf.constant([3, 4], tf.int64)
out = {
    "action": sig["action"](observation=obs)["action"],
    "value": sig["value"](observation=obs)["value"],
    "params": sig["distribution"](observation=obs)["params"],
    "sample": sig["sample_action"](observation=obs, seed=seed)["action"],
    "sample_again": loaded.sample_action(obs, seed)["action"],
}
out = {k: v.numpy().tolist() for k, v in out.items()}
try:
    import keras_gae  # noqa: F401
    out["keras_gae_importable"] = True
except ImportError:
    out["keras_gae_importable"] = False
print(json.dumps(out))
"""


def make_model(head):
    actor = keras.Sequential([keras.layers.Dense(8, activation="tanh"), head])
    critic = keras.Sequential(
        [keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    return PPOModel(actor, critic)


class ExportTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("categorical", lambda: layers.CategoricalPolicyHead(3)),
        (
            "tanh_gaussian",
            lambda: layers.GaussianPolicyHead(
                2, bound="tanh", low=-2.0, high=2.0
            ),
        ),
    )
    def test_loads_in_fresh_process_without_keras_gae(self, make_head):
        keras.utils.set_random_seed(0)
        model = make_model(make_head())
        path = os.path.join(self.get_temp_dir(), "policy")
        export.export_policy(
            model, path, observation_spec=tf.TensorSpec([4], tf.float32)
        )
        obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
        obs_file = os.path.join(self.get_temp_dir(), "obs.npy")
        np.save(obs_file, obs)
        result = subprocess.run(
            [sys.executable, "-c", _LOADER, path, obs_file],
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertFalse(out["keras_gae_importable"])
        params, values = model(obs)
        head = model.policy_head
        self.assertAllClose(out["params"], params, atol=1e-6)
        self.assertAllClose(out["value"], values, atol=1e-6)
        self.assertAllClose(out["action"], head.greedy_action(params))
        # Seeded sampling is reproducible and matches the in-memory head.
        self.assertAllClose(out["sample"], out["sample_again"])
        expected = head.postprocess_action(
            head.distribution(params).sample(seed=tf.constant([3, 4]))
        )
        self.assertAllClose(out["sample"], expected, atol=1e-5)

    def test_bad_signature_inputs_fail_clearly(self):
        model = make_model(layers.CategoricalPolicyHead(2))
        path = os.path.join(self.get_temp_dir(), "policy")
        export.export_policy(
            model, path, observation_spec=tf.TensorSpec([4], tf.float32)
        )
        loaded = tf.saved_model.load(path)
        with self.assertRaisesRegex(
            (TypeError, ValueError, tf.errors.InvalidArgumentError),
            r"`observation` must have shape \[batch, 4\]",
        ):
            loaded.signatures["action"](observation=tf.zeros((2, 3)))
        with self.assertRaisesRegex(
            (TypeError, ValueError, tf.errors.InvalidArgumentError),
            "expected to be a float tensor but is a int32 tensor",
        ):
            loaded.signatures["action"](observation=tf.zeros((2, 4), tf.int32))
        # One unbatched observation as a tensor: named, not "In[0] is not a
        # matrix" from inside the network.
        for signature in ("action", "value", "distribution"):
            with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError,
                r"`observation` must have shape \[batch, 4\].*unbatched",
            ):
                loaded.signatures[signature](observation=tf.zeros((4,)))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "a float tensor but is a double"
        ):
            loaded.signatures["action"](
                observation=tf.zeros((2, 4), tf.float64)
            )
        # A numpy batch of another float dtype is converted.
        self.assertEqual(
            loaded.signatures["action"](observation=np.zeros((2, 4)))[
                "action"
            ].shape,
            (2,),
        )

    def test_nan_weights_are_refused(self):
        model = make_model(layers.CategoricalPolicyHead(2))
        model(tf.zeros((1, 4)))
        kernel = model.critic.layers[-1].kernel
        kernel.assign(tf.fill(kernel.shape, np.nan))
        path = os.path.join(self.get_temp_dir(), "policy")
        with self.assertRaisesRegex(ValueError, "NaN or Inf") as caught:
            export.export_policy(
                model, path, observation_spec=tf.TensorSpec([4], tf.float32)
            )
        # The message names the variable by its path.
        self.assertIn(kernel.path, str(caught.exception))
        self.assertFalse(os.path.exists(path))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(TypeError, "`model`"):
            export.export_policy(
                keras.Sequential(),
                self.get_temp_dir(),
                observation_spec=tf.TensorSpec([4]),
            )
        model = make_model(layers.CategoricalPolicyHead(2))
        with self.assertRaisesRegex(TypeError, "`observation_spec`"):
            export.export_policy(
                model, self.get_temp_dir(), observation_spec=[4]
            )


# A user's script: a policy of Dict (then Tuple) observations, exported,
# loaded with TensorFlow alone and called with the space's keys.
_NESTED_EXPORT = textwrap.dedent(
    """
    import json, os, sys

    import keras
    import numpy as np
    import tensorflow as tf
    from keras_gae import export, layers, models

    def networks(inputs, features):
        hidden = keras.layers.Dense(8, activation="tanh")(
            keras.layers.Concatenate()(features)
        )
        actor = keras.Model(inputs, layers.CategoricalPolicyHead(3)(hidden))
        critic = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        return models.PPOModel(actor, critic)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    out = {}

    inputs = {"position": keras.Input((2,)), "velocity": keras.Input((3,))}
    model = networks(inputs, [inputs["position"], inputs["velocity"]])
    spec = {"position": tf.TensorSpec([2]), "velocity": tf.TensorSpec([3])}
    path = os.path.join(sys.argv[1], "dict")
    export.export_policy(model, path, observation_spec=spec)
    observation = {
        "position": rng.normal(size=(5, 2)).astype(np.float32),
        "velocity": rng.normal(size=(5, 3)).astype(np.float32),
    }
    loaded = tf.saved_model.load(path)
    signatures = loaded.signatures
    out["dict_inputs"] = {
        name: sorted(signatures[name].structured_input_signature[1])
        for name in signatures
    }
    out["dict_action"] = signatures["action"](**observation)["action"]
    out["dict_value"] = signatures["value"](
        position=observation["position"], velocity=observation["velocity"]
    )["value"]
    out["dict_sample"] = signatures["sample_action"](
        **observation, seed=tf.constant([1, 2], tf.int64)
    )["action"]
    params, values = model(observation)
    out["dict_expected_action"] = model.policy_head.greedy_action(params)
    out["dict_expected_value"] = values

    inputs = (keras.Input((2,)), keras.Input((4,)))
    model = networks(inputs, list(inputs))
    path = os.path.join(sys.argv[1], "tuple")
    export.export_policy(
        model, path,
        observation_spec=(tf.TensorSpec([2]), tf.TensorSpec([4])),
    )
    observation = (
        rng.normal(size=(5, 2)).astype(np.float32),
        rng.normal(size=(5, 4)).astype(np.float32),
    )
    signature = tf.saved_model.load(path).signatures["action"]
    out["tuple_inputs"] = sorted(signature.structured_input_signature[1])
    out["tuple_action"] = signature(
        observation_0=observation[0], observation_1=observation[1]
    )["action"]
    out["tuple_expected_action"] = model.policy_head.greedy_action(
        model(observation)[0]
    )
    print(json.dumps({
        key: np.asarray(value).tolist() if not isinstance(value, (dict, list))
        else value
        for key, value in out.items()
    }))
    """
)


class NestedObservationExportTest(tf.test.TestCase):
    def test_signature_inputs_are_named_by_the_keys(self):
        result = run_python(
            _NESTED_EXPORT, args=[self.get_temp_dir()], timeout=300
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        observation = ["position", "velocity"]
        self.assertEqual(
            out["dict_inputs"],
            {
                "action": observation,
                "distribution": observation,
                "sample_action": ["position", "seed", "velocity"],
                "serving_default": observation,
                "value": observation,
            },
        )
        self.assertEqual(out["dict_action"], out["dict_expected_action"])
        self.assertAllClose(
            out["dict_value"], out["dict_expected_value"], atol=1e-6
        )
        self.assertLen(out["dict_sample"], 5)
        self.assertEqual(
            out["tuple_inputs"], ["observation_0", "observation_1"]
        )
        self.assertEqual(out["tuple_action"], out["tuple_expected_action"])

    def test_input_names_of_nests(self):
        spec = tf.TensorSpec([2])
        signature = export_signatures.observation_signature(
            {"camera": (spec, spec), "joints": {"angle": spec}, "x": [spec]}
        )
        self.assertEqual(
            [leaf.name for leaf in tf.nest.flatten(signature)],
            ["camera_0", "camera_1", "joints_angle", "x_0"],
        )
        self.assertEqual(
            export_signatures.observation_signature(spec).name, "observation"
        )
        for bad, message in (
            ({"my key": spec}, "'my key', which is not a valid TensorFlow"),
            ({"a_b": spec, "a": {"b": spec}}, "'a_b', which names two"),
            ({"seed": spec}, "'seed', which is the seed input"),
        ):
            with self.assertRaisesRegex(
                ValueError, f"input {message}.*Received: observation_spec="
            ):
                export.export_policy(
                    make_model(layers.CategoricalPolicyHead(2)),
                    self.get_temp_dir(),
                    observation_spec=bad,
                )


class ExportInputsTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(1)
        cls.model = make_model(layers.CategoricalPolicyHead(3))
        cls.path = os.path.join(tf.compat.v1.test.get_temp_dir(), "inputs")
        export.export_policy(
            cls.model, cls.path, observation_spec=tf.TensorSpec([4])
        )
        cls.loaded = tf.saved_model.load(cls.path)
        cls.obs = np.random.default_rng(0).normal(size=(5, 4))

    def test_float64_and_unbatched_observations_are_accepted(self):
        want = self.loaded.action(tf.constant(self.obs, tf.float32))["action"]
        got = self.loaded.action(tf.constant(self.obs, tf.float64))["action"]
        self.assertAllEqual(got, want)
        one = self.loaded.action(tf.constant(self.obs[2]))["action"]
        self.assertEqual(one.shape, ())
        self.assertEqual(int(one), int(want[2]))
        seed = tf.constant([1, 2], tf.int64)
        sample = self.loaded.sample_action(tf.constant(self.obs[2]), seed)
        self.assertEqual(sample["log_prob"].shape, ())
        value = self.loaded.value(self.obs)["value"]
        self.assertAllClose(
            value, self.loaded.value(self.obs.astype(np.float32))["value"]
        )

    def test_other_dtypes_are_refused_by_name(self):
        with self.assertRaisesRegex(ValueError, "observation"):
            self.loaded.action(tf.zeros((2, 4), tf.int32))

    def test_serving_default_is_the_greedy_action(self):
        serving = self.loaded.signatures["serving_default"]
        obs = tf.constant(self.obs, tf.float32)
        self.assertAllEqual(
            serving(observation=obs)["action"],
            self.loaded.signatures["action"](observation=obs)["action"],
        )

    def test_nan_observations_are_refused(self):
        obs = np.array(self.obs, np.float32)
        obs[1, 2] = np.nan
        seed = tf.constant([1, 2], tf.int64)
        for call in (
            lambda: self.loaded.signatures["action"](observation=obs),
            lambda: self.loaded.signatures["sample_action"](
                observation=obs, seed=seed
            ),
            lambda: self.loaded.action(obs),
        ):
            with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError, "`observation` holds NaN"
            ):
                call()

    def test_overflowing_parameters_are_refused(self):
        # Finite observations far outside any training range make the
        # logits Inf: no action (tfp would sample num_actions).
        head = layers.CategoricalPolicyHead(3)
        model = PPOModel(
            keras.Sequential([head]),
            keras.Sequential([keras.layers.Dense(1)]),
        )
        model(tf.zeros((1, 4)))
        kernel = head.logits_layer.kernel
        kernel.assign(np.full(kernel.shape, 10.0, np.float32))
        path = os.path.join(self.get_temp_dir(), "linear")
        export.export_policy(model, path, observation_spec=tf.TensorSpec([4]))
        loaded = tf.saved_model.load(path)
        obs = np.full((2, 4), 3e38, np.float32)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "parameters are NaN or Inf"
        ):
            loaded.signatures["sample_action"](
                observation=obs, seed=tf.constant([1, 2], tf.int64)
            )


class DiscreteObservationExportTest(tf.test.TestCase):
    def test_ids_outside_the_space_are_refused(self):
        import gymnasium

        import keras_gae.agents
        from tests.agents.space_envs import SpaceEnv

        spaces = gymnasium.spaces
        agent = keras_gae.agents.PPO(
            lambda: SpaceEnv(
                spaces.Dict(
                    mode=spaces.Discrete(5),
                    position=spaces.Box(-1, 1, (2,)),
                ),
                spaces.Discrete(2),
            ),
            verbose=0,
            num_envs=2,
            num_minibatches=1,
        )
        path = agent.export(os.path.join(self.get_temp_dir(), "discrete"))
        action = tf.saved_model.load(path).signatures["action"]
        position = np.zeros((2, 2), np.float32)
        ids = np.array([0, 4], np.int64)
        self.assertAllEqual(
            action(mode=ids, position=position)["action"],
            agent.predict({"mode": ids, "position": position}),
        )
        for bad in (7, -1, 5):
            with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError,
                r"`mode` holds an id outside its space \[0, 4\]",
            ):
                action(mode=np.array([0, bad], np.int64), position=position)

"""Tests of the policy heads (categorical, Gaussian, multi-categorical,
Bernoulli) and the squashed Gaussian distribution."""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import layers

LOG_2PI = np.log(2.0 * np.pi)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def categorical_reference(logits, actions):
    """(log_prob, entropy) of a softmax policy, float64."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    log_prob = np.take_along_axis(log_probs, actions[..., None], -1)[..., 0]
    entropy = -(np.exp(log_probs) * log_probs).sum(-1)
    return log_prob, entropy


def gaussian_reference(mean, log_std, actions):
    """(log_prob, entropy) of a diagonal Gaussian, float64."""
    z = (actions - mean) / np.exp(log_std)
    log_prob = (-0.5 * z**2 - log_std - 0.5 * LOG_2PI).sum(-1)
    entropy = (0.5 + 0.5 * LOG_2PI + log_std).sum(-1)
    return log_prob, np.broadcast_to(entropy, log_prob.shape)


def squashed_reference(mean, log_std, low, high, actions):
    """log-prob of y = c + h tanh(u), u ~ N(mean, std), float64."""
    center, half = (high + low) / 2.0, (high - low) / 2.0
    u = np.arctanh((actions - center) / half)
    base, _ = gaussian_reference(mean, log_std, u)
    return base - (np.log(half) + np.log(1.0 - np.tanh(u) ** 2)).sum(-1)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


class CategoricalPolicyHeadTest(tf.test.TestCase, parameterized.TestCase):
    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    def test_params_shape_and_distribution_shapes(self):
        head = layers.CategoricalPolicyHead(5)
        self.assertIsInstance(head, layers.PolicyHead)
        params = head(tf.ones([2, 3, 4]))
        self.assertEqual(params.shape, [2, 3, 5])
        self.assertEqual(head.params_size, 5)
        distribution = head.distribution(params)
        self.assertEqual(distribution.batch_shape, [2, 3])
        self.assertEqual(distribution.event_shape, [])
        self.assertEqual(distribution.sample().dtype, tf.int32)

    def test_log_prob_and_entropy_match_numpy(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(0.0, 3.0, size=(4, 6, 5))
        actions = rng.integers(0, 5, size=(4, 6))
        head = layers.CategoricalPolicyHead(5, dtype="float64")
        distribution = head.distribution(tf.constant(logits))
        log_prob, entropy = categorical_reference(logits, actions)
        self.assertAllClose(
            distribution.log_prob(actions), log_prob, atol=1e-12
        )
        self.assertAllClose(distribution.entropy(), entropy, atol=1e-12)

    def test_greedy_action(self):
        logits = np.array([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0]])
        head = layers.CategoricalPolicyHead(3, action_dtype="int64")
        greedy = head.greedy_action(logits)
        self.assertEqual(greedy.dtype, tf.int64)
        self.assertAllEqual(greedy, [1, 0])
        self.assertAllEqual(head.postprocess_action(greedy), greedy)

    def test_default_initializer_gives_near_uniform_policy(self):
        head = layers.CategoricalPolicyHead(4)
        features = np.random.default_rng(1).normal(size=(8, 16))
        probs = head.distribution(head(features)).probs_parameter()
        self.assertAllClose(probs, np.full((8, 4), 0.25), atol=0.02)

    def test_params_are_float32_under_mixed_precision(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        head = layers.CategoricalPolicyHead(3)
        self.assertEqual(head.compute_dtype, "float16")
        params = head(tf.ones([2, 4]))
        self.assertEqual(params.dtype, tf.float32)
        self.assertEqual(head.distribution(params).entropy().dtype, tf.float32)
        # Also in a functional model, whose symbolic output is float32.
        features = keras.Input((4,))
        hidden = keras.layers.Dense(8)(features)
        self.assertEqual(hidden.dtype, "float16")
        symbolic = layers.CategoricalPolicyHead(3)(hidden)
        self.assertEqual(symbolic.dtype, "float32")
        actor = keras.Model(features, symbolic)
        self.assertEqual(actor(tf.ones([2, 4])).dtype, tf.float32)

    @parameterized.named_parameters(
        ("zero", {"num_actions": 0}, ValueError, "num_actions"),
        ("float", {"num_actions": 2.5}, TypeError, "num_actions"),
        ("bool", {"num_actions": True}, TypeError, "num_actions"),
        (
            "action_dtype",
            {"num_actions": 2, "action_dtype": "float32"},
            ValueError,
            "action_dtype",
        ),
    )
    def test_constructor_errors(self, kwargs, error, name):
        with self.assertRaisesRegex(error, f"`{name}.*Received: {name}"):
            layers.CategoricalPolicyHead(**kwargs)

    def test_wrong_params_size(self):
        head = layers.CategoricalPolicyHead(3)
        with self.assertRaisesRegex(ValueError, "Received: params="):
            head.distribution(tf.zeros([2, 4]))
        with self.assertRaisesRegex(TypeError, "Received: params="):
            head.greedy_action(tf.zeros([2, 3], tf.int32))

    def test_get_config_round_trip(self):
        head = layers.CategoricalPolicyHead(
            4,
            kernel_initializer="glorot_uniform",
            bias_initializer=keras.initializers.Constant(0.5),
            action_dtype="int64",
            name="pi",
        )
        config = head.get_config()
        restored = layers.CategoricalPolicyHead.from_config(config)
        self.assertEqual(restored.get_config(), config)
        self.assertEqual(restored.action_dtype, "int64")
        features = tf.ones([2, 3])
        head(features)
        restored(features)
        restored.set_weights(head.get_weights())
        self.assertAllClose(restored(features), head(features))
        self.assertAllClose(restored.weights[1], np.full([4], 0.5))
        serialized = keras.layers.serialize(head)
        self.assertEqual(
            serialized["registered_name"], "keras_gae>CategoricalPolicyHead"
        )

    def test_saved_actor_round_trip(self):
        actor = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(8, activation="tanh"),
                layers.CategoricalPolicyHead(4, action_dtype="int64"),
            ]
        )
        path = os.path.join(self.get_temp_dir(), "categorical.keras")
        actor.save(path)
        loaded = keras.models.load_model(path)
        head = loaded.layers[-1]
        self.assertIsInstance(head, layers.CategoricalPolicyHead)
        self.assertEqual(head.get_config(), actor.layers[-1].get_config())
        features = np.random.default_rng(9).normal(size=(4, 3))
        self.assertAllClose(loaded(features), actor(features))
        self.assertAllEqual(
            head.greedy_action(loaded(features)),
            actor.layers[-1].greedy_action(actor(features)),
        )


def discrete_head(kind, **kwargs):
    if kind == "categorical":
        return layers.CategoricalPolicyHead(4, **kwargs)
    if kind == "multi_categorical":
        return layers.MultiCategoricalPolicyHead([3, 1, 4], **kwargs)
    return layers.BernoulliPolicyHead(3, **kwargs)


# Each discrete head's largest action per entry, written out.
ACTION_MAXIMUM = {
    "categorical": 3,
    "multi_categorical": [2, 0, 3],
    "bernoulli": [1, 1, 1],
}


class ActionMaximumTest(tf.test.TestCase, parameterized.TestCase):
    """`action_maximum` of the three discrete heads, and the one
    `invalid_actions` built on it."""

    @parameterized.parameters("categorical", "multi_categorical", "bernoulli")
    def test_shaped_like_one_action_and_kept_by_get_config(self, kind):
        head = discrete_head(kind, action_dtype="int64")
        maximum = head.action_maximum
        self.assertEqual(maximum.dtype, np.int64)
        self.assertAllEqual(maximum, ACTION_MAXIMUM[kind])
        params = head(tf.ones([2, 5]))
        sample = head.distribution(params).sample(seed=1)
        self.assertEqual(sample.shape[1:], maximum.shape)
        self.assertAllInRange(sample, 0, int(np.max(maximum)))
        self.assertAllEqual(head.greedy_action(params).shape[1:], maximum.shape)
        restored = type(head).from_config(head.get_config())
        self.assertAllEqual(restored.action_maximum, maximum)

    @parameterized.product(
        kind=("categorical", "multi_categorical", "bernoulli"),
        dtype=("int32", "int64", "float32"),
        jit_compile=(False, True),
    )
    def test_invalid_actions_against_numpy(self, kind, dtype, jit_compile):
        head = discrete_head(kind)
        maximum = np.asarray(ACTION_MAXIMUM[kind])
        shape = (16,) + maximum.shape
        rng = np.random.default_rng(3)
        values = rng.integers(-2, np.max(maximum) + 3, shape).astype(dtype)
        if dtype == "float32":
            values.flat[:4] = [0.5, np.nan, np.inf, -np.inf]
        # NaN fails every comparison: only `!= round` catches it.
        with np.errstate(invalid="ignore"):
            want = (values < 0) | (values > maximum)
            want |= values != np.round(values)
        invalid = tf.function(head.invalid_actions, jit_compile=jit_compile)
        self.assertAllEqual(invalid(tf.constant(values)), want)
        self.assertTrue(want.any() and not want.all())


class GaussianPolicyHeadTest(tf.test.TestCase, parameterized.TestCase):
    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    def test_params_layout(self):
        head = layers.GaussianPolicyHead(2, initial_log_std=-0.5)
        features = tf.random.normal([3, 4, 6], seed=1)
        params = head(features)
        self.assertEqual(params.shape, [3, 4, 4])
        self.assertEqual(head.params_size, 4)
        self.assertEqual(head.log_std.shape, [2])
        mean = (
            tf.matmul(features, head.mean_layer.kernel) + head.mean_layer.bias
        )
        self.assertAllClose(params[..., :2], mean, atol=1e-6)
        self.assertAllClose(params[..., 2:], np.full([3, 4, 2], -0.5))
        # The log-std is clipped into [min_log_std, max_log_std].
        head.log_std.assign([10.0, -10.0])
        self.assertAllClose(head(features)[0, 0, 2:], [2.0, -5.0])

    @parameterized.parameters(None, "tanh", "clip")
    def test_distribution_shapes(self, bound):
        box = {} if bound is None else {"low": -1.0, "high": 2.0}
        head = layers.GaussianPolicyHead(3, bound=bound, **box)
        distribution = head.distribution(head(tf.ones([2, 5, 4])))
        self.assertEqual(distribution.batch_shape, [2, 5])
        self.assertEqual(distribution.event_shape, [3])
        self.assertEqual(
            distribution.log_prob(distribution.sample()).shape, [2, 5]
        )
        self.assertEqual(distribution.entropy().shape, [2, 5])

    @parameterized.parameters(None, "clip")
    def test_gaussian_log_prob_and_entropy_match_numpy(self, bound):
        rng = np.random.default_rng(2)
        mean = rng.normal(size=(4, 3, 2))
        log_std = rng.normal(0.0, 0.5, size=(4, 3, 2))
        actions = rng.normal(0.0, 3.0, size=(4, 3, 2))
        box = {} if bound is None else {"low": -0.5, "high": 0.5}
        head = layers.GaussianPolicyHead(2, bound=bound, dtype="float64", **box)
        distribution = head.distribution(np.concatenate([mean, log_std], -1))
        log_prob, entropy = gaussian_reference(mean, log_std, actions)
        # With bound="clip", log-probs are of the unclipped actions.
        self.assertAllClose(
            distribution.log_prob(actions), log_prob, atol=1e-12
        )
        self.assertAllClose(distribution.entropy(), entropy, atol=1e-12)

    def test_squashed_log_prob_matches_numpy(self):
        rng = np.random.default_rng(3)
        low, high = np.array([-2.0, 0.0, 1.0]), np.array([1.0, 5.0, 1.5])
        mean = rng.normal(size=(5, 3))
        log_std = rng.normal(0.0, 0.5, size=(5, 3))
        unit = rng.uniform(-0.99, 0.99, size=(5, 3))
        actions = (high + low) / 2 + (high - low) / 2 * unit
        head = layers.GaussianPolicyHead(
            3, bound="tanh", low=low.tolist(), high=high, dtype="float64"
        )
        distribution = head.distribution(np.concatenate([mean, log_std], -1))
        self.assertIsInstance(distribution, layers.SquashedGaussian)
        expected = squashed_reference(mean, log_std, low, high, actions)
        self.assertAllClose(
            distribution.log_prob(actions), expected, atol=1e-10
        )
        self.assertAllClose(
            distribution.prob(actions), np.exp(expected), rtol=1e-10
        )

    def test_squashed_log_prob_jacobian_numeric_check(self):
        # log p(y) = log N(u) - log |det dy/du|, with the Jacobian of
        # y = f(u) taken by central finite differences, off-diagonals included.
        low, high = np.array([-3.0, 0.5]), np.array([1.0, 0.75])
        mean, log_std = np.array([0.3, -0.2]), np.array([-0.3, 0.4])
        distribution = layers.SquashedGaussian(mean, np.exp(log_std), low, high)
        squash = distribution.bijector.forward
        step = 1e-6
        rng = np.random.default_rng(4)
        for u in rng.normal(0.0, 1.5, size=(5, 2)):
            jacobian = np.stack(
                [
                    (
                        squash(u + step * e).numpy()
                        - squash(u - step * e).numpy()
                    )
                    / (2 * step)
                    for e in np.eye(2)
                ],
                axis=-1,
            )
            _, log_det = np.linalg.slogdet(jacobian)
            base, _ = gaussian_reference(mean, log_std, u)
            y = squash(u)
            self.assertAllClose(
                distribution.log_prob(y), base - log_det, atol=1e-6
            )

    def test_squashed_density_integrates_to_one(self):
        low, high = -1.0, 3.0
        distribution = layers.SquashedGaussian(
            np.array([0.7]), np.array([1.3]), np.array([low]), np.array([high])
        )
        grid = np.linspace(low, high, 400001)[1:-1]
        density = distribution.prob(grid[:, None]).numpy()
        self.assertAllClose(np.trapz(density, grid), 1.0, atol=1e-4)

    def test_squashed_samples_entropy_mode_and_bounds(self):
        low, high = np.array([-2.0, 1.0]), np.array([2.0, 4.0])
        center, half = (high + low) / 2, (high - low) / 2
        mean, log_std = np.array([0.4, -1.0]), np.array([0.0, -0.5])
        head = layers.GaussianPolicyHead(
            2, bound="tanh", low=low, high=high, dtype="float64"
        )
        params = np.concatenate([mean, log_std])[None]
        distribution = head.distribution(params)
        samples = distribution.sample(20000, seed=5).numpy()
        self.assertTrue(np.all((samples >= low) & (samples <= high)))
        # entropy() is H[N] + sum log h, an upper bound of the true entropy.
        _, base_entropy = gaussian_reference(mean, log_std, mean)
        bound = base_entropy + np.log(half).sum()
        self.assertAllClose(distribution.entropy(), [bound])
        estimate = -np.mean(distribution.log_prob(samples).numpy())
        self.assertLess(estimate, bound - 0.1)
        squashed_mean = center + half * np.tanh(mean)
        self.assertAllClose(distribution.mode(), [squashed_mean])
        self.assertAllClose(head.greedy_action(params), [squashed_mean])
        # Actions that rounded onto a bound keep a finite log-prob.
        self.assertTrue(np.isfinite(distribution.log_prob(low[None])).all())
        self.assertTrue(np.isfinite(distribution.log_prob(high[None])).all())

    def test_squashed_gaussian_in_tf_function(self):
        head = layers.GaussianPolicyHead(2, bound="tanh", low=-1.0, high=1.0)

        @tf.function
        def sample_log_prob(features):
            distribution = head.distribution(head(features))
            return distribution.log_prob(distribution.sample())

        self.assertTrue(
            np.isfinite(sample_log_prob(tf.ones([3, 4])).numpy()).all()
        )

    def test_clip_bound_acting(self):
        head = layers.GaussianPolicyHead(
            2, bound="clip", low=[-1.0, 0.0], high=[1.0, 0.5]
        )
        action = tf.constant([[-3.0, 0.2], [0.5, 9.0]])
        clipped = head.postprocess_action(action)
        self.assertAllClose(clipped, [[-1.0, 0.2], [0.5, 0.5]])
        self.assertAllClose(head.postprocess_action(clipped), clipped)
        params = tf.constant([[2.0, -1.0, 0.0, 0.0]])
        self.assertAllClose(head.greedy_action(params), [[1.0, 0.0]])
        self.assertAllClose(head.low, [-1.0, 0.0])
        self.assertAllClose(head.high, [1.0, 0.5])

    @parameterized.named_parameters(
        ("unbounded", -np.inf, np.inf, r"\[0, 1\]"),
        ("partly_unbounded", [-1.0, 0.0], [1.0, np.inf], r"\[1\]"),
        # How tf-agents stores an infinite Box bound.
        ("float32_limits", -FLOAT32_MAX, FLOAT32_MAX, r"\[0, 1\]"),
        ("wider_than_float32", [-1.0, -3e38], [1.0, 3e38], r"\[1\]"),
    )
    def test_tanh_needs_a_finite_box(self, low, high, dimensions):
        with self.assertRaisesRegex(
            ValueError,
            r"`bound='tanh'`: tanh squashing needs a finite box; action "
            rf"dimensions {dimensions} are unbounded.*use bound='clip' or "
            r"None\. Received: bound='tanh', low=.*, high=",
        ):
            layers.GaussianPolicyHead(2, bound="tanh", low=low, high=high)

    @parameterized.named_parameters(
        ("infinite", -np.inf, np.inf, ValueError, r"dimensions \[0, 1\]"),
        ("nan", [0.0, np.nan], 1.0, ValueError, r"dimensions \[1\]"),
        ("low_above_high", 1.0, [2.0, -1.0], ValueError, "low < high"),
        ("wrong_length", [-1.0, -1.0, -1.0], 1.0, ValueError, "event shape"),
    )
    def test_squashed_gaussian_checks_its_box(self, low, high, error, why):
        with self.assertRaisesRegex(
            error,
            rf"SquashedGaussian.*{why}.*Received: low=.*, high=",
        ):
            layers.SquashedGaussian(np.zeros(2), np.ones(2), low, high)

    def test_bool_bounds_refused(self):
        with self.assertRaisesRegex(TypeError, "Received: low=True"):
            layers.GaussianPolicyHead(1, bound="clip", low=True, high=2.0)

    def test_clip_with_infinite_sides_clips_the_finite_ones(self):
        head = layers.GaussianPolicyHead(
            2, bound="clip", low=[-1.0, -np.inf], high=[1.0, np.inf]
        )
        action = tf.constant([[5.0, -1e30], [-5.0, 1e30]])
        expected = np.float32([[1.0, -1e30], [-1.0, 1e30]])
        self.assertAllEqual(head.postprocess_action(action), expected)
        params = tf.constant([[7.0, -7.0, 0.0, 0.0]])
        self.assertAllEqual(head.greedy_action(params), [[1.0, -7.0]])
        # The config round trip goes through JSON, as a saved model does.
        config = json.loads(json.dumps(head.get_config()))
        restored = layers.GaussianPolicyHead.from_config(config)
        self.assertAllEqual(restored.low, [-1.0, -np.inf])
        self.assertAllEqual(restored.high, [1.0, np.inf])

    def test_unbounded_greedy_and_postprocess(self):
        head = layers.GaussianPolicyHead(2)
        params = tf.constant([[5.0, -7.0, 0.0, 1.0]])
        self.assertAllClose(head.greedy_action(params), [[5.0, -7.0]])
        action = tf.constant([[9.0, -9.0]])
        self.assertAllEqual(head.postprocess_action(action), action)
        self.assertIsNone(head.low)

    def test_params_are_float32_under_mixed_precision(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        head = layers.GaussianPolicyHead(2, bound="tanh", low=-1.0, high=1.0)
        params = head(tf.ones([3, 4]))
        self.assertEqual(head.compute_dtype, "float16")
        self.assertEqual(head.log_std.dtype, tf.float32)
        self.assertEqual(params.dtype, tf.float32)
        distribution = head.distribution(params)
        self.assertEqual(
            distribution.log_prob(tf.zeros([3, 2])).dtype, tf.float32
        )

    @parameterized.named_parameters(
        ("dim_zero", {"action_dim": 0}, ValueError, "action_dim"),
        ("dim_float", {"action_dim": 1.0}, TypeError, "action_dim"),
        (
            "log_std_order",
            {"action_dim": 1, "min_log_std": 1.0, "max_log_std": 1.0},
            ValueError,
            "min_log_std",
        ),
        (
            "initial_log_std",
            {"action_dim": 1, "initial_log_std": 3.0},
            ValueError,
            "initial_log_std",
        ),
        (
            "initial_log_std_type",
            {"action_dim": 1, "initial_log_std": "0"},
            TypeError,
            "initial_log_std",
        ),
        (
            "unknown_bound",
            {"action_dim": 1, "bound": "sigmoid", "low": 0.0, "high": 1.0},
            ValueError,
            "bound",
        ),
        (
            "box_without_bound",
            {"action_dim": 1, "low": 0.0, "high": 1.0},
            ValueError,
            "bound",
        ),
        (
            "missing_high",
            {"action_dim": 1, "bound": "tanh", "low": 0.0},
            ValueError,
            "low",
        ),
        (
            "low_not_below_high",
            {"action_dim": 2, "bound": "clip", "low": [0, 1], "high": [1, 1]},
            ValueError,
            "low",
        ),
        (
            "low_wrong_length",
            {"action_dim": 2, "bound": "tanh", "low": [0, 0, 0], "high": 1},
            ValueError,
            "low",
        ),
        (
            "high_infinite",
            {"action_dim": 1, "bound": "tanh", "low": 0.0, "high": np.inf},
            ValueError,
            "high",
        ),
        (
            "high_string",
            {"action_dim": 1, "bound": "tanh", "low": 0.0, "high": "x"},
            TypeError,
            "high",
        ),
    )
    def test_constructor_errors(self, kwargs, error, name):
        with self.assertRaisesRegex(error, f"`{name}.*Received: .*{name}="):
            layers.GaussianPolicyHead(**kwargs)

    def test_wrong_params_size(self):
        head = layers.GaussianPolicyHead(2)
        with self.assertRaisesRegex(ValueError, "last dimension 4.*params="):
            head.distribution(tf.zeros([3, 2]))

    @parameterized.parameters(None, "tanh", "clip")
    def test_get_config_round_trip(self, bound):
        box = {} if bound is None else {"low": [-1.0, 0.0], "high": 2.0}
        head = layers.GaussianPolicyHead(
            2,
            initial_log_std=-1.0,
            min_log_std=-4.0,
            max_log_std=1.0,
            bound=bound,
            kernel_initializer="he_normal",
            name="pi",
            **box,
        )
        config = head.get_config()
        restored = layers.GaussianPolicyHead.from_config(config)
        self.assertEqual(restored.get_config(), config)
        self.assertEqual(restored.bound, bound)
        features = tf.ones([2, 3])
        head(features)
        restored(features)
        restored.set_weights(head.get_weights())
        params = head(features)
        self.assertAllClose(restored(features), params)
        self.assertAllClose(
            restored.greedy_action(params), head.greedy_action(params)
        )

    def test_saved_actor_round_trip(self):
        actor = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(8, activation="tanh"),
                layers.GaussianPolicyHead(2, bound="tanh", low=-1.0, high=1.0),
            ]
        )
        path = os.path.join(self.get_temp_dir(), "actor.keras")
        actor.save(path)
        loaded = keras.models.load_model(path)
        self.assertIsInstance(loaded.layers[-1], layers.GaussianPolicyHead)
        features = np.random.default_rng(6).normal(size=(4, 3))
        self.assertAllClose(loaded(features), actor(features))
        clone = keras.Sequential.from_config(actor.get_config())
        clone.set_weights(actor.get_weights())
        self.assertAllClose(clone(features), actor(features))


class PolicyHeadFitTest(tf.test.TestCase, parameterized.TestCase):
    """A head inside a Sequential actor trained by negative log-likelihood."""

    def _fit(self, head, features, actions, epochs=15):
        actor = keras.Sequential(
            [
                keras.Input(features.shape[1:]),
                keras.layers.Dense(16, activation="tanh"),
                head,
            ]
        )

        def negative_log_likelihood(action, params):
            if isinstance(head, layers.CategoricalPolicyHead):
                # Keras 3 hands targets over in the loss dtype, float32.
                action = tf.cast(action, head.action_dtype)
            return -head.distribution(params).log_prob(action)

        actor.compile(
            optimizer=keras.optimizers.Adam(0.03),
            loss=negative_log_likelihood,
        )
        history = actor.fit(
            features, actions, epochs=epochs, batch_size=32, verbose=0
        )
        return actor, history.history["loss"]

    def test_categorical_fit_smoke(self):
        rng = np.random.default_rng(7)
        features = rng.normal(size=(32, 4)).astype(np.float32)
        actions = np.argmax(features[:, :3], axis=-1).astype(np.int32)
        head = layers.CategoricalPolicyHead(3)
        actor, losses = self._fit(head, features, actions)
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[-1], losses[0])
        greedy = head.greedy_action(actor(features)).numpy()
        self.assertGreater(np.mean(greedy == actions), 0.5)

    @parameterized.parameters(None, "tanh", "clip")
    def test_gaussian_fit_smoke(self, bound):
        rng = np.random.default_rng(8)
        features = rng.normal(size=(32, 3)).astype(np.float32)
        actions = np.tanh(features[:, :2]).astype(np.float32) * 0.9
        box = {} if bound is None else {"low": -1.0, "high": 1.0}
        head = layers.GaussianPolicyHead(2, bound=bound, **box)
        _, losses = self._fit(head, features, actions)
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[-1], losses[0])
        # The state-independent log-std receives gradients.
        self.assertNotAllClose(head.log_std, np.zeros([2]))


class MultiCategoricalTest(tf.test.TestCase):
    def test_log_prob_entropy_greedy_against_numpy(self):
        nvec = [3, 1, 4]
        head = layers.MultiCategoricalPolicyHead(nvec, action_dtype="int64")
        params = np.random.default_rng(0).normal(size=(5, 8)).astype("f4")
        actions = np.array(
            [[2, 0, 3], [0, 0, 0], [1, 0, 2], [2, 0, 1], [0, 0, 3]]
        )
        splits = np.split(params, np.cumsum(nvec)[:-1], axis=-1)
        want_lp = sum(
            log_softmax(logits)[np.arange(5), actions[:, d]]
            for d, logits in enumerate(splits)
        )
        want_h = sum(
            -(np.exp(log_softmax(x)) * log_softmax(x)).sum(-1) for x in splits
        )
        want_greedy = np.stack([x.argmax(-1) for x in splits], -1)
        distribution = head.distribution(tf.constant(params))
        self.assertAllClose(distribution.log_prob(actions), want_lp, atol=1e-5)
        self.assertAllClose(distribution.entropy(), want_h, atol=1e-5)
        self.assertAllEqual(
            head.greedy_action(tf.constant(params)), want_greedy
        )
        samples = distribution.sample(2000, seed=1).numpy()
        self.assertEqual(samples.shape, (2000, 5, 3))
        self.assertTrue(np.all(samples < np.array(nvec)))
        # Row 0, dimension 0: empirical frequencies near softmax.
        counts = np.bincount(samples[:, 0, 0], minlength=3) / 2000
        self.assertAllClose(
            counts, np.exp(log_softmax(splits[0][0])), atol=0.04
        )

    def test_params_size_and_errors(self):
        head = layers.MultiCategoricalPolicyHead([2, 5])
        self.assertEqual(head(np.zeros((2, 4), "f4")).shape, (2, 7))
        with self.assertRaisesRegex(ValueError, "nvec"):
            layers.MultiCategoricalPolicyHead([])
        with self.assertRaisesRegex(ValueError, "nvec"):
            layers.MultiCategoricalPolicyHead([2, 0])


class BernoulliTest(tf.test.TestCase):
    def test_log_prob_entropy_greedy_against_numpy(self):
        head = layers.BernoulliPolicyHead(3, action_dtype="int64")
        logits = np.array([[0.5, -1.0, 2.0], [-0.3, 0.0, 1.5]], "f4")
        actions = np.array([[1, 0, 1], [0, 1, 0]])
        p = 1 / (1 + np.exp(-logits))
        want_lp = np.sum(
            actions * np.log(p) + (1 - actions) * np.log(1 - p), -1
        )
        want_h = np.sum(-(p * np.log(p) + (1 - p) * np.log(1 - p)), -1)
        distribution = head.distribution(tf.constant(logits))
        self.assertAllClose(distribution.log_prob(actions), want_lp, atol=1e-5)
        self.assertAllClose(distribution.entropy(), want_h, atol=1e-5)
        self.assertAllEqual(
            head.greedy_action(tf.constant(logits)), [[1, 0, 1], [0, 0, 1]]
        )


if __name__ == "__main__":
    tf.test.main()

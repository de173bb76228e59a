"""The action range of MultiCategoricalPolicyHead and BernoulliPolicyHead,
at both sides of each boundary: the first invalid value (nvec[d], 2, -1)
and the last valid one (nvec[d] - 1, 1, 0).

Where actions are range-checked: the heads' `invalid_actions` (what the
training step counts, in graph mode and under XLA, before refusing the
step), and `action_maximum` (what `KerasPolicy` checks the environment's
action spec against).
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from keras_gae.agents import KerasPolicy
from keras_gae.layers import BernoulliPolicyHead
from keras_gae.layers import MultiCategoricalPolicyHead
from keras_gae.models import PPOModel
from tests.models.one_rollout import fit
from tests.models.one_rollout import state_of

NVEC = [3, 1, 4]
BITS = 3
OBS = 2
ROWS, STEPS = 2, 6


def make_head(kind):
    if kind == "multi_categorical":
        return MultiCategoricalPolicyHead(NVEC)
    return BernoulliPolicyHead(BITS)


def upper(kind):
    """The number of actions per dimension: the first invalid value."""
    return np.array(NVEC if kind == "multi_categorical" else [2] * BITS)


def boundary_actions(kind):
    """`[D + 3, D]` int32 actions: every dimension's last valid value, 0,
    and each dimension's first invalid value nvec[d] (or 2), then -1.

    Returns the actions and the NumPy reference of which entries are out of
    range."""
    top = upper(kind)
    dims = len(top)
    rows = [top - 1, np.zeros(dims, int)]
    for d in range(dims):
        row = top - 1
        row[d] = top[d]
        rows.append(row)
    minus_one = np.zeros(dims, int)
    minus_one[-1] = -1
    rows.append(minus_one)
    actions = np.array(rows, np.int32)
    return actions, (actions < 0) | (actions >= top)


class InvalidActionsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(
        kind=("multi_categorical", "bernoulli"), jit_compile=(False, True)
    )
    def test_first_invalid_and_last_valid_values(self, kind, jit_compile):
        head = make_head(kind)
        actions, expected = boundary_actions(kind)
        # Rows 0 and 1 are valid; every later row has one invalid entry.
        self.assertAllEqual(
            expected.any(-1), [False, False] + [True] * (len(actions) - 2)
        )
        invalid = tf.function(head.invalid_actions, jit_compile=jit_compile)
        for dtype in (tf.int32, tf.int64):
            self.assertAllEqual(
                invalid(tf.constant(actions, dtype)), expected, msg=dtype
            )

    @parameterized.parameters("multi_categorical", "bernoulli")
    def test_action_maximum_is_the_last_valid_value(self, kind):
        self.assertAllEqual(make_head(kind).action_maximum, upper(kind) - 1)


def make_model(kind, jit_compile):
    keras.utils.set_random_seed(0)
    head = make_head(kind)
    model = PPOModel(
        keras.Sequential([keras.layers.Dense(4, activation="tanh"), head]),
        keras.Sequential([keras.layers.Dense(1)]),
    )
    model(tf.zeros([1, OBS]))
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), jit_compile=jit_compile
    )
    model.optimizer.build(model.trainable_variables)
    return model


def batch_with(actions):
    """A rollout batch whose steps hold `actions` `[k, D]` in order
    (k <= ROWS * STEPS, the rest 0)."""
    rng = np.random.default_rng(0)
    flat = np.zeros((ROWS * STEPS, actions.shape[-1]), np.int32)
    flat[: len(actions)] = actions
    mask = np.ones((ROWS, STEPS), bool)
    return {
        "observation": rng.normal(size=(ROWS, STEPS, OBS)).astype(np.float32),
        "action": flat.reshape(ROWS, STEPS, -1),
        "reward": rng.normal(size=(ROWS, STEPS)).astype(np.float32),
        "log_prob": np.full((ROWS, STEPS), -2.0, np.float32),
        "value": np.zeros((ROWS, STEPS), np.float32),
        "bootstrap_value": np.zeros((ROWS,), np.float32),
        "mask": mask,
    }


class TrainingActionRangeTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(
        kind=("multi_categorical", "bernoulli"), jit_compile=(False, True)
    )
    def test_first_invalid_values_are_refused(self, kind, jit_compile):
        actions, expected = boundary_actions(kind)
        invalid_steps = int(expected.any(-1).sum())
        model = make_model(kind, jit_compile)
        before = state_of(model)
        with self.assertRaisesRegex(
            ValueError,
            r'batch\["action"\] holds actions outside.*'
            rf"Received: .* out of range at {invalid_steps} steps",
        ):
            fit(model, batch_with(actions))
        for got, want in zip(state_of(model), before):
            self.assertAllEqual(got, want)

    @parameterized.product(
        kind=("multi_categorical", "bernoulli"), jit_compile=(False, True)
    )
    def test_last_valid_values_train(self, kind, jit_compile):
        actions, expected = boundary_actions(kind)
        valid = actions[~expected.any(-1)]
        # Each dimension's last valid value, then 0, at every step.
        model = make_model(kind, jit_compile)
        before = state_of(model)
        logs = fit(model, batch_with(np.tile(valid, [ROWS * STEPS // 2, 1])))
        self.assertTrue(np.isfinite(logs["loss"][-1]))
        self.assertNotAllClose(state_of(model)[0], before[0])


class PolicySpecTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("multi_categorical", "bernoulli")
    def test_spec_maximum_must_be_the_last_valid_action(self, kind):
        model = make_model(kind, jit_compile=False)
        time_step_spec = ts.time_step_spec(tf.TensorSpec([OBS], tf.float32))
        top = upper(kind)

        def spec(maximum):
            return tensor_spec.BoundedTensorSpec(
                [len(top)], tf.int32, minimum=0, maximum=maximum
            )

        KerasPolicy(model, time_step_spec, spec(top - 1))
        with self.assertRaisesRegex(ValueError, "policy head samples 0 .."):
            KerasPolicy(model, time_step_spec, spec(top))

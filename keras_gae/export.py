"""Export of trained policies as SavedModels that load without keras_gae.

`export_policy(model, path, observation_spec=...)` writes a SavedModel whose
functions are plain TensorFlow graphs (tensorflow-probability's sampling and
log-prob ops included), so `tf.saved_model.load(path)` needs only TensorFlow:

    loaded = tf.saved_model.load(path)
    actions = loaded.signatures["action"](observation=obs)["action"]

Serving signatures (batch dimension dynamic; inputs checked against the
observation spec, so a wrong shape or dtype fails at the call, and NaN or
Inf observations, integer ids outside a bounded integer spec (Discrete,
MultiDiscrete, MultiBinary observations), or parameters that overflow,
fail with an InvalidArgumentError that says so instead of returning an
action):

* "action": observation -> {"action"}: the greedy action (the head's mode,
  postprocessed to the action space's bounds).
* "sample_action": observation, seed (int64 `[2]`, cast to int32) -> {"action",
  "log_prob"}: a sampled action, reproducible for a given seed
  (stateless sampling); "action" is postprocessed, "log_prob" is that of
  the raw sample.
* "distribution": observation -> {"params"}: the policy head's parameters
  (logits for a categorical head; mean and log-std for a Gaussian one).
* "value": observation -> {"value"}: the critic's V(observation).
* "serving_default": the same as "action" (what serving tools call).

Recurrent policies (`model.recurrent`). Every function also takes
"episode_start" (bool `[batch]`: reset the state to zeros first) and the
state "state_0", "state_1", ... (float32 `[batch, U]`; an LSTM has two, a
GRU one) after the observation (and the seed), and returns the state
after the step under the same names, to pass to the next call; the first
call of an episode takes zeros (or any state with episode_start true):

    out = loaded.signatures["action"](observation=obs, episode_start=first,
                                      state_0=h, state_1=c)
    h, c = out["state_0"], out["state_1"]

Input names. A single observation is the input "observation". For a nest
(e.g. a gymnasium Dict or Tuple space), every leaf is one input, named by
its path in the nest joined with "_": a Dict's keys name its leaves, and a
path that does not start with a Dict key starts with "observation"; a
tuple's (or list's) positions are numbers, a namedtuple's its field names.
So `{"position": ..., "velocity": ...}` gives the inputs "position" and
"velocity", `(a, b)` "observation_0" and "observation_1", and
`{"camera": (left, right)}` "camera_0" and "camera_1":

    loaded.signatures["action"](position=p, velocity=v)["action"]

The same functions are attributes of the loaded object (`loaded.action`,
`loaded.sample_action`, `loaded.distribution`, `loaded.value`). For a
single (non-nest) floating observation they also take float16/32/64
observations (cast to the spec's dtype) and one unbatched observation
(then the outputs are unbatched too); other dtypes or shapes are refused
by TensorFlow with the accepted signatures listed. The serving signatures
take exactly `[batch, ...]` of the spec's dtype (a serving signature has
one input spec): numpy arrays of another float dtype are converted, a
`tf.Tensor` of another dtype is refused by TensorFlow's call ("expected to
be a float tensor but is a double tensor").
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_gae._src import export_signatures
from keras_gae._src import weights

__all__ = ["export_policy"]


class _ExportedPolicy(tf.Module):
    """The tf.Module that is saved; holds the networks' variables."""

    def __init__(
        self, model: keras.Model, observation_signature: Any, bounds: list
    ):
        super().__init__(name="keras_gae_policy")
        # Track the variables only: saving the Keras model object itself
        # would also serialize its Keras-specific functions and metadata.
        self._variables = list(model.variables)
        head = model.policy_head

        def check(observation, spec, bound):
            # Serving signatures do not enforce static shapes at call time.
            expected = spec.shape[1:]
            message = (
                f"`{spec.name}` must have shape [batch, "
                f"{', '.join(str(d) for d in expected)}] and dtype "
                f"{spec.dtype.name}."
            )
            shape = tf.shape(observation)
            checks = [
                tf.debugging.assert_equal(
                    shape[1:],
                    tf.constant(expected.as_list(), tf.int32),
                    message=message,
                ),
                # One unbatched observation reaches a signature with its
                # static [batch, ...] shape, and `shape[1:]` above is then
                # empty (equal to anything); its element count is not.
                tf.debugging.assert_equal(
                    tf.size(observation, tf.int32),
                    shape[0] * int(np.prod(expected.as_list())),
                    message=message + " (An unbatched observation? The "
                    "serving signatures take a batch; the function "
                    "attributes, e.g. `loaded.action`, also take one.)",
                ),
            ]
            if observation.dtype.is_floating:
                checks.append(
                    tf.debugging.assert_all_finite(
                        observation,
                        f"`{spec.name}` holds NaN or Inf; the policy's "
                        "action for it would be garbage.",
                    )
                )
            if bound is not None:
                ids = tf.cast(observation, tf.int64)
                checks.append(
                    tf.debugging.Assert(
                        tf.reduce_all((ids >= bound[0]) & (ids <= bound[1])),
                        [
                            f"`{spec.name}` holds an id outside its space "
                            f"[{bound[0].min()}, {bound[1].max()}]; the "
                            "policy's action for it would be garbage. "
                            "Received ids from",
                            tf.reduce_min(ids),
                            "to",
                            tf.reduce_max(ids),
                        ],
                    )
                )
            with tf.control_dependencies(checks):
                return tf.identity(observation)

        def adapt(observation, carried=()):
            """Casts a float observation, batches an unbatched one."""
            if not isinstance(observation_signature, tf.TensorSpec):
                return observation, carried, False
            observation = tf.convert_to_tensor(observation)
            if observation.dtype != observation_signature.dtype:
                observation = tf.cast(observation, observation_signature.dtype)
            unbatched = (
                observation.shape.rank == observation_signature.shape.rank - 1
            )
            if unbatched:
                observation = observation[tf.newaxis]
                carried = [x[tf.newaxis] for x in carried]
            return observation, carried, unbatched

        def outputs(result, unbatched):
            if unbatched:
                return {key: value[0] for key, value in result.items()}
            return result

        # A recurrent model's functions also take "episode_start" ([batch]
        # bool) and its state "state_0", ... ([batch, U] float32), and
        # return the state after the step under the same names.
        state_specs = [
            tf.TensorSpec([None] + spec.shape.as_list(), spec.dtype, spec.name)
            for spec in model.state_spec()
        ]
        carried_specs = []
        if state_specs:
            carried_specs = [
                tf.TensorSpec([None], tf.bool, name="episode_start")
            ] + state_specs

        def state_outputs(state):
            if state is None:
                return {}
            return {spec.name: x for spec, x in zip(state_specs, state)}

        def params_and_value(observation, carried=()):
            observation = tf.nest.pack_sequence_as(
                observation_signature,
                [
                    check(leaf, spec, bound)
                    for leaf, spec, bound in zip(
                        tf.nest.flatten(observation),
                        tf.nest.flatten(observation_signature),
                        bounds,
                    )
                ],
            )
            episode_start, state = (
                (carried[0], carried[1:])
                if carried
                else (
                    None,
                    None,
                )
            )
            params, value, state = model.forward(
                observation, state, episode_start, training=False
            )
            # Finite observations can still overflow the networks.
            with tf.control_dependencies(
                [
                    tf.debugging.assert_all_finite(
                        params,
                        "The policy's parameters are NaN or Inf for this "
                        "`observation` (values far outside the training "
                        "range?); refusing to return an action.",
                    )
                ]
            ):
                return tf.identity(params), value, state_outputs(state)

        @tf.function
        def action(observation, *carried):
            observation, carried, unbatched = adapt(observation, carried)
            params, _, state = params_and_value(observation, carried)
            return outputs(
                {"action": head.greedy_action(params), **state}, unbatched
            )

        @tf.function
        def sample_action(observation, seed, *carried):
            observation, carried, unbatched = adapt(observation, carried)
            params, _, state = params_and_value(observation, carried)
            distribution = head.distribution(params)
            raw = distribution.sample(seed=tf.cast(seed, tf.int32))
            return outputs(
                {
                    "action": head.postprocess_action(raw),
                    "log_prob": tf.cast(distribution.log_prob(raw), tf.float32),
                    **state,
                },
                unbatched,
            )

        @tf.function
        def distribution(observation, *carried):
            observation, carried, unbatched = adapt(observation, carried)
            params, _, state = params_and_value(observation, carried)
            return outputs({"params": params, **state}, unbatched)

        @tf.function
        def value(observation, *carried):
            observation, carried, unbatched = adapt(observation, carried)
            _, values, state = params_and_value(observation, carried)
            return outputs({"value": values, **state}, unbatched)

        seed = tf.TensorSpec([2], tf.int64, name=export_signatures.SEED)
        for spec in export_signatures.input_specs(observation_signature):
            extra = carried_specs
            # Only a single (non-nest) observation has unbatched variants.
            if (
                carried_specs
                and isinstance(spec, tf.TensorSpec)
                and spec.shape.rank < observation_signature.shape.rank
            ):
                # One observation: its state and flag unbatched too.
                extra = [
                    tf.TensorSpec(x.shape[1:], x.dtype, x.name)
                    for x in carried_specs
                ]
            action.get_concrete_function(spec, *extra)
            sample_action.get_concrete_function(spec, seed, *extra)
            distribution.get_concrete_function(spec, *extra)
            value.get_concrete_function(spec, *extra)
        self.action = action
        self.sample_action = sample_action
        self.distribution = distribution
        self.value = value
        signature = observation_signature
        self.serving_signatures = {
            "action": action.get_concrete_function(signature, *carried_specs),
            "sample_action": sample_action.get_concrete_function(
                signature, seed, *carried_specs
            ),
            "distribution": distribution.get_concrete_function(
                signature, *carried_specs
            ),
            "value": value.get_concrete_function(signature, *carried_specs),
        }
        self.serving_signatures["serving_default"] = self.serving_signatures[
            "action"
        ]


def _check_finite_weights(model: keras.Model) -> None:
    bad = weights.non_finite_weights(model)
    if bad:
        raise ValueError(
            "Refusing to export a policy whose weights hold NaN or Inf: "
            f"{weights.describe(bad)}. Export the last good checkpoint "
            f"instead. Received: model={model.name!r}"
        )


def export_policy(
    model: keras.Model,
    path: str,
    *,
    observation_spec: Any,
) -> str:
    """Writes `model`'s policy and value function as a SavedModel.

    Args:
      model: a keras_gae actor-critic model (`PPOModel`, `A2CModel` or any
        `ActorCriticModel`): `model(observation)` returns `(params, value)`
        and `model.policy_head` builds the action distribution.
      path: directory to write the SavedModel to (created).
      observation_spec: the spec of ONE observation, without the batch
        dimension: a `tf.TensorSpec`, a tf-agents `ArraySpec`, or a nest of
        them (e.g. `tf_env.observation_spec()`). A nest's leaves become the
        signatures' inputs, named by their paths: a Dict's keys, and
        "observation_0", "observation_1", ... for a tuple's positions
        (module docstring, "Input names").

    Returns:
      `path`.

    Raises:
      ValueError: the weights hold NaN or Inf (a diverged policy is never
        exported), `path` is an existing file, or the nest's paths give an
        input name TensorFlow refuses, twice the same name, or "seed".
      TypeError: `model` is not an actor-critic model, or a bad spec.
    """
    if not hasattr(model, "policy_head") or not callable(model):
        raise TypeError(
            "`model` must be a keras_gae actor-critic model with a "
            f"`policy_head`. Received: model={model!r}"
        )
    if os.path.isfile(path):
        raise ValueError(
            f"`path` must be a directory, not a file. Received: path={path!r}"
        )
    signature = export_signatures.observation_signature(observation_spec)
    # Builds the networks' variables before checking them.
    model(
        tf.nest.map_structure(
            lambda s: tf.zeros([1] + s.shape[1:], s.dtype), signature
        ),
        training=False,
    )
    _check_finite_weights(model)
    module = _ExportedPolicy(
        model,
        signature,
        export_signatures.integer_bounds(observation_spec, signature),
    )
    signatures = module.serving_signatures
    # Not an attribute of the saved object: `signatures` is reserved.
    del module.serving_signatures
    tf.saved_model.save(module, path, signatures=signatures)
    return path

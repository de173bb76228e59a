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

        def adapt(observation):
            """Casts a float observation, batches an unbatched one."""
            if not isinstance(observation_signature, tf.TensorSpec):
                return observation, False
            observation = tf.convert_to_tensor(observation)
            if observation.dtype != observation_signature.dtype:
                observation = tf.cast(observation, observation_signature.dtype)
            unbatched = (
                observation.shape.rank == observation_signature.shape.rank - 1
            )
            if unbatched:
                observation = observation[tf.newaxis]
            return observation, unbatched

        def outputs(result, unbatched):
            if unbatched:
                return {key: value[0] for key, value in result.items()}
            return result

        def params_and_value(observation):
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
            params, value = model(observation, training=False)
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
                return tf.identity(params), value

        @tf.function
        def action(observation):
            observation, unbatched = adapt(observation)
            params, _ = params_and_value(observation)
            return outputs({"action": head.greedy_action(params)}, unbatched)

        @tf.function
        def sample_action(observation, seed):
            observation, unbatched = adapt(observation)
            params, _ = params_and_value(observation)
            distribution = head.distribution(params)
            raw = distribution.sample(seed=tf.cast(seed, tf.int32))
            return outputs(
                {
                    "action": head.postprocess_action(raw),
                    "log_prob": tf.cast(distribution.log_prob(raw), tf.float32),
                },
                unbatched,
            )

        @tf.function
        def distribution(observation):
            observation, unbatched = adapt(observation)
            params, _ = params_and_value(observation)
            return outputs({"params": params}, unbatched)

        @tf.function
        def value(observation):
            observation, unbatched = adapt(observation)
            _, values = params_and_value(observation)
            return outputs({"value": values}, unbatched)

        seed = tf.TensorSpec([2], tf.int64, name=export_signatures.SEED)
        for spec in export_signatures.input_specs(observation_signature):
            action.get_concrete_function(spec)
            sample_action.get_concrete_function(spec, seed)
            distribution.get_concrete_function(spec)
            value.get_concrete_function(spec)
        self.action = action
        self.sample_action = sample_action
        self.distribution = distribution
        self.value = value
        self.serving_signatures = {
            "action": action.get_concrete_function(observation_signature),
            "sample_action": sample_action.get_concrete_function(
                observation_signature, seed
            ),
            "distribution": distribution.get_concrete_function(
                observation_signature
            ),
            "value": value.get_concrete_function(observation_signature),
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
        exported), a recurrent model (not supported yet), `path` is an
        existing file, or the nest's paths give an
        input name TensorFlow refuses, twice the same name, or "seed".
      TypeError: `model` is not an actor-critic model, or a bad spec.
    """
    if not hasattr(model, "policy_head") or not callable(model):
        raise TypeError(
            "`model` must be a keras_gae actor-critic model with a "
            f"`policy_head`. Received: model={model!r}"
        )
    if getattr(model, "recurrent", False):
        # Its signatures would have to take and return the state.
        raise ValueError(
            "Exporting a recurrent policy is not supported yet: the "
            "SavedModel's signatures take one observation, not a state. "
            f"Received: model={model.name!r} (recurrent)"
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

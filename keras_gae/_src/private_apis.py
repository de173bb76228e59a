"""The private TensorFlow and Keras APIs keras_gae cannot do without.

Each is used through this module only, with a comment saying why no public
API does the job. Besides these calls, two classes override private Keras
hooks (a method must carry the name Keras calls), listed in
`OVERRIDDEN_HOOKS`. tests/test_private_apis.py checks every name here
against the installed TensorFlow and Keras and fails naming the attribute
when a release moves or changes one.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


def strategy_supports_no_merge_call() -> bool:
    """Whether the current strategy updates variables without `merge_call`.

    True without a strategy; under a Mirrored or MultiWorkerMirrored
    strategy only inside an XLA-compiled function over GPUs alone (else the
    update needs the cross-replica context). The answer depends on the XLA
    context of the graph being built, which no public API reports; Keras'
    LossScaleOptimizer branches on the same private function.
    """
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def flatten_layers(layer: keras.layers.Layer) -> list:
    """`layer` and every layer nested in it, recursively, each once.

    Keras 3 exposes the direct sublayers of a `Model` (`layers`) but no
    recursive walk that also enters custom layers' sublayers; its own
    `_flatten_layers` is that walk.
    """
    return list(layer._flatten_layers(include_self=True, recursive=True))


def adam_slots(optimizer: keras.optimizers.Adam, variable: Any) -> tuple:
    """`(m, v)`: the first and second moment variables Adam keeps for
    `variable`.

    Keras 3 optimizers list their variables (`optimizer.variables`) but
    give no public lookup of one variable's slots.
    """
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


# Private hooks overridden by keras_gae classes: `(class, attribute,
# parameters of the hook)`. `ActorCriticModel` (models/fit_hooks.py)
# replaces the symbolic build Keras runs under a distribution strategy,
# which reduces the first batch with MEAN and so fails on the bool tensors
# of a rollout batch (and reads `keras.Model._distribute_strategy` as
# Keras' own hook does); `FusedAdam` (keras_gae/optimizers.py) computes the
# update's scalars once per step instead of once per variable. Keras offers
# no public hook for either.
OVERRIDDEN_HOOKS = (
    (keras.Model, "_maybe_symbolic_build", ("self", "iterator", "data_batch")),
    (keras.Model, "_symbolic_build", ("self", "iterator", "data_batch")),
    (
        keras.optimizers.Adam,
        "_backend_update_step",
        ("self", "grads", "trainable_variables", "learning_rate"),
    ),
)

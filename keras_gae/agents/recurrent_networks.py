"""Default recurrent actor-critic networks sized from the environment's specs.

`build_recurrent_network(observation_spec, action_spec, cell="lstm")` is
the recurrent counterpart of `keras_gae.agents.build_networks`, what
`PPO(env, policy="lstm")` (or "gru") builds: the observation encoder of
the MLP policies (`ObservationEncoder`: every space type, images through
a Nature CNN, running normalization), one Keras `LSTMCell` or `GRUCell`
shared by actor and critic, and on its output the MLPs of `hidden_sizes`
ending in the policy head (`policy_head_for(action_spec)`) and in the
value, as `keras_gae.models.recurrent.RecurrentActorCritic` runs them.
"""

from __future__ import annotations

from typing import Any
from typing import Sequence

import keras
import numpy as np

from keras_gae.agents.default_networks import ObservationEncoder
from keras_gae.agents.space_types import policy_head_for
from keras_gae.models.recurrent import RecurrentActorCritic
from keras_gae.ops import _checks

# The cells a one-word recurrent policy names.
CELLS = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}


def _mlp(
    hidden_sizes: Sequence[int],
    output: keras.layers.Layer,
    activation: str,
    name: str,
) -> keras.Sequential:
    """Dense layers (orthogonal sqrt(2), as `MLPNetwork`) -> `output`."""
    hidden = [
        keras.layers.Dense(
            int(size),
            activation=activation,
            kernel_initializer=keras.initializers.Orthogonal(np.sqrt(2.0)),
        )
        for size in hidden_sizes
    ]
    return keras.Sequential(hidden + [output], name=name)


def build_recurrent_network(
    observation_spec: Any,
    action_spec: Any,
    *,
    cell: str = "lstm",
    units: int = 64,
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_observations: bool = False,
    action_bound: str = "clip",
    initial_log_std: float = 0.0,
) -> RecurrentActorCritic:
    """A `RecurrentActorCritic` for these specs (module docstring).

    Args:
      observation_spec, action_spec: the environment's tf-agents specs.
      cell: "lstm" or "gru" (`CELLS`).
      units: the cell's size U >= 1.
      hidden_sizes, activation, normalize_observations, action_bound,
        initial_log_std: as `build_networks`; the MLPs sit on the cell.

    Raises:
      ValueError: an unknown cell, `units` < 1.
    """
    cell = _checks.check_option(cell, "cell", tuple(CELLS))
    units = _checks.check_positive_int(units, "units")
    encoder = ObservationEncoder(
        observation_spec, normalize=normalize_observations, name="encoder"
    )
    head = policy_head_for(
        action_spec, action_bound=action_bound, initial_log_std=initial_log_std
    )
    value = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Orthogonal(1.0)
    )
    return RecurrentActorCritic(
        encoder=encoder,
        cell=CELLS[cell](units, name=cell),
        actor=_mlp(hidden_sizes, head, activation, "actor"),
        critic=_mlp(hidden_sizes, value, activation, "critic"),
        name=f"recurrent_{cell}",
    )

"""An agent's learning rate: constant, or decayed linearly to 0.

`learning_rate(settings, rows_per_iteration)` is what the agents hand
their optimizer (`keras_gae.optimizers.FusedAdam`), from the settings
`learning_rate` and `learning_rate_schedule` (`keras_gae.presets`):

* "constant": `learning_rate`;
* "linear" (RL Zoo's `lin_<rate>`, the PPO paper's Atari schedule):
  `learning_rate * (1 - k / K)` at gradient step k, where K is the
  gradient steps of the iterations that collect `total_env_steps`,
  `ceil(total_env_steps / rows_per_iteration) * epochs * num_minibatches`,
  and 0 after K. stable-baselines3 decays over the budget of one `learn`
  call; an agent decays over its `total_env_steps` setting, which is what
  `learn()` trains for by default, and a resumed agent continues the
  decay from its optimizer's step count.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Mapping
from typing import Union

import keras


def learning_rate(
    settings: Mapping[str, Any], rows_per_iteration: int
) -> Union[float, keras.optimizers.schedules.LearningRateSchedule]:
    """The optimizer's learning rate or schedule (module docstring).

    Args:
      settings: an agent's checked settings (`keras_gae.presets`).
      rows_per_iteration: the rows one iteration collects, B * T over
        all environments (and rollout workers).
    """
    rate = float(settings["learning_rate"])
    if settings["learning_rate_schedule"] == "constant":
        return rate
    iterations = math.ceil(settings["total_env_steps"] / rows_per_iteration)
    gradient_steps = settings["epochs"] * settings["num_minibatches"]
    return keras.optimizers.schedules.PolynomialDecay(
        rate,
        decay_steps=iterations * gradient_steps,
        end_learning_rate=0.0,
        power=1.0,
    )

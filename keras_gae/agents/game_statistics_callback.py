"""Whole-game Atari scores in the training loop's logs.

The loop's own `episode_return_mean` counts an episode at every episode
end and sums the rewards the model learns from, so with
`keras_gae.agents.make_atari_env`'s episodic life and clipped rewards it
is the clipped return of one life. `GameStatisticsCallback` adds the
games' scores to every iteration's logs, through the loop's
`iteration_logs` hook (`keras_gae.agents.loop_logs`).
"""

from __future__ import annotations

from typing import Any
from typing import Dict

import keras

from keras_gae.agents.atari_environments import game_statistics


class GameStatisticsCallback(keras.callbacks.Callback):
    """Contributes `game_statistics(env, window)` to each iteration's logs.

    A callback of `agent.learn` / `keras_gae.agents.train`: after every
    iteration the logs get "game_return_mean" (the unclipped score of
    whole games, all lives, over about the last `window` games; NaN before
    the first game ends), "game_length_mean" (frames) and "games" (ended
    so far), so the returned `History`, the progress line's logs, every
    callback's `on_epoch_end` (e.g. `EarlyStopping(monitor=
    "game_return_mean", mode="max")`) and `EnvStepTensorBoard` (under
    `train/`) see them. Under `model.fit`, which has no such hook, it does
    nothing.

    Args:
      env: what `game_statistics` reads, such as the agent's `env`.
      window: about how many of the last games the means cover, <= 100.

    Example:

    ```python
    agent = keras_gae.agents.PPO(keras_gae.agents.make_atari_env(
        "ALE/Breakout-v5"))
    scores = keras_gae.agents.GameStatisticsCallback(agent.env)
    history = agent.learn(10_240, callbacks=[scores])
    history.history["game_return_mean"]
    ```
    """

    def __init__(self, env: Any, window: int = 100):
        super().__init__()
        # Fails now, not after the first iteration, on an env without
        # game statistics or a bad window.
        game_statistics(env, window)
        self.env = env
        self.window = window

    def iteration_logs(self, iteration: int, logs: dict) -> Dict[str, float]:
        return game_statistics(self.env, self.window)

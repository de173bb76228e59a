"""Greedy (or sampled) evaluation episodes of a keras_gae model.

`evaluate_policy(model, env)` plays `num_episodes` whole episodes on fresh
copies of a gymnasium environment, one action call per step for all
unfinished copies, and returns their undiscounted returns in the
environment's units; in an environment that records whole episodes
under its wrappers (`keras_gae.agents.whole_episodes`: an Atari game of
`make_atari_env`), the whole episode as recorded there (every life,
unclipped score, length in frames). `EvaluationCallback` runs it every
`interval` iterations of the training loop and contributes
"eval_return_mean" and "eval_return_std" to the iteration's logs, which
the loop's History, progress line and TensorBoard (`eval/`) then show.
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import Optional

import gymnasium
import keras
import numpy as np
import tensorflow as tf

from keras_gae.agents import environment_checks
from keras_gae.agents import gymnasium_api
from keras_gae.agents import space_types
from keras_gae.agents import whole_episodes
from keras_gae.agents.environment_sources import make_gymnasium_env
from keras_gae.ops import _checks


def evaluate_policy(
    model: Any,
    env: Any,
    *,
    num_episodes: int = 10,
    seed: Optional[int] = 0,
    deterministic: bool = True,
    max_steps: int = 100_000,
) -> Dict[str, Any]:
    """Plays `num_episodes` episodes; their returns and lengths.

    Args:
      model: a keras_gae `ActorCriticModel` taking the env's observations.
      env: a gymnasium id or a factory (copies are made), or one
        `gymnasium.Env` (episodes then run one after another on it).
      num_episodes: >= 1.
      seed: episode i's first reset gets `seed + i`; None: unseeded.
      deterministic: greedy actions (the head's mode) or samples.
      max_steps: a guard against episodes that never end.

    Returns:
      {"return_mean", "return_std", "returns" (list), "lengths" (list)}.
    """
    num_episodes = _checks.check_positive_int(num_episodes, "num_episodes")
    deterministic = _checks.check_bool(deterministic, "deterministic")
    if isinstance(env, gymnasium.Env):
        envs = [env] * num_episodes
    else:
        envs = [make_gymnasium_env(env) for _ in range(num_episodes)]
    observation_spec = space_types.space_to_spec(
        envs[0].observation_space, "observation"
    )
    action_space = envs[0].action_space
    convert = environment_checks.ObservationConverter(
        observation_spec, gymnasium_api.env_name(envs[0])
    )

    # A recurrent model's state goes from step to step (None otherwise).
    @tf.function(reduce_retracing=True)
    def act(observation, state):
        outputs = model.act(
            observation, deterministic=deterministic, state=state
        )
        return model.policy_head.postprocess_action(
            outputs.action
        ), outputs.state

    returns, lengths = [], []
    for index, copy in enumerate(envs):
        observation, _ = copy.reset(
            seed=None if seed is None else int(seed) + index
        )
        # A monitor under the wrappers (an Atari game's): one whole
        # episode, its lives played through, as the monitor records it.
        whole = whole_episodes.records_whole_episodes(copy)
        recorded = whole and whole_episodes.monitors(copy)[0][2]
        total, steps, done = 0.0, 0, False
        state = model.initial_state(1)
        while not done and steps < max_steps:
            batch = tf.nest.map_structure(
                lambda x: x[None], convert(observation, "reset")
            )
            action, state = act(batch, state)
            action = space_types.env_action(action_space, np.asarray(action)[0])
            observation, reward, terminated, truncated, _ = copy.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
            if whole and done:
                game_returns, game_lengths, count = whole_episodes.monitors(
                    copy
                )[0]
                done = count > recorded
                if done:
                    total, steps = game_returns[-1], game_lengths[-1]
                else:
                    observation, _ = copy.reset()
                    state = model.initial_state(1)
        returns.append(float(total))
        lengths.append(int(steps))
    if not isinstance(env, gymnasium.Env):
        for copy in envs:
            copy.close()
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "returns": returns,
        "lengths": lengths,
    }


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates every `interval` iterations of the collect-and-fit loop.

    A callback of `keras_gae.agents.train` / `OnPolicyTrainer.run`: after
    iterations `interval`, `2 * interval`, ... (counted from the start of
    the run, resumed ones included) it plays `num_episodes` episodes with
    `evaluate_policy` and contributes to that iteration's logs, through
    the loop's `iteration_logs` hook (`keras_gae.agents.loop_logs`):

    * "eval_return_mean": the mean undiscounted return of the episodes;
    * "eval_return_std": their standard deviation.

    The loop adds them before anything reads the logs, whatever the order
    of the callbacks: the returned `History` has them (one value per
    evaluation, as Keras' `val_*` with `validation_freq`), the progress
    line shows them (`verbose` 1 and 2), `EnvStepTensorBoard` writes them
    as `eval/return_mean` and `eval/return_std`, and every callback's
    `on_epoch_end` (e.g. `EarlyStopping(monitor="eval_return_mean")` on
    an `interval` of 1) sees them. `results` keeps `(iteration index,
    evaluate_policy's result)` of every evaluation, with the episodes'
    returns and lengths. Under `model.fit`, which has no such hook, the
    callback does nothing.

    Args:
      env: what `evaluate_policy` takes (an id or a factory).
      interval: iterations between evaluations, >= 1.
      num_episodes, seed, deterministic: `evaluate_policy`'s.

    Example:

    ```python
    evaluation = keras_gae.agents.EvaluationCallback(
        "CartPole-v1", interval=5, num_episodes=10
    )
    history = keras_gae.agents.train(
        model, env, rollout_length=128, total_env_steps=100_000,
        callbacks=[evaluation], log_dir="runs/cartpole",
    )
    history.history["eval_return_mean"]  # one value per evaluation
    ```
    """

    def __init__(
        self,
        env: Any,
        *,
        interval: int = 10,
        num_episodes: int = 10,
        seed: Optional[int] = 0,
        deterministic: bool = True,
    ):
        super().__init__()
        self.env = env
        self.interval = _checks.check_positive_int(interval, "interval")
        self.num_episodes = num_episodes
        self.seed = seed
        self.deterministic = deterministic
        self.results = []

    def iteration_logs(
        self, iteration: int, logs: Dict[str, float]
    ) -> Optional[Dict[str, float]]:
        """The loop's hook: this iteration's evaluation logs, or None.

        Args:
          iteration: the 0-based index of the iteration just trained.
          logs: its logs so far (unused).
        """
        if (iteration + 1) % self.interval:
            return None
        result = evaluate_policy(
            self.model,
            self.env,
            num_episodes=self.num_episodes,
            seed=self.seed,
            deterministic=self.deterministic,
        )
        self.results.append((iteration, result))
        return {
            "eval_return_mean": result["return_mean"],
            "eval_return_std": result["return_std"],
        }

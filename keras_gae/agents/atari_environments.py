"""The standard Atari set-up in one call, from gymnasium's own wrappers.

`make_atari_env("ALE/Breakout-v5", num_envs=8, seed=0)` returns a
gymnasium vector env of `num_envs` games, each wrapped, innermost first:

1. the ALE game made with `frameskip=1` (`AtariPreprocessing` skips);
2. `gymnasium.wrappers.RecordEpisodeStatistics`: the whole game's
   undiscounted return, before clipping, and its length in frames
   (`info["episode"]` when the game ends; `game_statistics` reads them),
   where stable-baselines3 puts its `Monitor`;
3. `gymnasium.wrappers.AtariPreprocessing`: up to 30 random no-ops at
   reset, the action repeated for 4 frames with the max over the last two
   (flicker), 84x84 grayscale frames;
4. `EpisodicLife`: a lost life ends the episode (terminated), but the
   game goes on: the next reset is one no-op step, not a new game;
5. `FireReset` (games whose second action is FIRE, such as Breakout):
   FIRE after every reset, which launches the ball;
6. `gymnasium.wrappers.TransformReward(np.sign)`: rewards clipped to
   {-1, 0, 1} (Atari scores are integers);
7. `gymnasium.wrappers.FrameStackObservation(4)`: the last 4 frames,
   `(4, 84, 84)` uint8, channels first (`keras_gae.layers.NatureCNN`
   detects the layout).

This is stable-baselines3's `AtariWrapper` (Mnih et al. 2015; the PPO
paper's Atari set-up, Schulman et al. 2017, arXiv:1707.06347) built from
gymnasium's wrappers; gymnasium has none for 4 and 5 (its
`AtariPreprocessing(terminal_on_life_loss=True)` starts a new game after
each lost life). Observations stay uint8: the network scales them.

Sticky actions. `ALE/*-v5` games repeat the previous action with
probability 0.25 (`repeat_action_probability`, Machado et al. 2018); it is
kept, as stable-baselines3's `make_atari_env` keeps it. Pass
`env_kwargs={"repeat_action_probability": 0.0}` for the deterministic
games of the `NoFrameskip-v4` era.

Episode statistics. The monitor under the wrappers records whole games,
so keras_gae's training loop counts games, not lives, and their unclipped
scores (`episode_return_mean`, `episode_length_mean` in frames,
`episodes`; `keras_gae.agents.whole_episodes`), as stable-baselines3's
`Monitor` placed before the wrappers does. `game_statistics` reads the
same monitors from an env directly.

`make_atari_env` needs the optional extra `keras_gae[atari]` (ale-py and
OpenCV).
"""

from __future__ import annotations

import copy
import math
from typing import Any
from typing import Dict
from typing import Mapping
from typing import Optional

import gymnasium
import numpy as np

from keras_gae.agents import whole_episodes
from keras_gae.ops import _checks

_NOOP, _FIRE = 0, 1
# The finished games each environment's RecordEpisodeStatistics keeps.
_GAME_HISTORY = 100


def _import_ale() -> None:
    try:
        import ale_py
    except ImportError as error:
        raise ImportError(
            "Atari games need ale-py and OpenCV: pip install "
            '"keras_gae[atari]". Received: ' + str(error)
        ) from error
    gymnasium.register_envs(ale_py)


class EpisodicLife(gymnasium.Wrapper):
    """A lost life ends the episode; the game goes on.

    `step` returns `terminated=True` when the game's life counter drops
    (or the game ends). `reset` after a lost life takes one no-op step
    instead of resetting, so the next episode starts where the last life
    ended; only after the game is over (or truncated) does it reset the
    game. Wrap an ALE game (its `unwrapped.ale`).
    """

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        self._lives = 0
        self._game_over = True

    def step(self, action: Any) -> tuple:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._game_over = bool(terminated or truncated)
        lives = self.env.unwrapped.ale.lives()
        lost = 0 < lives < self._lives
        self._lives = lives
        return observation, reward, terminated or lost, truncated, info

    def reset(self, **kwargs: Any) -> tuple:
        if self._game_over:
            observation, info = self.env.reset(**kwargs)
        else:
            observation, _, terminated, truncated, info = self.env.step(_NOOP)
            if terminated or truncated:
                observation, info = self.env.reset(**kwargs)
        self._game_over = False
        self._lives = self.env.unwrapped.ale.lives()
        return observation, info


class FireReset(gymnasium.Wrapper):
    """Presses FIRE after each reset (games that wait for it to start).

    Wrap a game whose action 1 is FIRE. A FIRE that ends the episode
    (rare) is followed by one more reset, without FIRE, as
    stable-baselines3's `FireResetEnv` does.
    """

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 2 or meanings[_FIRE] != "FIRE":
            raise ValueError(
                "FireReset needs a game whose action 1 is FIRE. "
                f"Received: env with actions {meanings}"
            )

    def reset(self, **kwargs: Any) -> tuple:
        self.env.reset(**kwargs)
        observation, _, terminated, truncated, info = self.env.step(_FIRE)
        if terminated or truncated:
            observation, info = self.env.reset(**kwargs)
        return observation, info


class AtariGame:
    """A picklable factory of one preprocessed Atari game (module doc).

    What `make_atari_env` vectorizes; pass it as the `env` of
    `keras_gae.agents.PPO` (or `make_tf_environment`) when the copies
    must be made elsewhere (rollout workers) or in subprocesses. Its
    `spec` is the game's, so the agent picks the game's preset.

    Args:
      env_id: an ALE id, such as "ALE/Breakout-v5".
      noop_max: most random no-ops at reset (0: none).
      frame_skip: frames per action (the max over the last two is seen).
      screen_size: side of the square grayscale frames.
      frame_stack: frames per observation.
      terminal_on_life_loss: end the episode at each lost life
        (`EpisodicLife`).
      clip_rewards: rewards as their sign.
      env_kwargs: keyword arguments of `gymnasium.make` (such as
        `repeat_action_probability`); `frameskip` is 1.

    Raises:
      ValueError: an id that is not an ALE game, bad settings.
      ImportError: without ale-py or OpenCV.
    """

    def __init__(
        self,
        env_id: str,
        *,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: int = 84,
        frame_stack: int = 4,
        terminal_on_life_loss: bool = True,
        clip_rewards: bool = True,
        env_kwargs: Optional[Mapping[str, Any]] = None,
    ):
        _import_ale()
        if not isinstance(env_id, str):
            raise TypeError(
                "`env_id` must be an ALE environment id (str). "
                f"Received: env_id={env_id!r}"
            )
        try:
            spec = gymnasium.spec(env_id)
        except gymnasium.error.Error as error:
            raise ValueError(
                f"`env_id` is no registered environment ({error}). "
                f"Received: env_id={env_id!r}"
            ) from None
        if not str(spec.entry_point).startswith("ale_py"):
            raise ValueError(
                "`env_id` must be an Atari game of ale-py, such as "
                f"'ALE/Breakout-v5'. Received: env_id={env_id!r}"
            )
        self.env_id = env_id
        self.noop_max = _checks.check_int(noop_max, "noop_max", minimum=0)
        self.frame_skip = _checks.check_positive_int(frame_skip, "frame_skip")
        self.screen_size = _checks.check_positive_int(
            screen_size, "screen_size"
        )
        self.frame_stack = _checks.check_positive_int(
            frame_stack, "frame_stack"
        )
        self.terminal_on_life_loss = _checks.check_bool(
            terminal_on_life_loss, "terminal_on_life_loss"
        )
        self.clip_rewards = _checks.check_bool(clip_rewards, "clip_rewards")
        self.env_kwargs = dict(env_kwargs or {})
        if self.env_kwargs.get("frameskip", 1) != 1:
            raise ValueError(
                "The game is made with frameskip=1: AtariPreprocessing "
                "skips `frame_skip` frames. Received: "
                f"env_kwargs={self.env_kwargs!r}"
            )
        self.env_kwargs["frameskip"] = 1
        self.spec = copy.deepcopy(spec)
        self.spec.kwargs.update(self.env_kwargs)
        self.__name__ = f"AtariGame({env_id!r})"

    def __call__(self, **env_kwargs: Any) -> gymnasium.Env:
        _import_ale()
        env = gymnasium.make(self.env_id, **{**self.env_kwargs, **env_kwargs})
        env = gymnasium.wrappers.RecordEpisodeStatistics(
            env, buffer_length=_GAME_HISTORY
        )
        env = gymnasium.wrappers.AtariPreprocessing(
            env,
            noop_max=self.noop_max,
            frame_skip=self.frame_skip,
            screen_size=self.screen_size,
        )
        if self.terminal_on_life_loss:
            env = EpisodicLife(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) > _FIRE and meanings[_FIRE] == "FIRE":
            env = FireReset(env)
        if self.clip_rewards:
            env = gymnasium.wrappers.TransformReward(env, np.sign)
        return gymnasium.wrappers.FrameStackObservation(env, self.frame_stack)


def make_atari_env(
    env_id: str,
    num_envs: int = 8,
    seed: Optional[int] = 0,
    *,
    vectorization_mode: str = "sync",
    **options: Any,
) -> gymnasium.vector.VectorEnv:
    """`num_envs` preprocessed Atari games as one gymnasium vector env.

    See the module docstring for the wrappers. The vector env goes
    wherever keras_gae takes a gymnasium vector env: `agents.PPO(env)`
    (whose preset for `ALE/*-v5` ids it picks through its `spec`),
    `make_tf_environment(env)`.

    Args:
      env_id: an ALE id, such as "ALE/Breakout-v5".
      num_envs: number of games B.
      seed: seed of the first reset (game i gets `seed + i`, gymnasium's
        convention) and of the action space; None: unseeded. An agent
        given the env seeds it again with its own `seed` at its first
        reset, the same way.
      vectorization_mode: "sync" (one process) or "async" (a subprocess
        per game).
      **options: `AtariGame`'s settings (`noop_max`, `frame_skip`,
        `screen_size`, `frame_stack`, `terminal_on_life_loss`,
        `clip_rewards`, `env_kwargs`).

    Returns:
      A `SyncVectorEnv` or `AsyncVectorEnv` with next-step auto-reset,
      observations `[B, frame_stack, screen_size, screen_size]` uint8.

    Raises:
      ValueError: bad `num_envs`, `vectorization_mode`, or game settings.
      ImportError: without ale-py or OpenCV.
    """
    num_envs = _checks.check_positive_int(num_envs, "num_envs")
    vectorization_mode = _checks.check_option(
        vectorization_mode, "vectorization_mode", ("sync", "async")
    )
    if seed is not None:
        seed = _checks.check_int(seed, "seed")
    game = AtariGame(env_id, **options)
    vector_class = (
        gymnasium.vector.SyncVectorEnv
        if vectorization_mode == "sync"
        else gymnasium.vector.AsyncVectorEnv
    )
    env = vector_class([game] * num_envs)
    env.spec = game.spec
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def game_statistics(env: Any, window: int = 100) -> Dict[str, float]:
    """The whole games' scores, as stable-baselines3's `Monitor` has them.

    Reads the `RecordEpisodeStatistics` under the Atari wrappers (module
    docstring) of each of the B environments in `env`: the undiscounted,
    unclipped return of each finished game (all its lives) and its length
    in frames. The means are over the last `ceil(window / B)` games of
    each environment (they run in lockstep, so about the last `window`
    games, as SB3's buffer of the last 100 episodes).

    Args:
      env: `make_atari_env`'s vector env, one `AtariGame()` env, or the
        `TFPyEnvironment` that `make_tf_environment` (or an agent's
        `env`) made from either in this process.
      window: about how many of the last games the means cover, <= 100.

    Returns:
      "game_return_mean" and "game_length_mean" (NaN before the first
      game ends) and "games", how many ended in all.

    Raises:
      TypeError: an env without those statistics.
    """
    window = _checks.check_positive_int(window, "window")
    if window > _GAME_HISTORY:
        raise ValueError(
            f"`window` must be at most {_GAME_HISTORY}, the games each "
            f"environment keeps. Received: window={window}"
        )
    found = []
    for environment in whole_episodes.gymnasium_environments(env):
        try:
            found.extend(whole_episodes.monitors(environment))
        except AttributeError:
            raise TypeError(
                "`env` keeps no game statistics: make it with "
                "make_atari_env or AtariGame. Received: "
                f"env={env!r}"
            ) from None
    returns, lengths, games = [], [], 0
    per_environment = -(-window // len(found))
    for game_returns, game_lengths, count in found:
        returns.extend(list(game_returns)[-per_environment:])
        lengths.extend(list(game_lengths)[-per_environment:])
        games += int(count)
    return {
        "game_return_mean": float(np.mean(returns)) if returns else math.nan,
        "game_length_mean": float(np.mean(lengths)) if lengths else math.nan,
        "games": float(games),
    }

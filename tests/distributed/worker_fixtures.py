"""Picklable models and environments for the rollout-worker tests.

Ray workers import them by module path (the repository root is their
working directory), so they live in a module of their own, not in a test.
"""

from __future__ import annotations

import os
import time
from typing import Any
from typing import Optional

import gymnasium


class _HangWhenFlagged(gymnasium.Wrapper):
    """Sleeps in `step` while the file `hang_file` exists (a hung env)."""

    def __init__(self, env: gymnasium.Env, hang_file: Optional[str]):
        super().__init__(env)
        self._hang_file = hang_file

    def step(self, action: Any):
        while self._hang_file is not None and os.path.exists(self._hang_file):
            time.sleep(0.05)
        return self.env.step(action)


def cartpole(hang_file: Optional[str] = None) -> gymnasium.Env:
    """CartPole-v1 that hangs while `hang_file` exists."""
    return _HangWhenFlagged(gymnasium.make("CartPole-v1"), hang_file)


def small_ppo(
    observation_spec: Any,
    action_spec: Any,
    num_envs: int,
    *,
    normalize: bool = False,
) -> Any:
    """A small PPOModel (with both normalizations if `normalize`)."""
    from keras_gae import agents
    from keras_gae import models

    actor, critic = agents.build_networks(
        observation_spec,
        action_spec,
        hidden_sizes=(16,),
        normalize_observations=normalize,
    )
    model = models.PPOModel(actor, critic)
    if normalize:
        agents.attach_reward_normalization(
            model,
            agents.RewardNormalization(num_envs, name="reward_normalization"),
        )
    return model

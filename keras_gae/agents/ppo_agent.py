"""`PPO`: from a gymnasium env id to a trained, exported policy.

    agent = keras_gae.agents.PPO("CartPole-v1")
    agent.learn()             # the preset's budget; stops at 475
    agent.export("policy")

`PPO` is an `OnPolicyAgent` (`keras_gae.agents.on_policy_agent`: the
environment, networks, loop, save and load) training a `PPOModel`, the
clipped surrogate of Schulman et al. 2017 (arXiv:1707.06347).
"""

from __future__ import annotations

from keras_gae.agents import agent_arguments
from keras_gae.agents.on_policy_agent import OnPolicyAgent
from keras_gae.models import PPOModel


class PPO(OnPolicyAgent):
    """PPO on a gymnasium environment, with defaults from its spaces.

    Takes `OnPolicyAgent`'s arguments; its settings add the clip range
    (`clip_ratio`, `clip_ratio_low`, `clip_ratio_high`; SB3's
    `clip_range`). Defaults: `keras_gae.presets.config_for(env_id)`.

    Example:

    ```python
    agent = keras_gae.agents.PPO("CartPole-v1", verbose=0)
    agent.learn(total_env_steps=100_000)
    agent.evaluate(num_episodes=5)["return_mean"]
    ```
    """

    algorithm = "ppo"

    @classmethod
    def make_model(
        cls, config, actor=None, critic=None, *, shared=None
    ) -> PPOModel:
        """The `PPOModel` of the networks with the settings `config`."""
        return PPOModel(
            actor,
            critic,
            shared=shared,
            clip_ratio=config["clip_ratio"],
            clip_ratio_low=config["clip_ratio_low"],
            clip_ratio_high=config["clip_ratio_high"],
            **agent_arguments.model_arguments(config),
        )

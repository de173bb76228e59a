"""`A2C`: the advantage actor-critic on a gymnasium environment.

`A2C` is an `OnPolicyAgent` (`keras_gae.agents.on_policy_agent`) training
an `A2CModel` (Mnih et al. 2016, arXiv:1602.01783: one policy-gradient
step per rollout, advantages from GAE). Its preset is the environment's
with `keras_gae.presets.A2C_OVERRIDES`: short rollouts, one epoch of one
minibatch.
"""

from __future__ import annotations

from keras_gae.agents import agent_arguments
from keras_gae.agents.on_policy_agent import OnPolicyAgent
from keras_gae.models import A2CModel


class A2C(OnPolicyAgent):
    """A2C on a gymnasium environment, with defaults from its spaces.

    Takes `OnPolicyAgent`'s arguments (no clip settings). Defaults:
    `keras_gae.presets.config_for(env_id, "a2c")`.

    Example:

    ```python
    agent = keras_gae.agents.A2C("CartPole-v1", verbose=0)
    agent.learn(total_env_steps=50_000)
    ```
    """

    algorithm = "a2c"

    @classmethod
    def make_model(
        cls, config, actor=None, critic=None, *, shared=None
    ) -> A2CModel:
        """The `A2CModel` of the networks with the settings `config`."""
        return A2CModel(
            actor,
            critic,
            shared=shared,
            **agent_arguments.model_arguments(config),
        )

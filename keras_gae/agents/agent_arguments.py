"""What an agent's arguments mean: policy name, environment, settings.

`OnPolicyAgent(env)` also takes stable-baselines3's
`PPO("MlpPolicy", env)` (`split_policy_and_env`, `POLICIES`), and
`environment_source` decides what `make_tf_environment` builds from: an
id, a factory or a vector env as given; a `gymnasium.Env` instance as a
recipe of copies (its spec), or as the one environment (the module
docstring of `keras_gae.agents.on_policy_agent`).
"""

from __future__ import annotations

import warnings
from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

import gymnasium

# The policy names an agent takes: keras_gae's, and stable-baselines3's
# (the first argument of its `PPO("MlpPolicy", env)`, sb3-contrib's
# `RecurrentPPO("MlpLstmPolicy", env)`). "lstm" and "gru" are recurrent:
# the setting "recurrent_cell" (`recurrent_policy`).
POLICIES = {
    "mlp": "mlp",
    "MlpPolicy": "mlp",
    "MultiInputPolicy": "mlp",
    # The encoder follows the observation space: a Nature CNN for images.
    "CnnPolicy": "mlp",
    "lstm": "lstm",
    "gru": "gru",
    "MlpLstmPolicy": "lstm",
}


def env_id(env: Any) -> Optional[str]:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def split_policy_and_env(env: Any, positional: Sequence[Any]) -> tuple:
    """(policy, env) from `Agent(env)` or SB3's `Agent("MlpPolicy", env)`."""
    if not positional:
        return None, env
    if len(positional) == 1 and isinstance(env, str) and env in POLICIES:
        return env, positional[0]
    raise TypeError(
        "An agent takes one positional argument, the environment (or, as "
        "in stable-baselines3, a policy name and the environment: "
        f"PPO('MlpPolicy', env)). Received: {(env, *positional)!r}"
    )


def environment_source(
    env: Any, config: Dict[str, Any], explicit: set
) -> tuple:
    """What `make_tf_environment` builds from, and its vectorization.

    Updates `config` where the environment decides (a vector env's
    size; one instance's rollout, module docstring).
    """
    if isinstance(env, gymnasium.vector.VectorEnv):
        config["num_envs"] = int(env.num_envs)
        return env, None
    if not isinstance(env, gymnasium.Env):
        return env, config["vectorization_mode"]
    spec = getattr(env, "spec", None)
    if config["num_envs"] > 1 and spec is not None:
        return spec, config["vectorization_mode"]
    if config["num_envs"] > 1:
        warnings.warn(
            f"{type(env).__name__} has no registered spec to make "
            f"copies from, so it is the one environment: its rollouts "
            f"are {config['num_envs'] * config['rollout_length']} steps "
            "long (the preset's num_envs * rollout_length). Pass an id "
            "or a factory for several copies, or num_envs=1 to silence "
            "this.",
            stacklevel=4,
        )
    if "rollout_length" not in explicit:
        config["rollout_length"] *= config["num_envs"]
    if "minibatch_mode" not in explicit:
        config["minibatch_mode"] = "steps"
    config["num_envs"] = 1
    return env, None


def policy_name(policy: Optional[str], sb3_policy: Optional[str]) -> str:
    """keras_gae's name of the policy given by `policy` or positionally.

    Raises:
      TypeError: both given.
      ValueError: not a name of `POLICIES`.
    """
    if sb3_policy is not None and policy is not None:
        raise TypeError(
            "The policy was given twice (first argument and `policy`). "
            f"Received: policy={policy!r}"
        )
    policy = policy or sb3_policy or "mlp"
    if policy not in POLICIES:
        raise ValueError(
            f"`policy` must be one of {sorted(POLICIES)}. "
            f"Received: policy={policy!r}"
        )
    return POLICIES[policy]


def recurrent_policy(policy: str, config: Dict[str, Any], explicit: set) -> str:
    """Puts a recurrent policy name into the settings; the agent's policy.

    "lstm" and "gru" set "recurrent_cell" (saved with the settings, so a
    loaded agent and the rollout workers build the same network) and,
    unless given, minibatches of whole rows. A saved recurrent agent's
    settings name its cell, so its policy is that cell.

    Raises:
      ValueError: a recurrent policy with another "recurrent_cell".
    """
    if policy == "mlp":
        return config["recurrent_cell"] or "mlp"
    if "recurrent_cell" in explicit and config["recurrent_cell"] != policy:
        raise ValueError(
            f'policy="{policy}" names the recurrent cell; drop the setting '
            "or make it agree. "
            f"Received: recurrent_cell={config['recurrent_cell']!r}"
        )
    config["recurrent_cell"] = policy
    if "minibatch_mode" not in explicit:
        config["minibatch_mode"] = "rows"
    return policy


def sb3_alias(value: Any, alias: Any, name: str, alias_name: str) -> Any:
    """`value`, or `alias`, its stable-baselines3 name, when it is None.

    Raises:
      ValueError: both given.
    """
    if value is not None and alias is not None:
        raise ValueError(
            f"`{alias_name}` is stable-baselines3's name for `{name}`; "
            f"pass one. Received: {name}={value!r}, {alias_name}={alias!r}"
        )
    return alias if value is None else value


def steps_per_execution(config: Dict[str, Any]) -> int:
    """The setting, or for None an iteration's E * K steps in one call."""
    if config["steps_per_execution"] is None:
        return config["epochs"] * config["num_minibatches"]
    return config["steps_per_execution"]


def model_arguments(config: Dict[str, Any]) -> Dict[str, Any]:
    """An agent model's keyword arguments beyond its networks."""
    return dict(
        gamma=config["gamma"],
        lambda_=config["lambda_"],
        value_coef=config["value_coef"],
        entropy_coef=config["entropy_coef"],
        max_grad_norm=config["max_grad_norm"] or None,
        normalize_advantages=config["normalize_advantages"],
        gae_implementation=config["gae_implementation"],
    )

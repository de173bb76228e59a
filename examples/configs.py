"""Per-environment defaults of `examples/train_ppo.py`, in one place.

`config_for(env_id, algorithm)` merges, later entries winning:

1. `DEFAULTS`: every hyperparameter the example takes;
2. `ENV_CONFIGS[env_id]`: what that environment needs (an unknown id keeps
   the defaults);
3. `A2C_OVERRIDES` when `algorithm == "a2c"`: one gradient step over the
   whole rollout per iteration, as A2C takes it, on shorter rollouts.

Flags given on the command line override the merged values.

What these settings reach, and how fast, is measured in README.md
("Results"), with the commands.
"""

from __future__ import annotations

from typing import Any
from typing import Dict

ALGORITHMS = ("ppo", "a2c")

DEFAULTS: Dict[str, Any] = {
    "num_envs": 8,
    "rollout_length": 128,
    "epochs": 10,
    "num_minibatches": 4,
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_ratio": 0.2,
    "clip_ratio_low": None,
    "clip_ratio_high": None,
    "learning_rate": 3e-4,
    "entropy_coef": 0.0,
    "value_coef": 0.5,
    "max_grad_norm": 0.5,
    "hidden_sizes": (64, 64),
    # Multiplies every reward the agent trains on; returns are reported in
    # the environment's own units.
    "reward_scale": 1.0,
    # Continuous actions: GaussianPolicyHead(bound=..., initial_log_std=...),
    # with the box of the action space.
    "action_bound": "clip",
    "initial_log_std": 0.0,
    "total_env_steps": 100_000,
    "target_return": None,
}

ENV_CONFIGS: Dict[str, Dict[str, Any]] = {
    "CartPole-v1": {
        "learning_rate": 2e-3,
        "total_env_steps": 100_000,
        "target_return": 475.0,
    },
    "Acrobot-v1": {
        "learning_rate": 1e-3,
        "total_env_steps": 200_000,
        "target_return": -100.0,
    },
    "Pendulum-v1": {
        "num_envs": 32,
        "rollout_length": 128,
        "num_minibatches": 16,
        "gamma": 0.95,
        "learning_rate": 1e-3,
        "reward_scale": 0.1,
        "total_env_steps": 400_000,
        "target_return": -200.0,
    },
}

A2C_OVERRIDES: Dict[str, Any] = {
    "epochs": 1,
    "num_minibatches": 1,
    "rollout_length": 16,
    "learning_rate": 1e-3,
}


def config_for(env_id: str, algorithm: str = "ppo") -> Dict[str, Any]:
    """The merged defaults for `env_id` and `algorithm` (a new dict).

    Args:
      env_id: a gymnasium environment id.
      algorithm: "ppo" or "a2c".

    Raises:
      ValueError: an unknown algorithm.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"`algorithm` must be one of {ALGORITHMS}. "
            f"Received: algorithm={algorithm!r}"
        )
    config = dict(DEFAULTS)
    config.update(ENV_CONFIGS.get(env_id, {}))
    if algorithm == "a2c":
        config.update(A2C_OVERRIDES)
    return config

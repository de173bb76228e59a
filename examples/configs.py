"""Per-environment defaults of `examples/train_ppo.py`, in one place.

`config_for(env_id, algorithm)` merges, later entries winning:

1. `DEFAULTS`: every hyperparameter the example takes (those it shares
   with `keras_gae.agents.PPO` from `keras_gae.agents.presets.DEFAULTS`);
2. `ENV_CONFIGS[env_id]`: what that environment needs (an unknown id keeps
   the defaults);
3. `A2C_OVERRIDES` when `algorithm == "a2c"`: one gradient step over the
   whole rollout per iteration, as A2C takes it, on shorter rollouts.

Flags given on the command line override the merged values.

`default_root_dir(env_id, algorithm)` is the output directory a run gets
without `--root_dir`, one per environment (and algorithm), so runs of two
environments never share checkpoints; `preset_help(key)` is the part of a
flag's `--help` text that lists the per-environment values.

What these settings reach, and how fast, is measured in README.md
("Results"), with the commands.
"""

from __future__ import annotations

import os
import re
from typing import Any
from typing import Dict

from keras_gae.agents import presets

ALGORITHMS = ("ppo", "a2c")

# The settings this example shares with `keras_gae.agents.PPO` start from
# the same values (`keras_gae.agents.presets.DEFAULTS`); the example's own
# follow.
_SHARED = (
    "num_envs",
    "rollout_length",
    "epochs",
    "num_minibatches",
    # OnPolicyTrainer's minibatch_mode: "rows" (whole environment rows) or
    # "steps" (single steps shuffled across environments and time).
    "minibatch_mode",
    "gamma",
    "lambda_",
    "clip_ratio",
    "learning_rate",
    "entropy_coef",
    "value_coef",
    "max_grad_norm",
    "hidden_sizes",
    # Continuous actions: GaussianPolicyHead(bound=..., initial_log_std=...),
    # with the box of the action space.
    "action_bound",
    "initial_log_std",
    "target_return",
)

DEFAULTS: Dict[str, Any] = {
    **{key: presets.DEFAULTS[key] for key in _SHARED},
    "clip_ratio_low": None,
    "clip_ratio_high": None,
    # Multiplies every reward the agent trains on; returns are reported in
    # the environment's own units.
    "reward_scale": 1.0,
    "total_env_steps": 100_000,
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

# The learning rate: with the orthogonally initialized networks, 1e-3 and
# 7e-4 reached CartPole-v1's 475 on fewer seeds than 2e-3 (measured with
# Keras' Adam, before FusedAdam); README.md ("Results") holds the current
# runs and their commands.
A2C_OVERRIDES: Dict[str, Any] = {
    "epochs": 1,
    "num_minibatches": 1,
    "rollout_length": 16,
    "learning_rate": 2e-3,
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


# Runs without --root_dir go to RUNS_DIR/<env id>[-<algorithm>].
RUNS_DIR = os.path.join("runs", "train_ppo")


def default_root_dir(env_id: str, algorithm: str = "ppo") -> str:
    """`runs/train_ppo/<env_id>`, `-a2c` appended for A2C.

    Characters other than letters, digits, ".", "_" and "-" (the "/" of
    "ALE/Pong-v5", the ":" of "module:Env-v0") become "_".
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", env_id).strip("_") or "env"
    if algorithm != "ppo":
        name = f"{name}-{algorithm}"
    return os.path.join(RUNS_DIR, name)


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def preset_help(key: str) -> str:
    """The per-environment values of `key`, for the flag's help text.

    "" when every environment and algorithm uses the default.

    E.g. "Preset: CartPole-v1 0.002, Acrobot-v1 0.001, Pendulum-v1 0.001,
    other envs 0.0003; --algorithm=a2c 0.002."
    """
    envs = [
        f"{env_id} {_show(config[key])}"
        for env_id, config in ENV_CONFIGS.items()
        if key in config and config[key] != DEFAULTS[key]
    ]
    if not envs and key not in A2C_OVERRIDES:
        return ""
    others = "other envs " if envs else "every env "
    text = "Preset: " + ", ".join(envs + [others + _show(DEFAULTS[key])])
    if key in A2C_OVERRIDES:
        text += f"; --algorithm=a2c {_show(A2C_OVERRIDES[key])}"
    return text + "."

"""Per-environment training settings, like RL Zoo's: the one preset table.

`keras_gae.agents.PPO`/`A2C` and `examples/train_ppo.py` (a thin front of
them) both read their settings here: `config_for(env_id, algorithm)`
merges, later entries winning,

1. `DEFAULTS`: every setting, with its generic value;
2. `ENV_CONFIGS[env_id]`: what that environment needs; an id with no
   entry of its own takes the first entry whose key is a pattern it
   matches (`fnmatch`: "ALE/*-v5" for every Atari game), else keeps the
   defaults;
3. `A2C_OVERRIDES` when `algorithm == "a2c"`: one gradient step over the
   whole rollout per iteration, as A2C takes it, on shorter rollouts.

Settings given by the user (keywords, flags) override the merged values;
`resolve_settings` checks their names, accepting stable-baselines3's
(`SB3_NAMES`: `n_steps` is `rollout_length`, ...) and suggesting the
closest name for a typo; `check_config` their values, before anything is
built or written (both in `keras_gae.setting_checks`, re-exported here).

This module is plain Python: it imports no TensorFlow, so a program can
check its settings before TensorFlow loads (a few seconds).

CartPole-v1's entry was tuned for training time to 475 with
`benchmarks/ppo_profile.py`; the MuJoCo entries use the PPO paper's MuJoCo
settings (Schulman et al. 2017, arXiv:1707.06347, table 3: 2048 steps per
rollout, 10 epochs of minibatches of 64, Adam 3e-4, gamma 0.99, lambda
0.95) as 4 environments of 512 steps with minibatches of single steps
shuffled across the rollout, and observation and reward normalization, as
stable-baselines3 runs them with `VecNormalize`. The Atari entry
("ALE/*-v5", for the frames of `keras_gae.agents.make_atari_env`) is RL
Zoo's Atari PPO (its `atari` hyperparameters: 8 environments x 128 steps,
4 epochs of 4 minibatches of 256 steps, Adam 2.5e-4 decayed linearly to
0, clip 0.1, entropy 0.01, value 0.5, 10M steps; RL Zoo decays the clip
range too). docs/benchmarks.md has what each entry
reaches and the commands.
"""

from __future__ import annotations

import fnmatch
from typing import Any
from typing import Dict
from typing import Optional

# The names and value checks of the settings, re-exported here: a
# program reads the table and checks what it was given in one module.
from keras_gae.setting_checks import BOOLS
from keras_gae.setting_checks import NUMBERS
from keras_gae.setting_checks import OPTIONS
from keras_gae.setting_checks import POSITIVE_INTS
from keras_gae.setting_checks import PPO_ONLY
from keras_gae.setting_checks import SB3_NAMES
from keras_gae.setting_checks import apply_batch_size
from keras_gae.setting_checks import check_config
from keras_gae.setting_checks import resolve_settings

ALGORITHMS = ("ppo", "a2c")

DEFAULTS: Dict[str, Any] = {
    # The rollout: B environments x T steps per iteration.
    "num_envs": 8,
    "rollout_length": 128,
    # E passes over each rollout in K minibatches: "rows" (whole
    # environment rows, GAE in the train step; K divides B) or "steps"
    # (single steps shuffled across the rollout, GAE once per rollout).
    "epochs": 10,
    "num_minibatches": 4,
    "minibatch_mode": "rows",
    "gamma": 0.99,
    "lambda_": 0.95,
    # PPO's clip epsilon; the low/high bounds default to it (PPO only).
    "clip_ratio": 0.2,
    "clip_ratio_low": None,
    "clip_ratio_high": None,
    "learning_rate": 3e-4,
    # "linear": decayed to 0 over total_env_steps
    # (keras_gae.agents.learning_rate_schedule).
    "learning_rate_schedule": "constant",
    "entropy_coef": 0.0,
    "value_coef": 0.5,
    "normalize_advantages": True,
    # The global gradient-norm clip; None (or 0) turns it off.
    "max_grad_norm": 0.5,
    # The actor's and critic's MLPs (keras_gae.agents.build_networks);
    # empty: the heads sit on the encoder's features.
    "hidden_sizes": (64, 64),
    "activation": "tanh",
    # A recurrent policy's cell ("lstm", "gru"; None: feed-forward), set
    # by `PPO(env, policy="lstm")`, and its size
    # (keras_gae.agents.build_recurrent_network).
    "recurrent_cell": None,
    "recurrent_units": 64,
    # Box actions: GaussianPolicyHead(bound=..., initial_log_std=...).
    "action_bound": "clip",
    "initial_log_std": 0.0,
    # Running statistics inside the model (checkpointed and exported).
    "normalize_observations": False,
    "normalize_rewards": False,
    # keras_gae.agents.make_tf_environment's vectorization_mode.
    "vectorization_mode": "auto",
    # `learn()`'s budget when none is given, and the mean return of the
    # last 20 episodes to stop at (None: no early stop).
    "total_env_steps": 100_000,
    "target_return": None,
    # `keras.Model.compile`'s: gradient steps per compiled call of `fit`
    # (None: epochs * num_minibatches, an iteration's steps in one call),
    # and XLA compilation of the training step.
    "steps_per_execution": None,
    "jit_compile": False,
    # PPOModel's gae_implementation (keras_gae.ops.IMPLEMENTATIONS).
    "gae_implementation": "auto",
}


_MUJOCO = {
    "num_envs": 4,
    "rollout_length": 512,
    "epochs": 10,
    "num_minibatches": 32,
    "minibatch_mode": "steps",
    "learning_rate": 3e-4,
    "max_grad_norm": 0.5,
    "normalize_observations": True,
    "normalize_rewards": True,
    "vectorization_mode": "sync",
    "total_env_steps": 1_000_000,
    "jit_compile": True,
}

ENV_CONFIGS: Dict[str, Dict[str, Any]] = {
    # 32 environments of 64 steps (collection costs per driver step, not
    # per environment), 4 minibatches of 8 rows, and the 10 x 4 gradient
    # steps of an iteration as one compiled call: of the settings swept
    # with benchmarks/ppo_profile.py, the least training time to 475.
    "CartPole-v1": {
        "num_envs": 32,
        "rollout_length": 64,
        "num_minibatches": 4,
        "learning_rate": 4e-3,
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
        "normalize_rewards": True,
        "total_env_steps": 400_000,
        "target_return": -200.0,
    },
    "HalfCheetah-v5": dict(_MUJOCO),
    "Hopper-v5": dict(_MUJOCO),
    "Walker2d-v5": dict(_MUJOCO),
    "Ant-v5": dict(_MUJOCO),
    # RL Zoo's Atari PPO: minibatches of single steps shuffled across the
    # rollout, as stable-baselines3 takes them; the policy and value
    # heads on the shared Nature CNN's features, as SB3's CnnPolicy.
    "ALE/*-v5": {
        "num_envs": 8,
        "rollout_length": 128,
        "epochs": 4,
        "num_minibatches": 4,
        "minibatch_mode": "steps",
        "learning_rate": 2.5e-4,
        "learning_rate_schedule": "linear",
        "clip_ratio": 0.1,
        "entropy_coef": 0.01,
        "value_coef": 0.5,
        "hidden_sizes": (),
        "vectorization_mode": "sync",
        "total_env_steps": 10_000_000,
    },
}

# With the orthogonally initialized networks, 1e-3 and 7e-4 reached
# CartPole-v1's 475 on fewer seeds than 2e-3 (docs/benchmarks.md).
A2C_OVERRIDES: Dict[str, Any] = {
    "num_envs": 8,
    "rollout_length": 16,
    "epochs": 1,
    "num_minibatches": 1,
    "minibatch_mode": "rows",
    "learning_rate": 2e-3,
}


def config_for(env_id: Optional[str], algorithm: str = "ppo") -> dict:
    """The merged settings for `env_id` and `algorithm` (a new dict).

    Args:
      env_id: a gymnasium id; None or an unknown id: the defaults.
      algorithm: "ppo" or "a2c" (A2C has no clip settings).

    Raises:
      ValueError: an unknown algorithm.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"`algorithm` must be one of {ALGORITHMS}. "
            f"Received: algorithm={algorithm!r}"
        )
    config = dict(DEFAULTS)
    config.update(env_config(env_id))
    if algorithm == "a2c":
        config.update(A2C_OVERRIDES)
        for key in PPO_ONLY:
            del config[key]
    return config


def env_config(env_id: Optional[str]) -> dict:
    """`env_id`'s entry of `ENV_CONFIGS`: its own, else the first pattern
    it matches (`fnmatch.fnmatchcase`), else {} (a new dict each call)."""
    if not env_id:
        return {}
    if env_id in ENV_CONFIGS:
        return dict(ENV_CONFIGS[env_id])
    for pattern, config in ENV_CONFIGS.items():
        if "*" in pattern and fnmatch.fnmatchcase(env_id, pattern):
            return dict(config)
    return {}


__all__ = [
    "A2C_OVERRIDES",
    "ALGORITHMS",
    "BOOLS",
    "DEFAULTS",
    "ENV_CONFIGS",
    "NUMBERS",
    "OPTIONS",
    "POSITIVE_INTS",
    "PPO_ONLY",
    "SB3_NAMES",
    "apply_batch_size",
    "check_config",
    "config_for",
    "env_config",
    "resolve_settings",
]

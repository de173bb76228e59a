"""Per-environment PPO settings for `keras_gae.agents.PPO`, like RL Zoo's.

`config_for(env_id)` merges `DEFAULTS` with `ENV_CONFIGS[env_id]` (an
unknown id keeps the defaults). The keys are `PPO`'s settings. The
Acrobot-v1 and Pendulum-v1 entries are those of `examples/train_ppo.py`
(`examples/configs.py`); CartPole-v1's was tuned for the short path (see
its comment). The MuJoCo entries use the PPO paper's MuJoCo settings
(Schulman et al. 2017, arXiv:1707.06347, table 3: 2048 steps per rollout,
10 epochs of minibatches of 64, Adam 3e-4, gamma 0.99, lambda 0.95) as 4
environments of 512 steps, with minibatches of 64 single steps shuffled
across the rollout (`minibatch_mode="steps"`), the 320 gradient steps of
an iteration as one XLA-compiled call, and observation and reward
normalization, as stable-baselines3 runs them with `VecNormalize`. At
200k steps of HalfCheetah-v5 this layout did better than 32 environments
of 64 steps (README, "Against stable-baselines3: HalfCheetah-v5", which
names the command).
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import Optional

DEFAULTS: Dict[str, Any] = {
    "num_envs": 8,
    "rollout_length": 128,
    "epochs": 10,
    "num_minibatches": 4,
    # OnPolicyTrainer's: "rows" (whole environment rows) or "steps"
    # (shuffled single steps, GAE once per rollout).
    "minibatch_mode": "rows",
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_ratio": 0.2,
    "learning_rate": 3e-4,
    "entropy_coef": 0.0,
    "value_coef": 0.5,
    "max_grad_norm": 0.5,
    "hidden_sizes": (64, 64),
    "activation": "tanh",
    "action_bound": "clip",
    "initial_log_std": 0.0,
    "normalize_observations": False,
    "normalize_rewards": False,
    # keras_gae.agents.make_tf_environment's vectorization_mode.
    "vectorization_mode": "auto",
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
    "jit_compile": True,
}

ENV_CONFIGS: Dict[str, Dict[str, Any]] = {
    # 32 environments of 64 steps (collection costs per driver step, not
    # per environment), 4 minibatches of 8 rows, a higher learning rate
    # than examples/train_ppo.py's, and the 10 x 4 gradient steps of an
    # iteration as one compiled call: of the settings swept with
    # benchmarks/ppo_profile.py, the least training time to 475. 16
    # environments take fewer environment steps but more iterations,
    # and an iteration's fixed costs dominate at this size (README,
    # "Against stable-baselines3", has the sweep's figures).
    "CartPole-v1": {
        "num_envs": 32,
        "rollout_length": 64,
        "num_minibatches": 4,
        "learning_rate": 4e-3,
        "target_return": 475.0,
    },
    "Acrobot-v1": {"learning_rate": 1e-3, "target_return": -100.0},
    "Pendulum-v1": {
        "num_envs": 32,
        "rollout_length": 128,
        "num_minibatches": 16,
        "gamma": 0.95,
        "learning_rate": 1e-3,
        "normalize_rewards": True,
        "target_return": -200.0,
    },
    "HalfCheetah-v5": dict(_MUJOCO),
    "Hopper-v5": dict(_MUJOCO),
    "Walker2d-v5": dict(_MUJOCO),
    "Ant-v5": dict(_MUJOCO),
}


def config_for(env_id: Optional[str]) -> Dict[str, Any]:
    """The merged settings for `env_id` (a new dict); None: the defaults."""
    config = dict(DEFAULTS)
    config.update(ENV_CONFIGS.get(env_id, {}) if env_id else {})
    return config

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
built or written.

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

import difflib
import fnmatch
import math
from typing import Any
from typing import Dict
from typing import Mapping
from typing import Optional

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

# Settings that only PPO has.
PPO_ONLY = ("clip_ratio", "clip_ratio_low", "clip_ratio_high")

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

# stable-baselines3's names for keras_gae's settings (docs/guide.md has
# the table). `batch_size` (steps per minibatch) has no one-to-one name:
# `resolve_settings` turns it into num_minibatches in "steps" mode.
SB3_NAMES: Dict[str, str] = {
    "n_steps": "rollout_length",
    "n_envs": "num_envs",
    "n_epochs": "epochs",
    "gae_lambda": "lambda_",
    "ent_coef": "entropy_coef",
    "vf_coef": "value_coef",
    "clip_range": "clip_ratio",
    "normalize_advantage": "normalize_advantages",
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


def resolve_settings(
    settings: Mapping[str, Any], config: Mapping[str, Any]
) -> Dict[str, Any]:
    """`settings` under keras_gae's names, checked against `config`'s keys.

    stable-baselines3's names (`SB3_NAMES`) are renamed. SB3's
    `batch_size` is left out: once the number of environments is known,
    `apply_batch_size` turns it into step minibatches.

    Args:
      settings: the user's settings, by keras_gae or SB3 name.
      config: the merged preset (`config_for`): its keys are the names a
        setting may have.

    Returns:
      A new dict of the settings under keras_gae's names.

    Raises:
      ValueError: an unknown name (with the closest known names), a
        setting given under both names, or `batch_size` with
        num_minibatches or minibatch_mode.
    """
    resolved: Dict[str, Any] = {}
    for name, value in settings.items():
        if name == "batch_size":
            continue
        key = SB3_NAMES.get(name, name)
        if key in PPO_ONLY and key not in config:
            raise ValueError(
                f"`{name}` is a setting of PPO's clipped objective; A2C "
                f"has none. Received: {name}={value!r}"
            )
        if key not in config:
            raise ValueError(_unknown_setting_message(name, value, config))
        if key in resolved:
            raise ValueError(
                f"`{name}` is stable-baselines3's name for `{key}`, which "
                f"was given too; pass one. Received: {name}={value!r}, "
                f"{key}={resolved[key]!r}"
            )
        resolved[key] = value
    if "batch_size" in settings and (
        "num_minibatches" in resolved or "minibatch_mode" in resolved
    ):
        raise ValueError(
            "`batch_size` sets num_minibatches and minibatch_mode; pass "
            "either it or them. "
            f"Received: batch_size={settings['batch_size']!r}"
        )
    return resolved


def apply_batch_size(config: Dict[str, Any], batch_size: Any) -> None:
    """SB3's `batch_size` (steps per minibatch) as keras_gae's settings.

    Sets `num_minibatches = num_envs * rollout_length / batch_size` and
    `minibatch_mode="steps"` in `config`, whose `num_envs` and
    `rollout_length` must be final (the environment's).

    Raises:
      ValueError: a `batch_size` that is not a positive int dividing the
        rollout.
    """
    steps = config["num_envs"] * config["rollout_length"]
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
        or steps % batch_size
    ):
        raise ValueError(
            "`batch_size` (stable-baselines3's steps per minibatch) must be "
            "a positive int dividing num_envs * rollout_length = "
            f"{steps}. Received: batch_size={batch_size!r}"
        )
    config["num_minibatches"] = steps // batch_size
    config["minibatch_mode"] = "steps"


def _unknown_setting_message(
    name: str, value: Any, config: Mapping[str, Any]
) -> str:
    known = sorted(config)
    close = difflib.get_close_matches(
        name, known + sorted(SB3_NAMES) + ["batch_size"], n=3, cutoff=0.6
    )
    close = [SB3_NAMES.get(match, match) for match in close]
    hint = (
        f" Did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
    )
    return (
        f"Unknown setting `{name}`.{hint} Known settings: {known} "
        f"(stable-baselines3's names {sorted(SB3_NAMES) + ['batch_size']} "
        f"are accepted too). Received: {name}={value!r}"
    )


# What each setting's value may be, checked by `check_config` (and the
# kinds of the example binary's flags).
POSITIVE_INTS = (
    "num_envs",
    "rollout_length",
    "epochs",
    "num_minibatches",
    "total_env_steps",
    "steps_per_execution",
    "recurrent_units",
)
OPTIONS = {
    "minibatch_mode": ("rows", "steps"),
    "learning_rate_schedule": ("constant", "linear"),
    "action_bound": ("clip", "tanh", None),
    "vectorization_mode": ("auto", "sync", "async", "vector_entry_point", None),
    "gae_implementation": ("auto", "scan", "xla", "native"),
    "recurrent_cell": ("lstm", "gru", None),
}
BOOLS = (
    "normalize_advantages",
    "normalize_observations",
    "normalize_rewards",
    "jit_compile",
)
# (minimum, maximum, minimum allowed): a finite number in the range.
NUMBERS = {
    "gamma": (0.0, 1.0, True),
    "lambda_": (0.0, 1.0, True),
    "clip_ratio": (0.0, None, False),
    "clip_ratio_low": (0.0, None, False),
    "clip_ratio_high": (0.0, None, False),
    "learning_rate": (0.0, None, False),
    "entropy_coef": (0.0, None, True),
    "value_coef": (0.0, None, True),
    "max_grad_norm": (0.0, None, True),
    "initial_log_std": (None, None, True),
    "target_return": (None, None, True),
}
# Settings whose None means "off" or "the default".
_OPTIONAL = (
    "clip_ratio_low",
    "clip_ratio_high",
    "max_grad_norm",
    "target_return",
    "steps_per_execution",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_config(config: Mapping[str, Any]) -> None:
    """Checks the values of a merged config (`config_for` plus the user's).

    Plain Python, so a program can check its settings before TensorFlow
    loads and before it writes anything.

    Raises:
      ValueError: the first bad value, naming the setting and ending with
        `Received: name=value`.
    """

    def fail(name: str, what: str) -> None:
        raise ValueError(
            f"`{name}` must be {what}. Received: {name}={config[name]!r}"
        )

    for name, value in config.items():
        if value is None and name in _OPTIONAL:
            continue
        if name in POSITIVE_INTS:
            if not _is_int(value) or value < 1:
                fail(name, "a positive int")
        elif name in OPTIONS and value not in OPTIONS[name]:
            fail(name, f"one of {OPTIONS[name]}")
        elif name in BOOLS and not isinstance(value, bool):
            fail(name, "True or False")
        elif name in NUMBERS:
            low, high, low_allowed = NUMBERS[name]
            number = isinstance(value, (int, float)) and not isinstance(
                value, bool
            )
            if not number or not math.isfinite(value):
                fail(name, "a finite number")
            if low is not None and (
                value < low or (value == low and not low_allowed)
            ):
                fail(name, f"{'>=' if low_allowed else '>'} {low:g}")
            if high is not None and value > high:
                fail(name, f"<= {high:g}")
        elif name == "hidden_sizes":
            if not isinstance(value, (list, tuple)) or not all(
                _is_int(s) and s >= 1 for s in value
            ):
                fail(name, "a sequence of positive ints (empty: none)")
        elif name == "activation" and not isinstance(value, str):
            fail(name, "the name of a Keras activation")
    if config.get("recurrent_cell") and config["minibatch_mode"] != "rows":
        raise ValueError(
            "A recurrent policy trains on whole environment rows (each "
            "from its initial state): `minibatch_mode` must be 'rows'. "
            f"Received: minibatch_mode={config['minibatch_mode']!r}, "
            f"recurrent_cell={config['recurrent_cell']!r}"
        )
    if (
        config.get("minibatch_mode") == "rows"
        and config["num_envs"] % config["num_minibatches"]
    ):
        raise ValueError(
            "`num_minibatches` must divide num_envs="
            f"{config['num_envs']}: each minibatch holds whole environment "
            "rows (minibatch_mode='steps' has no such constraint). "
            f"Received: num_minibatches={config['num_minibatches']!r}"
        )

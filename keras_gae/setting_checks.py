"""The names and values a training setting may have: the preset checks.

`keras_gae.presets` holds the table of settings and re-exports these:
`resolve_settings` maps the user's names (keras_gae's, or
stable-baselines3's `SB3_NAMES`) onto a merged preset's keys, suggesting
the closest name for a typo; `apply_batch_size` turns SB3's `batch_size`
into step minibatches; `check_config` checks every value. Plain Python
(no TensorFlow), so a program checks its settings before TensorFlow loads
and before it writes anything.
"""

from __future__ import annotations

import difflib
import math
from typing import Any
from typing import Dict
from typing import Mapping

# Settings that only PPO has.
PPO_ONLY = ("clip_ratio", "clip_ratio_low", "clip_ratio_high")

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

"""Argument checks of `keras_gae.lm.CausalLMPPOModel`."""

from __future__ import annotations

from typing import Any

from keras_gae._src import dependencies
from keras_gae.lm import _input_checks
from keras_gae.lm import advantages as advantages_lib
from keras_gae.lm import causal_lm_policy
from keras_gae.lm import lora_adapters
from keras_gae.lm import loss_aggregation as aggregation_lib
from keras_gae.lm import sequence_ratios
from keras_gae.models import network_layout as networks_lib
from keras_gae.ops import _checks
from keras_gae.ops import kl as kl_lib

# The settings `check_settings` returns, each a model attribute of its name.
SETTING_NAMES = (
    "vocab_size",
    "eos_id",
    "pad_id",
    "temperature",
    "reward_kl_coef",
    "reward_kl_estimator",
    "whiten_rewards",
    "advantage_estimator",
    "loss_aggregation",
    "stop_token_ids",
    "jit_generate",
    "scale_rewards",
    "mask_truncated_completions",
    "importance_sampling_level",
    "max_completion_length",
)


def config_entries(model: Any) -> dict:
    """The model's networks and settings for its `get_config`."""
    entries = {name: getattr(model, name) for name in SETTING_NAMES}
    coefficient = entries["reward_kl_coef"]
    if coefficient is not None and not isinstance(coefficient, float):
        entries["reward_kl_coef"] = networks_lib.serialize(coefficient)
    entries["stop_token_ids"] = list(entries["stop_token_ids"])
    entries["network"] = networks_lib.serialize(model.shared)
    entries["reference_network"] = networks_lib.serialize(
        model.reference_network
    )
    return entries


def deserialized(config: dict, custom_objects: Any) -> dict:
    """The constructor arguments of a `get_config` dict."""
    config = dict(config)
    for key in ("network", "reference_network"):
        config[key] = networks_lib.deserialize(config.get(key), custom_objects)
    for key in ("kl_coef", "reward_kl_coef"):
        if isinstance(config.get(key), dict):
            config[key] = networks_lib.deserialize(config[key], custom_objects)
    return config


def _off(coefficient: Any) -> bool:
    return coefficient is None or coefficient == 0.0


def _check_constant_length(length: Any, loss_aggregation: str) -> Any:
    """`max_completion_length`: required by, and only by, "dr_grpo"."""
    if loss_aggregation != "dr_grpo":
        if length is not None:
            raise ValueError(
                "`max_completion_length` is the constant of "
                "loss_aggregation='dr_grpo'. "
                f"Received: max_completion_length={length!r}, "
                f"loss_aggregation={loss_aggregation!r}"
            )
        return None
    if length is None:
        raise ValueError(
            "loss_aggregation='dr_grpo' divides by a constant "
            "`max_completion_length` (the `max_new_tokens` of collect). "
            "Received: max_completion_length=None"
        )
    return _checks.check_positive_int(length, "max_completion_length")


def _check_value_function(
    network: Any, advantage_estimator: str, kwargs: dict
) -> None:
    """GAE needs a value function; the critic-free estimators train none.

    Critic-free: the value loss is off (`kwargs["value_coef"]` set to 0),
    so a non-zero `value_coef`, a `value_clip` or a `CausalLMPolicy` with a
    separate `critic` (a second model nothing would read) is refused; a
    shared value head is left untrained.
    """
    policy = isinstance(network, causal_lm_policy.CausalLMPolicy)
    if advantage_estimator == "gae":
        if policy and network.value_head is None and network.critic is None:
            raise ValueError(
                'advantage_estimator="gae" needs a value function, and the '
                "network is a CausalLMPolicy without one: pass "
                'CausalLMPolicy(causal_lm, value_head="shared") (or '
                "`critic=`), or a critic-free estimator (grpo, dr_grpo, "
                "rloo, reinforce_pp). Received: advantage_estimator='gae', "
                "value_head=None"
            )
        return
    settings = (
        ("value_coef", not _off(kwargs.get("value_coef"))),
        ("value_clip", kwargs.get("value_clip") is not None),
        ("critic", policy and network.critic is not None),
    )
    for name, given in settings:
        if given:
            value = network.critic if name == "critic" else kwargs[name]
            raise ValueError(
                f"advantage_estimator={advantage_estimator!r} uses no value "
                f"function, so there is no value loss for `{name}` to act "
                "on (leave it unset, or use advantage_estimator='gae'). "
                f"Received: {name}={value!r}"
            )
    kwargs["value_coef"] = 0.0


def check_settings(
    network: Any,
    reference_network: Any,
    kwargs: dict,
    *,
    vocab_size: Any,
    eos_id: Any,
    pad_id: Any,
    reward_kl_coef: Any,
    reward_kl_estimator: Any,
    temperature: Any,
    whiten_rewards: Any,
    advantage_estimator: Any,
    loss_aggregation: Any,
    stop_token_ids: Any,
    jit_generate: Any,
    scale_rewards: Any,
    mask_truncated_completions: Any,
    importance_sampling_level: Any,
    max_completion_length: Any,
) -> dict:
    """The checked settings, plus "network", "reference_network" and
    "lora_reference"; may edit `kwargs`.

    A keras-hub CausalLM as `network` is wrapped in a `CausalLMPolicy` with
    the value head its estimator needs ("shared" for GAE, none for the
    critic-free ones); as `reference_network`, without a value head.

    GAE needs a value function; critic-free estimators have no value
    loss (`_check_value_function`) and turn advantage normalization off
    unless `kwargs` sets it. The KL to the reference goes in the reward or
    in the loss (`kwargs["kl_coef"]`), never both, and either needs a
    reference: a `reference_network`, or a `CausalLMPolicy` network with
    LoRA adapters.
    """
    for name in ("actor", "critic", "shared", "policy_head"):
        if name in kwargs:
            raise ValueError(
                f"CausalLMPPOModel takes `network`, not `{name}`. "
                f"Received: {name}={kwargs[name]!r}"
            )
    dependencies.check_layer(network, "network")
    if reference_network is not None:
        dependencies.check_layer(reference_network, "reference_network")
    vocab_size = _checks.check_positive_int(vocab_size, "vocab_size")
    eos_id = _checks.check_index(eos_id, "eos_id", size=vocab_size)
    if pad_id is not None:
        pad_id = _checks.check_index(pad_id, "pad_id", size=vocab_size)
    reward_kl_coef = _checks.check_kl_coef(reward_kl_coef, "reward_kl_coef")
    advantage_estimator = _checks.check_option(
        advantage_estimator,
        "advantage_estimator",
        advantages_lib.ESTIMATORS,
    )
    network = causal_lm_policy.as_token_network(
        network,
        "network",
        value_head="shared" if advantage_estimator == "gae" else None,
    )
    _check_value_function(network, advantage_estimator, kwargs)
    if reference_network is not None:
        reference_network = causal_lm_policy.as_token_network(
            reference_network, "reference_network", value_head=None
        )
    lora_reference = isinstance(
        network, causal_lm_policy.CausalLMPolicy
    ) and lora_adapters.has_lora(network.causal_lm)
    has_reference = reference_network is not None or lora_reference
    if not has_reference and not _off(reward_kl_coef):
        raise ValueError(
            "`reward_kl_coef` needs a `reference_network` to measure "
            "the KL against. "
            f"Received: reward_kl_coef={reward_kl_coef!r}, "
            "reference_network=None"
        )
    reward_kl_estimator = _checks.check_option(
        reward_kl_estimator,
        "reward_kl_estimator",
        kl_lib.KL_ESTIMATORS,
    )
    temperature = _checks.check_float(
        temperature, "temperature", minimum=0.0, inclusive=False
    )
    whiten_rewards = _checks.check_bool(whiten_rewards, "whiten_rewards")
    loss_aggregation = _checks.check_option(
        loss_aggregation,
        "loss_aggregation",
        aggregation_lib.AGGREGATIONS,
    )
    stop_token_ids = _input_checks.stop_ids(stop_token_ids, vocab_size)
    scale_rewards = _checks.check_option(
        scale_rewards, "scale_rewards", advantages_lib.REWARD_SCALES
    )
    if scale_rewards != "group" and advantage_estimator != "grpo":
        raise ValueError(
            "`scale_rewards` is how advantage_estimator='grpo' scales its "
            "advantages ('dr_grpo' is 'grpo' with scale_rewards='none'). "
            f"Received: scale_rewards={scale_rewards!r}, "
            f"advantage_estimator={advantage_estimator!r}"
        )
    mask_truncated_completions = _checks.check_bool(
        mask_truncated_completions, "mask_truncated_completions"
    )
    importance_sampling_level = _checks.check_option(
        importance_sampling_level,
        "importance_sampling_level",
        sequence_ratios.IMPORTANCE_SAMPLING_LEVELS,
    )
    max_completion_length = _check_constant_length(
        max_completion_length, loss_aggregation
    )
    jit_generate = _checks.check_bool(jit_generate, "jit_generate")
    loss_kl = kwargs.get("kl_coef")
    if not _off(reward_kl_coef) and not _off(loss_kl):
        raise ValueError(
            "Put the KL to the reference either in the reward "
            "(`reward_kl_coef`) or in the loss (`kl_coef`), not both. "
            f"Received: reward_kl_coef={reward_kl_coef!r}, "
            f"kl_coef={loss_kl!r}"
        )
    if advantage_estimator != "gae":
        kwargs.setdefault("normalize_advantages", False)
    if not has_reference and not _off(kwargs.get("kl_coef")):
        raise ValueError(
            "A loss-side `kl_coef` needs a reference: a "
            "`reference_network` or a LoRA CausalLMPolicy network. "
            f"Received: kl_coef={kwargs.get('kl_coef')!r}, "
            "reference_network=None"
        )
    return {
        "network": network,
        "reference_network": reference_network,
        "vocab_size": vocab_size,
        "eos_id": eos_id,
        "pad_id": pad_id,
        "temperature": temperature,
        "reward_kl_coef": reward_kl_coef,
        "reward_kl_estimator": reward_kl_estimator,
        "whiten_rewards": whiten_rewards,
        "advantage_estimator": advantage_estimator,
        "loss_aggregation": loss_aggregation,
        "stop_token_ids": stop_token_ids,
        "jit_generate": jit_generate,
        "scale_rewards": scale_rewards,
        "mask_truncated_completions": mask_truncated_completions,
        "importance_sampling_level": importance_sampling_level,
        "max_completion_length": max_completion_length,
        "lora_reference": lora_reference and reference_network is None,
    }

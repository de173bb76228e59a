"""Argument checks of `keras_gae.lm.CausalLMPPOModel`."""

from __future__ import annotations

from typing import Any

from keras_gae._src import dependencies
from keras_gae.lm import _input_checks
from keras_gae.lm import advantages as advantages_lib
from keras_gae.lm import causal_lm_policy
from keras_gae.lm import loss_aggregation as aggregation_lib
from keras_gae.ops import _checks
from keras_gae.ops import policy_losses


def _off(coefficient: Any) -> bool:
    return coefficient is None or coefficient == 0.0


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
) -> dict:
    """The checked settings, plus "network", "reference_network" and
    "lora_reference"; may edit `kwargs`.

    A keras-hub CausalLM as `network` is wrapped in a `CausalLMPolicy` with
    the value head its estimator needs ("shared" for GAE, none for the
    critic-free ones); as `reference_network`, without a value head.

    Critic-free estimators turn advantage normalization off unless
    `kwargs` sets it. The KL to the reference goes in the reward or in the
    loss (`kwargs["kl_coef"]`), never both, and either needs a reference: a
    `reference_network`, or a `CausalLMPolicy` network with LoRA adapters.
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
    if reference_network is not None:
        reference_network = causal_lm_policy.as_token_network(
            reference_network, "reference_network", value_head=None
        )
    lora_reference = isinstance(
        network, causal_lm_policy.CausalLMPolicy
    ) and causal_lm_policy.has_lora(network.causal_lm)
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
        policy_losses.KL_ESTIMATORS,
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
        "lora_reference": lora_reference and reference_network is None,
    }

"""Sampling responses and building their rollout batch for a PPO model.

Letters used in shapes: `B` rows (prompts times samples), `W` positions of
a packed row (prompt then response), `N` new tokens.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import tensorflow as tf

from keras_gae._src import rollout_batch as rb
from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.lm import advantages as advantages_lib
from keras_gae.lm import generation
from keras_gae.lm import rewards
from keras_gae.lm import rollouts
from keras_gae.lm.reward_functions import RewardFunction
from keras_gae.ops import _checks
from keras_gae.ops import kl as kl_lib


def collect(
    model: Any,
    prompt_tokens: Any,
    reward: Any,
    *,
    max_new_tokens: int,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    min_p: Optional[float] = None,
    repetition_penalty: Optional[float] = None,
    num_samples: int = 1,
    prompt_mask: Any = None,
    seed: Optional[int] = None,
    update_kl_controller: bool = True,
    generation_workers: Any = None,
) -> rollouts.SequenceRollout:
    """`CausalLMPPOModel.collect`: see there."""
    update_kl_controller = _checks.check_bool(
        update_kl_controller, "update_kl_controller"
    )
    settings = dict(
        max_new_tokens=max_new_tokens,
        temperature=model.temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        eos_id=model.eos_id,
        stop_token_ids=model.stop_token_ids,
        prompt_mask=prompt_mask,
        pad_id=model.pad_id,
        num_samples=num_samples,
        seed=seed,
        jit_compile=model.jit_generate,
    )
    if generation_workers is None:
        outputs = generation.sample(
            model.shared,
            prompt_tokens,
            network_name="network",
            vocab_size=model.vocab_size,
            value_head=None,
            **settings,
        )
    elif not callable(getattr(generation_workers, "generate", None)):
        raise TypeError(
            "`generation_workers` must be a keras_gae.distributed."
            "GenerationWorkers (or have its `generate`), or None. "
            f"Received: generation_workers={generation_workers!r}"
        )
    else:
        # The workers decode with the network's current weights.
        outputs = generation_workers.generate(
            prompt_tokens, weights=model.shared.get_weights(), **settings
        )
    tokens = outputs.tokens
    width = tokens.shape[1]
    start = outputs.prompt_length

    def spread(x):
        return _tokens.spread_response(x, start, width)

    log_probs = spread(outputs.log_probs)
    mask = outputs.response_mask
    if outputs.values is None:
        values = tf.zeros_like(log_probs)
        bootstrap_value = tf.zeros_like(log_probs[:, 0])
    else:
        values = spread(outputs.values[:, :-1])
        bootstrap_value = outputs.values[:, -1]
    scores = RewardFunction(reward)(tokens, mask)
    if model.has_reference:
        if model.reference_network is not None:
            name, reference = "reference_network", model.reference_network
        else:  # The network with its LoRA adapters off.
            name, reference = "network", model.shared
        ref_log_probs = _input_checks.check_finite(
            model.reference_log_probs(tokens),
            name,
            "log-probabilities of the response tokens",
            source=reference,
            mask=mask,
        )
    else:
        ref_log_probs = log_probs
    kl_coef = model._reward_kl_value()
    batch = rollouts.sequence_rollout_batch(
        tokens,
        start,
        log_probs,
        ref_log_probs,
        values,
        scores,
        eos_id=model.eos_id,
        stop_token_ids=model.stop_token_ids,
        mask=mask,
        kl_coef=kl_coef,
        estimator=model.reward_kl_estimator,
        bootstrap_value=bootstrap_value,
        whiten_rewards=model.whiten_rewards,
    )
    if model.advantage_estimator != "gae":
        batch[rb.ADVANTAGE] = advantages_lib.critic_free_advantages(
            batch[rb.REWARD],
            mask,
            estimator=model.advantage_estimator,
            group_size=num_samples,
            gamma=model.gamma,
            scale_rewards=model.scale_rewards,
        )
        # The batch schema's critic target (no value loss reads it).
        batch[rb.RETURN] = advantages_lib.reward_to_go(
            batch[rb.REWARD], mask, gamma=model.gamma
        )
    if model.kl_coef is not None:
        batch[rb.REF_LOG_PROB] = tf.where(mask, ref_log_probs, 0.0)
    kl = rewards.sequence_kl(
        kl_lib.kl_divergence_estimate(
            log_probs,
            ref_log_probs,
            estimator=model.reward_kl_estimator,
            mask=mask,
        ),
        mask,
    )
    if update_kl_controller and not (
        model.reward_kl_coef is None or isinstance(model.reward_kl_coef, float)
    ):
        model.reward_kl_coef.update(kl, tf.shape(tokens)[0])
    return rollouts.SequenceRollout(
        batch=batch,
        scores=scores,
        kl=tf.cast(kl, tf.float32),
        kl_coef=kl_coef,
        response_length=tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
        done=outputs.done,
    )

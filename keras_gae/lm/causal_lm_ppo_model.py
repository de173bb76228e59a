"""PPO fine-tuning of a causal language model with token-level GAE.

`CausalLMPPOModel` is a `keras_gae.models.PPOModel` whose network is a
causal language model: it reads whole token rows `[B, L]` (prompt and
response) and returns `(logits [B, L, V], values [B, L])`, read as
`keras_gae.lm.causal_outputs` describes (step t at position t - 1).

Letters used in shapes: `B` sequences, `L` token positions per row, `V`
vocabulary size, `P` prompt positions, `N = B * L`.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src import rollout_batch
from keras_gae.lm import _input_checks
from keras_gae.lm import _model_settings
from keras_gae.lm import _tokens
from keras_gae.lm import causal_lm_policy
from keras_gae.lm import causal_outputs
from keras_gae.lm import collection
from keras_gae.lm import loss_aggregation as aggregation_lib
from keras_gae.lm import reference_policy
from keras_gae.lm import sequence_ratios
from keras_gae.lm.token_logits_head import TokenLogitsHead
from keras_gae.models.ppo import PPOModel
from keras_gae.ops import _checks

_CRITIC_METRICS = ("value_loss", "value_clip_fraction", "explained_variance")


@keras.saving.register_keras_serializable(package="keras_gae")
class CausalLMPPOModel(
    reference_policy.ReferencePolicy, collection.SequenceCollection, PPOModel
):
    r"""PPO with token-level GAE for a causal language model, by `fit`.

    The network maps token rows `[B, L]` to `(logits [B, L, V], values
    [B, L] or [B, L, 1])` and must be causal (outputs at position t depend
    on tokens[:t + 1] only). `call(tokens)` runs it once per row and
    returns every step's `(params [N, V], value [N])` with N = B * L, time
    merged into the batch as `ActorCriticModel` expects: step t's params
    are the logits at position t - 1 divided by `temperature`, its value
    the value head at position t - 1 (zeros at t = 0, which is always a
    prompt position). Everything else is `PPOModel`'s train step on a
    `keras_gae.lm.sequence_rollout_batch`: GAE (gamma = 1, lambda = 0.95 by
    default) over the response tokens, masked advantage normalization
    (across replicas), the clipped surrogate, the (optionally clipped)
    value loss and the entropy bonus, all masked means over response
    tokens, the non-finite guard and the same metrics.

    Reward shaping with a frozen reference (Ziegler et al. 2019,
    arXiv:1909.08593): `collect` samples responses with
    `keras_gae.lm.generate`, scores them, computes the reference model's
    log-probs in one pass without gradients, and builds per-token rewards
    r_t = -beta * k_t + [t last] * score with beta from `reward_kl_coef`.
    With an `AdaptiveKLController` it then updates beta from the batch's
    `sequence_kl` with n_steps = B. The KL is in the rewards, not in the
    loss (the loss-side `kl_coef` of `ActorCriticModel` stays available but
    is off by default). Either side, never both: a model with a non-zero
    `reward_kl_coef` and a loss-side `kl_coef` is refused. With `kl_coef`
    the batch carries "ref_log_prob" and the loss adds kl_coef * KL. The
    reference is `reference_network`, or a LoRA `CausalLMPolicy` network
    with its adapters off (no second copy).

    The class reads in three parts: this module (the network's outputs
    per step, the policy loss's options, the configuration),
    `keras_gae.lm.collection.SequenceCollection` (`collect` and
    `generation_settings`: sampling and the batch) and
    `keras_gae.lm.reference_policy.ReferencePolicy` (the reference's
    log-probs and `reward_kl_value`).

    Advantages: `advantage_estimator="gae"` runs token-level GAE in the
    train step with the critic; "grpo", "dr_grpo", "rloo" and
    "reinforce_pp" (`keras_gae.lm.advantages`) are computed at collection
    from the per-token rewards, with the `num_samples` completions of each
    prompt as its group, and handed to the train step as "advantage"
    (advantage normalization is then off unless `normalize_advantages` is
    passed). "gae" needs a value function (a `CausalLMPolicy` without one
    is refused); the critic-free ones use none: no value is read, no value
    loss (`value_coef` 0; a non-zero one, `value_clip` or a separate
    `critic` is refused), no critic metrics.

    Memory: gradient accumulation over micro-batches is the optimizer's
    (`keras.optimizers.Adam(..., gradient_accumulation_steps=k)`: fit on
    k micro-batches per update); mixed precision is the network's dtype
    policy (e.g. a keras-hub backbone built with
    `dtype="mixed_bfloat16"`): logits, values and losses are float32.

    Args:
      network: Keras 3 model, tokens `[B, L]` -> `(logits, values)` (a
        tf-keras model is refused with a message saying so), or a
        keras-hub CausalLM: it is wrapped in `keras_gae.lm.CausalLMPolicy`
        with `value_head="shared"` for `advantage_estimator="gae"` and no
        value head for the critic-free estimators (pass a
        `CausalLMPolicy` yourself for a separate critic or LoRA). A
        model built on a dict of inputs that is not a keras-hub CausalLM
        is refused.
      vocab_size: V, the size of the logits' last axis.
      eos_id: end-of-sequence token id.
      reference_network: the frozen reference model (same signature as
        `network`; e.g. a copy of the supervised model; a keras-hub
        CausalLM is wrapped in a `CausalLMPolicy` without value head). It
        is set `trainable = False` and saved with the model's weights.
        None: no KL reward (then `reward_kl_coef` must be None or 0).
      reward_kl_coef: None, a float beta >= 0, or a KL controller from
        `keras_gae.losses.kl_control`.
      reward_kl_estimator: "k1", "k2" or "k3", the per-token KL estimate in
        the rewards.
      temperature: tau > 0 for sampling and for the trained policy.
      pad_id: optional padding token id (see `keras_gae.lm.response_mask`).
      whiten_rewards: rescale rewards over valid tokens (see
        `sequence_rollout_batch`).
      gamma: discount, 1 by default (an episode is one response).
      lambda_: GAE lambda, 0.95 by default.
      advantage_estimator: "gae", "grpo", "dr_grpo" ("grpo" with
        scale_rewards="none"), "rloo" or "reinforce_pp".
      loss_aggregation: "token_mean", "sequence_sum", "sequence_mean" or
        "dr_grpo" (`keras_gae.lm.aggregate_loss`).
      stop_token_ids: optional more ids that end a response like `eos_id`.
      jit_generate: XLA-compile the sampling loop of `collect` (the
        default, as in `keras_gae.lm.generate`: faster per token at every
        buffer width measured, docs/benchmarks.md#lm-generation).
      scale_rewards: "group", "batch" or "none": what "grpo" divides its
        centred returns by (`keras_gae.lm.grpo_advantages`).
      mask_truncated_completions: leave the responses that hit the length
        limit without a stop token out of the loss (they stay in their
        group's advantage statistics).
      importance_sampling_level: "token" (PPO's per-token ratios) or
        "sequence" (GSPO: one ratio per response, the exp of its mean
        log-ratio, clipped per response; `keras_gae.lm.sequence_ratios`).
      max_completion_length: Dr. GRPO's constant L_max, required by (and
        only by) loss_aggregation="dr_grpo".
      **kwargs: `PPOModel` and `ActorCriticModel` arguments (clip_ratio,
        value_coef, entropy_coef, value_clip, max_grad_norm, ...).

    Raises:
      ValueError, TypeError: an argument out of range or of the wrong type,
        naming it.

    Example:

    ```python
    model = keras_gae.lm.CausalLMPPOModel(
        network,  # tokens [B, L] -> (logits [B, L, V], values [B, L])
        vocab_size=V,
        eos_id=eos_id,
        reference_network=reference,  # a frozen copy of `network`
        reward_kl_coef=keras_gae.losses.AdaptiveKLController(
            0.1, target_kl=3.0, horizon=256.0
        ),
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-4))
    rollout = model.collect(prompts, scorer, max_new_tokens=16)
    dataset = keras_gae.models.rollout_dataset(
        rollout.batch, num_minibatches=2
    )
    model.fit(dataset, epochs=4)
    ```
    """

    def __init__(
        self,
        network: keras.layers.Layer,
        *,
        vocab_size: int,
        eos_id: int,
        reference_network: Optional[keras.layers.Layer] = None,
        reward_kl_coef: Any = None,
        reward_kl_estimator: str = "k1",
        temperature: float = 1.0,
        pad_id: Optional[int] = None,
        whiten_rewards: bool = False,
        gamma: float = 1.0,
        lambda_: float = 0.95,
        advantage_estimator: str = "gae",
        loss_aggregation: str = "token_mean",
        stop_token_ids: Any = None,
        jit_generate: bool = True,
        scale_rewards: str = "group",
        mask_truncated_completions: bool = False,
        importance_sampling_level: str = "token",
        max_completion_length: Optional[int] = None,
        **kwargs,
    ):
        settings = _model_settings.check_settings(
            network,
            reference_network,
            kwargs,
            vocab_size=vocab_size,
            eos_id=eos_id,
            pad_id=pad_id,
            reward_kl_coef=reward_kl_coef,
            reward_kl_estimator=reward_kl_estimator,
            temperature=temperature,
            whiten_rewards=whiten_rewards,
            advantage_estimator=advantage_estimator,
            loss_aggregation=loss_aggregation,
            stop_token_ids=stop_token_ids,
            jit_generate=jit_generate,
            scale_rewards=scale_rewards,
            mask_truncated_completions=mask_truncated_completions,
            importance_sampling_level=importance_sampling_level,
            max_completion_length=max_completion_length,
        )
        lora_reference = settings.pop("lora_reference")
        network = settings.pop("network")
        reference_network = settings.pop("reference_network")
        head = TokenLogitsHead(
            settings["vocab_size"],
            temperature=settings["temperature"],
            name="token_logits",
        )
        super().__init__(
            shared=network,
            policy_head=head,
            gamma=gamma,
            lambda_=lambda_,
            **kwargs,
        )
        for name, value in settings.items():
            setattr(self, name, value)
        # The metric names depend on the estimator, set just now.
        self._create_trackers()
        self.lora_reference = lora_reference
        self._reference_function = None
        if reference_network is not None:
            reference_network.trainable = False
        self.reference_network = reference_network

    @property
    def metric_names(self) -> tuple:
        """`PPOModel`'s metrics, without the critic's if critic-free."""
        names = super().metric_names
        if getattr(self, "advantage_estimator", "gae") == "gae":
            return names
        return tuple(name for name in names if name not in _CRITIC_METRICS)

    @property
    def network(self) -> keras.layers.Layer:
        """The trained language model, tokens -> (logits, values)."""
        return self.shared

    # Inference.

    def sequence_outputs(self, tokens: Any, training: Any = None) -> tuple:
        """Per-step params and values, batch-major, from one network pass.

        Args:
          tokens: `[B, L]` integer token ids in [0, vocab_size) (checked:
            a ValueError eagerly, an assertion in a graph).
          training: passed to the network.

        Returns:
          `(params [B, L, V], values [B, L])`, float32: at position t the
          policy's logits / temperature and V for the state tokens[:t]
          (zeros at t = 0).
        """
        tokens = _tokens.convert_tokens(tokens)
        if not isinstance(self.shared, causal_lm_policy.CausalLMPolicy):
            # (A CausalLMPolicy checks its tokens itself.)
            tokens = _input_checks.check_token_ids(
                tokens, self.vocab_size, "tokens"
            )
        logits, values = causal_outputs.split_outputs(
            self.shared(tokens, training=training)
        )
        params = causal_outputs.shift_to_states(self.policy_head(logits))
        if self.advantage_estimator != "gae":
            # Critic-free: no value is read (nor trained), so none flows
            # from the network into the step.
            return params, tf.zeros(tf.shape(tokens), tf.float32)
        values = causal_outputs.shift_to_states(tf.cast(values, tf.float32))
        return params, values

    def call(self, tokens: Any, training: Any = None) -> tuple:
        """`(params [B * L, V], values [B * L])` for token rows `[B, L]`.

        `sequence_outputs` with time merged into the batch (the
        `ActorCriticModel.call` contract, one step per token position).
        """
        params, values = self.sequence_outputs(tokens, training=training)
        return (
            tf.reshape(params, [-1, self.vocab_size]),
            tf.reshape(values, [-1]),
        )

    def _policy_loss(
        self,
        log_probs: tf.Tensor,
        old_log_probs: tf.Tensor,
        advantages: tf.Tensor,
        mask: Optional[tf.Tensor],
    ) -> dict:
        if self.importance_sampling_level == "sequence":
            # Every token of a row gets the row's ratio s_b (GSPO).
            log_probs = sequence_ratios.sequence_log_ratios(
                log_probs, old_log_probs, mask
            )
            old_log_probs = tf.zeros_like(log_probs)
        if self.loss_aggregation != "token_mean" and mask is not None:
            advantages = advantages * aggregation_lib.advantage_scale(
                mask, self.loss_aggregation, self.max_completion_length
            )
        return super()._policy_loss(log_probs, old_log_probs, advantages, mask)

    # Training: the base step, with the token rows kept whole for `call`.

    def _network_inputs(self, batch: Any) -> tf.Tensor:
        tokens = tf.convert_to_tensor(batch[rollout_batch.OBSERVATION])
        if not tokens.dtype.is_integer or tokens.shape.rank != 2:
            raise ValueError(
                'batch["observation"] must be the `[B, L]` integer token '
                "rows (as from sequence_rollout_batch). "
                f'Received: batch["observation"]={_checks.describe(tokens)}'
            )
        return tokens

    # Serialization.

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("actor", "critic", "shared", "policy_head"):
            config.pop(key, None)
        config.update(_model_settings.config_entries(self))
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> Any:
        return cls(**_model_settings.deserialized(config, custom_objects))

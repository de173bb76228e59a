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
from typing import Callable
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src import dependencies
from keras_gae.lm import causal_outputs
from keras_gae.lm import generation
from keras_gae.lm import rewards
from keras_gae.lm import rollouts
from keras_gae.lm.token_logits_head import TokenLogitsHead
from keras_gae.models import networks as networks_lib
from keras_gae.models.ppo import PPOModel
from keras_gae.ops import _checks
from keras_gae.ops import policy_losses


@keras.saving.register_keras_serializable(package="keras_gae")
class CausalLMPPOModel(PPOModel):
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
    is off by default).

    Args:
      network: Keras 3 model, tokens `[B, L]` -> `(logits, values)` (a
        tf-keras model is refused with a message saying so).
      vocab_size: V, the size of the logits' last axis.
      eos_id: end-of-sequence token id.
      reference_network: the frozen reference model (same signature as
        `network`; e.g. a copy of the supervised model). It is set
        `trainable = False` and saved with the model's weights. None: no KL
        reward (then `reward_kl_coef` must be None or 0).
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
        **kwargs,
    ):
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
        if reference_network is None and not (
            reward_kl_coef is None or reward_kl_coef == 0.0
        ):
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
        head = TokenLogitsHead(
            vocab_size, temperature=temperature, name="token_logits"
        )
        super().__init__(
            shared=network,
            policy_head=head,
            gamma=gamma,
            lambda_=lambda_,
            **kwargs,
        )
        self.vocab_size = head.vocab_size
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.temperature = temperature
        self.reward_kl_coef = reward_kl_coef
        self.reward_kl_estimator = reward_kl_estimator
        self.whiten_rewards = whiten_rewards
        if reference_network is not None:
            reference_network.trainable = False
        self.reference_network = reference_network

    @property
    def network(self) -> keras.layers.Layer:
        """The trained language model, tokens -> (logits, values)."""
        return self.shared

    # Inference.

    def sequence_outputs(self, tokens: Any, training: Any = None) -> tuple:
        """Per-step params and values, batch-major, from one network pass.

        Args:
          tokens: `[B, L]` integer token ids.
          training: passed to the network.

        Returns:
          `(params [B, L, V], values [B, L])`, float32: at position t the
          policy's logits / temperature and V for the state tokens[:t]
          (zeros at t = 0).
        """
        logits, values = causal_outputs.split_outputs(
            self.shared(tokens, training=training)
        )
        params = causal_outputs.shift_to_states(self.policy_head(logits))
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

    def reference_log_probs(self, tokens: Any) -> tf.Tensor:
        """`[B, L]` log pi_ref(tokens[t] | tokens[:t]), without gradients.

        One pass of the frozen reference network, at the model's
        temperature; 0 at t = 0.
        """
        if self.reference_network is None:
            raise ValueError(
                "The model has no `reference_network`. "
                "Received: reference_network=None"
            )
        outputs = self.reference_network(tokens, training=False)
        logits, _ = causal_outputs.split_outputs(outputs)
        return tf.stop_gradient(
            causal_outputs.causal_log_probs(
                logits, tokens, temperature=self.temperature
            )
        )

    def _reward_kl_value(self) -> tf.Tensor:
        if self.reward_kl_coef is None:
            return tf.zeros([])
        if isinstance(self.reward_kl_coef, float):
            return tf.constant(self.reward_kl_coef, tf.float32)
        return tf.cast(self.reward_kl_coef.value, tf.float32)

    def collect(
        self,
        prompt_tokens: Any,
        scorer: Callable,
        *,
        max_new_tokens: int,
        top_k: Optional[int] = None,
        seed: Optional[int] = None,
        update_kl_controller: bool = True,
    ) -> rollouts.SequenceRollout:
        """Samples responses and builds their rollout batch (eager).

        1. `keras_gae.lm.generate(network, prompt_tokens, ...)` at the
           model's temperature gives tokens `[B, P + max_new_tokens]`, the
           sampling log-probs and values (the PPO "old" policy and critic).
        2. `scorer(tokens, mask)` (mask: `response_mask`, `[B, L]` bool)
           returns `[B]` scores.
        3. The reference log-probs come from one pass of the frozen
           reference network; `sequence_rollout_batch` builds the rewards
           with the current KL coefficient beta, and the batch.
        4. With `update_kl_controller` and a controller as
           `reward_kl_coef`, `update(sequence_kl, n_steps=B)`.

        Args:
          prompt_tokens: `[B, P]` integer prompt ids (P >= 1).
          scorer: callable `(tokens, mask) -> [B]` float scores.
          max_new_tokens: the response length limit, >= 1.
          top_k: optional top-k sampling.
          seed: optional int seed of the sampling.
          update_kl_controller: whether to update an adaptive controller.

        Returns:
          A `SequenceRollout`.
        """
        prompt_tokens = tf.convert_to_tensor(prompt_tokens)
        outputs = generation.generate(
            self.shared,
            prompt_tokens,
            max_new_tokens=max_new_tokens,
            temperature=self.temperature,
            top_k=top_k,
            eos_id=self.eos_id,
            seed=seed,
        )
        tokens = outputs.tokens
        prompt_length = prompt_tokens.shape[1]
        before = tf.zeros([tf.shape(tokens)[0], prompt_length], tf.float32)
        log_probs = tf.concat([before, outputs.log_probs], axis=1)
        values = tf.concat([before, outputs.values[:, :-1]], axis=1)
        bootstrap_value = outputs.values[:, -1]
        mask = rollouts.response_mask(
            tokens, prompt_length, self.eos_id, pad_id=self.pad_id
        )
        scores = tf.cast(
            tf.reshape(tf.convert_to_tensor(scorer(tokens, mask)), [-1]),
            tf.float32,
        )
        if self.reference_network is not None:
            ref_log_probs = self.reference_log_probs(tokens)
        else:
            ref_log_probs = log_probs
        kl_coef = self._reward_kl_value()
        batch = rollouts.sequence_rollout_batch(
            tokens,
            prompt_length,
            log_probs,
            ref_log_probs,
            values,
            scores,
            eos_id=self.eos_id,
            kl_coef=kl_coef,
            estimator=self.reward_kl_estimator,
            bootstrap_value=bootstrap_value,
            whiten_rewards=self.whiten_rewards,
            pad_id=self.pad_id,
        )
        kl = rewards.sequence_kl(
            policy_losses.kl_divergence_estimate(
                log_probs,
                ref_log_probs,
                estimator=self.reward_kl_estimator,
                mask=mask,
            ),
            mask,
        )
        if update_kl_controller and not (
            self.reward_kl_coef is None
            or isinstance(self.reward_kl_coef, float)
        ):
            self.reward_kl_coef.update(kl, tf.shape(tokens)[0])
        return rollouts.SequenceRollout(
            batch=batch,
            scores=scores,
            kl=tf.cast(kl, tf.float32),
            kl_coef=kl_coef,
            response_length=tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            done=outputs.done,
        )

    # Training: the base step, with the token rows kept whole for `call`.

    def _network_inputs(self, observations: Any) -> tf.Tensor:
        tokens = tf.convert_to_tensor(observations)
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
        reward_kl_coef = self.reward_kl_coef
        if reward_kl_coef is not None and not isinstance(reward_kl_coef, float):
            reward_kl_coef = networks_lib.serialize(reward_kl_coef)
        config.update(
            {
                "network": networks_lib.serialize(self.shared),
                "vocab_size": self.vocab_size,
                "eos_id": self.eos_id,
                "reference_network": networks_lib.serialize(
                    self.reference_network
                ),
                "reward_kl_coef": reward_kl_coef,
                "reward_kl_estimator": self.reward_kl_estimator,
                "temperature": self.temperature,
                "pad_id": self.pad_id,
                "whiten_rewards": self.whiten_rewards,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None) -> Any:
        config = dict(config)
        for key in ("network", "reference_network"):
            config[key] = networks_lib.deserialize(
                config.get(key), custom_objects
            )
        for key in ("kl_coef", "reward_kl_coef"):
            if isinstance(config.get(key), dict):
                config[key] = networks_lib.deserialize(
                    config[key], custom_objects
                )
        return cls(**config)

"""Sampling responses and building their rollout batch for a PPO model.

Letters used in shapes: `B` rows (prompts times samples), `W` positions of
a packed row (prompt then response), `N` new tokens.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional

import tensorflow as tf

from keras_gae._src import rollout_batch as rb
from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.lm import advantages as advantages_lib
from keras_gae.lm import generation
from keras_gae.lm import rewards
from keras_gae.lm import rollouts
from keras_gae.lm import truncated_completions
from keras_gae.lm.reward_functions import RewardFunction
from keras_gae.ops import _checks


class SequenceCollection:
    """Mixin of `CausalLMPPOModel`: sampling responses, building the batch.

    Collection kept apart from learning (the PPO update is the model's
    train step). The model supplies its network (`shared`), its settings
    (`temperature`, `eos_id`, `stop_token_ids`, `pad_id`, `jit_generate`,
    `vocab_size`, `reward_kl_coef`, `reward_kl_estimator`,
    `whiten_rewards`, `advantage_estimator`, `gamma`, `scale_rewards`,
    `kl_coef`, `mask_truncated_completions`) and the reference
    (`ReferencePolicy`). Arguments are checked where they enter (here and
    in `keras_gae.lm.generate`); the tensors `generate` returns are passed
    on to the batch's parts without being converted or checked again.
    """

    def generation_settings(self, **per_call: Any) -> dict:
        """The keyword arguments of `keras_gae.lm.generate` for this policy.

        The model's own sampling settings (`temperature`, `eos_id`,
        `stop_token_ids`, `pad_id`, and `jit_compile` from
        `jit_generate`), with the per-call ones (`max_new_tokens`,
        `top_k`, `num_samples`, `seed`, ...) added: what `collect` and
        `keras_gae.lm.evaluate_completions` generate with.
        """
        return dict(
            temperature=self.temperature,
            eos_id=self.eos_id,
            stop_token_ids=self.stop_token_ids,
            pad_id=self.pad_id,
            jit_compile=self.jit_generate,
            **per_call,
        )

    def collect(
        self,
        prompt_tokens: Any,
        scorer: Callable,
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
        """Samples responses and builds their rollout batch (eager).

        1. `keras_gae.lm.generate(network, prompt_tokens, ...)` at the
           model's temperature (cached for a `CausalLMPolicy`), with
           `num_samples` completions per prompt, gives packed rows `[B, W]`,
           the sampling log-probs and values (the PPO "old" policy and
           critic).
        2. `scorer` (a `keras_gae.lm.RewardFunction` or what it accepts:
           `(tokens, mask) -> [B]`, or a Keras reward model) scores them.
        3. The reference log-probs come from one pass of the reference;
           the per-token rewards with the current KL coefficient beta and
           the batch are `sequence_rollout_batch`'s (its cores, on the
           outputs `generate` checked); a critic-free
           `advantage_estimator` adds "advantage" and "return"; a
           loss-side `kl_coef` adds "ref_log_prob".
        4. With `update_kl_controller` and a controller as
           `reward_kl_coef`, `update(sequence_kl, n_steps=B)`.
        5. With `mask_truncated_completions`, the rows that hit
           `max_new_tokens` without a stop token are masked out of the
           batch (after the advantages, which keep them in their groups).

        Args:
          prompt_tokens: `[B0, P]` integer prompt ids (P >= 1), padded
            with `pad_id` or described by `prompt_mask`.
          scorer: the reward.
          max_new_tokens: the response length limit, >= 1.
          top_k, top_p, min_p, repetition_penalty: optional sampling
            settings (`keras_gae.lm.generate`).
          num_samples: completions per prompt (the group size).
          prompt_mask: optional `[B0, P]` True at prompt tokens.
          seed: optional int seed of the sampling.
          update_kl_controller: whether to update an adaptive controller.
          generation_workers: optional `keras_gae.distributed.
            GenerationWorkers`: step 1 runs on them with the network's
            current weights (docs/scaling.md), not in this process.

        Returns:
          A `SequenceRollout` (`[B0 * num_samples, W]` per token).

        Raises:
          ValueError, TypeError: as `keras_gae.lm.generate` (naming
            `prompt_tokens`, `max_new_tokens`, `network`, ...); a network
            whose logits do not have `vocab_size` entries; NaN or Inf
            scores (naming the reward), reference log-probs (naming
            `reference_network`), logits or values (naming `network`); a
            non-bool `update_kl_controller`. Nothing is collected then,
            and an adaptive KL controller is not updated.
        """
        update_kl_controller = _checks.check_bool(
            update_kl_controller, "update_kl_controller"
        )
        outputs = self._generate(
            prompt_tokens,
            generation_workers,
            max_new_tokens=max_new_tokens,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            prompt_mask=prompt_mask,
            num_samples=num_samples,
            seed=seed,
        )
        # From here on every tensor is one `generate` checked, or made
        # from them: the parts below take them as they are.
        tokens, mask = outputs.tokens, outputs.response_mask
        start, width = outputs.prompt_length, tokens.shape[1]
        log_probs = _tokens.spread_response(outputs.log_probs, start, width)
        if outputs.values is None:
            values = tf.zeros_like(log_probs)
            bootstrap_value = tf.zeros_like(log_probs[:, 0])
        else:
            values = _tokens.spread_response(
                outputs.values[:, :-1], start, width
            )
            bootstrap_value = outputs.values[:, -1]
        scores = RewardFunction(scorer).score_rows(tokens, mask)
        ref_log_probs = self._checked_reference_log_probs(tokens, mask)
        if ref_log_probs is None:
            ref_log_probs = log_probs
        kl_coef = self.reward_kl_value()
        kl = rewards.token_kl(
            log_probs, ref_log_probs, mask, self.reward_kl_estimator
        )
        batch = rollouts.assemble_batch(
            tokens,
            mask,
            rewards.shaped_rewards(scores, kl, mask, kl_coef),
            log_probs,
            values,
            bootstrap_value,
            eos_id=self.eos_id,
            stop_token_ids=self.stop_token_ids,
            whiten_rewards=self.whiten_rewards,
        )
        if self.advantage_estimator != "gae":
            # The return is the batch schema's critic target (no value
            # loss reads it).
            batch[rb.ADVANTAGE], batch[rb.RETURN] = (
                advantages_lib.critic_free_targets(
                    batch[rb.REWARD],
                    mask,
                    estimator=self.advantage_estimator,
                    group_size=num_samples,
                    gamma=self.gamma,
                    scale_rewards=self.scale_rewards,
                )
            )
        if self.kl_coef is not None:
            batch[rb.REF_LOG_PROB] = tf.where(mask, ref_log_probs, 0.0)
        sequence_kl = rewards.mean_sequence_kl(kl, mask)
        if update_kl_controller and not (
            self.reward_kl_coef is None
            or isinstance(self.reward_kl_coef, float)
        ):
            self.reward_kl_coef.update(sequence_kl, tf.shape(tokens)[0])
        if self.mask_truncated_completions:
            batch = truncated_completions.mask_truncated_completions(batch)
        return rollouts.SequenceRollout(
            batch=batch,
            scores=scores,
            kl=tf.cast(sequence_kl, tf.float32),
            kl_coef=kl_coef,
            response_length=tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            done=outputs.done,
        )

    def _generate(
        self, prompt_tokens: Any, generation_workers: Any, **per_call: Any
    ) -> generation.GenerationOutputs:
        """Step 1 of `collect`, here or on `generation_workers`."""
        settings = self.generation_settings(**per_call)
        if generation_workers is None:
            return generation.sample(
                self.shared,
                prompt_tokens,
                network_name="network",
                vocab_size=self.vocab_size,
                value_head=None,
                **settings,
            )
        if not callable(getattr(generation_workers, "generate", None)):
            raise TypeError(
                "`generation_workers` must be a keras_gae.distributed."
                "GenerationWorkers (or have its `generate`), or None. "
                f"Received: generation_workers={generation_workers!r}"
            )
        # The workers decode with the network's current weights.
        return generation_workers.generate(
            prompt_tokens, weights=self.shared.get_weights(), **settings
        )

    def _checked_reference_log_probs(
        self, tokens: tf.Tensor, mask: tf.Tensor
    ) -> Optional[tf.Tensor]:
        """`[B, W]` reference log-probs of `generate`'s rows, finite at
        response tokens (else an error naming the reference); None
        without a reference."""
        if not self.has_reference:
            return None
        if self.reference_network is not None:
            name, reference = "reference_network", self.reference_network
        else:  # The network with its LoRA adapters off.
            name, reference = "network", self.shared
        return _input_checks.check_finite(
            self._reference_log_probs(tokens),
            name,
            "log-probabilities of the response tokens",
            source=reference,
            mask=mask,
        )

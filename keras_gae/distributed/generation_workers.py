"""Language-model generation workers: Ray actors decoding with `lm.generate`.

Each worker is a Ray actor (its own process, on any node) holding a copy
of the policy, built there by a picklable builder. Each round the driver
puts the policy's weights into the object store once; every worker sets
them, decodes its share of the prompts with `keras_gae.lm.generate` and
returns numpy arrays, which the driver concatenates into the
`GenerationOutputs` the same call returns in one process.

Letters: `B0` prompts, `n` samples per prompt, `P` prompt width, `N` new
tokens.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional
from typing import Sequence

import numpy as np
import tensorflow as tf

from keras_gae.distributed import _actor_calls
from keras_gae.lm import generation
from keras_gae.ops import _checks


class _GenerationWorker:
    """One worker process (the body of a Ray actor)."""

    def __init__(self, builder: Callable):
        self.policy = builder()
        self.version = None

    def generate(
        self, weights: Any, version: int, prompts: dict, settings: dict
    ) -> tuple:
        if weights is not None and version != self.version:
            self.policy.set_weights(weights)
            self.version = version
        outputs = generation.generate(self.policy, **prompts, **settings)
        return self.version, {
            name: None if value is None else np.asarray(value)
            for name, value in outputs._asdict().items()
        }


class GenerationWorkers(_actor_calls.ActorGroup):
    """N Ray actors sampling from copies of a causal LM policy.

    Worker i builds its policy with `builder()` in its own process (Keras
    models hold TensorFlow variables, which do not pickle, so the model is
    rebuilt rather than sent). `builder` is pickled by Ray (cloudpickle):
    a module-level function (or a `functools.partial` of one) importable on
    every node, taking no argument and returning what `keras_gae.lm.generate`
    accepts as `model`, built from a config (nothing downloaded), e.g.
    `keras_gae.lm.CausalLMPolicy(keras_hub.models.GPT2CausalLM(backbone))`
    with the same architecture as the network the driver trains.

    `generate(prompt_tokens, weights=network.get_weights(), ...)` splits the
    B0 prompts into N contiguous shares (whole prompts, so the `num_samples`
    group of a prompt stays on one worker and in place), sends the weights
    through the object store once, and concatenates the workers' outputs in
    prompt order. Each worker decodes its share at the full prompt width P,
    so rows have the layout and width of the one-process call. Greedy
    decoding (`top_k=1`) gives the tokens of the one-process call; sampled
    tokens do not: `generate`'s noise depends on a row's index in its batch
    and each worker samples its share with `seed + i` (None: unseeded),
    draws from the same policy.

    The outputs have the one-process call's types and layout (tensors),
    so code consuming `keras_gae.lm.generate`'s outputs takes them
    unchanged; `CausalLMPPOModel.collect(..., generation_workers=workers)`
    samples through them.

    Example:

    ```python
    def build_policy():
        return keras_gae.lm.CausalLMPolicy(
            keras_hub.models.GPT2CausalLM(GPT2Backbone(...)),
            value_head="shared",
        )

    with keras_gae.distributed.ray_cluster():
        with GenerationWorkers(build_policy, num_workers=4) as workers:
            outputs = workers.generate(
                prompts,
                weights=ppo_model.network.get_weights(),
                max_new_tokens=64,
                eos_id=eos_id,
                top_k=50,
            )
    ```

    Args:
      builder: a picklable callable taking no argument and returning the
        policy (a `keras_gae.lm.CausalLMPolicy`, a keras-hub CausalLM or
        another model `keras_gae.lm.generate` takes).
      num_workers: N >= 1 worker processes.
      num_cpus: CPUs Ray reserves for each worker (> 0).
      num_gpus: GPUs Ray reserves for each worker (>= 0).
      timeout_s: seconds a round may take before a `TimeoutError` naming
        the late workers.

    Raises:
      TypeError: `builder` not callable, numbers of the wrong type.
      ValueError: N < 1, resources or timeout out of range.
      ImportError: Ray is not installed.
    """

    def __init__(
        self,
        builder: Callable[[], Any],
        *,
        num_workers: int,
        num_cpus: float = 1,
        num_gpus: float = 0,
        timeout_s: float = 600.0,
    ):
        super().__init__(
            _GenerationWorker,
            builder,
            num_workers,
            count_name="num_workers",
            label="GenerationWorkers: worker",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            timeout_s=timeout_s,
            actor_args=(builder,),
        )
        self.num_workers = self._num_actors
        self._version = 0

    def generate(
        self,
        prompt_tokens: Any,
        *,
        max_new_tokens: int,
        weights: Optional[Sequence[Any]] = None,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        min_p: Optional[float] = None,
        repetition_penalty: Optional[float] = None,
        eos_id: Optional[int] = None,
        stop_token_ids: Optional[Sequence[int]] = None,
        prompt_mask: Any = None,
        pad_id: Optional[int] = None,
        num_samples: int = 1,
        seed: Optional[int] = None,
        jit_compile: bool = True,
    ) -> generation.GenerationOutputs:
        """One round: sets `weights` on every worker, then decodes.

        Arguments as `keras_gae.lm.generate`, plus:

        Args:
          prompt_tokens: `[B0, P]` integer ids, B0 >= 1; worker i decodes
            prompts `np.array_split(range(B0), N)[i]` (a worker without
            prompts, N > B0, sits the round out).
          weights: the policy's weights (`get_weights()` of the driver's
            network), or None to keep the workers' current ones.
          seed: None, or an int; worker i samples with `seed + i`.

        Returns:
          `GenerationOutputs` of `[B0 * n, ...]` tensors, rows in the
          order of the one-process call.

        Raises:
          ValueError, TypeError: as `keras_gae.lm.generate`, from the first
            worker that refused (naming the argument).
          TimeoutError: workers that did not answer within `timeout_s`.
          RuntimeError: a worker process that died, by index.
        """
        tokens = np.asarray(prompt_tokens)
        if tokens.ndim != 2 or tokens.shape[0] < 1:
            raise ValueError(
                "`prompt_tokens` must be `[B0, P]` integer ids with B0 >= 1. "
                f"Received: prompt_tokens={_checks.describe(tokens)}"
            )
        mask = None if prompt_mask is None else np.asarray(prompt_mask)
        settings = dict(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            eos_id=eos_id,
            stop_token_ids=stop_token_ids,
            pad_id=pad_id,
            num_samples=num_samples,
            jit_compile=jit_compile,
        )
        weights_ref = None
        if weights is not None:
            self._version += 1
            weights_ref = self._ray.put([np.asarray(w) for w in weights])
        refs, indices = [], []
        shares = np.array_split(np.arange(tokens.shape[0]), self.num_workers)
        for index, (worker, rows) in enumerate(zip(self._actors, shares)):
            if not len(rows):
                continue
            prompts = dict(
                prompt_tokens=tokens[rows],
                prompt_mask=None if mask is None else mask[rows],
            )
            worker_seed = None if seed is None else seed + index
            refs.append(
                worker.generate.remote(
                    weights_ref,
                    self._version,
                    prompts,
                    dict(settings, seed=worker_seed),
                )
            )
            indices.append(index)
        results = self._gather(refs, "generating", indices)
        if weights is not None:
            stale = [
                i for i, (v, _) in zip(indices, results) if v != self._version
            ]
            if stale:
                raise RuntimeError(
                    f"GenerationWorkers: workers {stale} decoded with another "
                    f"policy version than {self._version}."
                )
        parts = [outputs for _, outputs in results]
        return generation.GenerationOutputs(
            **{
                name: None
                if parts[0][name] is None
                else tf.constant(np.concatenate([p[name] for p in parts]))
                for name in generation.GenerationOutputs._fields
            }
        )

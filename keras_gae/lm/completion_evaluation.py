"""An evaluation pass during training: the reward of fresh completions.

Letters used in shapes: `B0` prompts, `P` prompt positions.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional

import numpy as np

from keras_gae.lm import generation
from keras_gae.lm.reward_functions import RewardFunction
from keras_gae.ops import _checks


def evaluate_completions(
    model: Any,
    prompt_tokens: Any,
    scorer: Callable,
    *,
    max_new_tokens: int,
    greedy: bool = True,
    num_samples: int = 1,
    prompt_mask: Any = None,
    seed: Optional[int] = None,
) -> dict:
    """The mean reward of the policy's completions of held-out prompts.

    The evaluation TRL runs every `eval_steps` (its "eval_reward"): the
    network of a `keras_gae.lm.CausalLMPPOModel` completes `prompt_tokens`
    with `keras_gae.lm.generate` at the model's temperature, EOS, stop and
    pad ids, greedily (`greedy=True`, the policy's mode) or sampled
    (`num_samples` completions per prompt), and `scorer` rates them as in
    `collect`. Nothing is trained, no KL controller is updated and no
    reference runs. Call it every k iterations of a collect-and-fit loop
    (`examples/train_lm_ppo.py --eval_interval`).

    Args:
      model: a `keras_gae.lm.CausalLMPPOModel`.
      prompt_tokens: `[B0, P]` integer prompt ids, padded with the model's
        `pad_id` or described by `prompt_mask`.
      scorer: the reward, as `collect` takes it (`(tokens, mask) -> [B]`,
        a Keras reward model or a `keras_gae.lm.RewardFunction`).
      max_new_tokens: the response length limit, >= 1.
      greedy: the most likely token at each step (then `num_samples` must
        be 1) or samples.
      num_samples: completions per prompt.
      prompt_mask: optional `[B0, P]` True at prompt tokens.
      seed: optional int seed of the sampling.

    Returns:
      A dict of floats: "reward" (the mean score), "reward_std" (their
      population std), "response_length" (mean response tokens, the stop
      token included) and "truncated_fraction" (rows that hit the limit
      without a stop token).

    Raises:
      ValueError, TypeError: as `keras_gae.lm.generate` and the scorer
        (naming the argument); a non-bool `greedy`, or `greedy` with
        `num_samples` > 1.
    """
    greedy = _checks.check_bool(greedy, "greedy")
    if greedy and num_samples != 1:
        raise ValueError(
            "Greedy completions of a prompt are all the same: pass "
            "greedy=False for several samples. "
            f"Received: num_samples={num_samples!r}, greedy=True"
        )
    outputs = generation.generate(
        model.network,
        prompt_tokens,
        **model.generation_settings(
            max_new_tokens=max_new_tokens,
            top_k=1 if greedy else None,
            prompt_mask=prompt_mask,
            num_samples=num_samples,
            seed=seed,
        ),
    )
    # The scorer sees the mask of the packed rows, as in collect.
    mask = outputs.response_mask
    scores = np.asarray(
        RewardFunction(scorer)(outputs.tokens, mask), np.float64
    )
    lengths = np.sum(np.asarray(mask), axis=1)
    return {
        "reward": float(np.mean(scores)),
        "reward_std": float(np.std(scores)),
        "response_length": float(np.mean(lengths)),
        "truncated_fraction": float(1.0 - np.mean(outputs.done)),
    }

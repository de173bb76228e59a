"""Collecting from text prompts with text reward functions.

Letters used in shapes: `B0` prompts, `n` samples per prompt, `B = B0 * n`
rows, `K` reward functions.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple
from typing import Optional
from typing import Sequence

import numpy as np

from keras_gae.lm import text_prompts
from keras_gae.lm import text_rewards
from keras_gae.lm.rollouts import SequenceRollout
from keras_gae.lm.text_rewards import TextRewards
from keras_gae.ops import _checks


class TextRollout(NamedTuple):
    """What `collect_text` returns: a rollout and its text.

    Attributes:
      rollout: the `SequenceRollout` of `CausalLMPPOModel.collect` (its
        `batch` goes to `fit`; its `scores` are the weighted rewards).
      prompts: B strings, row b's prompt (each prompt `n` times in a row).
      completions: B strings, row b's decoded response.
      rewards: `[B, K]` float64, each reward function's score, NaN where
        it returned None.
      reward_names: the K functions' names (`TextRewards.names`).
      reward_weights: their K weights.
    """

    rollout: SequenceRollout
    prompts: tuple
    completions: tuple
    rewards: np.ndarray
    reward_names: tuple
    reward_weights: tuple

    def metrics(self) -> dict:
        """TRL's reward logs: "reward" (the mean weighted reward) and
        "rewards/<name>/mean", "rewards/<name>/std" per function (see
        `keras_gae.lm.text_rewards.reward_metrics`)."""
        return text_rewards.reward_metrics(
            self.rewards, self.reward_names, self.reward_weights
        )


def _repeat_columns(columns: Optional[dict], prompts: int, n: int) -> dict:
    """Per-prompt columns as per-row lists (each value `n` times)."""
    if columns is None:
        return {}
    if not isinstance(columns, dict):
        raise TypeError(
            "`reward_kwargs` must be a dict of per-prompt lists. "
            f"Received: reward_kwargs={columns!r}"
        )
    rows = {}
    for key, values in columns.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(
                f'`reward_kwargs["{key}"]` must be a list with one value '
                f"per prompt. Received: reward_kwargs={columns!r}"
            )
        if len(values) != prompts:
            raise ValueError(
                f'`reward_kwargs["{key}"]` must hold one value per prompt '
                f"({prompts}); it holds {len(values)}. "
                f"Received: reward_kwargs={columns!r}"
            )
        rows[key] = [value for value in values for _ in range(n)]
    return rows


def collect_text(
    model: Any,
    prompts: Sequence[str],
    reward_funcs: Any,
    *,
    reward_weights: Optional[Sequence[float]] = None,
    tokenizer: Any = None,
    reward_kwargs: Optional[dict] = None,
    **collect_kwargs: Any,
) -> TextRollout:
    """`model.collect` from text prompts, scored by text reward functions.

    1. `encode_prompts`: the prompts through the tokenizer, left-padded,
       with their prompt mask.
    2. `model.collect(prompt_tokens, scorer, prompt_mask=...,
       **collect_kwargs)` samples `num_samples` completions per prompt
       and calls `scorer` once on the token rows and response mask; the
       scorer decodes each row's response (`decode_completions`), calls
       the reward functions (`TextRewards`) with the prompts,
       completions and `reward_kwargs`, and gives the weighted sum as
       the rows' scores.

    Args:
      model: a `keras_gae.lm.CausalLMPPOModel` (anything with its
        `collect`).
      prompts: B0 strings.
      reward_funcs: a callable, a list of them, or a `TextRewards`.
      reward_weights: optional weights (only with a callable or a list).
      tokenizer: what `prompt_tokenizer` accepts; None: the preprocessor
        of the model's keras-hub CausalLM.
      reward_kwargs: optional dict of per-prompt lists (a dataset's
        answers, ...), each value passed `num_samples` times, as TRL
        passes a dataset's other columns to its reward functions.
      **collect_kwargs: `model.collect`'s arguments (`max_new_tokens`,
        `num_samples`, `top_k`, `seed`, ...) but `prompt_mask`.

    Returns:
      A `TextRollout`.

    Raises:
      TypeError, ValueError: as `encode_prompts`, `TextRewards` and
        `model.collect`, naming the argument; `prompt_mask` among
        `collect_kwargs`; `reward_weights` with a `TextRewards`. Nothing
        is collected and no KL controller is updated when a reward fails.

    Example:

    ```python
    def short(completions, **kwargs):
        return [-len(c) / 10 for c in completions]

    text = keras_gae.lm.collect_text(
        model, ["the cat", "a dog"], [short], max_new_tokens=8,
        num_samples=4)
    model.fit(rollout_dataset(text.rollout.batch, num_minibatches=2))
    ```
    """
    if "prompt_mask" in collect_kwargs:
        raise TypeError(
            "`collect_text` makes the prompt mask from the text; it takes "
            "no `prompt_mask`. Received: prompt_mask="
            f"{_checks.describe(collect_kwargs['prompt_mask'])}"
        )
    if isinstance(reward_funcs, TextRewards):
        if reward_weights is not None:
            raise ValueError(
                "`reward_weights` goes with a list of reward functions; a "
                "TextRewards has its own. "
                f"Received: reward_weights={reward_weights!r}"
            )
        rewards = reward_funcs
    else:
        rewards = TextRewards(reward_funcs, reward_weights)
    codec = text_prompts.prompt_tokenizer(
        model if tokenizer is None else tokenizer
    )
    prompts = text_prompts.convert_strings(prompts, "prompts")
    n = collect_kwargs.get("num_samples", 1)
    n = _checks.check_positive_int(n, "num_samples")
    columns = _repeat_columns(reward_kwargs, len(prompts), n)
    prompt_tokens, prompt_mask = text_prompts.encode_prompts(codec, prompts)
    row_prompts = [prompt for prompt in prompts for _ in range(n)]
    seen = {}

    def scorer(tokens, mask):
        completions = text_prompts.decode_completions(codec, tokens, mask)
        scores = rewards(row_prompts, completions, tokens, mask, **columns)
        seen.update(completions=completions, scores=scores)
        return text_rewards.weighted_sum(scores, rewards.reward_weights)

    rollout = model.collect(
        prompt_tokens, scorer, prompt_mask=prompt_mask, **collect_kwargs
    )
    return TextRollout(
        rollout=rollout,
        prompts=tuple(row_prompts),
        completions=tuple(seen["completions"]),
        rewards=seen["scores"],
        reward_names=rewards.names,
        reward_weights=rewards.reward_weights,
    )

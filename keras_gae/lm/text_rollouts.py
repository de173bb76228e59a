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


class TextScorer:
    """A token scorer `(tokens, mask) -> [B]` for text prompts and text
    reward functions: what `collect_text` passes to `model.collect`, and
    what any other consumer of a scorer takes (`evaluate_completions`).

    A call decodes each row's response (`decode_completions`), calls the
    reward functions (`TextRewards`) with the rows' prompts, completions
    and columns, and returns the weighted sums as float32 scores. Rows are
    the prompts in order, each `num_samples` times in a row (the layout
    of `keras_gae.lm.generate`). The last call's `completions` (B
    strings) and `scores` (`[B, K]`, NaN where a function returned None)
    stay on the scorer; `rewards` is its `TextRewards`.

    Args:
      tokenizer: what `keras_gae.lm.text_prompts.prompt_tokenizer` takes
        (a keras-hub tokenizer or preprocessor, or a model carrying one).
      prompts: B0 strings.
      reward_funcs: a callable, a list of them, or a `TextRewards`.
      reward_weights: optional weights (only with a callable or a list).
      num_samples: n >= 1, completions per prompt.
      reward_kwargs: optional dict of per-prompt lists (a dataset's
        answers, ...), each value passed `num_samples` times, as TRL
        passes a dataset's other columns to its reward functions.

    Raises:
      TypeError, ValueError: as `TextRewards` and `encode_prompts`;
        `reward_weights` with a `TextRewards`; columns of another length
        than the prompts. A call with another number of rows than
        B0 * n is refused.

    Example:

    ```python
    tokens, mask = keras_gae.lm.encode_prompts(model, prompts)
    scorer = keras_gae.lm.TextScorer(model, prompts, [short, correct])
    logs = keras_gae.lm.evaluate_completions(
        model, tokens, scorer, prompt_mask=mask, max_new_tokens=16)
    ```
    """

    def __init__(
        self,
        tokenizer: Any,
        prompts: Sequence[str],
        reward_funcs: Any,
        *,
        reward_weights: Optional[Sequence[float]] = None,
        num_samples: int = 1,
        reward_kwargs: Optional[dict] = None,
    ):
        if isinstance(reward_funcs, TextRewards):
            if reward_weights is not None:
                raise ValueError(
                    "`reward_weights` goes with a list of reward functions; "
                    "a TextRewards has its own. "
                    f"Received: reward_weights={reward_weights!r}"
                )
            self.rewards = reward_funcs
        else:
            self.rewards = TextRewards(reward_funcs, reward_weights)
        self.tokenizer = text_prompts.prompt_tokenizer(tokenizer)
        prompts = text_prompts.convert_strings(prompts, "prompts")
        n = _checks.check_positive_int(num_samples, "num_samples")
        self.prompts = [prompt for prompt in prompts for _ in range(n)]
        self.columns = _repeat_columns(reward_kwargs, len(prompts), n)
        self.completions = None
        self.scores = None

    def __call__(self, tokens: Any, mask: Any) -> np.ndarray:
        rows = np.shape(tokens)[0]
        if rows != len(self.prompts):
            raise ValueError(
                f"The scorer holds {len(self.prompts)} rows (prompts times "
                f"`num_samples`); the token rows are {rows}. Received: "
                f"tokens of shape {tuple(np.shape(tokens))}"
            )
        completions = text_prompts.decode_completions(
            self.tokenizer, tokens, mask
        )
        scores = self.rewards(
            self.prompts, completions, tokens, mask, **self.columns
        )
        self.completions, self.scores = completions, scores
        return text_rewards.weighted_sum(scores, self.rewards.reward_weights)


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

    `encode_prompts` turns the prompts into left-padded ids and their
    mask; `model.collect(prompt_tokens, TextScorer(...),
    prompt_mask=..., **collect_kwargs)` samples `num_samples` completions
    per prompt, and the scorer decodes them and sums the weighted rewards.

    Args:
      model: a `keras_gae.lm.CausalLMPPOModel` (anything with its
        `collect`).
      prompts: B0 strings.
      reward_funcs: a callable, a list of them, or a `TextRewards`.
      reward_weights: optional weights (only with a callable or a list).
      tokenizer: what `prompt_tokenizer` accepts; None: the preprocessor
        of the model's keras-hub CausalLM.
      reward_kwargs: optional dict of per-prompt lists, see `TextScorer`.
      **collect_kwargs: `model.collect`'s arguments (`max_new_tokens`,
        `num_samples`, `top_k`, `seed`, ...) but `prompt_mask`.

    Returns:
      A `TextRollout`.

    Raises:
      TypeError, ValueError: as `encode_prompts`, `TextScorer` and
        `model.collect`, naming the argument; `prompt_mask` among
        `collect_kwargs`. Nothing is collected and no KL controller is
        updated when a reward fails.

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
    scorer = TextScorer(
        model if tokenizer is None else tokenizer,
        prompts,
        reward_funcs,
        reward_weights=reward_weights,
        num_samples=collect_kwargs.get("num_samples", 1),
        reward_kwargs=reward_kwargs,
    )
    prompt_tokens, prompt_mask = text_prompts.encode_prompts(
        scorer.tokenizer, prompts
    )
    rollout = model.collect(
        prompt_tokens, scorer, prompt_mask=prompt_mask, **collect_kwargs
    )
    return TextRollout(
        rollout=rollout,
        prompts=tuple(scorer.prompts),
        completions=tuple(scorer.completions),
        rewards=scorer.scores,
        reward_names=scorer.rewards.names,
        reward_weights=scorer.rewards.reward_weights,
    )

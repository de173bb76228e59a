"""Several reward functions with weights, on text or tokens (TRL's
`reward_funcs` and `reward_weights`).

Letters used in shapes: `B` rows, `W` packed row width, `K` reward
functions.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable
from typing import Optional
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gae.lm.reward_functions import RewardFunction
from keras_gae.ops import _checks

# What a text reward function is called with besides the caller's columns.
_TEXT_ARGUMENTS = ("prompts", "completions", "completion_ids")


def _function_name(function: Any) -> str:
    """A reward's name in logs: a function's `__name__`, a Keras model's
    `name`, else its class name."""
    if isinstance(function, RewardFunction):
        function = function.reward
    if isinstance(function, keras.layers.Layer):
        return function.name
    return getattr(function, "__name__", type(function).__name__)


class TextRewards:
    r"""Reward functions on decoded text (or tokens), summed with weights.

    With K functions, weights w_k and r_bk the score function k gives
    row b (None: not applicable),

        reward_b = sum_{k : r_bk is not None} w_k * r_bk

    as TRL's `GRPOTrainer(reward_funcs=..., reward_weights=...)` computes
    it. Each function is either

    * a text reward, TRL's signature: called once per batch as
      `f(prompts=[B] str, completions=[B] str, completion_ids=[B] lists
      of ints, **columns)` (declare `**kwargs` for what it does not use),
      returning B numbers or None (a list, or a NumPy or TensorFlow
      vector); `columns` are the per-row values the
      caller passes (a dataset's answers, ...); or
    * a token scorer: a `keras_gae.lm.RewardFunction` or a Keras reward
      model, called on the token rows and response mask as
      `CausalLMPPOModel.collect` calls its scorer. (A plain callable is
      a text reward: wrap a `(tokens, mask)` callable in
      `RewardFunction` to list it here.)

    None means "not applicable to this row" (as in TRL): it adds nothing
    to the row's reward and is left out of that function's logged mean
    and std. A row for which every function returns None is refused
    (TRL warns and scores it 0, which a group-relative advantage turns
    into a signal the row never earned). NaN or Inf scores are refused,
    naming the function and the rows.

    Args:
      reward_funcs: a callable or a list of them (at least one).
      reward_weights: optional K finite floats (None: all 1).

    Attributes:
      names: K distinct names for logs (`__name__`, a Keras model's name;
        a repeated name gets "_2", "_3", ...).

    Raises:
      TypeError: a reward that is not callable, weights that are not
        floats.
      ValueError: no reward, weights of another length or not finite.

    Example:

    ```python
    def short(completions, **kwargs):
        return [-len(c) / 10 for c in completions]

    def correct(completions, answer, **kwargs):
        return [float(c.strip() == a) for c, a in zip(completions, answer)]

    rewards = TextRewards([short, correct], reward_weights=[0.1, 1.0])
    ```
    """

    def __init__(
        self,
        reward_funcs: Any,
        reward_weights: Optional[Sequence[float]] = None,
    ):
        if callable(reward_funcs) and not isinstance(reward_funcs, Sequence):
            reward_funcs = [reward_funcs]
        if not isinstance(reward_funcs, Sequence) or not reward_funcs:
            raise ValueError(
                "`reward_funcs` must be a callable or a non-empty list of "
                f"them. Received: reward_funcs={reward_funcs!r}"
            )
        functions = []
        for index, function in enumerate(reward_funcs):
            if not callable(function):
                raise TypeError(
                    "`reward_funcs` must hold callables (text rewards, "
                    f"RewardFunction or Keras models); item {index} is not. "
                    f"Received: reward_funcs={reward_funcs!r}"
                )
            if isinstance(function, keras.layers.Layer):
                function = RewardFunction(function)
            functions.append(function)
        if reward_weights is None:
            reward_weights = [1.0] * len(functions)
        if (
            not isinstance(reward_weights, (Sequence, np.ndarray))
            or isinstance(reward_weights, str)
            or len(reward_weights) != len(functions)
        ):
            raise ValueError(
                f"`reward_weights` must hold one float per reward function "
                f"({len(functions)}). Received: "
                f"reward_weights={reward_weights!r}"
            )
        self.reward_funcs = tuple(functions)
        self.reward_weights = tuple(
            _checks.check_float(weight, "reward_weights")
            for weight in reward_weights
        )
        names, seen = [], {}
        for function in functions:
            name = _function_name(function)
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        self.names = tuple(names)

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        tokens: Any,
        mask: Any,
        **columns: Any,
    ) -> np.ndarray:
        """Each function's scores of the B rows.

        Args:
          prompts: B prompt strings (each row's prompt).
          completions: B completion strings.
          tokens: `[B, W]` integer token rows (prompt then response).
          mask: `[B, W]` bool-like, True at response tokens.
          **columns: per-row lists of B values, passed to text rewards.

        Returns:
          `[B, K]` float64 scores, NaN where a function returned None.

        Raises:
          TypeError: a result that is not B numbers or None.
          ValueError: a result of another length; NaN or Inf scores; a
            row no function applies to.
        """
        rows = len(completions)
        clash = sorted(set(columns) & set(_TEXT_ARGUMENTS))
        if clash:
            raise ValueError(
                f"Reward columns must not be named {_TEXT_ARGUMENTS}. "
                f"Received: columns named {clash}"
            )
        tokens_np = np.asarray(tokens)
        mask_np = np.asarray(mask).astype(bool)
        if (
            tokens_np.ndim != 2
            or mask_np.shape != tokens_np.shape
            or len(prompts) != rows
            or tokens_np.shape[0] != rows
        ):
            raise ValueError(
                "`prompts` and `completions` must hold B strings for "
                "`tokens` and `mask` of shape [B, W]. Received: "
                f"{len(prompts)} prompts, {rows} completions, tokens of "
                f"shape {tokens_np.shape}, mask of shape {mask_np.shape}"
            )
        completion_ids = [
            row[keep].tolist() for row, keep in zip(tokens_np, mask_np)
        ]
        scores = np.empty([rows, len(self.reward_funcs)])
        for k, function in enumerate(self.reward_funcs):
            if isinstance(function, RewardFunction):
                result = np.asarray(function(tokens, mask), np.float64)
            else:
                result = function(
                    prompts=list(prompts),
                    completions=list(completions),
                    completion_ids=completion_ids,
                    **columns,
                )
            scores[:, k] = self._convert(result, rows, function)
        missing = np.flatnonzero(np.isnan(scores).all(axis=1)).tolist()
        if missing:
            raise ValueError(
                f"Every reward function returned None for rows {missing}: "
                "each row needs at least one score. "
                f"Received: reward_funcs={list(self.names)}"
            )
        return scores

    @staticmethod
    def _convert(result: Any, rows: int, function: Callable) -> np.ndarray:
        """B floats from a function's result, NaN for None."""
        if isinstance(result, tf.Tensor):
            result = result.numpy()
        try:
            values = list(result)
        except TypeError:
            values = None
        if values is None or not all(
            value is None
            or (
                isinstance(value, (int, float, np.number, np.bool_))
                and not isinstance(value, complex)
            )
            for value in values
        ):
            raise TypeError(
                "A reward function must return one number (or None) per "
                f"row; it returned {_checks.describe(result)}. "
                f"Received: reward_funcs item {function!r}"
            )
        if len(values) != rows:
            raise ValueError(
                f"A reward function must return one score per row ({rows}); "
                f"it returned {len(values)}. "
                f"Received: reward_funcs item {function!r}"
            )
        bad = [
            row
            for row, value in enumerate(values)
            if value is not None and not math.isfinite(float(value))
        ]
        if bad:
            raise ValueError(
                f"A reward function gave NaN or Inf scores in rows {bad}; "
                f"they must be finite. Received: reward_funcs item {function!r}"
            )
        return np.array(
            [np.nan if value is None else float(value) for value in values]
        )


def weighted_sum(scores: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """`[B]` float32 sum_k w_k * scores[:, k], a None (NaN) score as 0."""
    weighted = np.where(np.isnan(scores), 0.0, scores * np.asarray(weights))
    return weighted.sum(axis=1).astype(np.float32)


def reward_metrics(
    scores: np.ndarray, names: Sequence[str], weights: Sequence[float]
) -> dict:
    """TRL's reward logs of `[B, K]` scores, as Python floats.

    "reward": the mean weighted sum; for each function,
    "rewards/<name>/mean" and "rewards/<name>/std" over the rows it applies
    to (the std with Bessel's correction, as TRL's `nanstd`; 0 for one row,
    NaN for none).
    """
    logs = {"reward": float(np.mean(weighted_sum(scores, weights)))}
    for name, column in zip(names, np.asarray(scores).T):
        applied = column[~np.isnan(column)]
        if applied.size > 1:
            std = float(np.std(applied, ddof=1))
        else:
            std = 0.0 if applied.size else math.nan
        logs[f"rewards/{name}/mean"] = (
            float(np.mean(applied)) if applied.size else math.nan
        )
        logs[f"rewards/{name}/std"] = std
    return logs

"""A few prompt / completion / reward rows per iteration, in TensorBoard."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from keras_gae.lm import text_rewards
from keras_gae.ops import _checks


def completion_table(text_rollout: Any, num_rows: int) -> np.ndarray:
    """`[1 + R, 3 + K]` strings: a header, then the first R rows' prompt,
    completion, weighted reward and each function's score ("" where it
    returned None), R = min(num_rows, B).

    Args:
      text_rollout: a `keras_gae.lm.TextRollout`.
      num_rows: R, >= 1.
    """
    num_rows = _checks.check_positive_int(num_rows, "num_rows")
    rewards = np.asarray(text_rollout.rewards)
    total = text_rewards.weighted_sum(rewards, text_rollout.reward_weights)
    header = ["prompt", "completion", "reward", *text_rollout.reward_names]
    rows = [header]
    for row in range(min(num_rows, len(text_rollout.completions))):
        scores = ["" if math.isnan(s) else f"{s:.4g}" for s in rewards[row]]
        rows.append(
            [
                text_rollout.prompts[row],
                text_rollout.completions[row],
                f"{total[row]:.4g}",
                *scores,
            ]
        )
    return np.array(rows, dtype=object)


class CompletionLogger:
    """Writes a few completions and the reward logs of each iteration.

    Per `log(text_rollout, step)` call, to TensorBoard: a text summary
    `name` (a table: prompt, completion, reward, then one column per
    reward function, for the first `num_rows` rows) and the scalars of
    `text_rollout.metrics()` ("reward", "rewards/<name>/mean",
    "rewards/<name>/std", as TRL logs them).

    Args:
      log_dir: a directory (a file writer is made there) or a
        `tf.summary` writer.
      num_rows: rows per table, >= 1 (TRL's `num_completions_to_print`).
      name: the text summary's tag.

    Raises:
      TypeError, ValueError: `log_dir` neither a path nor a writer, a
        `num_rows` that is not a positive int.

    Example:

    ```python
    logger = keras_gae.lm.CompletionLogger("/tmp/run/train", num_rows=4)
    for iteration in range(10):
        text = keras_gae.lm.collect_text(model, prompts, [short], ...)
        logger.log(text, step=iteration)
    ```
    """

    def __init__(
        self, log_dir: Any, num_rows: int = 4, name: str = "completions"
    ):
        if isinstance(log_dir, tf.summary.SummaryWriter):
            self.writer = log_dir
        elif isinstance(log_dir, (str, bytes)) or hasattr(
            log_dir, "__fspath__"
        ):
            self.writer = tf.summary.create_file_writer(str(log_dir))
        else:
            raise TypeError(
                "`log_dir` must be a directory or a tf.summary writer. "
                f"Received: log_dir={log_dir!r}"
            )
        self.num_rows = _checks.check_positive_int(num_rows, "num_rows")
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`name` must be a non-empty string. Received: name={name!r}"
            )
        self.name = name

    def log(self, text_rollout: Any, step: int) -> None:
        """Writes `text_rollout`'s table and reward logs at `step` (>= 0)."""
        step = _checks.check_int(step, "step", minimum=0)
        table = completion_table(text_rollout, self.num_rows)
        with self.writer.as_default(step=step):
            tf.summary.text(self.name, tf.constant(table.astype(str)))
            for key, value in text_rollout.metrics().items():
                tf.summary.scalar(key, value)
        self.writer.flush()

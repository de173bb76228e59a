"""The reward interface: scores of token rows, batched.

Letters used in shapes: `B` rows, `L` token positions.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional

import keras
import tensorflow as tf

from keras_gae._src import dependencies
from keras_gae.lm import _input_checks
from keras_gae.lm import _tokens
from keras_gae.ops import _checks


class RewardFunction:
    """Scores `[B]` float32 of token rows `[B, L]` and response masks.

    `reward` is either

    * a Python or TensorFlow callable `(tokens, mask) -> [B]` scores
      (tokens `[B, L]` int ids, mask `[B, L]` bool, True at response
      tokens; NumPy results are accepted), or
    * a Keras reward model `tokens [B, L] -> [B]`, `[B, 1]`, or per-token
      `[B, L]` / `[B, L, 1]` (then read at each row's last response token).

    Rewards on decoded text (TRL's `f(prompts, completions, **kwargs)`),
    several with weights: `keras_gae.lm.TextRewards` and
    `keras_gae.lm.collect_text`, which also take a `RewardFunction`.

    Rows are scored in chunks of `batch_size` (all at once when None).
    Scores must be finite: a NaN or Inf score is refused with a ValueError
    naming the reward and the rows, never turned into rewards.

    Args:
      reward: the callable or Keras model.
      batch_size: optional rows per call, >= 1.

    Example:

    >>> def exact(tokens, mask):
    ...     return tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)
    >>> scores = RewardFunction(exact, batch_size=2)(
    ...     tf.constant([[1, 2], [3, 4], [5, 6]]),
    ...     tf.constant([[0, 1], [1, 1], [0, 0]], tf.bool))
    >>> scores.numpy().tolist()
    [1.0, 2.0, 0.0]
    """

    def __init__(self, reward: Callable, batch_size: Optional[int] = None):
        if isinstance(reward, RewardFunction):
            reward, batch_size = reward.reward, batch_size or reward.batch_size
        if not callable(reward):
            raise TypeError(
                "`reward` must be a callable (tokens, mask) -> [B] or a Keras "
                f"model. Received: reward={reward!r}"
            )
        self.is_keras_model = isinstance(reward, keras.layers.Layer)
        if dependencies.is_keras2_object(reward):
            dependencies.check_layer(reward, "reward")
        if batch_size is not None:
            batch_size = _checks.check_positive_int(batch_size, "batch_size")
        self.reward = reward
        self.batch_size = batch_size

    def _score(self, tokens: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        if not self.is_keras_model:
            result = self.reward(tokens, mask)
            try:
                scores = tf.convert_to_tensor(result)
            except (TypeError, ValueError) as error:
                scores = error
            if isinstance(scores, Exception) or not (
                scores.dtype.is_floating
                or scores.dtype.is_integer
                or scores.dtype.is_bool
            ):
                raise TypeError(
                    "`reward` must return [B] numbers, one score per row. "
                    f"It returned {_checks.describe(result)}. "
                    f"Received: reward={self.reward!r}"
                )
            return tf.reshape(tf.cast(scores, tf.float32), [-1])
        scores = tf.cast(self.reward(tokens), tf.float32)
        if scores.shape.rank == 3:
            if scores.shape[-1] != 1:
                raise ValueError(
                    "A reward model must give [B], [B, 1], [B, L] or "
                    f"[B, L, 1] scores; it gave {tuple(scores.shape)}. "
                    f"Received: reward={self.reward!r}"
                )
            scores = tf.squeeze(scores, axis=-1)
        if scores.shape.rank == 2 and scores.shape[1] != 1:
            at_end = _tokens.last_valid(mask)
            return tf.reduce_sum(tf.where(at_end, scores, 0.0), axis=1)
        return tf.reshape(scores, [-1])

    def __call__(self, tokens: Any, mask: Any) -> tf.Tensor:
        tokens = _tokens.convert_tokens(tokens)
        mask = _checks.convert_flag(mask, "mask")
        assertions = _checks.check_same_shape(mask, tokens, "mask", "tokens")
        with tf.control_dependencies(assertions):
            mask = tf.identity(mask)
        return self.score_rows(tokens, mask)

    def score_rows(self, tokens: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """`[B]` float32 scores of checked rows: integer `tokens [B, L]` and
        a bool `mask` of their shape (what `generate` returns), as a call
        gives them, without converting or checking the inputs again."""
        rows = tokens.shape[0]
        if self.batch_size is None or rows is None or rows <= self.batch_size:
            scores = self._score(tokens, mask)
        else:
            scores = tf.concat(
                [
                    self._score(
                        tokens[start : start + self.batch_size],
                        mask[start : start + self.batch_size],
                    )
                    for start in range(0, rows, self.batch_size)
                ],
                axis=0,
            )
        if rows is not None and scores.shape[0] != rows:
            raise ValueError(
                f"`reward` must give one score per row ({rows}); it gave "
                f"{scores.shape[0]}. Received: reward={self.reward!r}"
            )
        # A NaN or Inf score would become a NaN advantage: refused here,
        # where the function that gave it is known.
        return _input_checks.check_finite(
            scores, "reward", "scores", source=self.reward
        )

"""Episode returns and lengths, kept by a driver observer.

`EpisodeStatistics` watches the trajectories a tf-agents driver writes and
keeps the undiscounted return and the length of the last `window` finished
episodes of all `B` environments, as checkpointable variables, so the
collect-and-fit loop can report them and resume them.

Where the environments record whole episodes under their wrappers
(gymnasium's `RecordEpisodeStatistics`, as `make_atari_env` places it;
`keras_gae.agents.whole_episodes`), the episodes counted are those: an
Atari game with all its lives and its unclipped score, the game's length
in frames, what stable-baselines3's `Monitor` reports; the trajectories
then only say when to read them (at each episode end the driver sees).
Any other environment's episodes are the trajectories' own.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Dict
from typing import Optional

import tensorflow as tf

from keras_gae.agents.whole_episodes import WholeEpisodes


class EpisodeStatistics(tf.Module):
    """Driver observer: return and length of the last finished episodes.

    Keeps what tf-agents' `AverageReturnMetric`, `AverageEpisodeLengthMetric`
    and `NumberOfEpisodes` keep (a return accumulator zeroed at FIRST steps,
    a length accumulator counting non-boundary steps, rings of the last
    `window` finished episodes in environment order, the episode count),
    with vectorised updates: those metrics add each finished episode in an
    AutoGraph loop, whose conversion and per-step loops made up most of the
    first collection's tracing time.

    Args:
      batch_size: B, the number of environments the driver steps.
      window: how many finished episodes the means average over.
      env: the driver's tf-agents environment, or None: if it records
        whole episodes (module docstring), those are the episodes.
    """

    def __init__(self, batch_size: int, window: int, env: Any = None):
        super().__init__(name="episode_statistics")
        self._window = window
        self._whole_episodes = None if env is None else WholeEpisodes.of(env)
        self._return_sums = tf.Variable(tf.zeros([batch_size]), name="return")
        self._lengths = tf.Variable(tf.zeros([batch_size]), name="length")
        # Finished episodes' [return, length], slot = episode number % window.
        self._finished = tf.Variable(tf.zeros([window, 2]), name="finished")
        self.episodes = tf.Variable(0, dtype=tf.int64, name="episodes")

    def __call__(self, trajectory: Any) -> Any:
        if self._whole_episodes is not None:
            # A whole episode ends only where an episode does.
            tf.cond(
                tf.reduce_any(trajectory.is_last()),
                self._record_whole_episodes,
                lambda: tf.constant(False),
            )
            return trajectory
        return_sums = trajectory.reward + tf.where(
            trajectory.is_first(), 0.0, self._return_sums
        )
        lengths = self._lengths + tf.cast(~trajectory.is_boundary(), tf.float32)
        last = trajectory.is_last()
        count = tf.reduce_sum(tf.cast(last, tf.int64))
        rank = tf.cumsum(tf.cast(last, tf.int64), exclusive=True)
        # Of more than `window` episodes ending at once, the last ones win.
        kept = last & (rank >= count - self._window)
        slots = tf.boolean_mask((self.episodes + rank) % self._window, kept)
        self._finished.scatter_nd_update(
            slots[:, None],
            tf.boolean_mask(tf.stack([return_sums, lengths], -1), kept),
        )
        self._return_sums.assign(return_sums)
        self._lengths.assign(tf.where(last, 0.0, lengths))
        self.episodes.assign_add(count)
        return trajectory

    def _record_whole_episodes(self) -> tf.Tensor:
        finished, count = tf.numpy_function(
            self._whole_episodes.read,
            [],
            [tf.float32, tf.int64],
            stateful=True,
            name="whole_episodes",
        )
        self.record(finished, count)
        return tf.constant(True)

    def last_finished(self, count: int) -> tf.Tensor:
        """The last `count` finished episodes' `[return, length]`, `[n, 2]`.

        Oldest first; n is `count` capped by the window and the episodes
        finished so far.
        """
        n = tf.minimum(
            tf.minimum(tf.cast(count, tf.int64), self._window), self.episodes
        )
        slots = (self.episodes - n + tf.range(n)) % self._window
        return tf.gather(self._finished, slots)

    def record(self, finished: Any, count: Optional[int] = None) -> None:
        """Adds finished episodes' `[return, length]` `[n, 2]`, oldest first.

        For episodes watched elsewhere (by rollout workers); the
        accumulators of this module's own environments are left alone.

        Args:
          finished: `[n, 2]` returns and lengths, oldest first.
          count: how many episodes finished in all, >= n, when `finished`
            holds only the last n of them; None: n.
        """
        finished = tf.reshape(
            tf.convert_to_tensor(finished, tf.float32), [-1, 2]
        )
        given = tf.shape(finished, out_type=tf.int64)[0]
        total = given if count is None else tf.cast(count, tf.int64)
        # Of more than `window` episodes, the last ones win.
        kept = tf.minimum(given, self._window)
        slots = (self.episodes + total - kept + tf.range(kept)) % self._window
        self._finished.scatter_nd_update(
            slots[:, None], finished[given - kept :]
        )
        self.episodes.assign_add(total)

    def means(self) -> tf.Tensor:
        """[mean return, mean length] of the last finished episodes."""
        stored = tf.minimum(self.episodes, self._window)
        return tf.reduce_mean(self._finished[:stored], axis=0)

    def logs(self) -> Dict[str, float]:
        """The statistics as Python floats, for the loop's logs.

        Returns:
          "episode_return_mean" and "episode_length_mean" (NaN before the
          first episode ends) and "episodes", the number finished so far.
        """
        episodes = int(self.episodes.numpy())
        if episodes == 0:
            return_mean = length_mean = math.nan
        else:
            means = self.means().numpy()
            return_mean, length_mean = float(means[0]), float(means[1])
        return {
            "episode_return_mean": return_mean,
            "episode_length_mean": length_mean,
            "episodes": float(episodes),
        }

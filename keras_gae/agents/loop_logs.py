"""The collect-and-fit loop's logs: keys, progress line, TensorBoard.

`LOOP_LOG_KEYS` are the keys of the per-iteration logs besides the model's
metrics (`keras_gae.agents.training`, "Logs").

Contributed logs. A callback may add values to an iteration's logs by
defining the hook

    def iteration_logs(self, iteration: int, logs: dict) -> dict | None

(`iteration` is the 0-based index `on_epoch_end` gets; `logs` a copy of
the loop's logs so far). After each iteration's training, the loop calls
the hook of every callback that has one, in the order of `callbacks`, and
adds the returned keys to the logs before the progress line, the returned
`History` and any callback's `on_epoch_end` see them, so the order of
the callbacks does not matter. A returned key that the logs already hold
is an error. `keras_gae.agents.EvaluationCallback` contributes
"eval_return_mean" and "eval_return_std" this way on the iterations it
evaluates (like Keras' `val_*` logs with `validation_freq`, a key is in
the logs, and in `History`, only on those iterations).

`EnvStepTensorBoard` is a Keras callback that writes those logs once per
iteration, with the environment-step counter as the step (the x axis), in
groups as stable-baselines3 and RL Zoo users expect:

* `rollout/`: episode_return_mean, episode_length_mean, episodes;
* `eval/`: the keys that start with "eval_", without that prefix
  (`eval/return_mean`, `eval/return_std` from `EvaluationCallback`);
* `train/`: the model's metrics (loss, policy_loss, value_loss, entropy,
  approx_kl, clip_fraction, explained_variance, ...), learning_rate, and
  any other contributed key;
* `time/`: steps_per_second, collect_seconds, convert_seconds,
  fit_seconds, iteration.

A non-finite value (the return mean before the first episode ends) is not
written. `read_scalars(log_dir)` reads the scalars back, e.g. for a plot.

Progress. `OnPolicyTrainer.run(verbose=1)` shows a progress bar over
environment steps (`PROGBAR_KEYS`), `verbose=2` one `summary_line` per
iteration; both show "eval_return_mean" when an iteration has it. When
the loop stops before its budget, or trains no iteration because the
episode statistics (a restored run's included) already meet
`target_return`, one `stop_line` says why.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Mapping
from typing import Dict
from typing import List
from typing import Optional
from typing import Tuple

import keras
import numpy as np
import tensorflow as tf

# Keys of the per-iteration logs besides the model's training metrics.
LOOP_LOG_KEYS = (
    "episode_return_mean",
    "episode_length_mean",
    "episodes",
    "env_steps",
    "iteration",
    "steps_per_second",
    "collect_seconds",
    "convert_seconds",
    "fit_seconds",
    "learning_rate",
)
# What the progress bar shows (each when the iteration's logs have it).
PROGBAR_KEYS = (
    "episode_return_mean",
    "eval_return_mean",
    "loss",
    "approx_kl",
    "steps_per_second",
)
ROLLOUT_KEYS = ("episode_return_mean", "episode_length_mean", "episodes")
# Keys with this prefix go to TensorBoard's `eval/` group, without it.
EVAL_PREFIX = "eval_"
# The method through which a callback contributes logs (module docstring).
CONTRIBUTION_HOOK = "iteration_logs"
TIME_KEYS = (
    "steps_per_second",
    "collect_seconds",
    "convert_seconds",
    "fit_seconds",
    "iteration",
)
# The x axis, not a scalar of its own.
STEP_KEY = "env_steps"


def callback_list(
    callbacks: Optional[list],
    model: keras.Model,
    *,
    verbose: int,
    total_env_steps: int,
) -> Tuple[keras.callbacks.CallbackList, keras.callbacks.History]:
    """The loop's `CallbackList` and the `History` it returns.

    A `History` among `callbacks` is used; otherwise a new one goes first,
    so that it records the loop's logs as they are, before a callback
    edits them in place.
    """
    callbacks = list(callbacks or [])
    history = next(
        (c for c in callbacks if isinstance(c, keras.callbacks.History)),
        None,
    )
    if history is None:
        history = keras.callbacks.History()
        callbacks.insert(0, history)
    return (
        keras.callbacks.CallbackList(
            callbacks,
            model=model,
            verbose=verbose,
            total_env_steps=total_env_steps,
        ),
        history,
    )


def contributed_logs(callbacks: list, iteration: int, logs: dict) -> dict:
    """The logs that `callbacks` contribute to an iteration's `logs`.

    Calls `iteration_logs(iteration, logs)` (module docstring) on every
    callback that defines it, in order; each sees the logs with the
    earlier contributions.

    Returns:
      `logs` with the contributed keys added (a new dict).

    Raises:
      ValueError: a contribution names a key the logs already hold.
      TypeError: a hook returned something other than a dict or None.
    """
    logs = dict(logs)
    for callback in callbacks:
        hook = getattr(callback, CONTRIBUTION_HOOK, None)
        if hook is None:
            continue
        added = hook(iteration, dict(logs))
        if added is None:
            continue
        if not isinstance(added, Mapping):
            raise TypeError(
                f"`{type(callback).__name__}.{CONTRIBUTION_HOOK}` must "
                "return a dict of new log values or None. "
                f"Received: {CONTRIBUTION_HOOK}={added!r}"
            )
        clashes = sorted(set(added) & set(logs))
        if clashes:
            raise ValueError(
                f"`{type(callback).__name__}.{CONTRIBUTION_HOOK}` returned "
                f"keys the iteration's logs already hold: {clashes}; a "
                "callback adds new keys only. "
                f"Received: {CONTRIBUTION_HOOK} keys={sorted(added)}"
            )
        logs.update(added)
    return logs


def learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The optimizer's current rate (a schedule's, at its iteration)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def summary_line(logs: Dict[str, float]) -> str:
    """One line of an iteration's logs (`verbose=2`)."""
    return (
        f"iteration {int(logs['iteration'])}: "
        f"env_steps={int(logs['env_steps'])} "
        f"episode_return_mean={logs['episode_return_mean']:.2f} "
        f"loss={logs['loss']:.4f} approx_kl={logs.get('approx_kl', 0.0):.4f} "
        f"steps_per_second={logs['steps_per_second']:.0f}"
        + "".join(
            f" {key}={logs[key]:.2f}"
            for key in ("eval_return_mean", "eval_return_std")
            if key in logs
        )
    )


class Progress:
    """What the loop prints: nothing, a progress bar or a line each.

    Args:
      verbose: 0 nothing; 1 a `keras.utils.Progbar` over environment
        steps showing `PROGBAR_KEYS`; 2 a `summary_line` per iteration.
      total_env_steps: the bar's target.
    """

    def __init__(self, verbose: int, total_env_steps: int):
        self.verbose = verbose
        self.total_env_steps = total_env_steps
        self._progbar = None

    def start(self, env_steps: int) -> None:
        """Shows the bar at the restored `env_steps` (verbose 1)."""
        if self.verbose == 1:
            self._progbar = keras.utils.Progbar(
                self.total_env_steps, stateful_metrics=PROGBAR_KEYS
            )
            self._progbar.update(min(env_steps, self.total_env_steps))

    def iteration(self, logs: Dict[str, float], *, last: bool) -> None:
        """Shows an iteration's logs; `last` ends the bar's line."""
        if self._progbar is not None:
            self._progbar.update(
                min(int(logs[STEP_KEY]), self.total_env_steps),
                values=[(k, logs[k]) for k in PROGBAR_KEYS if k in logs],
                finalize=last,
            )
        elif self.verbose == 2:
            print(summary_line(logs), flush=True)

    def say(self, line: str) -> None:
        """Prints `line` (verbose 1 and 2)."""
        if self.verbose:
            print(line, flush=True)


def stop_line(
    reason: str,
    logs: Dict[str, float],
    *,
    target_return: Optional[float] = None,
    return_window: int = 0,
) -> str:
    """The line that says why the loop stopped before its budget.

    Args:
      reason: "target" (the last `return_window` episodes' mean return
        reached `target_return`), "already" (the episode statistics,
        e.g. a restored run's, had reached it before the first iteration,
        so none ran) or "callback" (a callback set `model.stop_training`).
      logs: the last iteration's logs, or the episode statistics with
        "env_steps" and "iteration" before the first.
      target_return, return_window: the loop's.
    """
    done = (
        f"after {_count(logs['env_steps'], 'env step')} "
        f"({_count(logs['iteration'], 'iteration')})"
    )
    if reason == "callback":
        return f"Stopped by a callback (model.stop_training) {done}."
    target = f"target_return={target_return:g}"
    statistics = (
        f"(episode_return_mean={logs['episode_return_mean']:.2f} over the "
        f"last {_count(return_window, 'episode')})"
    )
    if reason == "already":
        return f"Not training: {target} already reached {statistics} {done}."
    return f"Stopped: reached {target} {statistics} {done}."


def _count(number: float, noun: str) -> str:
    number = int(number)
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summary_tag(key: str) -> str:
    """The TensorBoard tag of a loop log key (module docstring)."""
    if key in ROLLOUT_KEYS:
        return f"rollout/{key}"
    if key.startswith(EVAL_PREFIX):
        return f"eval/{key[len(EVAL_PREFIX) :]}"
    if key in TIME_KEYS:
        return f"time/{key}"
    return f"train/{key}"


class EnvStepTensorBoard(keras.callbacks.Callback):
    """Writes the loop's logs as grouped scalars at the env-step counter.

    Args:
      log_dir: directory of the event files (created).

    Example:

    ```python
    keras_gae.agents.train(model, env, rollout_length=128,
                           total_env_steps=100_000,
                           callbacks=[EnvStepTensorBoard("runs/x/train")])
    ```
    """

    def __init__(self, log_dir: str):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(
                f"`log_dir` must be a path (str). Received: log_dir={log_dir!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self._writer = None

    def on_train_begin(self, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if STEP_KEY not in logs:
            raise ValueError(
                "EnvStepTensorBoard needs the loop's logs, which hold "
                f"{STEP_KEY!r} (keras_gae.agents.train / OnPolicyTrainer), "
                f"not model.fit's. Received: logs keys={sorted(logs)}"
            )
        self.on_train_begin()
        step = int(logs[STEP_KEY])
        with self._writer.as_default(step=step):
            for key, value in sorted(logs.items()):
                if key == STEP_KEY:
                    continue
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    tf.summary.scalar(summary_tag(key), value)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_scalars(
    log_dir: str, tag: Optional[str] = None
) -> Dict[str, List[Tuple[int, float]]]:
    """Scalars of the event files in `log_dir`: tag -> [(step, value)].

    The files are read oldest first; a step written again (a resumed run
    repeating the iterations after its last checkpoint) keeps the newest
    value. Points are sorted by step.

    Args:
      log_dir: a directory of `events.out.tfevents.*` files.
      tag: only this tag, or None for all.
    """
    points: Dict[str, Dict[int, float]] = {}
    paths = glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
    for path in sorted(paths, key=os.path.getmtime):
        for event in _events(path):
            for value in event.summary.value:
                if tag is not None and value.tag != tag:
                    continue
                if value.HasField("tensor"):
                    number = float(np.asarray(tf.make_ndarray(value.tensor)))
                else:
                    number = float(value.simple_value)
                points.setdefault(value.tag, {})[int(event.step)] = number
    return {name: sorted(by_step.items()) for name, by_step in points.items()}


def _events(path: str):
    """The `Event` protos of one event file, in order.

    Read with `tf.data.TFRecordDataset` (`summary_iterator` uses the
    deprecated `tf_record_iterator`). A record still being written (a
    run writing the file now) ends the file.
    """
    records = iter(tf.data.TFRecordDataset(path))
    while True:
        try:
            record = next(records)
        except (StopIteration, tf.errors.DataLossError):
            return
        yield tf.compat.v1.Event.FromString(record.numpy())

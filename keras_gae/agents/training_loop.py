"""The collect-and-fit loop of `OnPolicyTrainer.run`.

`run_loop` runs a trainer's iterations (`train_iteration`) under Keras
callbacks, checkpointing every `checkpoint_interval` iterations and at the
end; it sees the trainer through its public methods only.

Iterations run while the environment-step counter (restored ones
included) is below `total_env_steps`. The loop stops early when
`target_return` is reached (`return_window` episodes finished and their
mean return >= target_return) or a callback sets `model.stop_training`.
When the episode statistics already reach `target_return` before the
first iteration (e.g. a rerun on the `root_dir` of a finished run), no
iteration runs.

After each iteration's training, callbacks that define
`iteration_logs(iteration, logs)` contribute their values to the
iteration's logs (`EvaluationCallback`'s "eval_return_mean" and
"eval_return_std"; `keras_gae.agents.loop_logs`), before the progress
line, the History and the callbacks' `on_epoch_end` see them.
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

import keras
import tensorflow as tf

from keras_gae.agents import loop_logs


def run_loop(
    trainer: Any,
    *,
    total_env_steps: int,
    callbacks: Optional[Sequence[keras.callbacks.Callback]],
    target_return: Optional[float],
    verbose: int,
    seed: int,
    checkpoint_interval: int,
    return_window: int,
) -> keras.callbacks.History:
    """`OnPolicyTrainer.run`, with its checked arguments and settings."""
    tf.random.set_seed(seed)
    callback_list, history = loop_logs.callback_list(
        callbacks,
        trainer.model,
        verbose=verbose,
        total_env_steps=total_env_steps,
    )
    progress = loop_logs.Progress(verbose, total_env_steps)
    logs: Dict[str, float] = {}
    saved_iteration = trainer.iteration
    trainer.model.stop_training = False
    callback_list.on_train_begin()
    before = dict(
        trainer.episode_statistics(),
        env_steps=float(trainer.env_steps),
        iteration=float(trainer.iteration),
    )
    stop = "already" if _reached(target_return, return_window, before) else None
    if stop is None:
        progress.start(trainer.env_steps)
    while stop is None and trainer.env_steps < total_env_steps:
        index = trainer.iteration
        callback_list.on_epoch_begin(index)
        logs = loop_logs.contributed_logs(
            callback_list.callbacks, index, trainer.train_iteration()
        )
        if trainer.iteration % checkpoint_interval == 0:
            trainer.save()
            saved_iteration = trainer.iteration
        callback_list.on_epoch_end(index, logs)
        if _reached(target_return, return_window, logs):
            stop = "target"
        elif trainer.model.stop_training:
            stop = "callback"
        progress.iteration(
            logs,
            last=stop is not None or trainer.env_steps >= total_env_steps,
        )
    if saved_iteration != trainer.iteration:
        trainer.save()
    if stop is not None:
        progress.say(
            loop_logs.stop_line(
                stop,
                before if stop == "already" else logs,
                target_return=target_return,
                return_window=return_window,
            )
        )
    callback_list.on_train_end(logs)
    return history


def _reached(
    target_return: Optional[float], return_window: int, logs: dict
) -> bool:
    """Whether `return_window` episodes finished at `target_return`."""
    if target_return is None:
        return False
    return (
        logs["episodes"] >= return_window
        and logs["episode_return_mean"] >= target_return
    )

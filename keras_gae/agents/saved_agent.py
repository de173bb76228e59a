"""A saved agent: the directory `OnPolicyAgent.save` writes and `load` reads.

`path/settings.json` holds the algorithm, the settings, the env id if
there is one, the seed and the number of rollout workers; `path/agent.*`
is a checkpoint of the loop's layout (`OnPolicyTrainer.checkpoint`: the
model, its optimizer, the counters). The directory is written beside
`path` and renamed into place (`saved_directory.save_directory`): a
failed or interrupted save leaves the previous one intact, and of saves
to one path at once the last one wins, whole. A load of a damaged save
(a truncated or missing file, settings that are not JSON or were edited
so that they no longer fit the checkpoint) is a ValueError naming the
file and what is wrong.
"""

from __future__ import annotations

import json
import os
from typing import Any
from typing import Dict

import gymnasium
import keras
import tensorflow as tf

from keras_gae._src import weights
from keras_gae.agents import checkpointing

SETTINGS_FILE = "settings.json"
CHECKPOINT_PREFIX = "agent"
# What settings.json holds besides "algorithm" (ppo when absent).
SAVED_KEYS = ("env_id", "env_kwargs", "seed", "settings")


def saved_file(name: str) -> bool:
    """Whether `name` is one of the files `OnPolicyAgent.save` writes."""
    return name in (SETTINGS_FILE, f"{CHECKPOINT_PREFIX}.index") or (
        name.startswith(f"{CHECKPOINT_PREFIX}.data-")
    )


def read_settings(settings_path: str, path: str) -> Dict[str, Any]:
    """settings.json as `save` wrote it, or a ValueError naming it."""
    try:
        with open(settings_path, "rb") as file:
            saved = json.loads(file.read().decode("utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(
            f"{settings_path} is not JSON ({type(error).__name__}: {error}): "
            "the save is damaged or was edited by hand. Save the agent "
            f"again, or fix the file. Received: path={path!r}"
        ) from None
    if not isinstance(saved, dict):
        problem = f"a JSON object is expected, not {type(saved).__name__}"
    else:
        missing = [key for key in SAVED_KEYS if key not in saved]
        problem = (
            f"it lacks {', '.join(map(repr, missing))}" if missing else None
        )
        if not missing and not isinstance(saved["settings"], dict):
            problem = "its 'settings' is not a JSON object"
        elif not missing and not isinstance(saved["env_kwargs"], dict):
            problem = "its 'env_kwargs' is not a JSON object"
    if problem:
        raise ValueError(
            f"{settings_path} is not a saved agent's settings: {problem}. "
            f"Received: path={path!r}"
        )
    return saved


def agent_settings(agent: Any) -> Dict[str, Any]:
    """What settings.json records of an `OnPolicyAgent` (`SAVED_KEYS`)."""
    return {
        "algorithm": agent.algorithm,
        "env_id": agent.saved_env_id,
        "env_kwargs": agent.env_kwargs,
        "seed": agent.seed,
        "num_workers": agent.num_workers,
        "settings": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in agent.settings.items()
        },
    }


def save_agent(
    path: str,
    settings: Dict[str, Any],
    model: keras.Model,
    checkpoint: tf.train.Checkpoint,
) -> str:
    """Writes `settings` and `checkpoint` under `path`, atomically.

    Raises:
      ValueError: `path` is a file, or a directory holding files that
        are not a save's; `model`'s weights hold NaN or Inf (an earlier
        save is not replaced).
    """
    non_finite = weights.non_finite_weights(model)
    if non_finite:
        raise ValueError(
            "Refusing to save an agent whose weights hold NaN or Inf: "
            f"{weights.describe(non_finite)}. Received: path={path!r}"
        )

    def write(directory: str) -> None:
        with open(os.path.join(directory, SETTINGS_FILE), "w") as file:
            json.dump(settings, file, indent=2)
        checkpoint.write(os.path.join(directory, CHECKPOINT_PREFIX))

    checkpointing.save_directory(path, write, owns=saved_file)
    return path


def load_agent(cls: Any, path: str, env: Any, overrides: Dict[str, Any]) -> Any:
    """The agent of class `cls` saved under `path` (`OnPolicyAgent.load`)."""
    settings_path = os.path.join(path, SETTINGS_FILE)
    if not os.path.isfile(settings_path):
        replaced = checkpointing.replaced_saves(path)
        hint = (
            f" A save interrupted while renaming left the previous one "
            f"at {replaced[-1]}; rename it to {path}."
            if replaced
            else ""
        )
        raise ValueError(
            f"`path` holds no {SETTINGS_FILE}; it must be a directory "
            f"written by {cls.__name__}.save.{hint} Received: "
            f"path={path!r}"
        )
    saved = read_settings(settings_path, path)
    algorithm = saved.get("algorithm", "ppo")
    if algorithm != cls.algorithm:
        raise ValueError(
            f"`path` holds a saved {algorithm.upper()} agent; load it "
            f"with its class. Received: path={path!r}"
        )
    if env is None:
        env = saved["env_id"]
    if env is None:
        raise ValueError(
            "This agent was saved from an environment instance or "
            "factory: pass it again, e.g. "
            f"{cls.__name__}.load(path, env=make_env). Received: env=None"
        )
    arguments = dict(saved["settings"])
    arguments.update(seed=saved["seed"], env_kwargs=saved["env_kwargs"])
    # Saves from before rollout workers have no "num_workers".
    arguments.update(num_workers=saved.get("num_workers"))
    arguments.update(overrides)
    given = " and the arguments given" if overrides else ""
    try:
        agent = cls(env, **arguments)
    except checkpointing.CheckpointError:
        raise  # root_dir's checkpoints: the error names them
    except (ValueError, TypeError, KeyError, gymnasium.error.Error) as e:
        raise ValueError(
            f"The settings in {settings_path}{given} cannot rebuild the "
            f"agent: {type(e).__name__}: {e}. Received: path={path!r}"
        ) from e
    checkpointing.restore_checkpoint(
        agent.trainer.checkpoint(),
        os.path.join(path, CHECKPOINT_PREFIX),
        settings={
            checkpointing.EPISODE_STATISTICS_KEY: (
                "num_envs",
                agent.num_envs,
            )
        },
        remedy=(
            f"The settings in {settings_path}{given} do not describe "
            "the agent that was saved (edited by hand, or another "
            "environment); load it with the settings it was saved "
            "with."
        ),
    )
    return agent

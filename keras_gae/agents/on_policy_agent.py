"""`OnPolicyAgent`: from a gymnasium env to a trained, exported policy.

The base of `keras_gae.agents.PPO` and `keras_gae.agents.A2C`, which only
say which model they train. An agent assembles the library's pieces:
`make_tf_environment` (the environments behind one batched tf-agents
environment), `build_networks` (MLPs sized from the spaces), the model
compiled with `keras_gae.optimizers.FusedAdam`, and `OnPolicyTrainer`,
whose collect-and-fit loop `learn` runs. Its settings come from the one
preset table, `keras_gae.presets`; any of them can be given as a keyword,
by keras_gae's name or stable-baselines3's.

The environment. An id, a factory or a gymnasium vector env is used as
given. A `gymnasium.Env` instance is a recipe: the preset's `num_envs`
copies are made from its `spec` (its id, keyword arguments and wrappers),
as from an id; with `num_envs=1`, or without a registered spec, the
instance itself is the one environment, and its rollout is the preset's
`num_envs * rollout_length` steps in minibatches of single steps, so an
iteration still takes the preset's gradient steps.

Saving. `save(path)` writes `path/settings.json` (the algorithm, the
settings, the env id if there is one, the seed, the number of rollout
workers) and a checkpoint of the model (networks, observation and reward
statistics), the optimizer and the loop's counters (with workers, their
per-worker state); `load(path, env=...)` rebuilds the agent and restores
them, so `learn` continues where it stopped. A save is written beside
`path` and renamed into place (`checkpointing.save_directory`): a failed
or interrupted save leaves the previous one intact, and of saves to one
path at once the last one wins, whole. A load of a damaged save (a
truncated or missing file, settings that are not JSON or were edited so
that they no longer fit the checkpoint) is a ValueError naming the file
and what is wrong. `export(path)` writes
`keras_gae.export.export_policy`'s SavedModel, which takes raw
observations (the normalization is inside the model).

Threads. An agent leaves TensorFlow's thread pools as they are (they are
process-wide). On a CPU the presets' small networks train faster with
`tf.config.threading.set_intra_op_parallelism_threads(1)`, called before
TensorFlow's first operation (before building the agent); importing
keras_gae runs none.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

import gymnasium
import keras
import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from keras_gae import export as export_lib
from keras_gae import presets
from keras_gae._src import weights
from keras_gae.agents import agent_workers
from keras_gae.agents import checkpointing
from keras_gae.agents import spaces
from keras_gae.agents.environments import make_tf_environment
from keras_gae.agents.evaluation import evaluate_policy
from keras_gae.agents.loop_logs import EnvStepTensorBoard
from keras_gae.agents.trainer import OnPolicyTrainer
from keras_gae.models import ActorCriticModel
from keras_gae.ops import _checks
from keras_gae.optimizers import FusedAdam

SETTINGS_FILE = "settings.json"
CHECKPOINT_PREFIX = "agent"
# What settings.json holds besides "algorithm" (ppo when absent).
SAVED_KEYS = ("env_id", "env_kwargs", "seed", "settings")
RETURN_WINDOW = 20

# The policy names an agent takes: keras_gae's, and stable-baselines3's
# (the first argument of its `PPO("MlpPolicy", env)`).
POLICIES = {
    "mlp": "mlp",
    "MlpPolicy": "mlp",
    "MultiInputPolicy": "mlp",
}


def _saved_file(name: str) -> bool:
    """Whether `name` is one of the files `OnPolicyAgent.save` writes."""
    return name in (SETTINGS_FILE, f"{CHECKPOINT_PREFIX}.index") or (
        name.startswith(f"{CHECKPOINT_PREFIX}.data-")
    )


def _read_settings(settings_path: str, path: str) -> Dict[str, Any]:
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


def _env_id(env: Any) -> Optional[str]:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def _split_policy_and_env(env: Any, positional: Sequence[Any]) -> tuple:
    """(policy, env) from `Agent(env)` or SB3's `Agent("MlpPolicy", env)`."""
    if not positional:
        return None, env
    if len(positional) == 1 and isinstance(env, str) and env in POLICIES:
        return env, positional[0]
    raise TypeError(
        "An agent takes one positional argument, the environment (or, as "
        "in stable-baselines3, a policy name and the environment: "
        f"PPO('MlpPolicy', env)). Received: {(env, *positional)!r}"
    )


class OnPolicyAgent:
    """An actor-critic agent on a gymnasium environment (PPO, A2C).

    Subclasses set `algorithm` ("ppo" or "a2c", the preset's) and
    `_make_model`'s model class.

    Args:
      env: a gymnasium id, a `gymnasium.Env` (see the module docstring), a
        factory returning one, or a gymnasium vector env. SB3's
        `PPO("MlpPolicy", env)` is accepted too.
      policy: "mlp" (MLPs over one encoder of the observation space;
        SB3's "MlpPolicy" and "MultiInputPolicy" name it too).
      seed: seeds the networks, sampling, shuffles and environments.
      root_dir: where the loop checkpoints (and resumes from) every
        `checkpoint_interval` iterations; None: no checkpoints (`save`).
      log_dir: TensorBoard scalars against environment steps
        (`EnvStepTensorBoard`); SB3's `tensorboard_log` is accepted.
      checkpoint_interval: iterations between checkpoints under root_dir.
      restart: start over even if `root_dir` holds checkpoints (moved to
        `checkpoints.old-<n>`, never overwritten).
      verbose: 0 silent, 1 progress bar, 2 a line per iteration.
      env_kwargs: keyword arguments of `gymnasium.make` (or the factory).
      num_workers: None: the environments run in this process. N >= 1:
        N rollout workers on Ray (`keras_gae.distributed`), each with
        the setting's `num_envs` environments (B = N * num_envs), made
        from `env` (an id, a spec or a picklable factory). It connects to
        the cluster at `ray_address` or `RAY_ADDRESS`, else starts a
        local one, which `close()` shuts down.
      ray_address: a Ray cluster's address ("HEAD:6379"), or None.
      worker_timeout_s: seconds a rollout worker may take for one round
        (its start included) before the run fails naming it.
      **settings: any key of `keras_gae.presets.config_for(env_id,
        algorithm)` (num_envs, rollout_length, epochs, num_minibatches,
        minibatch_mode, gamma, lambda_, clip_ratio (PPO), learning_rate,
        entropy_coef, value_coef, max_grad_norm, hidden_sizes, ...) or its
        stable-baselines3 name (`presets.SB3_NAMES`, and `batch_size`),
        replacing the preset's value.

    Raises:
      ValueError: an unknown setting (naming it, with the closest known
        names), a bad value (`keras_gae.presets.check_config`) or an
        unknown policy.
      TypeError: more than one environment argument.
    """

    algorithm = "ppo"

    def __init__(
        self,
        env: Any,
        *positional: Any,
        policy: Optional[str] = None,
        seed: int = 0,
        root_dir: Optional[str] = None,
        log_dir: Optional[str] = None,
        tensorboard_log: Optional[str] = None,
        checkpoint_interval: int = 1,
        restart: bool = False,
        verbose: int = 1,
        env_kwargs: Optional[Dict[str, Any]] = None,
        num_workers: Optional[int] = None,
        ray_address: Optional[str] = None,
        worker_timeout_s: float = 600.0,
        **settings: Any,
    ):
        sb3_policy, env = _split_policy_and_env(env, positional)
        if sb3_policy is not None and policy is not None:
            raise TypeError(
                "The policy was given twice (first argument and `policy`). "
                f"Received: policy={policy!r}"
            )
        policy = policy or sb3_policy or "mlp"
        if policy not in POLICIES:
            raise ValueError(
                f"`policy` must be one of {sorted(POLICIES)}. "
                f"Received: policy={policy!r}"
            )
        if log_dir is not None and tensorboard_log is not None:
            raise ValueError(
                "`tensorboard_log` is stable-baselines3's name for "
                "`log_dir`; pass one. "
                f"Received: log_dir={log_dir!r}, "
                f"tensorboard_log={tensorboard_log!r}"
            )
        self.policy = POLICIES[policy]
        self.seed = _checks.check_int(seed, "seed")
        self.verbose = verbose
        self.log_dir = log_dir if log_dir is not None else tensorboard_log
        self.env_id = _env_id(env)
        self.env_kwargs = dict(env_kwargs or {})
        config = presets.config_for(self.env_id, self.algorithm)
        resolved = presets.resolve_settings(settings, config)
        config.update(resolved)
        source, mode = self._environment_source(env, config, set(resolved))
        if "batch_size" in settings:
            presets.apply_batch_size(config, settings["batch_size"])
        # Every value, before anything is built or written.
        presets.check_config(config)
        config["hidden_sizes"] = tuple(config["hidden_sizes"])
        self.settings = config
        self.num_workers = num_workers
        if num_workers is None and ray_address is not None:
            raise ValueError(
                "`ray_address` is where rollout workers run; pass "
                "num_workers too. "
                f"Received: ray_address={ray_address!r}, num_workers=None"
            )
        if num_workers is not None:
            _checks.check_positive_int(num_workers, "num_workers")
            agent_workers.check_worker_source(source)
        keras.utils.set_random_seed(self.seed)
        # With workers, one local environment gives the specs.
        self.env = make_tf_environment(
            source,
            num_envs=config["num_envs"] if num_workers is None else 1,
            seed=self.seed,
            env_kwargs=self.env_kwargs,
            vectorization_mode=mode,
        )
        self.num_envs = config["num_envs"] * (num_workers or 1)
        # Evaluation episodes run on fresh copies made the same way; a
        # save records the environment only when it is an id.
        self._eval_env = source if mode is not None else env
        self._saved_env_id = env if isinstance(env, str) else None
        self.model = agent_workers.build_agent_model(
            type(self),
            config,
            self.env.observation_spec(),
            self.env.action_spec(),
            self.num_envs,
        )
        self.model.compile(
            optimizer=FusedAdam(config["learning_rate"]),
            steps_per_execution=self._steps_per_execution(),
            jit_compile=config["jit_compile"],
        )
        self._closing = contextlib.ExitStack()
        # The `keras_gae.distributed.RolloutWorkers`, or None.
        self.rollout_workers = None
        try:
            collection = self.env
            if num_workers is not None:
                collection = agent_workers.start_rollout_workers(
                    type(self),
                    config,
                    source,
                    num_workers=num_workers,
                    seed=self.seed,
                    env_kwargs=self.env_kwargs,
                    vectorization_mode=mode,
                    return_window=RETURN_WINDOW,
                    ray_address=ray_address,
                    worker_timeout_s=worker_timeout_s,
                    exit_stack=self._closing,
                )
                self.rollout_workers = collection
            self.trainer = OnPolicyTrainer(
                self.model,
                collection,
                rollout_length=config["rollout_length"],
                epochs=config["epochs"],
                num_minibatches=config["num_minibatches"],
                minibatch_mode=config["minibatch_mode"],
                root_dir=root_dir,
                seed=self.seed,
                return_window=RETURN_WINDOW,
                checkpoint_interval=checkpoint_interval,
                restart=restart,
            )
        except BaseException:
            self.close()
            raise

    def _environment_source(
        self, env: Any, config: Dict[str, Any], explicit: set
    ) -> tuple:
        """What `make_tf_environment` builds from, and its vectorization.

        Updates `config` where the environment decides (a vector env's
        size; one instance's rollout, module docstring).
        """
        if isinstance(env, gymnasium.vector.VectorEnv):
            config["num_envs"] = int(env.num_envs)
            return env, None
        if not isinstance(env, gymnasium.Env):
            return env, config["vectorization_mode"]
        spec = getattr(env, "spec", None)
        if config["num_envs"] > 1 and spec is not None:
            return spec, config["vectorization_mode"]
        if config["num_envs"] > 1:
            warnings.warn(
                f"{type(env).__name__} has no registered spec to make "
                f"copies from, so it is the one environment: its rollouts "
                f"are {config['num_envs'] * config['rollout_length']} steps "
                "long (the preset's num_envs * rollout_length). Pass an id "
                "or a factory for several copies, or num_envs=1 to silence "
                "this.",
                stacklevel=4,
            )
        if "rollout_length" not in explicit:
            config["rollout_length"] *= config["num_envs"]
        if "minibatch_mode" not in explicit:
            config["minibatch_mode"] = "steps"
        config["num_envs"] = 1
        return env, None

    def _steps_per_execution(self) -> int:
        """The setting, or None: an iteration's E * K steps in one call."""
        config = self.settings
        if config["steps_per_execution"] is None:
            return config["epochs"] * config["num_minibatches"]
        return config["steps_per_execution"]

    @staticmethod
    def _model_arguments(config: Dict[str, Any]) -> Dict[str, Any]:
        """The model's keyword arguments beyond its networks."""
        return dict(
            gamma=config["gamma"],
            lambda_=config["lambda_"],
            value_coef=config["value_coef"],
            entropy_coef=config["entropy_coef"],
            max_grad_norm=config["max_grad_norm"] or None,
            normalize_advantages=config["normalize_advantages"],
            gae_implementation=config["gae_implementation"],
        )

    @classmethod
    def _make_model(cls, config, actor, critic) -> ActorCriticModel:
        raise NotImplementedError

    def close(self) -> None:
        """Stops the rollout workers and a Ray cluster the agent started.

        Nothing to do without `num_workers`; an agent is a context
        manager that closes on exit.
        """
        self._closing.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # Training.

    @property
    def env_steps(self) -> int:
        """Environment steps collected, restored ones included."""
        return self.trainer.env_steps

    def learn(
        self,
        total_env_steps: Optional[int] = None,
        *,
        total_timesteps: Optional[int] = None,
        target_return: Any = "preset",
        callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
    ) -> keras.callbacks.History:
        """Trains for `total_env_steps` more environment steps.

        Args:
          total_env_steps: steps to add to those already done, >= 1; None:
            the preset's `total_env_steps`.
          total_timesteps: stable-baselines3's name for `total_env_steps`.
          target_return: stop once the mean return of the last 20 episodes
            reaches it; "preset": the environment's preset (None if none).
          callbacks: Keras callbacks for the loop (e.g.
            `EvaluationCallback`).

        Returns:
          The loop's `keras.callbacks.History` (one entry per iteration;
          returns in the environment's units).
        """
        if total_timesteps is not None:
            if total_env_steps is not None:
                raise ValueError(
                    "`total_timesteps` is stable-baselines3's name for "
                    "`total_env_steps`; pass one. "
                    f"Received: total_env_steps={total_env_steps!r}, "
                    f"total_timesteps={total_timesteps!r}"
                )
            total_env_steps = total_timesteps
        if total_env_steps is None:
            total_env_steps = self.settings["total_env_steps"]
        total_env_steps = _checks.check_positive_int(
            total_env_steps, "total_env_steps"
        )
        if target_return == "preset":
            target_return = self.settings["target_return"]
        callbacks = list(callbacks or [])
        if self.log_dir is not None:
            callbacks.append(EnvStepTensorBoard(self.log_dir))
        return self.trainer.run(
            total_env_steps=self.trainer.env_steps + total_env_steps,
            callbacks=callbacks,
            target_return=target_return,
            verbose=self.verbose,
        )

    # Using the policy.

    def predict(self, observation: Any, deterministic: bool = True) -> Any:
        """The policy's actions for observations, as numpy arrays.

        Args:
          observation: a batch `[N, ...]` (a nest allowed), or one
            observation as the environment returns it; float64 and
            integer arrays are cast to the observation spec's dtype.
            Checked as the environment's observations are: a wrong shape
            or dtype, NaN or Inf, or an id outside its space is an error
            naming the field.
          deterministic: the greedy action, or a sample.

        Returns:
          Actions `[N, ...]`, or one action for one observation, as the
          environment's `step` takes them.
        """
        spec = tensor_spec.to_nest_array_spec(self.env.observation_spec())
        first = np.asarray(tf.nest.flatten(observation)[0])
        single = first.ndim == len(tf.nest.flatten(spec)[0].shape)
        # The environment's own checks (shape, dtype, NaN and Inf, ids
        # outside the space), naming the field.
        observation = spaces.ObservationConverter(
            spec,
            repr(self.env_id or type(self).__name__),
            batch_shape=() if single else first.shape[:1],
            caller=f"{type(self).__name__}.predict",
        )(observation)
        if single:
            observation = tf.nest.map_structure(lambda x: x[None], observation)
        step = self.model.act(observation, deterministic=deterministic)
        action = self.model.policy_head.postprocess_action(step.action)
        action = action.numpy()
        return action[0] if single else action

    def evaluate(
        self,
        num_episodes: int = 10,
        *,
        seed: Optional[int] = 10_000,
        deterministic: bool = True,
    ) -> Dict[str, Any]:
        """`evaluate_policy` on fresh copies of the environment."""
        return evaluate_policy(
            self.model,
            self._eval_env,
            num_episodes=num_episodes,
            seed=seed,
            deterministic=deterministic,
        )

    def export(self, path: str) -> str:
        """The SavedModel of `keras_gae.export.export_policy` at `path`."""
        return export_lib.export_policy(
            self.model, path, observation_spec=self.env.observation_spec()
        )

    # Whole-agent save and load.

    def _checkpoint(self) -> tf.train.Checkpoint:
        trainer = self.trainer
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.model.optimizer,
            # The trainer's counters, so `learn` continues after a load.
            iteration=trainer._iteration,
            **trainer.counters(),
        )

    def save(self, path: str) -> str:
        """Writes the settings and a checkpoint under `path`; returns it.

        An agent made from an instance, a factory or a vector env is saved
        too; its `load` then needs the environment again (`env=`).

        The directory is written beside `path` and renamed into place,
        replacing an earlier save there: a failure or crash while saving
        leaves the earlier save intact, and concurrent saves to one path
        leave the last one whole.

        Raises:
          ValueError: `path` is a file, or a directory holding files that
            are not a save's (a save would replace them); the model's
            weights hold NaN or Inf (an earlier save is not replaced).
        """
        non_finite = weights.non_finite_weights(self.model)
        if non_finite:
            raise ValueError(
                "Refusing to save an agent whose weights hold NaN or Inf: "
                f"{weights.describe(non_finite)}. Received: path={path!r}"
            )
        settings = {
            "algorithm": self.algorithm,
            "env_id": self._saved_env_id,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            "num_workers": self.num_workers,
            "settings": {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.settings.items()
            },
        }
        checkpoint = self._checkpoint()

        def write(directory: str) -> None:
            with open(os.path.join(directory, SETTINGS_FILE), "w") as file:
                json.dump(settings, file, indent=2)
            checkpoint.write(os.path.join(directory, CHECKPOINT_PREFIX))

        checkpointing.save_directory(path, write, owns=_saved_file)
        return path

    @classmethod
    def load(cls, path: str, env: Any = None, **overrides: Any):
        """The agent `save` wrote under `path`, ready to `learn` on.

        Args:
          path: a directory written by `save`.
          env: the environment (id, instance, factory or vector env); None:
            the saved env id (an agent saved from an instance or a factory
            has none, so it needs `env`).
          **overrides: constructor arguments replacing the saved ones
            (e.g. `verbose=0`, `root_dir=...`). An agent saved with
            rollout workers is loaded with as many (`num_workers`); into
            one process with `num_workers=None, num_envs=B` (B: all the
            workers' environments).

        Raises:
          ValueError: `path` is not a save, or a damaged one: settings.json
            missing, not JSON or not a save's; settings that cannot
            rebuild the agent; a checkpoint file that is missing or
            truncated (`checkpointing.UnreadableCheckpointError`), or that
            does not fit the agent the settings describe (edited settings,
            another `env`: `checkpointing.CheckpointMismatchError`). Each
            names the file.
        """
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
        saved = _read_settings(settings_path, path)
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
            agent._checkpoint(),
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

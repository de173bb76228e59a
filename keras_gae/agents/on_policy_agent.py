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

Saving. `save(path)` writes the settings and a checkpoint of the model
(networks, observation and reward statistics), the optimizer and the
loop's counters; `load(path, env=...)` rebuilds the agent and restores
them, so `learn` continues where it stopped (`keras_gae.agents.
saved_agent`: atomic saves, clear errors for damaged ones).
`export(path)` writes `keras_gae.export.export_policy`'s SavedModel, which
takes raw observations (the normalization is inside the model).

Threads: an agent leaves TensorFlow's process-wide thread pools as they
are (docs/guide.md, "CPU threads").
"""

from __future__ import annotations

import contextlib
from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

import keras

from keras_gae import export as export_lib
from keras_gae import presets
from keras_gae.agents import agent_arguments
from keras_gae.agents import agent_workers
from keras_gae.agents import learning_rate_schedule
from keras_gae.agents import predictions
from keras_gae.agents import saved_agent
from keras_gae.agents.evaluation import evaluate_policy
from keras_gae.agents.loop_logs import EnvStepTensorBoard
from keras_gae.agents.tf_environment_factory import make_tf_environment
from keras_gae.agents.trainer import OnPolicyTrainer
from keras_gae.models import ActorCriticModel
from keras_gae.ops import _checks
from keras_gae.optimizers import FusedAdam

RETURN_WINDOW = 20


class OnPolicyAgent:
    """An actor-critic agent on a gymnasium environment (PPO, A2C).

    Subclasses set `algorithm` ("ppo" or "a2c", the preset's) and
    `make_model`'s model class.

    Args:
      env: a gymnasium id, a `gymnasium.Env` (see the module docstring), a
        factory returning one, or a gymnasium vector env. SB3's
        `PPO("MlpPolicy", env)` is accepted too.
      policy: "mlp" (MLPs over one encoder of the observation space;
        SB3's "MlpPolicy" and "MultiInputPolicy" name it too), or "lstm"
        or "gru" (a recurrent trunk, `build_recurrent_network`; SB3's
        "MlpLstmPolicy" names "lstm").
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
        sb3_policy, env = agent_arguments.split_policy_and_env(env, positional)
        self.policy = agent_arguments.policy_name(policy, sb3_policy)
        self.seed = _checks.check_int(seed, "seed")
        self.verbose = verbose
        self.log_dir = agent_arguments.sb3_alias(
            log_dir, tensorboard_log, "log_dir", "tensorboard_log"
        )
        self.env_id = agent_arguments.env_id(env)
        self.env_kwargs = dict(env_kwargs or {})
        config = presets.config_for(self.env_id, self.algorithm)
        resolved = presets.resolve_settings(settings, config)
        config.update(resolved)
        source, mode = agent_arguments.environment_source(
            env, config, set(resolved)
        )
        self.policy = agent_arguments.recurrent_policy(
            self.policy, config, set(resolved)
        )
        if "batch_size" in settings:
            presets.apply_batch_size(config, settings["batch_size"])
        # Every value, before anything is built or written.
        presets.check_config(config)
        config["hidden_sizes"] = tuple(config["hidden_sizes"])
        self.settings = config
        self.num_workers = num_workers
        agent_workers.check_worker_arguments(num_workers, ray_address, source)
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
        # Evaluation episodes run on fresh copies made the same way.
        self._eval_env = source if mode is not None else env
        # What a save records of the environment: only an id.
        self.saved_env_id = env if isinstance(env, str) else None
        self.model = agent_workers.build_agent_model(
            type(self),
            config,
            self.env.observation_spec(),
            self.env.action_spec(),
            self.num_envs,
        )
        rate = learning_rate_schedule.learning_rate(
            config, self.num_envs * config["rollout_length"]
        )
        self.model.compile(
            optimizer=FusedAdam(rate),
            steps_per_execution=agent_arguments.steps_per_execution(config),
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

    @classmethod
    def make_model(
        cls,
        config: Dict[str, Any],
        actor: Any = None,
        critic: Any = None,
        *,
        shared: Any = None,
    ) -> ActorCriticModel:
        """The algorithm's model of `actor` and `critic` (or `shared`).

        Each subclass returns its model (`PPOModel`, `A2CModel`) with the
        settings `config`; `agent_workers.build_agent_model` calls it, in
        the learner and in every rollout worker.
        """
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
        total_env_steps = agent_arguments.sb3_alias(
            total_env_steps,
            total_timesteps,
            "total_env_steps",
            "total_timesteps",
        )
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

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> Any:
        """The policy's actions for observations, as numpy arrays.

        `keras_gae.agents.predictions.predict`: a batch `[N, ...]` (or
        one observation as the environment returns it, float64 and
        integers cast to the spec) checked as the environment's
        observations are; the greedy action, or a sample. A recurrent
        policy also takes the `state` the previous call returned (None:
        zeros) and `[N]` bools `episode_start`, and returns
        `(actions, state)`, as sb3-contrib's `RecurrentPPO`.
        """
        return predictions.predict(
            self.model,
            self.env.observation_spec(),
            repr(self.env_id or type(self).__name__),
            f"{type(self).__name__}.predict",
            observation,
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
        )

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

    def save(self, path: str) -> str:
        """Writes the settings and a checkpoint under `path`; returns it.

        An agent made from an instance, a factory or a vector env is saved
        too; its `load` then needs the environment again (`env=`).

        A failure or crash while saving leaves an earlier save at `path`
        intact (`keras_gae.agents.saved_agent`).

        Raises:
          ValueError: `path` is a file, or a directory holding files that
            are not a save's (a save would replace them); the model's
            weights hold NaN or Inf (an earlier save is not replaced).
        """
        return saved_agent.save_agent(
            path,
            saved_agent.agent_settings(self),
            self.model,
            self.trainer.checkpoint(),
        )

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
        return saved_agent.load_agent(cls, path, env, overrides)

"""`PPO`: from a gymnasium env id to a trained, exported policy.

    agent = keras_gae.agents.PPO("CartPole-v1")
    agent.learn(total_env_steps=100_000)
    agent.export("policy")

`PPO` only assembles the library's pieces: `make_tf_environment` (a
gymnasium vector env behind one batched tf-agents environment),
`build_networks` (MLPs sized from the spaces, an `ObservationEncoder` for
nested, discrete and normalized observations, the policy head for the
action space), `PPOModel` compiled with Adam
(`keras_gae.optimizers.FusedAdam`), and `OnPolicyTrainer`, whose loop
`learn` runs. Settings default per environment
(`keras_gae.agents.presets`); any of them can be given as a keyword.

Saving. `save(path)` writes `path/settings.json` (the settings, the env id,
the seed and the step counters) and a checkpoint of the model (networks,
observation and reward statistics) and the optimizer; `PPO.load(path)`
rebuilds the agent from the settings and restores them, so `learn`
continues where it stopped. `export(path)` writes
`keras_gae.export.export_policy`'s SavedModel, which takes raw
observations (the normalization is inside the model).

Threads. `PPO` leaves TensorFlow's thread pools as they are (they are
process-wide). On a CPU the presets' small networks train faster with
`tf.config.threading.set_intra_op_parallelism_threads(1)`, called before
TensorFlow's first operation (before building the agent); importing
keras_gae runs none.
"""

from __future__ import annotations

import json
import os
from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

import gymnasium
import keras
import tensorflow as tf
from tf_agents.specs import tensor_spec

from keras_gae import export as export_lib
from keras_gae.agents import normalization
from keras_gae.agents import presets
from keras_gae.agents.environments import make_tf_environment
from keras_gae.agents.evaluation import evaluate_policy
from keras_gae.agents.networks import build_networks
from keras_gae.agents.trainer import OnPolicyTrainer
from keras_gae.models import PPOModel
from keras_gae.ops import _checks
from keras_gae.optimizers import FusedAdam

SETTINGS_FILE = "settings.json"
CHECKPOINT_PREFIX = "agent"
RETURN_WINDOW = 20


def _env_id(env: Any) -> Optional[str]:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


class PPO:
    """PPO on a gymnasium environment, with defaults from its spaces.

    Args:
      env: a gymnasium id, a `gymnasium.Env`, a factory returning one, or a
        gymnasium vector env (see `make_tf_environment`).
      seed: seeds the networks, sampling, shuffles and environments.
      root_dir: where `OnPolicyTrainer` checkpoints (and resumes from) each
        iteration; None: no checkpoints (use `save`).
      verbose: 0 silent, 1 progress bar, 2 a line per iteration.
      env_kwargs: keyword arguments of `gymnasium.make`.
      **settings: any key of `presets.DEFAULTS` (num_envs,
        rollout_length, epochs, num_minibatches, minibatch_mode, gamma,
        lambda_, clip_ratio, learning_rate, entropy_coef, value_coef,
        max_grad_norm, hidden_sizes, activation, action_bound,
        initial_log_std, normalize_observations, normalize_rewards,
        vectorization_mode, target_return, steps_per_execution (None:
        epochs * num_minibatches, an iteration's gradient steps in one
        call), jit_compile, gae_implementation), replacing the preset.

    Raises:
      ValueError: an unknown setting (naming it).
    """

    def __init__(
        self,
        env: Any,
        *,
        seed: int = 0,
        root_dir: Optional[str] = None,
        verbose: int = 1,
        env_kwargs: Optional[Dict[str, Any]] = None,
        **settings: Any,
    ):
        unknown = sorted(set(settings) - set(presets.DEFAULTS))
        if unknown:
            raise ValueError(
                f"Unknown PPO settings {unknown}; known: "
                f"{sorted(presets.DEFAULTS)}. Received: settings={settings!r}"
            )
        self.seed = _checks.check_int(seed, "seed")
        self.verbose = verbose
        self.env_id = _env_id(env)
        self.env_kwargs = dict(env_kwargs or {})
        config = presets.config_for(self.env_id)
        config.update(settings)
        if isinstance(env, gymnasium.vector.VectorEnv):
            config["num_envs"] = int(env.num_envs)
        if isinstance(env, gymnasium.Env):
            config["num_envs"] = 1
            if config["minibatch_mode"] == "rows":
                config["num_minibatches"] = 1
        config["hidden_sizes"] = tuple(int(h) for h in config["hidden_sizes"])
        self.settings = config
        mode = config["vectorization_mode"]
        if not isinstance(env, (str,)) and not callable(env):
            mode = None
        if isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv)):
            mode = None
        keras.utils.set_random_seed(self.seed)
        self.env = make_tf_environment(
            env,
            num_envs=config["num_envs"],
            seed=self.seed,
            env_kwargs=self.env_kwargs,
            vectorization_mode=mode,
        )
        self._eval_env = env if self.env_id is None else self.env_id
        self.model = self._build_model()
        self.model.compile(
            optimizer=FusedAdam(config["learning_rate"]),
            steps_per_execution=self._steps_per_execution(),
            jit_compile=config["jit_compile"],
        )
        self.trainer = OnPolicyTrainer(
            self.model,
            self.env,
            rollout_length=config["rollout_length"],
            epochs=config["epochs"],
            num_minibatches=config["num_minibatches"],
            minibatch_mode=config["minibatch_mode"],
            root_dir=root_dir,
            seed=self.seed,
            return_window=RETURN_WINDOW,
        )

    def _steps_per_execution(self) -> int:
        """The setting, or None: an iteration's E * K steps in one call."""
        config = self.settings
        if config["steps_per_execution"] is None:
            return config["epochs"] * config["num_minibatches"]
        return config["steps_per_execution"]

    def _build_model(self) -> PPOModel:
        config = self.settings
        observation_spec = self.env.observation_spec()
        actor, critic = build_networks(
            observation_spec,
            self.env.action_spec(),
            hidden_sizes=config["hidden_sizes"],
            activation=config["activation"],
            normalize_observations=config["normalize_observations"],
            action_bound=config["action_bound"],
            initial_log_std=config["initial_log_std"],
        )
        model = PPOModel(
            actor,
            critic,
            gamma=config["gamma"],
            lambda_=config["lambda_"],
            clip_ratio=config["clip_ratio"],
            value_coef=config["value_coef"],
            entropy_coef=config["entropy_coef"],
            max_grad_norm=config["max_grad_norm"] or None,
            gae_implementation=config["gae_implementation"],
        )
        if config["normalize_rewards"]:
            normalization.attach_reward_normalization(
                model,
                normalization.RewardNormalization(
                    int(self.env.batch_size),
                    gamma=config["gamma"],
                    name="reward_normalization",
                ),
            )
        model(tensor_spec.zero_spec_nest(observation_spec, outer_dims=(1,)))
        return model

    # Training.

    @property
    def env_steps(self) -> int:
        return self.trainer.env_steps

    def learn(
        self,
        total_env_steps: int,
        *,
        target_return: Any = "preset",
        callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
    ) -> keras.callbacks.History:
        """Trains for `total_env_steps` more environment steps.

        Args:
          total_env_steps: steps to add to those already done, >= 1.
          target_return: stop once the mean return of the last 20 episodes
            reaches it; "preset": the environment's preset (None if none).
          callbacks: Keras callbacks for the loop (e.g.
            `EvaluationCallback`).

        Returns:
          The loop's `keras.callbacks.History` (one entry per iteration;
          returns in the environment's units).
        """
        total_env_steps = _checks.check_positive_int(
            total_env_steps, "total_env_steps"
        )
        if target_return == "preset":
            target_return = self.settings["target_return"]
        return self.trainer.run(
            total_env_steps=self.trainer.env_steps + total_env_steps,
            callbacks=callbacks,
            target_return=target_return,
            verbose=self.verbose,
        )

    # Using the policy.

    def predict(self, observation: Any, deterministic: bool = True) -> Any:
        """Actions for a batch of observations `[N, ...]` (a nest allowed)."""
        observation = tf.nest.map_structure(
            lambda x, s: tf.cast(x, s.dtype),
            observation,
            self.env.observation_spec(),
        )
        action = self.model.act(observation, deterministic=deterministic)
        return self.model.policy_head.postprocess_action(action.action).numpy()

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
            env_steps=trainer._collector.env_steps,
            episode_statistics=trainer._collector.episode_statistics,
        )

    def save(self, path: str) -> str:
        """Writes the settings and a checkpoint under `path`; returns it."""
        if self.env_id is None:
            raise ValueError(
                "Saving needs an environment id to rebuild the agent; this "
                "agent was made from an instance or factory. Use "
                "`export` for the policy alone. Received: env_id=None"
            )
        os.makedirs(path, exist_ok=True)
        settings = {
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            "settings": {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.settings.items()
            },
        }
        with open(os.path.join(path, SETTINGS_FILE), "w") as file:
            json.dump(settings, file, indent=2)
        self._checkpoint().write(os.path.join(path, CHECKPOINT_PREFIX))
        return path

    @classmethod
    def load(cls, path: str, **overrides: Any) -> PPO:
        """The agent `save` wrote under `path`, ready to `learn` on.

        Args:
          path: a directory written by `save`.
          **overrides: `PPO` constructor arguments replacing the saved ones
            (e.g. `verbose=0`, `root_dir=...`).
        """
        settings_path = os.path.join(path, SETTINGS_FILE)
        if not os.path.isfile(settings_path):
            raise ValueError(
                f"`path` holds no {SETTINGS_FILE}; it must be a directory "
                f"written by PPO.save. Received: path={path!r}"
            )
        with open(settings_path) as file:
            saved = json.load(file)
        arguments = dict(saved["settings"])
        arguments.update(seed=saved["seed"], env_kwargs=saved["env_kwargs"])
        arguments.update(overrides)
        agent = cls(saved["env_id"], **arguments)
        agent._checkpoint().read(
            os.path.join(path, CHECKPOINT_PREFIX)
        ).assert_existing_objects_matched()
        return agent

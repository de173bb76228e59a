r"""PPO (or A2C) on a gymnasium environment with the keras_gae loop.

To run:

  .venv/bin/python examples/train_ppo.py --env=CartPole-v1 \
      --root_dir=runs/cartpole
  .venv/bin/python examples/train_ppo.py --env=Pendulum-v1 \
      --root_dir=runs/pendulum
  .venv/bin/python examples/train_ppo.py --env=CartPole-v1 --algorithm=a2c \
      --root_dir=runs/cartpole_a2c --learning_rate=7e-4
  tensorboard --logdir=runs/cartpole
  .venv/bin/python examples/evaluate_policy.py \
      --policy_dir=runs/cartpole/policy --env=CartPole-v1

Hyperparameters default per environment (`examples/configs.py`: CartPole-v1,
Acrobot-v1, Pendulum-v1; other ids get the generic defaults); a flag given on
the command line overrides its default.

The model. An actor and a critic, each an MLP (`--hidden_sizes`, tanh), as a
`keras_gae.models.PPOModel` (clipped surrogate) or `A2CModel`, compiled with
Adam. A Discrete action space gets a `CategoricalPolicyHead`, a Box one a
`GaussianPolicyHead` over the box (`--action_bound`: "clip" samples an
unbounded Gaussian and clips the action the environment receives, "tanh"
squashes it into the box).

The loop. `keras_gae.agents.OnPolicyTrainer`: each iteration collects
`--rollout_length` steps from each of `--num_envs` environments and runs
`--epochs` passes of `model.fit` over `--num_minibatches` minibatches of
whole environment rows (so num_minibatches must divide num_envs), GAE inside
the compiled train step. Training stops at `--total_env_steps` or once the
mean return of the last 20 episodes reaches `--target_return`. Rewards are
multiplied by `--reward_scale` for training only: printed and logged returns
are the environment's.

Outputs under `--root_dir`:

* checkpoints/: the model, the optimizer and the counters after every
  iteration; rerunning with the same root_dir resumes from the latest one
  (the environment-step counter continues; the environments start new
  episodes). An unreadable latest checkpoint (truncated file, unparsable
  `checkpoint` state file) falls back to the newest readable one with a
  warning; with none readable, or a checkpoint saved with another
  `--num_envs` or other networks, the run refuses to start and overwrites
  nothing; `--restart` starts over, moving the old checkpoints to
  checkpoints.old-<n>;
* train/: TensorBoard scalars, one point per iteration (the model's losses,
  approx_kl, explained_variance, episode_return_mean, steps_per_second,
  ...);
* policy/: `keras_gae.export.export_policy`'s SavedModel, which loads with
  `tf.saved_model.load` alone (signatures "action" (greedy), "sample_action",
  "distribution", "value"); `examples/evaluate_policy.py` runs it;
* tf_agents_policy/: the greedy policy saved by tf-agents' `PolicySaver`,
  loadable as a tf-agents policy:
  `py_tf_eager_policy.SavedModelPyTFEagerPolicy(path, time_step_spec,
  action_spec)`.
"""

import os
import sys

# keras_gae before tf-agents: keras_gae.agents imports tf-agents and
# tensorflow-probability with the Keras 2 they need inside, and leaves
# `keras` Keras 3 (docs/design.md, "Keras version").
import keras_gae.agents  # noqa: F401

if not __package__:
    # Run as `python examples/train_ppo.py`: make `examples` importable.
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402
from typing import Dict  # noqa: E402
from typing import Optional  # noqa: E402
from typing import Sequence  # noqa: E402

import gymnasium  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from tf_agents.environments import batched_py_environment  # noqa: E402
from tf_agents.environments import tf_py_environment  # noqa: E402
from tf_agents.policies import policy_saver  # noqa: E402

from examples import configs  # noqa: E402
from keras_gae import export  # noqa: E402
from keras_gae.agents import GymnasiumEnvironment  # noqa: E402
from keras_gae.agents import KerasPolicy  # noqa: E402
from keras_gae.agents import OnPolicyTrainer  # noqa: E402
from keras_gae.agents import make_tf_environment  # noqa: E402
from keras_gae.agents.checkpointing import CHECKPOINT_DIR  # noqa: E402
from keras_gae.layers import CategoricalPolicyHead  # noqa: E402
from keras_gae.layers import GaussianPolicyHead  # noqa: E402
from keras_gae.models import A2CModel  # noqa: E402
from keras_gae.models import PPOModel  # noqa: E402

POLICY_DIR = "policy"
TF_AGENTS_POLICY_DIR = "tf_agents_policy"
# TensorBoard's callback writes its training scalars to log_dir/train.
TENSORBOARD_DIR = "train"
RETURN_WINDOW = 20

_DEFAULTS = configs.DEFAULTS
_ENVS = ", ".join(configs.ENV_CONFIGS)

flags.DEFINE_string("env", "CartPole-v1", "gymnasium environment id.")
flags.DEFINE_enum(
    "algorithm", "ppo", list(configs.ALGORITHMS), "PPO (clip) or A2C."
)
flags.DEFINE_string(
    "root_dir",
    os.path.join("runs", "train_ppo"),
    "Checkpoints, TensorBoard logs and exported policies go here; a rerun "
    "on the same directory resumes.",
)
flags.DEFINE_bool(
    "restart",
    False,
    "Start a new run even if root_dir holds checkpoints; they are moved to "
    "root_dir/checkpoints.old-<n>, never overwritten.",
)
flags.DEFINE_integer("seed", 0, "Seed of the networks, sampling and envs.")
flags.DEFINE_bool(
    "jit_compile", False, "Compile the train step with XLA (model.compile)."
)
flags.DEFINE_integer(
    "checkpoint_interval", 1, "Iterations between checkpoints."
)
flags.DEFINE_integer(
    "verbose", 1, "0: quiet; 1: one progress line per iteration."
)
# The flags below default per environment (examples/configs.py); the
# defaults shown are the generic ones.
_PER_ENV = f" Default per environment ({_ENVS}) in examples/configs.py."
flags.DEFINE_integer(
    "num_envs", _DEFAULTS["num_envs"], "Environments B." + _PER_ENV
)
flags.DEFINE_integer(
    "rollout_length",
    _DEFAULTS["rollout_length"],
    "Steps T per environment per iteration." + _PER_ENV,
)
flags.DEFINE_integer(
    "epochs", _DEFAULTS["epochs"], "Passes over each rollout." + _PER_ENV
)
flags.DEFINE_integer(
    "num_minibatches",
    _DEFAULTS["num_minibatches"],
    "Minibatches per pass, of whole rows; must divide num_envs." + _PER_ENV,
)
flags.DEFINE_float("gamma", _DEFAULTS["gamma"], "Discount." + _PER_ENV)
flags.DEFINE_float("lambda_", _DEFAULTS["lambda_"], "GAE lambda." + _PER_ENV)
flags.DEFINE_float(
    "clip_ratio", _DEFAULTS["clip_ratio"], "PPO clip epsilon." + _PER_ENV
)
flags.DEFINE_float(
    "clip_ratio_low",
    _DEFAULTS["clip_ratio_low"],
    "PPO: the ratio's lower bound is 1 - clip_ratio_low (default clip_ratio).",
)
flags.DEFINE_float(
    "clip_ratio_high",
    _DEFAULTS["clip_ratio_high"],
    "PPO: the ratio's upper bound is 1 + clip_ratio_high (default clip_ratio).",
)
flags.DEFINE_float(
    "learning_rate", _DEFAULTS["learning_rate"], "Adam rate." + _PER_ENV
)
flags.DEFINE_float(
    "entropy_coef",
    _DEFAULTS["entropy_coef"],
    "Entropy bonus weight." + _PER_ENV,
)
flags.DEFINE_float(
    "value_coef", _DEFAULTS["value_coef"], "Value loss weight." + _PER_ENV
)
flags.DEFINE_float(
    "max_grad_norm",
    _DEFAULTS["max_grad_norm"],
    "Global gradient-norm clip; 0 turns it off." + _PER_ENV,
)
flags.DEFINE_list(
    "hidden_sizes",
    [str(size) for size in _DEFAULTS["hidden_sizes"]],
    "Widths of the actor's and the critic's tanh layers." + _PER_ENV,
)
flags.DEFINE_float(
    "reward_scale",
    _DEFAULTS["reward_scale"],
    "Rewards are multiplied by this for training (reported returns are "
    "not)." + _PER_ENV,
)
flags.DEFINE_enum(
    "action_bound",
    _DEFAULTS["action_bound"],
    ["clip", "tanh"],
    "Box actions: clip a Gaussian sample to the box, or squash it with "
    "tanh." + _PER_ENV,
)
flags.DEFINE_float(
    "initial_log_std",
    _DEFAULTS["initial_log_std"],
    "Box actions: initial log standard deviation of the Gaussian." + _PER_ENV,
)
flags.DEFINE_integer(
    "total_env_steps",
    _DEFAULTS["total_env_steps"],
    "Environment-step budget (resumed steps count)." + _PER_ENV,
)
flags.DEFINE_float(
    "target_return",
    _DEFAULTS["target_return"],
    "Stop once the mean return of the last 20 episodes reaches this."
    + _PER_ENV,
)
FLAGS = flags.FLAGS

# The train_eval arguments that default per environment.
CONFIG_KEYS = tuple(configs.DEFAULTS)


def make_environment(
    env_id: str, *, num_envs: int, seed: int, reward_scale: float = 1.0
) -> tf_py_environment.TFPyEnvironment:
    """`num_envs` seeded copies of `env_id` as one batched TF environment.

    With `reward_scale != 1` every copy's rewards are multiplied by it (a
    gymnasium `TransformReward` wrapper), so the episode returns the
    environment reports are scaled too.
    """
    if reward_scale == 1.0:
        return make_tf_environment(env_id, num_envs=num_envs, seed=seed)

    def scaled(index):
        env = gymnasium.wrappers.TransformReward(
            gymnasium.make(env_id), lambda reward: reward_scale * reward
        )
        return GymnasiumEnvironment(env, seed=seed + index)

    batched = batched_py_environment.BatchedPyEnvironment(
        [scaled(index) for index in range(num_envs)], multithreading=False
    )
    return tf_py_environment.TFPyEnvironment(batched)


def make_policy_head(action_spec: Any, *, bound: str, initial_log_std: float):
    """A Categorical head for integer actions, a Gaussian one for Box."""
    if action_spec.dtype.is_integer:
        if action_spec.shape.rank:
            raise ValueError(
                "Only a single discrete action is supported (Discrete, not "
                f"MultiDiscrete). Received: action_spec={action_spec!r}"
            )
        num_actions = int(action_spec.maximum) - int(action_spec.minimum) + 1
        return CategoricalPolicyHead(num_actions)
    if action_spec.shape.rank != 1:
        raise ValueError(
            "Box actions must be a vector [D]. "
            f"Received: action_spec={action_spec!r}"
        )
    action_dim = int(action_spec.shape[0])
    return GaussianPolicyHead(
        action_dim,
        initial_log_std=initial_log_std,
        bound=bound,
        low=np.broadcast_to(action_spec.minimum, [action_dim]),
        high=np.broadcast_to(action_spec.maximum, [action_dim]),
    )


def mlp(hidden_sizes: Sequence[int], output: keras.layers.Layer, name):
    return keras.Sequential(
        [keras.layers.Dense(size, activation="tanh") for size in hidden_sizes]
        + [output],
        name=name,
    )


def make_model(
    action_spec: Any,
    *,
    algorithm: str,
    hidden_sizes: Sequence[int],
    gamma: float,
    lambda_: float,
    clip_ratio: float,
    clip_ratio_low: Optional[float],
    clip_ratio_high: Optional[float],
    value_coef: float,
    entropy_coef: float,
    max_grad_norm: Optional[float],
    action_bound: str,
    initial_log_std: float,
):
    """An uncompiled PPOModel or A2CModel with MLP actor and critic."""
    head = make_policy_head(
        action_spec, bound=action_bound, initial_log_std=initial_log_std
    )
    common = dict(
        gamma=gamma,
        lambda_=lambda_,
        value_coef=value_coef,
        entropy_coef=entropy_coef,
        max_grad_norm=max_grad_norm or None,
    )
    actor = mlp(hidden_sizes, head, "actor")
    critic = mlp(hidden_sizes, keras.layers.Dense(1), "critic")
    if algorithm == "a2c":
        return A2CModel(actor, critic, **common)
    return PPOModel(
        actor,
        critic,
        clip_ratio=clip_ratio,
        clip_ratio_low=clip_ratio_low,
        clip_ratio_high=clip_ratio_high,
        **common,
    )


class ProgressCallback(keras.callbacks.Callback):
    """Puts returns back in the environment's units; prints a line.

    Runs first among the loop's callbacks: it divides "episode_return_mean"
    in the logs by the reward scale (as Keras' LearningRateScheduler adds
    "lr" to them), so TensorBoard and later callbacks see the environment's
    returns, and prints environment steps, steps per second and the return.
    """

    def __init__(self, reward_scale: float, total_env_steps: int, verbose):
        super().__init__()
        self.reward_scale = reward_scale
        self.total_env_steps = total_env_steps
        self.verbose = verbose
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["episode_return_mean"] /= self.reward_scale
        if not self.verbose:
            return
        print(
            f"iteration {int(logs['iteration'])}: env_steps "
            f"{int(logs['env_steps'])}/{self.total_env_steps}, "
            f"{logs['steps_per_second']:.0f} steps/s, episode return "
            f"{logs['episode_return_mean']:.1f} (last {RETURN_WINDOW} of "
            f"{int(logs['episodes'])} episodes), loss {logs['loss']:.3f}, "
            f"approx_kl {logs.get('approx_kl', math.nan):.4f}, "
            f"{time.perf_counter() - self._start:.0f} s",
            flush=True,
        )


def train_eval(
    root_dir: str,
    *,
    env_id: str = "CartPole-v1",
    algorithm: str = "ppo",
    seed: int = 0,
    jit_compile: bool = False,
    checkpoint_interval: int = 1,
    restart: bool = False,
    verbose: int = 1,
    **overrides: Any,
) -> Dict[str, Any]:
    """Trains, checkpoints, logs and exports; returns what it did.

    Args:
      root_dir: output directory (see the module docstring); a directory
        holding checkpoints is resumed.
      env_id: gymnasium environment id with a Discrete or Box action space.
      algorithm: "ppo" or "a2c".
      seed: seeds the networks' initial weights, TensorFlow's sampling and
        the environments (copy i gets seed + i).
      jit_compile: compile the train step with XLA.
      checkpoint_interval: iterations between checkpoints.
      restart: start over even if `root_dir` holds checkpoints (moved to
        `root_dir/checkpoints.old-<n>`, not overwritten).
      verbose: 0 quiet, 1 a line per iteration and a summary.
      **overrides: any of `configs.DEFAULTS`' keys (num_envs,
        rollout_length, epochs, num_minibatches, gamma, lambda_,
        clip_ratio, clip_ratio_low, clip_ratio_high, learning_rate,
        entropy_coef, value_coef, max_grad_norm, hidden_sizes,
        reward_scale, action_bound, initial_log_std, total_env_steps,
        target_return), replacing `configs.config_for(env_id, algorithm)`'s
        value.

    Returns:
      A dict: "config" (the settings used), "env_steps" and "iterations"
      (totals, resumed ones included), "episode_return_mean" (the last 20
      episodes, in the environment's units; NaN if none finished),
      "episodes", "wall_time" (seconds of this call), "history" (the loop's
      per-iteration logs of this call, returns in training units),
      "policy_dir", "tf_agents_policy_dir", "checkpoint_dir", "log_dir".

    Raises:
      ValueError: an unknown override or algorithm.
    """
    unknown = sorted(set(overrides) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown hyperparameters {unknown}; known: {CONFIG_KEYS}. "
            f"Received: overrides={overrides!r}"
        )
    config = configs.config_for(env_id, algorithm)
    config.update(overrides)
    start = time.perf_counter()
    if verbose:
        settings = ", ".join(f"{key}={value}" for key, value in config.items())
        print(f"{env_id} {algorithm}: {settings}", flush=True)

    keras.utils.set_random_seed(seed)
    env = make_environment(
        env_id,
        num_envs=config["num_envs"],
        seed=seed,
        reward_scale=config["reward_scale"],
    )
    model = make_model(
        env.action_spec(),
        algorithm=algorithm,
        hidden_sizes=[int(size) for size in config["hidden_sizes"]],
        gamma=config["gamma"],
        lambda_=config["lambda_"],
        clip_ratio=config["clip_ratio"],
        clip_ratio_low=config["clip_ratio_low"],
        clip_ratio_high=config["clip_ratio_high"],
        value_coef=config["value_coef"],
        entropy_coef=config["entropy_coef"],
        max_grad_norm=config["max_grad_norm"],
        action_bound=config["action_bound"],
        initial_log_std=config["initial_log_std"],
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        jit_compile=jit_compile,
    )
    trainer = OnPolicyTrainer(
        model,
        env,
        rollout_length=config["rollout_length"],
        epochs=config["epochs"],
        num_minibatches=config["num_minibatches"],
        root_dir=root_dir,
        seed=seed,
        return_window=RETURN_WINDOW,
        checkpoint_interval=checkpoint_interval,
        restart=restart,
    )
    if verbose and trainer.restored_checkpoint:
        print(
            f"Resumed from {trainer.restored_checkpoint}: "
            f"{trainer.env_steps} environment steps, "
            f"{trainer.iteration} iterations done.",
            flush=True,
        )
    scale = config["reward_scale"]
    target_return = config["target_return"]
    log_dir = root_dir
    history = trainer.run(
        total_env_steps=config["total_env_steps"],
        callbacks=[
            ProgressCallback(scale, config["total_env_steps"], verbose),
            keras.callbacks.TensorBoard(
                log_dir=log_dir, write_graph=False, profile_batch=0
            ),
        ],
        target_return=None if target_return is None else target_return * scale,
        verbose=0,
    )
    statistics = trainer.episode_statistics()
    episode_return = statistics["episode_return_mean"] / scale

    policy_dir = export.export_policy(
        model,
        os.path.join(root_dir, POLICY_DIR),
        observation_spec=env.observation_spec(),
    )
    greedy_policy = KerasPolicy(
        model, env.time_step_spec(), env.action_spec(), greedy=True
    )
    saver = policy_saver.PolicySaver(
        greedy_policy,
        batch_size=None,
        train_step=tf.Variable(trainer.env_steps, dtype=tf.int64),
    )
    tf_agents_policy_dir = os.path.join(root_dir, TF_AGENTS_POLICY_DIR)
    with warnings.catch_warnings():
        # The saved distribution specs name tfp types, which a loader with
        # tf-agents (hence tensorflow-probability) imported has registered.
        warnings.filterwarnings(
            "ignore", message="Encoding a StructuredValue with type tfp"
        )
        saver.save(tf_agents_policy_dir)
    wall_time = time.perf_counter() - start
    checkpoint_dir = os.path.join(root_dir, CHECKPOINT_DIR)
    if verbose:
        reached = (
            target_return is not None
            and statistics["episodes"] >= RETURN_WINDOW
            and episode_return >= target_return
        )
        print(
            f"{env_id} {algorithm}: mean return {episode_return:.1f} over the "
            f"last {RETURN_WINDOW} episodes after {trainer.env_steps} "
            f"environment steps ({trainer.iteration} iterations), "
            f"{wall_time:.1f} s"
            + (f"; target {target_return} reached" if reached else ""),
            flush=True,
        )
        print(f"Checkpoints:      {checkpoint_dir}")
        print(f"TensorBoard logs: {os.path.join(log_dir, TENSORBOARD_DIR)}")
        print(f"Exported policy:  {policy_dir}")
        print(f"tf-agents policy: {tf_agents_policy_dir}", flush=True)
    return {
        "config": config,
        "env_steps": trainer.env_steps,
        "iterations": trainer.iteration,
        "episode_return_mean": episode_return,
        "episodes": int(statistics["episodes"]),
        "wall_time": wall_time,
        "history": history.history,
        "policy_dir": policy_dir,
        "tf_agents_policy_dir": tf_agents_policy_dir,
        "checkpoint_dir": checkpoint_dir,
        "log_dir": os.path.join(log_dir, TENSORBOARD_DIR),
    }


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # TensorFlow's and tf-agents' notes about saving (renamed
        # signature inputs) would bury the progress lines.
        logging.set_verbosity(logging.ERROR)
    try:
        overrides = {}
        for name in CONFIG_KEYS:
            if FLAGS[name].present:
                value = FLAGS[name].value
                if name == "hidden_sizes":
                    value = _layer_sizes(value)
                overrides[name] = value
        train_eval(
            FLAGS.root_dir,
            env_id=FLAGS.env,
            algorithm=FLAGS.algorithm,
            seed=FLAGS.seed,
            jit_compile=FLAGS.jit_compile,
            checkpoint_interval=FLAGS.checkpoint_interval,
            restart=FLAGS.restart,
            verbose=FLAGS.verbose,
            **overrides,
        )
    except ValueError as error:
        # Bad settings (and checkpoints this run cannot resume) are
        # reported in one line, not a traceback.
        print(f"train_ppo.py: error: {error}", file=sys.stderr)
        return 2
    return 0


def _layer_sizes(values: Sequence[str]) -> tuple:
    """--hidden_sizes as positive ints, or a ValueError naming the flag."""
    try:
        sizes = tuple(int(value) for value in values)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise ValueError(
            "--hidden_sizes must be a comma-separated list of positive "
            f"ints, e.g. 64,64. Received: hidden_sizes={','.join(values)!r}"
        )
    return sizes


if __name__ == "__main__":
    app.run(main)

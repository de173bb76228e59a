r"""PPO (or A2C) on a gymnasium environment with the keras_gae loop.

To run:

  .venv/bin/python examples/train_ppo.py --env=CartPole-v1
  .venv/bin/python examples/train_ppo.py --env=Pendulum-v1
  .venv/bin/python examples/train_ppo.py --env=CartPole-v1 --algorithm=a2c \
      --learning_rate=7e-4
  tensorboard --logdir=runs/train_ppo
  .venv/bin/python examples/evaluate_policy.py \
      --policy_dir=runs/train_ppo/CartPole-v1/policy --env=CartPole-v1

Each environment gets its own output directory unless `--root_dir` is
given: runs/train_ppo/<env id> (runs/train_ppo/<env id>-a2c for A2C), so a
run of another environment never resumes the first one's checkpoints.

Hyperparameters default per environment (`examples/configs.py`: CartPole-v1,
Acrobot-v1, Pendulum-v1; other ids get the generic defaults); a flag given on
the command line overrides its default. `--help` shows the defaults of the
`--env` (and `--algorithm`) on the same command line, CartPole-v1 PPO's
without one (`train_ppo.py --env=Pendulum-v1 --help`), and each flag's help
lists its per-environment presets.

The model. `keras_gae.agents.build_networks`: an actor and a critic MLP
(`--hidden_sizes`, tanh) over one `ObservationEncoder` (Box observations
flattened, Discrete and MultiDiscrete ones one-hot, Dict and Tuple ones
concatenated), the actor ending in `keras_gae.agents.policy_head_for`'s
head for the action space (Discrete: categorical; MultiDiscrete: one
categorical per entry; MultiBinary: Bernoulli; Box: Gaussian, with
`--action_bound` "clip" clipping the sample the environment receives and
"tanh" squashing it into the box), as a `keras_gae.models.PPOModel`
(clipped surrogate) or `A2CModel`, compiled with Adam. The environments are
`keras_gae.agents.make_tf_environment(env, num_envs=...,
vectorization_mode="auto")`: the id's NumPy-vectorized implementation when
it registers one (CartPole-v1), else a gymnasium `SyncVectorEnv`.

The loop. `keras_gae.agents.OnPolicyTrainer`: each iteration collects
`--rollout_length` steps from each of `--num_envs` environments and runs
`--epochs` passes of `model.fit` over `--num_minibatches` minibatches of
whole environment rows (so num_minibatches must divide num_envs), GAE inside
the compiled train step, or with `--minibatch_mode=steps` of single steps
shuffled across environments and time, GAE once per rollout. The model is
compiled with `steps_per_execution = epochs * num_minibatches`, so an
iteration's gradient steps run in one call. Training stops at
`--total_env_steps` or once the mean return of the last 20 episodes
reaches `--target_return`. Rewards are multiplied by `--reward_scale` for
training only: printed and logged returns are the environment's.

Outputs under the root directory:

* checkpoints/: the model, the optimizer and the counters after every
  iteration; rerunning with the same root_dir resumes from the latest one
  (the environment-step counter continues; the environments start new
  episodes). An unreadable latest checkpoint (truncated file, unparsable
  `checkpoint` state file) falls back to the newest readable one with a
  warning; with none readable, or a checkpoint saved with another
  `--num_envs` or other networks, the run refuses to start and overwrites
  nothing; `--restart` starts over, moving the old checkpoints to
  checkpoints.old-<n>;
* train/: TensorBoard scalars, one point per iteration with environment
  steps as the x axis (`keras_gae.agents.loop_logs.EnvStepTensorBoard`):
  rollout/ (episode_return_mean, episode_length_mean, episodes), train/
  (loss, policy_loss, value_loss, entropy, approx_kl, clip_fraction,
  explained_variance, learning_rate), time/ (steps_per_second,
  collect_seconds, convert_seconds, fit_seconds, iteration);
* learning_curve.png: the mean return of the last 20 episodes against
  environment steps, resumed runs included (needs matplotlib);
* policy/: `keras_gae.export.export_policy`'s SavedModel, which loads with
  `tf.saved_model.load` alone (signatures "action" (greedy), "sample_action",
  "distribution", "value"); `examples/evaluate_policy.py` runs it;
* tf_agents_policy/: the greedy policy saved by tf-agents' `PolicySaver`,
  loadable as a tf-agents policy:
  `py_tf_eager_policy.SavedModelPyTFEagerPolicy(path, time_step_spec,
  action_spec)`.

Quiet start. TensorFlow's C++ logging is set to errors-off
(TF_CPP_MIN_LOG_LEVEL=3) before TensorFlow loads, and the start-up lines
its libraries print regardless (oneDNN, CUDA stubs) are filtered out of
standard error while it loads; any other text written then is passed on.
"""

import os
import sys

if not __package__:
    # Run as `python examples/train_ppo.py`: make `examples` importable.
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

from examples import quiet_start  # noqa: E402  (before TensorFlow)

with quiet_start.native_start_up_logs_filtered():
    # keras_gae before tf-agents: keras_gae.agents imports tf-agents and
    # tensorflow-probability with the Keras 2 they need inside, and leaves
    # `keras` Keras 3 (docs/design.md, "Keras version").
    import tensorflow as tf

    import keras_gae.agents  # noqa: F401

    # The devices now, so that the CUDA start-up lines come inside.
    tf.config.list_physical_devices()

import functools  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402
from typing import Dict  # noqa: E402
from typing import Optional  # noqa: E402
from typing import Sequence  # noqa: E402

import gymnasium  # noqa: E402
import keras  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from tf_agents.environments import tf_py_environment  # noqa: E402
from tf_agents.policies import policy_saver  # noqa: E402

from examples import configs  # noqa: E402
from keras_gae import export  # noqa: E402
from keras_gae.agents import KerasPolicy  # noqa: E402
from keras_gae.agents import OnPolicyTrainer  # noqa: E402
from keras_gae.agents import build_networks  # noqa: E402
from keras_gae.agents import make_tf_environment  # noqa: E402
from keras_gae.agents.checkpointing import CHECKPOINT_DIR  # noqa: E402
from keras_gae.agents.loop_logs import EnvStepTensorBoard  # noqa: E402
from keras_gae.agents.loop_logs import read_scalars  # noqa: E402
from keras_gae.models import A2CModel  # noqa: E402
from keras_gae.models import PPOModel  # noqa: E402
from keras_gae.optimizers import FusedAdam  # noqa: E402

POLICY_DIR = "policy"
TF_AGENTS_POLICY_DIR = "tf_agents_policy"
TENSORBOARD_DIR = "train"
LEARNING_CURVE = "learning_curve.png"
RETURN_WINDOW = 20
# The tag of the learning curve's points (EnvStepTensorBoard).
RETURN_TAG = "rollout/episode_return_mean"

_DEFAULTS = configs.DEFAULTS

flags.DEFINE_string("env", "CartPole-v1", "gymnasium environment id.")
flags.DEFINE_enum(
    "algorithm", "ppo", list(configs.ALGORITHMS), "PPO (clip) or A2C."
)
flags.DEFINE_string(
    "root_dir",
    None,
    "Checkpoints, TensorBoard logs, the learning curve and exported "
    "policies go here; a rerun on the same directory resumes. Default: "
    f"{configs.RUNS_DIR}/<env id> ({configs.RUNS_DIR}/<env id>-a2c for A2C).",
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


def _per_env(key: str, text: str) -> str:
    """`text`, then the presets of `key` (examples/configs.py)."""
    presets = configs.preset_help(key)
    return f"{text} {presets}" if presets else text


# The flags below default per environment (examples/configs.py): their
# defaults are set from --env and --algorithm before the command line is
# parsed (`set_defaults_for`), so --help shows the values a run uses.
flags.DEFINE_integer(
    "num_envs", _DEFAULTS["num_envs"], _per_env("num_envs", "Environments B.")
)
flags.DEFINE_integer(
    "rollout_length",
    _DEFAULTS["rollout_length"],
    _per_env("rollout_length", "Steps T per environment per iteration."),
)
flags.DEFINE_integer(
    "epochs",
    _DEFAULTS["epochs"],
    _per_env("epochs", "Passes over each rollout."),
)
flags.DEFINE_integer(
    "num_minibatches",
    _DEFAULTS["num_minibatches"],
    _per_env(
        "num_minibatches",
        "Minibatches per pass; of whole rows (--minibatch_mode=rows) "
        "they must divide num_envs.",
    ),
)
flags.DEFINE_enum(
    "minibatch_mode",
    _DEFAULTS["minibatch_mode"],
    ["rows", "steps"],
    _per_env(
        "minibatch_mode",
        "rows: minibatches of whole environment rows, GAE in the train "
        "step; steps: GAE once per rollout, minibatches of single steps "
        "shuffled across environments and time.",
    ),
)
flags.DEFINE_float("gamma", _DEFAULTS["gamma"], _per_env("gamma", "Discount."))
flags.DEFINE_float(
    "lambda_", _DEFAULTS["lambda_"], _per_env("lambda_", "GAE lambda.")
)
flags.DEFINE_float(
    "clip_ratio",
    _DEFAULTS["clip_ratio"],
    _per_env("clip_ratio", "PPO clip epsilon."),
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
    "learning_rate",
    _DEFAULTS["learning_rate"],
    _per_env("learning_rate", "Adam rate."),
)
flags.DEFINE_float(
    "entropy_coef",
    _DEFAULTS["entropy_coef"],
    _per_env("entropy_coef", "Entropy bonus weight."),
)
flags.DEFINE_float(
    "value_coef",
    _DEFAULTS["value_coef"],
    _per_env("value_coef", "Value loss weight."),
)
flags.DEFINE_float(
    "max_grad_norm",
    _DEFAULTS["max_grad_norm"],
    _per_env("max_grad_norm", "Global gradient-norm clip; 0 turns it off."),
)
flags.DEFINE_list(
    "hidden_sizes",
    [str(size) for size in _DEFAULTS["hidden_sizes"]],
    _per_env("hidden_sizes", "Widths of the actor's and critic's tanh layers."),
)
flags.DEFINE_float(
    "reward_scale",
    _DEFAULTS["reward_scale"],
    _per_env(
        "reward_scale",
        "Rewards are multiplied by this for training (reported returns are "
        "not).",
    ),
)
flags.DEFINE_enum(
    "action_bound",
    _DEFAULTS["action_bound"],
    ["clip", "tanh"],
    _per_env(
        "action_bound",
        "Box actions: clip a Gaussian sample to the box, or squash it with "
        "tanh.",
    ),
)
flags.DEFINE_float(
    "initial_log_std",
    _DEFAULTS["initial_log_std"],
    _per_env(
        "initial_log_std",
        "Box actions: initial log standard deviation of the Gaussian.",
    ),
)
flags.DEFINE_integer(
    "total_env_steps",
    _DEFAULTS["total_env_steps"],
    _per_env(
        "total_env_steps", "Environment-step budget (resumed steps count)."
    ),
)
flags.DEFINE_float(
    "target_return",
    _DEFAULTS["target_return"],
    _per_env(
        "target_return",
        f"Stop once the mean return of the last {RETURN_WINDOW} episodes "
        "reaches this.",
    ),
)
FLAGS = flags.FLAGS

# The train_eval arguments that default per environment.
CONFIG_KEYS = tuple(configs.DEFAULTS)


def flag_from_argv(argv: Sequence[str], name: str) -> Optional[str]:
    """The value of `--name=value` / `--name value` in `argv`, last wins.

    Read before absl parses the command line, so that `--help` can show
    the defaults of the environment it names. None when absent.
    """
    value = None
    args = list(argv[1:])
    for index, arg in enumerate(args):
        if arg == "--":
            break
        for prefix in (f"--{name}=", f"-{name}="):
            if arg.startswith(prefix):
                value = arg[len(prefix) :]
        if arg in (f"--{name}", f"-{name}") and index + 1 < len(args):
            value = args[index + 1]
    return value


def set_defaults_for(env_id: str, algorithm: str) -> None:
    """Sets the per-environment flags' defaults to `env_id`'s presets."""
    if algorithm not in configs.ALGORITHMS:
        algorithm = "ppo"  # absl reports the bad --algorithm itself.
    for key, value in configs.config_for(env_id, algorithm).items():
        if key == "hidden_sizes":
            value = [str(size) for size in value]
        FLAGS.set_default(key, value)
    FLAGS.set_default("root_dir", configs.default_root_dir(env_id, algorithm))


def make_environment(
    env_id: str, *, num_envs: int, seed: int, reward_scale: float = 1.0
) -> tf_py_environment.TFPyEnvironment:
    """`num_envs` seeded copies of `env_id` as one batched TF environment.

    `make_tf_environment(..., vectorization_mode="auto")`: the id's own
    vectorized implementation if it registers one, else a gymnasium
    `SyncVectorEnv`. With `reward_scale != 1` every copy's rewards are
    multiplied by it (a gymnasium `TransformReward` wrapper, always a
    `SyncVectorEnv`), so the episode returns the environment reports are
    scaled too.
    """
    env: Any = env_id
    if reward_scale != 1.0:
        env = functools.partial(_scaled_env, env_id, reward_scale)
    return make_tf_environment(
        env, num_envs=num_envs, seed=seed, vectorization_mode="auto"
    )


def _scaled_env(env_id: str, reward_scale: float) -> gymnasium.Env:
    return gymnasium.wrappers.TransformReward(
        gymnasium.make(env_id), lambda reward: reward_scale * reward
    )


def make_model(
    observation_spec: Any,
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
    """An uncompiled PPOModel or A2CModel over `build_networks`' MLPs.

    The actor and critic share one `ObservationEncoder` of
    `observation_spec` (any nest of Box, Discrete, MultiDiscrete and
    MultiBinary specs); the actor ends in `policy_head_for(action_spec)`.
    """
    actor, critic = build_networks(
        observation_spec,
        action_spec,
        hidden_sizes=hidden_sizes,
        action_bound=action_bound,
        initial_log_std=initial_log_std,
    )
    common = dict(
        gamma=gamma,
        lambda_=lambda_,
        value_coef=value_coef,
        entropy_coef=entropy_coef,
        max_grad_norm=max_grad_norm or None,
    )
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


def plot_learning_curve(
    log_dir: str, path: str, *, title: str
) -> Optional[str]:
    """Writes the mean return against environment steps as a PNG.

    The points are `RETURN_TAG`'s scalars of the TensorBoard files in
    `log_dir`, resumed runs included. Returns `path`, or None (with a
    note on stderr) when matplotlib is not installed.
    """
    import logging as python_logging

    # Its one-time "building the font cache" note on a fresh machine.
    python_logging.getLogger("matplotlib").setLevel(python_logging.ERROR)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        print(
            f"matplotlib is not installed: no {path} (pip install matplotlib).",
            file=sys.stderr,
        )
        return None
    points = read_scalars(log_dir, RETURN_TAG).get(RETURN_TAG, [])
    figure, axes = pyplot.subplots(figsize=(6.4, 4.0))
    if points:
        steps, returns = zip(*points)
        axes.plot(steps, returns, marker="." if len(points) < 30 else None)
    else:
        axes.text(0.5, 0.5, "no episode finished yet", ha="center", va="center")
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"mean return, last {RETURN_WINDOW} episodes")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


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
    root_dir: Optional[str] = None,
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
        holding checkpoints is resumed. None:
        `configs.default_root_dir(env_id, algorithm)`, one per environment.
      env_id: gymnasium environment id: Discrete, MultiDiscrete,
        MultiBinary or Box actions; Box, Discrete, MultiDiscrete,
        MultiBinary observations, or Dict and Tuple nests of them.
      algorithm: "ppo" or "a2c".
      seed: seeds the networks' initial weights, TensorFlow's sampling and
        the environments (copy i gets seed + i).
      jit_compile: compile the train step with XLA.
      checkpoint_interval: iterations between checkpoints.
      restart: start over even if `root_dir` holds checkpoints (moved to
        `root_dir/checkpoints.old-<n>`, not overwritten).
      verbose: 0 quiet, 1 a line per iteration and a summary.
      **overrides: any of `configs.DEFAULTS`' keys (num_envs,
        rollout_length, epochs, num_minibatches, minibatch_mode, gamma,
        lambda_, clip_ratio, clip_ratio_low, clip_ratio_high,
        learning_rate, entropy_coef, value_coef, max_grad_norm,
        hidden_sizes, reward_scale, action_bound, initial_log_std,
        total_env_steps, target_return), replacing
        `configs.config_for(env_id, algorithm)`'s value.

    Returns:
      A dict: "config" (the settings used), "env_steps" and "iterations"
      (totals, resumed ones included), "episode_return_mean" (the last 20
      episodes, in the environment's units; NaN if none finished),
      "episodes", "wall_time" (seconds of this call), "history" (the loop's
      per-iteration logs of this call, returns in training units),
      "policy_dir", "tf_agents_policy_dir", "checkpoint_dir", "log_dir"
      (TensorBoard files), "learning_curve" (the PNG's path; None without
      matplotlib), "root_dir".

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
    if root_dir is None:
        root_dir = configs.default_root_dir(env_id, algorithm)
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
        env.observation_spec(),
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
        optimizer=FusedAdam(config["learning_rate"]),
        jit_compile=jit_compile,
        # An iteration's gradient steps in one compiled call.
        steps_per_execution=config["epochs"] * config["num_minibatches"],
    )
    trainer = OnPolicyTrainer(
        model,
        env,
        rollout_length=config["rollout_length"],
        epochs=config["epochs"],
        num_minibatches=config["num_minibatches"],
        minibatch_mode=config["minibatch_mode"],
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
    log_dir = os.path.join(root_dir, TENSORBOARD_DIR)
    history = trainer.run(
        total_env_steps=config["total_env_steps"],
        callbacks=[
            ProgressCallback(scale, config["total_env_steps"], verbose),
            EnvStepTensorBoard(log_dir),
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
    learning_curve = plot_learning_curve(
        log_dir,
        os.path.join(root_dir, LEARNING_CURVE),
        title=f"{env_id} {algorithm}",
    )
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
        print(f"TensorBoard logs: {log_dir}")
        if learning_curve:
            print(f"Learning curve:   {learning_curve}")
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
        "log_dir": log_dir,
        "learning_curve": learning_curve,
        "root_dir": root_dir,
    }


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # TensorFlow's and tf-agents' notes about saving (renamed
        # signature inputs) would bury the progress lines.
        logging.set_verbosity(logging.ERROR)
        tf.get_logger().setLevel("ERROR")
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
    set_defaults_for(
        flag_from_argv(sys.argv, "env") or FLAGS["env"].default,
        flag_from_argv(sys.argv, "algorithm") or "ppo",
    )
    app.run(main)

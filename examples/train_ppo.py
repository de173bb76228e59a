r"""PPO (or A2C) on a gymnasium environment: a front of keras_gae.agents.

To run:

  .venv/bin/python examples/train_ppo.py --env=CartPole-v1
  .venv/bin/python examples/train_ppo.py --env=Pendulum-v1
  .venv/bin/python examples/train_ppo.py --env=CartPole-v1 --algorithm=a2c
  .venv/bin/python examples/train_ppo.py --env=CartPole-v1 --num_workers=2
  .venv/bin/python examples/train_ppo.py --env=Pendulum-v1 --help
  tensorboard --logdir=runs/train_ppo
  .venv/bin/python examples/evaluate_policy.py \
      --policy_dir=runs/train_ppo/CartPole-v1/policy --env=CartPole-v1

The binary is `keras_gae.agents.PPO` (or `A2C`) with flags: every setting
of the preset table, `keras_gae.presets`, is a flag whose default is the
`--env`'s preset (so `make demo` trains with the tuned CartPole-v1
settings); a flag given on the command line overrides it. `--help` shows
the values a run on the `--env` (and `--algorithm`) of the same command
line would use, and each flag's help lists its per-environment presets.

The flags are parsed, and the environment id made once with gymnasium,
before TensorFlow is imported: a typo in a flag or an environment that
cannot be made (unknown id, missing dependency) is one `error:` line and
exit status 2 within a second or two.

Each environment gets its own output directory unless `--root_dir` is
given: runs/train_ppo/<env id> (runs/train_ppo/<env id>-a2c for A2C), so a
run of another environment never resumes the first one's checkpoints.
Under it:

* checkpoints/: the model, the optimizer and the counters every
  `--checkpoint_interval` iterations (default 10) and when the run ends;
  a rerun resumes from the newest
  readable one (docs/guide.md, "Errors and failures", has the fallback
  rules; `--restart` starts over, moving the old ones aside);
* train/: TensorBoard scalars against environment steps (`rollout/`,
  `train/`, `time/`; `keras_gae.agents.EnvStepTensorBoard`);
* learning_curve.png: the mean return of the last 20 episodes against
  environment steps, resumed runs included;
* policy/: `keras_gae.export.export_policy`'s SavedModel, which loads with
  `tf.saved_model.load` alone; `examples/evaluate_policy.py` runs it;
* tf_agents_policy/: the greedy policy saved by tf-agents' `PolicySaver`.

Threads: the binary runs each TensorFlow operation on one thread
(`--intra_op_threads=1`, set before TensorFlow's first operation), which
trains the presets' small networks faster on a CPU; 0 keeps TensorFlow's
default. (The library itself leaves this process-wide setting alone.)

Rollout workers: `--num_workers=N` collects with N Ray actors, each
stepping `--num_envs` environments (B = N * num_envs), and trains in this
process (`keras_gae.distributed`; needs `pip install 'keras_gae[ray]'`). It
joins the cluster at `--ray_address` or `RAY_ADDRESS` if one is given, else
starts a local one for the run (docs/guide.md, "Rollout workers on Ray").

The run stops at `--total_env_steps` (resumed steps count) or once the
mean return of the last 20 episodes reaches `--target_return`; a rerun
whose checkpoint already reached it trains no further.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from typing import Any
from typing import Dict
from typing import Optional
from typing import Sequence

if not __package__:
    # Run as `python examples/train_ppo.py`: make `examples` importable.
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

from absl import flags  # noqa: E402

from examples import cli  # noqa: E402
from examples import quiet_start  # noqa: E402
from keras_gae import presets  # noqa: E402  (plain Python: no TensorFlow)

PROGRAM = "train_ppo.py"
POLICY_DIR = "policy"
TF_AGENTS_POLICY_DIR = "tf_agents_policy"
TENSORBOARD_DIR = "train"
LEARNING_CURVE = "learning_curve.png"
RETURN_WINDOW = 20
# The tag of the learning curve's points (EnvStepTensorBoard).
RETURN_TAG = "rollout/episode_return_mean"
# Runs without --root_dir go to RUNS_DIR/<env id>[-<algorithm>].
RUNS_DIR = os.path.join("runs", "train_ppo")

# Every setting of the preset table (A2C's are a subset).
SETTINGS = tuple(presets.DEFAULTS)

flags.DEFINE_string("env", "CartPole-v1", "gymnasium environment id.")
flags.DEFINE_enum(
    "algorithm", "ppo", list(presets.ALGORITHMS), "PPO (clip) or A2C."
)
flags.DEFINE_string(
    "root_dir",
    None,
    "Checkpoints, TensorBoard logs, the learning curve and exported "
    "policies go here; a rerun on the same directory resumes. Default: "
    f"{RUNS_DIR}/<env id> ({RUNS_DIR}/<env id>-a2c for A2C).",
)
flags.DEFINE_bool(
    "restart",
    False,
    "Start a new run even if root_dir holds checkpoints; they are moved to "
    "root_dir/checkpoints.old-<n>, never overwritten.",
)
flags.DEFINE_integer("seed", 0, "Seed of the networks, sampling and envs.")
flags.DEFINE_integer(
    "checkpoint_interval",
    10,
    "Iterations between checkpoints (and one when the run ends). Each save "
    "costs about as much as a fifth of a CartPole iteration; 1 loses the "
    "least to an interruption.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "num_workers",
    None,
    "Rollout workers on Ray (each with --num_envs environments); unset: "
    "the environments run in this process.",
    lower_bound=1,
)
flags.DEFINE_string(
    "ray_address",
    None,
    "With --num_workers: the Ray cluster to join (HEAD:6379); unset: "
    "RAY_ADDRESS if set, else a local cluster started for the run.",
)
flags.DEFINE_float(
    "worker_timeout_s",
    600.0,
    "With --num_workers: seconds a worker may take for one rollout (its "
    "start included) before the run stops naming it.",
    lower_bound=0.0,
)
flags.DEFINE_integer(
    "intra_op_threads",
    1,
    "Threads within one TensorFlow operation (0: TensorFlow's default, one "
    "per core). The presets' small networks train faster on a CPU with 1; "
    "independent operations still run side by side.",
    lower_bound=0,
)
flags.DEFINE_integer(
    "verbose",
    2,
    "0: quiet; 1: a progress bar; 2: one line per iteration.",
    lower_bound=0,
    upper_bound=2,
)

# What each setting's flag says; its default and presets are added.
_HELP = {
    "num_envs": "Environments B.",
    "rollout_length": "Steps T per environment per iteration.",
    "epochs": "Passes over each rollout.",
    "num_minibatches": "Minibatches per pass; of whole rows "
    "(--minibatch_mode=rows) they must divide num_envs.",
    "minibatch_mode": "rows: minibatches of whole environment rows, GAE in "
    "the train step; steps: GAE once per rollout, minibatches of single "
    "steps shuffled across environments and time.",
    "gamma": "Discount.",
    "lambda_": "GAE lambda.",
    "clip_ratio": "PPO clip epsilon.",
    "clip_ratio_low": "PPO: the ratio's lower bound is 1 - clip_ratio_low "
    "(default clip_ratio).",
    "clip_ratio_high": "PPO: the ratio's upper bound is 1 + clip_ratio_high "
    "(default clip_ratio).",
    "learning_rate": "Adam rate.",
    "learning_rate_schedule": "constant, or linear: decayed to 0 over "
    "total_env_steps.",
    "entropy_coef": "Entropy bonus weight.",
    "value_coef": "Value loss weight.",
    "normalize_advantages": "Normalize advantages per minibatch.",
    "max_grad_norm": "Global gradient-norm clip; 0 turns it off.",
    "hidden_sizes": "Widths of the actor's and critic's layers; none "
    "(--hidden_sizes=) puts the heads on the encoder's features.",
    "activation": "Activation of the hidden layers (a Keras name).",
    "recurrent_cell": "lstm or gru: a recurrent policy, the cell shared by "
    "actor and critic on the encoder (default: feed-forward MLPs).",
    "recurrent_units": "Size of the recurrent policy's cell.",
    "action_bound": "Box actions: clip a Gaussian sample to the box, or "
    "squash it with tanh.",
    "initial_log_std": "Box actions: initial log standard deviation.",
    "normalize_observations": "Running observation normalization inside "
    "the model (exported with it).",
    "normalize_rewards": "Scale rewards by a running std of the discounted "
    "return (training only; returns are reported in the env's units).",
    "vectorization_mode": "How the copies run: auto, sync, async, "
    "vector_entry_point (keras_gae.agents.make_tf_environment).",
    "total_env_steps": "Environment-step budget (resumed steps count).",
    "target_return": f"Stop once the mean return of the last {RETURN_WINDOW} "
    "episodes reaches this.",
    "steps_per_execution": "Gradient steps per compiled call (default: an "
    "iteration's epochs * num_minibatches).",
    "jit_compile": "Compile the train step with XLA.",
    "gae_implementation": "GAE kernel: auto, scan, xla or native.",
}


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _show_in_help(value: Any) -> str:
    """`_show(value)`, an empty list as "none" (in a flag it is "")."""
    if isinstance(value, (tuple, list)) and not value:
        return "none"
    return _show(value)


def preset_help(key: str) -> str:
    """The per-environment values of `key`, for its flag's help text.

    "" when every environment and algorithm uses the default; e.g.
    "Preset: CartPole-v1 0.004, ..., other envs 0.0003; --algorithm=a2c
    0.002."
    """
    default = presets.DEFAULTS[key]
    envs = [
        f"{env_id} {_show_in_help(config[key])}"
        for env_id, config in presets.ENV_CONFIGS.items()
        if key in config and config[key] != default
    ]
    if not envs and key not in presets.A2C_OVERRIDES:
        return ""
    others = "other envs " if envs else "every env "
    text = "Preset: " + ", ".join(envs + [others + _show_in_help(default)])
    if key in presets.A2C_OVERRIDES:
        a2c = presets.A2C_OVERRIDES[key]
        text += f"; --algorithm=a2c {_show_in_help(a2c)}"
    return text + "."


def _define_setting_flags() -> None:
    """One flag per preset setting (defaults set per env before parsing)."""
    for key in SETTINGS:
        default = presets.DEFAULTS[key]
        text = _HELP[key]
        text = f"{text} {preset_help(key)}".strip()
        if key in presets.OPTIONS:
            options = [o for o in presets.OPTIONS[key] if o is not None]
            flags.DEFINE_enum(key, default, options, text)
        elif key == "hidden_sizes":
            flags.DEFINE_list(key, _show(default), text)
        elif key in presets.BOOLS:
            flags.DEFINE_bool(key, default, text)
        elif key in presets.NUMBERS:
            flags.DEFINE_float(key, default, text)
            # absl parses "nan" and "inf"; no setting takes them.
            flags.register_validator(
                key,
                lambda value: value is None or math.isfinite(value),
                message=f"--{key} must be a finite number.",
            )
        elif key in presets.POSITIVE_INTS:
            flags.DEFINE_integer(key, default, text, lower_bound=1)
        else:
            flags.DEFINE_string(key, default, text)


_define_setting_flags()
FLAGS = flags.FLAGS


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


def default_root_dir(env_id: str, algorithm: str = "ppo") -> str:
    """`runs/train_ppo/<env_id>`, `-a2c` appended for A2C.

    Characters other than letters, digits, ".", "_" and "-" (the "/" of
    "ALE/Pong-v5", the ":" of "module:Env-v0") become "_".
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", env_id).strip("_") or "env"
    if algorithm != "ppo":
        name = f"{name}-{algorithm}"
    return os.path.join(RUNS_DIR, name)


def set_defaults_for(env_id: str, algorithm: str) -> None:
    """Sets the setting flags' defaults to `env_id`'s presets."""
    if algorithm not in presets.ALGORITHMS:
        algorithm = "ppo"  # absl reports the bad --algorithm itself.
    for key, value in presets.config_for(env_id, algorithm).items():
        FLAGS.set_default(key, _show(value) if key == "hidden_sizes" else value)
    FLAGS.set_default("root_dir", default_root_dir(env_id, algorithm))


def check_environment(env_id: str) -> None:
    """Makes `env_id` once with gymnasium (no TensorFlow); ValueError if not.

    Catches an unknown id and a missing dependency (Box2D, MuJoCo, ...)
    before anything is imported, trained or written.
    """
    import gymnasium

    try:
        gymnasium.make(env_id).close()
    except Exception as error:  # noqa: BLE001  (any reason: one line)
        reason = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"the environment cannot be made: {type(error).__name__}: "
            f"{reason.rstrip('.')}. Received: --env={env_id!r}"
        ) from None


def plot_learning_curve(log_dir: str, path: str, *, title: str) -> str:
    """Writes the mean return against environment steps as a PNG.

    The points are `RETURN_TAG`'s scalars of the TensorBoard files in
    `log_dir`, resumed runs included. Returns `path`.
    """
    import logging as python_logging

    import matplotlib

    from keras_gae.agents.loop_logs import read_scalars

    # Its one-time "building the font cache" note on a fresh machine.
    python_logging.getLogger("matplotlib").setLevel(python_logging.ERROR)
    matplotlib.use("Agg")
    from matplotlib import pyplot

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


def _save_tf_agents_policy(agent: Any, path: str) -> str:
    """The greedy policy as tf-agents' `PolicySaver` writes it."""
    import warnings

    import tensorflow as tf
    from tf_agents.policies import policy_saver

    from keras_gae.agents import KerasPolicy

    greedy = KerasPolicy(
        agent.model,
        agent.env.time_step_spec(),
        agent.env.action_spec(),
        greedy=True,
    )
    saver = policy_saver.PolicySaver(
        greedy,
        batch_size=None,
        train_step=tf.Variable(agent.env_steps, dtype=tf.int64),
    )
    with warnings.catch_warnings():
        # The saved distribution specs name tfp types, which a loader with
        # tf-agents (hence tensorflow-probability) imported has registered.
        warnings.filterwarnings(
            "ignore", message="Encoding a StructuredValue with type tfp"
        )
        saver.save(path)
    return path


def _learn(agent: Any, verbose: int) -> tuple:
    """Says what runs, trains the rest of the budget; (history, seconds)."""
    config = agent.settings
    if verbose:
        shown = ", ".join(
            f"{key}={_show(value)}" for key, value in config.items()
        )
        workers = (
            f" with {agent.num_workers} rollout workers"
            if agent.num_workers
            else ""
        )
        print(f"{agent.env_id} {agent.algorithm}{workers}: {shown}", flush=True)
        if agent.trainer.restored_checkpoint:
            print(
                f"Resumed from {agent.trainer.restored_checkpoint}: "
                f"{agent.env_steps} environment steps, "
                f"{agent.trainer.iteration} iterations done.",
                flush=True,
            )
    history: Dict[str, list] = {}
    remaining = config["total_env_steps"] - agent.env_steps
    learn_start = time.perf_counter()
    if remaining > 0:
        history = agent.learn(remaining).history
    return history, time.perf_counter() - learn_start


def train_eval(
    root_dir: Optional[str] = None,
    *,
    env_id: str = "CartPole-v1",
    algorithm: str = "ppo",
    seed: int = 0,
    checkpoint_interval: int = 1,
    restart: bool = False,
    verbose: int = 2,
    num_workers: Optional[int] = None,
    ray_address: Optional[str] = None,
    worker_timeout_s: float = 600.0,
    **settings: Any,
) -> Dict[str, Any]:
    """Trains, checkpoints, logs and exports with `keras_gae.agents`.

    Args:
      root_dir: output directory (module docstring); a directory holding
        checkpoints is resumed. None: `default_root_dir(env_id,
        algorithm)`, one per environment.
      env_id: a gymnasium id with spaces keras_gae supports.
      algorithm: "ppo" (`keras_gae.agents.PPO`) or "a2c" (`A2C`).
      seed: seeds the networks, sampling and environments (copy i gets
        seed + i).
      checkpoint_interval: iterations between checkpoints.
      restart: start over even if `root_dir` holds checkpoints (moved to
        `root_dir/checkpoints.old-<n>`, not overwritten).
      verbose: 0 quiet, 1 a progress bar, 2 a line per iteration; above 0
        the run ends with one summary line.
      num_workers: None, or N rollout workers on Ray, each with the
        setting's `num_envs` environments (`keras_gae.agents.PPO`'s).
      ray_address: the Ray cluster of the workers; None: RAY_ADDRESS,
        else a local cluster for the call.
      worker_timeout_s: seconds a worker may take for one rollout.
      **settings: settings of `keras_gae.presets` (or their
        stable-baselines3 names) replacing the environment's preset.

    Returns:
      A dict: "config" (the settings used), "env_steps" and "iterations"
      (totals, resumed ones included), "episode_return_mean" (the last 20
      episodes; NaN if none finished), "episodes", "wall_time" (seconds of
      this call), "train_seconds" (of them, the agent's `learn`),
      "history" (per-iteration logs of this call),
      "policy_dir", "tf_agents_policy_dir", "checkpoint_dir", "log_dir",
      "learning_curve", "root_dir".

    Raises:
      ValueError: an unknown setting or algorithm, or checkpoints this run
        cannot resume.
    """
    start = time.perf_counter()
    with quiet_start.native_start_up_logs_filtered():
        import keras_gae.agents

    agent_class = {"ppo": keras_gae.agents.PPO, "a2c": keras_gae.agents.A2C}
    if algorithm not in agent_class:
        raise ValueError(
            f"`algorithm` must be one of {presets.ALGORITHMS}. "
            f"Received: algorithm={algorithm!r}"
        )
    if root_dir is None:
        root_dir = default_root_dir(env_id, algorithm)
    log_dir = os.path.join(root_dir, TENSORBOARD_DIR)
    agent = agent_class[algorithm](
        env_id,
        seed=seed,
        root_dir=root_dir,
        log_dir=log_dir,
        checkpoint_interval=checkpoint_interval,
        restart=restart,
        verbose=verbose,
        num_workers=num_workers,
        ray_address=ray_address,
        worker_timeout_s=worker_timeout_s,
        **settings,
    )
    # The workers (and a local Ray cluster) stop once training is done.
    with agent:
        history, train_seconds = _learn(agent, verbose)
    config = agent.settings
    statistics = agent.trainer.episode_statistics()
    policy_dir = agent.export(os.path.join(root_dir, POLICY_DIR))
    tf_agents_policy_dir = _save_tf_agents_policy(
        agent, os.path.join(root_dir, TF_AGENTS_POLICY_DIR)
    )
    learning_curve = plot_learning_curve(
        log_dir,
        os.path.join(root_dir, LEARNING_CURVE),
        title=f"{env_id} {algorithm}",
    )
    checkpoint_dir = os.path.join(root_dir, "checkpoints")
    wall_time = time.perf_counter() - start
    episode_return = statistics["episode_return_mean"]
    if verbose:
        target = config["target_return"]
        reached = (
            target is not None
            and statistics["episodes"] >= RETURN_WINDOW
            and episode_return >= target
        )
        print(
            f"Wrote {checkpoint_dir}, {log_dir} (tensorboard --logdir="
            f"{root_dir}), {learning_curve}, {policy_dir}, "
            f"{tf_agents_policy_dir}",
            flush=True,
        )
        print(
            f"{env_id} {algorithm}: mean return {episode_return:.1f} over the "
            f"last {RETURN_WINDOW} episodes after {agent.env_steps} "
            f"environment steps ({agent.trainer.iteration} iterations), "
            f"{train_seconds:.1f} s training, {wall_time:.1f} s in all"
            + (f"; target {target:g} reached" if reached else ""),
            flush=True,
        )
    return {
        "config": config,
        "env_steps": agent.env_steps,
        "iterations": agent.trainer.iteration,
        "episode_return_mean": episode_return,
        "episodes": int(statistics["episodes"]),
        "wall_time": wall_time,
        "train_seconds": train_seconds,
        "history": history,
        "policy_dir": policy_dir,
        "tf_agents_policy_dir": tf_agents_policy_dir,
        "checkpoint_dir": checkpoint_dir,
        "log_dir": log_dir,
        "learning_curve": learning_curve,
        "root_dir": root_dir,
    }


def _layer_sizes(values: Sequence[str]) -> tuple:
    """--hidden_sizes as ints, or a ValueError naming the flag.

    Their values (positive; none: the heads on the encoder's features)
    are `presets.check_config`'s.
    """
    try:
        return tuple(int(value) for value in values)
    except ValueError:
        raise ValueError(
            "--hidden_sizes must be a comma-separated list of positive "
            f"ints, e.g. 64,64. Received: hidden_sizes={','.join(values)!r}"
        ) from None


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        cli.fail(PROGRAM, f"unexpected arguments {argv[1:]!r}")
    valid = presets.config_for(FLAGS.env, FLAGS.algorithm)
    settings = {}
    try:
        for name in SETTINGS:
            if not FLAGS[name].present:
                continue
            if name not in valid:
                raise ValueError(
                    f"--{name} is not a setting of --algorithm="
                    f"{FLAGS.algorithm}. Received: {name}={FLAGS[name].value}"
                )
            value = FLAGS[name].value
            settings[name] = (
                _layer_sizes(value) if name == "hidden_sizes" else value
            )
        if FLAGS.ray_address is not None and FLAGS.num_workers is None:
            raise ValueError(
                "--ray_address is where rollout workers run; give "
                "--num_workers too. "
                f"Received: ray_address={FLAGS.ray_address!r}"
            )
        if FLAGS.num_workers is not None and FLAGS.worker_timeout_s <= 0:
            raise ValueError(
                "--worker_timeout_s must be > 0. "
                f"Received: worker_timeout_s={FLAGS.worker_timeout_s}"
            )
        # The values as the agent will check them, before TensorFlow.
        presets.check_config(dict(valid, **settings))
        check_environment(FLAGS.env)
    except ValueError as error:
        cli.fail(PROGRAM, str(error))
    # Only now TensorFlow: the checks above answer within a second or two.
    with quiet_start.native_start_up_logs_filtered():
        import tensorflow as tf
        from absl import logging

        # Before TensorFlow's first operation, which fixes its pools.
        if FLAGS.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(
                FLAGS.intra_op_threads
            )
        # The devices now, so that the CUDA start-up lines come inside.
        tf.config.list_physical_devices()
    if not FLAGS["verbosity"].present:
        # TensorFlow's and tf-agents' notes about saving (renamed
        # signature inputs) would bury the progress lines.
        logging.set_verbosity(logging.ERROR)
        tf.get_logger().setLevel("ERROR")
    try:
        train_eval(
            FLAGS.root_dir,
            env_id=FLAGS.env,
            algorithm=FLAGS.algorithm,
            seed=FLAGS.seed,
            checkpoint_interval=FLAGS.checkpoint_interval,
            restart=FLAGS.restart,
            verbose=FLAGS.verbose,
            num_workers=FLAGS.num_workers,
            ray_address=FLAGS.ray_address,
            worker_timeout_s=FLAGS.worker_timeout_s,
            **settings,
        )
    except ValueError as error:
        # Bad settings (and checkpoints this run cannot resume) are
        # reported in one line, not a traceback.
        cli.fail(PROGRAM, str(error))
    return 0


if __name__ == "__main__":
    set_defaults_for(
        flag_from_argv(sys.argv, "env") or FLAGS["env"].default,
        flag_from_argv(sys.argv, "algorithm") or "ppo",
    )
    cli.run(main, program=PROGRAM)

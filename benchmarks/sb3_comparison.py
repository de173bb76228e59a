"""keras_gae's `PPO` against stable-baselines3's PPO, side by side.

To run (after `.venv/bin/pip install -r benchmarks/requirements.txt`):

  .venv/bin/python benchmarks/sb3_comparison.py                 # CartPole
  .venv/bin/python benchmarks/sb3_comparison.py --sides=binary,keras_gae,sb3 \\
      --intra_op_threads=0    # the example binary too, default threads
  .venv/bin/python benchmarks/sb3_comparison.py --env=HalfCheetah-v5 \\
      --total_env_steps=200000 --seeds=0 --target_return=none

Each run is its own process (`--side=... --seed=...`), seeds alternating
between the sides so that load drifts on a shared machine hit both. A run
prints its training time (`learn` alone, in the process) and its CPU
time (`time.process_time`, all threads; less sensitive than wall time to
other load on a shared machine), and the parent measures the whole
process (imports, set-up, tracing, training).

* keras_gae: `keras_gae.agents.PPO(env)` with its preset
  (`keras_gae.presets`), `learn(total_env_steps, target_return)`.
* binary: the command `examples/train_ppo.py --env=... --seed=...` (the
  `make demo` job, a front of `keras_gae.agents.PPO` with the same
  preset) at its own defaults, threads included (`--intra_op_threads`
  does not reach it); its training time is the agent's `learn`, which
  its summary line prints.
* SB3: `stable_baselines3.PPO("MlpPolicy", ...)` with RL Zoo's
  hyperparameters for CartPole-v1 (8 envs x 32 steps, 20 epochs of
  minibatches of 256, gamma 0.98, lambda 0.8, linearly decaying learning
  rate 1e-3 and clip range 0.2) and, for MuJoCo ids, SB3's defaults (the
  PPO paper's: 1 env x 2048 steps, 10 epochs of 64, Adam 3e-4) with
  `VecNormalize` (observations and rewards), on CPU. A callback stops it
  once the mean return of the last 20 finished episodes reaches the
  target, as keras_gae's loop does.

Both sides run each operation on one thread (`--intra_op_threads=1`):
SB3 with `torch.set_num_threads(1)`, as this benchmark always ran it, and
keras_gae with TensorFlow's `set_intra_op_parallelism_threads(1)`, whose
inter-op pool still runs independent operations (the actor and the
critic) side by side. `--intra_op_threads=0` leaves both libraries'
defaults (as many threads as cores).

Returns are the environment's (undiscounted) over the last 20 training
episodes.
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RL_ZOO_CARTPOLE = dict(
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
)


def run_keras_gae(env_id, seed, total, target, threads):
    import tensorflow as tf

    if threads:
        # Before TensorFlow's first operation, which fixes its thread pools.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    import keras_gae.agents as agents

    agent = agents.PPO(env_id, seed=seed, verbose=0)
    start, cpu = time.perf_counter(), time.process_time()
    history = agent.learn(total_env_steps=total, target_return=target)
    seconds = time.perf_counter() - start
    return {
        "train_seconds": seconds,
        "train_cpu_seconds": time.process_time() - cpu,
        "env_steps": agent.env_steps,
        "return": history.history["episode_return_mean"][-1],
    }


def run_sb3(env_id, seed, total, target, threads):
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    if threads:
        torch.set_num_threads(threads)

    class StopAt(BaseCallback):
        def _on_step(self):
            buffer = list(self.model.ep_info_buffer)[-20:]
            if target is None or len(buffer) < 20:
                return True
            return np.mean([e["r"] for e in buffer]) < target

    if env_id == "CartPole-v1":
        env = make_vec_env(env_id, n_envs=8, seed=seed)

        def linear(start):
            return lambda remaining: remaining * start

        kwargs = dict(
            RL_ZOO_CARTPOLE, learning_rate=linear(1e-3), clip_range=linear(0.2)
        )
    else:
        env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed))
        kwargs = {}
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=total, callback=StopAt())
    seconds = time.perf_counter() - start
    buffer = list(model.ep_info_buffer)[-20:]
    return {
        "train_seconds": seconds,
        "train_cpu_seconds": time.process_time() - cpu,
        "env_steps": int(model.num_timesteps),
        "return": float(np.mean([e["r"] for e in buffer])),
    }


def child(args):
    target = None if args.target_return == "none" else float(args.target_return)
    run = run_keras_gae if args.side == "keras_gae" else run_sb3
    result = run(
        args.env, args.seed, args.total_env_steps, target, args.intra_op_threads
    )
    print("RESULT " + json.dumps(result), flush=True)


def binary_command(args, seed):
    """The example binary's command line for one run, nothing else set."""
    target = args.target_return
    return [
        sys.executable,
        os.path.join(REPO_ROOT, "examples", "train_ppo.py"),
        f"--env={args.env}",
        f"--seed={seed}",
        f"--total_env_steps={args.total_env_steps}",
        f"--root_dir={tempfile.mkdtemp(prefix='train_ppo_')}",
    ] + ([] if target == "none" else [f"--target_return={target}"])


# The binary's last line: "... mean return R over the last 20 episodes
# after N environment steps (I iterations), T s training, W s in all".
SUMMARY = re.compile(
    r"mean return (?P<ret>[-\d.na]+) over .* after (?P<steps>\d+) "
    r"environment steps .* (?P<train>[\d.]+) s training"
)


def parse_binary_summary(output):
    match = SUMMARY.search(output.splitlines()[-1])
    return {
        "train_seconds": float(match["train"]),
        "train_cpu_seconds": math.nan,  # not printed by the binary
        "env_steps": int(match["steps"]),
        "return": float(match["ret"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--total_env_steps", type=int, default=100_000)
    parser.add_argument("--target_return", default="475")
    parser.add_argument("--sides", default="keras_gae,sb3")
    parser.add_argument(
        "--intra_op_threads",
        type=int,
        default=1,
        help="each side's threads within one operation (0: the library's "
        "default, one per core)",
    )
    parser.add_argument("--side", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args)
    rows = {side: [] for side in args.sides.split(",")}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for side in rows:
            command = [
                sys.executable,
                os.path.abspath(__file__),
                f"--side={side}",
                f"--seed={seed}",
                f"--env={args.env}",
                f"--total_env_steps={args.total_env_steps}",
                f"--target_return={args.target_return}",
                f"--intra_op_threads={args.intra_op_threads}",
            ]
            if side == "binary":
                command = binary_command(args, seed)
            start = time.perf_counter()
            # In a temporary directory: MuJoCo writes MUJOCO_LOG.TXT (its
            # deprecation warnings) into the working directory.
            output = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=True,
                cwd=tempfile.gettempdir(),
            ).stdout
            process = time.perf_counter() - start
            if side == "binary":
                result = parse_binary_summary(output)
            else:
                line = [
                    x for x in output.splitlines() if x.startswith("RESULT ")
                ]
                result = json.loads(line[-1][len("RESULT ") :])
            result["process_seconds"] = process
            rows[side].append(result)
            print(side, seed, json.dumps(result), flush=True)
    print(
        f"\n{args.env}, seeds {args.seeds}, target {args.target_return}:\n"
        "| side | env steps | return | train s (per seed) | median train s "
        "| median train CPU s | median process s |\n"
        "|---|---|---|---|---|---|---|"
    )
    for side, results in rows.items():
        train = [r["train_seconds"] for r in results]
        print(
            f"| {side} | "
            + ", ".join(str(r["env_steps"]) for r in results)
            + " | "
            + ", ".join(f"{r['return']:.1f}" for r in results)
            + " | "
            + ", ".join(f"{t:.1f}" for t in train)
            + f" | {statistics.median(train):.1f} | "
            f"{statistics.median(r['train_cpu_seconds'] for r in results):.1f}"
            f" | "
            f"{statistics.median(r['process_seconds'] for r in results):.1f} |"
        )
    if "sb3" in rows:
        sb3 = statistics.median(r["train_seconds"] for r in rows["sb3"])
        for side in rows:
            if side != "sb3":
                ratio = (
                    statistics.median(r["train_seconds"] for r in rows[side])
                    / sb3
                )
                print(f"median train-time ratio {side}/sb3: {ratio:.2f}")


if __name__ == "__main__":
    main()

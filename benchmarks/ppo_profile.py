"""Where `keras_gae.agents.PPO`'s training time goes, per setting.

  .venv/bin/python benchmarks/ppo_profile.py --seeds=0,1,2 \\
      --settings='{"steps_per_execution": 64}'

Each seed runs in its own process (a fresh first trace), with one
TensorFlow thread per operation as `sb3_comparison.py` runs it
(`--intra_op_threads=0`: TensorFlow's default). Per run it prints
the agent's construction time, `learn`'s time to the target (or the step
budget), the iterations and environment steps, and the loop's own split
(`collect_seconds`, `convert_seconds`, `fit_seconds` of every iteration):
the first iteration apart (it traces the policy and the train step) and
the sum and median of the others.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def child(args):
    start = time.perf_counter()
    import tensorflow as tf

    if args.intra_op_threads:
        # Before the first TensorFlow operation (as with any
        # `tf.config.threading` setting).
        tf.config.threading.set_intra_op_parallelism_threads(
            args.intra_op_threads
        )
    import keras_gae.agents as agents

    imported = time.perf_counter()
    settings = json.loads(args.settings)
    agent = agents.PPO(args.env, seed=args.seed, verbose=0, **settings)
    built = time.perf_counter()
    cpu = time.process_time()
    target = None if args.target_return == "none" else float(args.target_return)
    history = agent.learn(
        total_env_steps=args.total_env_steps, target_return=target
    ).history
    learned = time.perf_counter()
    cpu = time.process_time() - cpu
    rest = slice(1, None)
    result = {
        "import_s": imported - start,
        "build_s": built - imported,
        "learn_s": learned - built,
        "learn_cpu_s": cpu,
        "iterations": len(history["env_steps"]),
        "env_steps": agent.env_steps,
        "return": history["episode_return_mean"][-1],
        "first_collect_s": history["collect_seconds"][0],
        "first_fit_s": history["fit_seconds"][0],
    }
    for key in ("collect_seconds", "convert_seconds", "fit_seconds"):
        values = history[key][rest] or [0.0]
        result[f"rest_{key[:-8]}_sum_s"] = sum(values)
        result[f"rest_{key[:-8]}_median_s"] = statistics.median(values)
    print("RESULT " + json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--total_env_steps", type=int, default=100_000)
    parser.add_argument("--target_return", default="475")
    parser.add_argument("--settings", default="{}")
    parser.add_argument(
        "--intra_op_threads",
        type=int,
        default=1,
        help="TensorFlow's threads within one operation, as "
        "sb3_comparison.py runs it (0: TensorFlow's default, one per core)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.seed is not None:
        return child(args)
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        command = [
            sys.executable,
            os.path.abspath(__file__),
            f"--seed={seed}",
            f"--env={args.env}",
            f"--total_env_steps={args.total_env_steps}",
            f"--target_return={args.target_return}",
            f"--settings={args.settings}",
            f"--intra_op_threads={args.intra_op_threads}",
        ]
        start = time.perf_counter()
        output = subprocess.run(
            command, capture_output=True, text=True, check=True
        ).stdout
        line = [x for x in output.splitlines() if x.startswith("RESULT ")]
        result = json.loads(line[-1][len("RESULT ") :])
        result["process_s"] = time.perf_counter() - start
        results.append(result)
        print(
            seed,
            " ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in result.items()
            ),
            flush=True,
        )
    print(
        f"settings {args.settings}: median learn_s "
        f"{statistics.median(r['learn_s'] for r in results):.2f}, median "
        f"learn_cpu_s "
        f"{statistics.median(r['learn_cpu_s'] for r in results):.2f}, median "
        f"env_steps {statistics.median(r['env_steps'] for r in results)}"
    )


if __name__ == "__main__":
    main()

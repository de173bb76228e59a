"""Scale-out on Ray: what workers buy, and what a round costs.

To run (each part alone with --parts; the whole run takes minutes):

  .venv/bin/python benchmarks/ray_scaling.py --parts=steps \\
      --envs=sleep,CartPole-v1,HalfCheetah-v5 --workers=1,2,4,8
  .venv/bin/python benchmarks/ray_scaling.py --parts=broadcast \\
      --broadcast_mib=0.035,1,8,32,128 --broadcast_workers=4
  .venv/bin/python benchmarks/ray_scaling.py --parts=lm

Parts:

* steps: environment steps per second of
  `keras_gae.distributed.RolloutWorkers` (Ray actors, each with
  `--num_envs` environments and a policy copy, one synchronous round after
  another, the weights put once per round) against the number of workers,
  and of one in-process `RolloutCollector` with `--num_envs` environments
  (no Ray). Environments: "sleep" (a step that waits `--sleep_ms`
  milliseconds and does nothing else: I/O-like, an API or a simulator in
  another process) and gymnasium ids (CPU-bound). The untrained policy is
  `keras_gae.agents.build_networks`' 64x64 MLP pair. Each configuration:
  one warm-up round (actors start, the collector traces), then `--rounds`
  timed rounds; steps counted by the workers (valid rows).
* broadcast: one round of weights to `--broadcast_workers` Ray actors
  (`ray.put` once, every actor sets them into a Keras model of that size
  and answers), median of `--rounds`, against the model's size.
* lm: one round of generation from a keras-hub GPT-2 with random weights
  (nothing downloaded), colocated (`keras_gae.lm.generate` in this process)
  against `keras_gae.distributed.GenerationWorkers` (`--lm_workers` actors,
  the weights sent every round), at the test scale and a larger one; the
  median round of `--rounds` after one warm-up.

Ray's CPUs are logical: the local cluster gets as many as the largest
worker count, whatever the machine has.
"""

import argparse
import functools
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

from keras_gae import agents  # noqa: E402
from keras_gae import distributed  # noqa: E402
from keras_gae.agents.rollout_collector import RolloutCollector  # noqa: E402
from keras_gae.distributed import rollout_worker  # noqa: E402
from keras_gae.distributed.generation_workers import GenerationWorkers  # noqa: E402


class SleepEnv(gymnasium.Env):
    """Waits `wait_s` per step (I/O-like); random observations, 200 steps."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        self._steps = 0

    def _observation(self):
        return self.np_random.uniform(-1, 1, 4).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._steps = 0
        return self._observation(), {}

    def step(self, action):
        time.sleep(self.wait_s)
        self._steps += 1
        return self._observation(), 1.0, False, self._steps >= 200, {}


def make_sleep_env(wait_s: float) -> gymnasium.Env:
    return SleepEnv(wait_s)


def mlp_ppo(observation_spec, action_spec, num_envs):
    from keras_gae import models

    return models.PPOModel(
        *agents.build_networks(observation_spec, action_spec)
    )


def _env_source(name: str, sleep_ms: float):
    if name == "sleep":
        return functools.partial(make_sleep_env, sleep_ms / 1000.0)
    return name


def _in_process_rate(source, args) -> float:
    env = agents.make_tf_environment(source, num_envs=args.num_envs, seed=0)
    model = rollout_worker.build_policy_model(mlp_ppo, env)
    collector = RolloutCollector(
        model, env, rollout_length=args.rollout_length, return_window=20
    )
    collector.collect()
    steps = int(collector.env_steps.numpy())
    start = time.perf_counter()
    for _ in range(args.rounds):
        collector.collect()
    elapsed = time.perf_counter() - start
    return (int(collector.env_steps.numpy()) - steps) / elapsed


def _workers_rate(source, num_workers, weights, args) -> float:
    with distributed.RolloutWorkers(
        source,
        model_fn=mlp_ppo,
        num_workers=num_workers,
        num_envs=args.num_envs,
        rollout_length=args.rollout_length,
        seed=0,
    ) as workers:
        workers.collect(weights, version=0)
        steps = 0
        start = time.perf_counter()
        for version in range(1, args.rounds + 1):
            results = workers.collect(weights, version=version)
            steps += sum(result["env_steps"] for result in results)
        return steps / (time.perf_counter() - start)


def steps_part(args):
    workers = [int(w) for w in args.workers.split(",")]
    print(
        f"\n## Environment steps per second ({args.num_envs} envs per worker,"
        f" {args.rollout_length} steps per env per round, {args.rounds} "
        "rounds)\n"
    )
    print(
        "| environment | in-process | "
        + " | ".join(f"{w} worker{'s' * (w > 1)}" for w in workers)
        + " | "
        + f"{workers[-1]} vs 1 |"
    )
    print("|---|---:|" + "---:|" * len(workers) + "---:|")
    for name in args.envs.split(","):
        source = _env_source(name, args.sleep_ms)
        env = agents.make_tf_environment(source, num_envs=1, seed=0)
        model = rollout_worker.build_policy_model(mlp_ppo, env)
        weights = [
            np.asarray(v) for v in rollout_worker.policy_variables(model)
        ]
        local = _in_process_rate(source, args)
        rates = [_workers_rate(source, w, weights, args) for w in workers]
        label = f"sleep {args.sleep_ms:g} ms" if name == "sleep" else name
        cells = " | ".join(f"{rate:,.0f}" for rate in rates)
        print(
            f"| {label} | {local:,.0f} | {cells} | "
            f"{rates[-1] / rates[0]:.2f}x |",
            flush=True,
        )


class _WeightsHolder:
    """A Ray actor holding a Keras model of a given size."""

    def __init__(self, units: int):
        import keras

        self.model = keras.Sequential(
            [keras.Input((units,)), keras.layers.Dense(units)]
        )

    def set_weights(self, weights):
        self.model.set_weights(weights)
        return True


def broadcast_part(args):
    import ray

    print(
        f"\n## Weight broadcast per round ({args.broadcast_workers} actors, "
        f"median of {args.rounds})\n"
    )
    print("| model size | seconds per round |")
    print("|---:|---:|")
    holder = ray.remote(num_cpus=0)(_WeightsHolder)
    for mib in (float(m) for m in args.broadcast_mib.split(",")):
        units = max(int((mib * 2**20 / 4) ** 0.5), 1)
        actors = [holder.remote(units) for _ in range(args.broadcast_workers)]
        weights = [
            np.random.default_rng(0)
            .normal(size=(units, units))
            .astype(np.float32),
            np.zeros(units, np.float32),
        ]
        size = sum(w.nbytes for w in weights) / 2**20
        times = []
        for _ in range(args.rounds + 1):
            start = time.perf_counter()
            ref = ray.put(weights)
            ray.get([actor.set_weights.remote(ref) for actor in actors])
            times.append(time.perf_counter() - start)
            del ref
        for actor in actors:
            ray.kill(actor)
        # The first round also waits for the actors to start.
        print(f"| {size:,.3f} MiB | {statistics.median(times[1:]):.4f} |")


def build_gpt2(vocab, layers, hidden, heads, max_length):
    import keras
    import keras_hub

    from keras_gae import lm

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocab,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=4 * hidden,
        max_sequence_length=max_length,
        dropout=0.0,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    return lm.CausalLMPolicy(causal_lm, value_head="shared")


LM_SCALES = {
    # The test's tiny GPT-2 and batch (tests/distributed).
    "test": dict(
        model=dict(vocab=13, layers=2, hidden=16, heads=2, max_length=32),
        prompts=3,
        prompt_length=4,
        samples=2,
        new_tokens=6,
    ),
    "larger": dict(
        model=dict(vocab=2048, layers=4, hidden=256, heads=4, max_length=256),
        prompts=32,
        prompt_length=32,
        samples=2,
        new_tokens=64,
    ),
}


def _median_round(call, rounds) -> float:
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lm_part(args):
    print(
        f"\n## LM generation per round: colocated vs {args.lm_workers} "
        f"generation workers (median of {args.rounds})\n"
    )
    print(
        "| scale | parameters | rows x new tokens | colocated s | "
        "workers s | workers / colocated |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, scale in LM_SCALES.items():
        _lm_scale(name, scale, args)


def _lm_scale(name, scale, args):
    from keras_gae import lm

    builder = functools.partial(build_gpt2, **scale["model"])
    policy = builder()
    rng = np.random.default_rng(0)
    prompts = rng.integers(
        1, scale["model"]["vocab"], (scale["prompts"], scale["prompt_length"])
    ).astype(np.int32)
    settings = dict(
        max_new_tokens=scale["new_tokens"],
        num_samples=scale["samples"],
        seed=0,
    )
    colocated = _median_round(
        lambda: lm.generate(policy, prompts, **settings), args.rounds
    )
    with GenerationWorkers(
        builder, num_workers=args.lm_workers, num_cpus=0.5
    ) as workers:
        remote = _median_round(
            lambda: workers.generate(
                prompts, weights=policy.get_weights(), **settings
            ),
            args.rounds,
        )
    rows = scale["prompts"] * scale["samples"]
    print(
        f"| {name} | {sum(w.size for w in policy.get_weights()):,} | {rows} x "
        f"{scale['new_tokens']} | {colocated:.3f} | {remote:.3f} | "
        f"{remote / colocated:.2f} |",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="steps,broadcast,lm")
    parser.add_argument("--envs", default="sleep,CartPole-v1,HalfCheetah-v5")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--num_envs", type=int, default=4)
    parser.add_argument("--rollout_length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sleep_ms", type=float, default=2.0)
    parser.add_argument("--broadcast_mib", default="0.035,1,8,32,128")
    parser.add_argument("--broadcast_workers", type=int, default=4)
    parser.add_argument("--lm_workers", type=int, default=2)
    parser.add_argument("--ray_address", default=None)
    args = parser.parse_args()
    parts = {
        "steps": steps_part,
        "broadcast": broadcast_part,
        "lm": lm_part,
    }
    num_cpus = max(
        [int(w) for w in args.workers.split(",")]
        + [args.broadcast_workers, args.lm_workers]
    )
    with distributed.ray_cluster(args.ray_address, num_cpus=num_cpus):
        for part in args.parts.split(","):
            parts[part](args)


if __name__ == "__main__":
    main()

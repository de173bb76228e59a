"""Collection speed alone: keras_gae's driver path against the floor.

To run:

  .venv/bin/python benchmarks/collection_benchmark.py --num_envs=8 \\
      --rollout_length=128 --rollouts=20

Both sides step CartPole-v1 with the same untrained `PPOModel` (tanh 64x64
actor and critic, `keras_gae.agents.build_networks`), sampling actions:

* floor: a plain loop over `gymnasium.make_vec(..., "vector_entry_point")`
  calling a `tf.function` of `model.act` once per batched step;
* keras_gae: `RolloutCollector.collect()` (a tf-agents `DynamicStepDriver`
  in one compiled function, `TFUniformReplayBuffer`, rollout batch) on
  `make_tf_environment(..., vectorization_mode=MODE)` for each mode.

Reported: environment steps per second after one warm-up rollout (the
first trace excluded), and each side's ratio to the floor.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_gae.agents as agents  # noqa: E402
from keras_gae.agents.rollout_collector import RolloutCollector  # noqa: E402
from keras_gae.models import PPOModel  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_envs", type=int, default=8)
    parser.add_argument("--rollout_length", type=int, default=128)
    parser.add_argument("--rollouts", type=int, default=20)
    args = parser.parse_args()
    b, t = args.num_envs, args.rollout_length
    env = agents.make_tf_environment("CartPole-v1", num_envs=b)
    model = PPOModel(
        *agents.build_networks(env.observation_spec(), env.action_spec())
    )
    model(tf.zeros([1, 4]))

    @tf.function
    def act(observation):
        return model.act(observation).action

    vector = gymnasium.make_vec(
        "CartPole-v1", num_envs=b, vectorization_mode="vector_entry_point"
    )
    observation, _ = vector.reset(seed=0)
    act(observation.astype(np.float32))
    start = time.perf_counter()
    for _ in range(args.rollouts * t):
        action = act(observation.astype(np.float32)).numpy()
        observation, *_ = vector.step(action)
    floor = args.rollouts * t * b / (time.perf_counter() - start)
    print(f"| plain gymnasium loop (floor) | {floor:.0f} | 1.00 |")
    for mode in (None, "sync", "vector_entry_point"):
        env = agents.make_tf_environment(
            "CartPole-v1", num_envs=b, seed=0, vectorization_mode=mode
        )
        collector = RolloutCollector(
            model, env, rollout_length=t, return_window=20
        )
        collector.collect()
        start = time.perf_counter()
        for _ in range(args.rollouts):
            collector.collect()
        rate = args.rollouts * t * b / (time.perf_counter() - start)
        print(
            f"| keras_gae collect, vectorization_mode={mode} | {rate:.0f} | "
            f"{rate / floor:.2f} |"
        )


if __name__ == "__main__":
    main()

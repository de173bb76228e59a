"""A memory task: CartPole-v1 without velocities, recurrent against MLP PPO.

To run (the acceptance run of the recurrent policies, both policies, three
seeds each, 500k steps at most; hours on 2 cores):

  .venv/bin/python benchmarks/memory_task.py --policy=lstm \\
      --total_steps=500000 --seeds=0,1,2
  .venv/bin/python benchmarks/memory_task.py --policy=mlp \\
      --total_steps=500000 --seeds=0,1,2
  # A smoke run:
  .venv/bin/python benchmarks/memory_task.py --total_steps=2048 --seeds=0

The environment keeps CartPole's cart position and pole angle only
(`keras_gae.agents.masked_velocity.make_cartpole_no_velocity`, as
sb3-contrib's "CartPoleNoVel"), so a policy must infer the velocities
from what it saw. Each seed trains `keras_gae.agents.PPO(env,
policy=--policy)` with `keras_gae.agents.masked_velocity.SETTINGS` (the
learning test's) until the mean
return of the last 20 training episodes reaches `--target_return` or
`--total_steps` steps are spent, then plays `--eval_episodes` greedy
episodes. The table gives, per seed, the steps at which the target was
reached (or "-"), the last training mean return, the greedy evaluation
mean and the wall time.
"""

import os
import time

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

flags.DEFINE_enum("policy", "lstm", ["lstm", "gru", "mlp"], "The policy.")
flags.DEFINE_integer("total_steps", 500_000, "Environment steps per seed.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, comma-separated.")
flags.DEFINE_float(
    "target_return", 475.0, "Stop a seed once its training mean reaches it."
)
flags.DEFINE_integer("eval_episodes", 10, "Greedy episodes after training.")
FLAGS = flags.FLAGS


def train_eval(
    policy: str = "lstm",
    total_steps: int = 500_000,
    seeds=(0, 1, 2),
    target_return: float = 475.0,
    eval_episodes: int = 10,
) -> list:
    """One row per seed: reached_at, train_return, eval_return, seconds."""
    import tensorflow as tf

    import keras_gae
    from keras_gae.agents import masked_velocity

    tf.config.threading.set_intra_op_parallelism_threads(1)
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        agent = keras_gae.agents.PPO(
            masked_velocity.make_cartpole_no_velocity,
            policy=policy,
            seed=int(seed),
            verbose=0,
            **masked_velocity.SETTINGS,
        )
        history = agent.learn(total_steps, target_return=target_return)
        returns = history.history["episode_return_mean"]
        steps = history.history["env_steps"]
        reached = [int(s) for s, r in zip(steps, returns) if r >= target_return]
        evaluation = agent.evaluate(num_episodes=eval_episodes)
        rows.append(
            dict(
                seed=int(seed),
                reached_at=reached[0] if reached else None,
                train_return=float(returns[-1]),
                eval_return=evaluation["return_mean"],
                seconds=time.perf_counter() - start,
            )
        )
    return rows


def print_row(policy: str, row: dict) -> None:
    reached = row["reached_at"]
    print(
        f"| {policy} | {row['seed']} | "
        f"{'-' if reached is None else reached} | "
        f"{row['train_return']:.1f} | {row['eval_return']:.1f} | "
        f"{row['seconds']:.0f} |",
        flush=True,
    )


def main(argv):
    del argv
    print(
        f"| policy | seed | steps to {FLAGS.target_return:g} | "
        "train return | eval return | seconds |"
    )
    print("|---|---|---|---|---|---|", flush=True)
    # One seed at a time, each row printed as soon as it is done.
    for seed in FLAGS.seeds:
        (row,) = train_eval(
            policy=FLAGS.policy,
            total_steps=FLAGS.total_steps,
            seeds=[int(seed)],
            target_return=FLAGS.target_return,
            eval_episodes=FLAGS.eval_episodes,
        )
        print_row(FLAGS.policy, row)


if __name__ == "__main__":
    app.run(main)

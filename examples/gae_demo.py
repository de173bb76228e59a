r"""A short demonstration of keras_gae's advantage estimation.

To run:

  .venv/bin/python examples/gae_demo.py --num_steps=6

Builds two environments' worth of rollout by hand, one episode ending by
termination and one by truncation, and prints the advantages and returns next
to the rewards so the boundary rules can be read off the table.
"""

import numpy as np
from absl import app
from absl import flags

import keras_gae
from keras_gae import ops

flags.DEFINE_integer("num_steps", 6, "Steps per environment.")
flags.DEFINE_float("gamma", 0.9, "Discount.")
flags.DEFINE_float("lambda_", 0.8, "GAE lambda.")
FLAGS = flags.FLAGS


def gae_demo(num_steps: int = 6, gamma: float = 0.9, lambda_: float = 0.8):
    """Returns the inputs and GAE outputs of the demonstration, batch-major."""
    rewards = np.ones((2, num_steps), np.float32)
    values = np.tile(np.linspace(2.0, 0.5, num_steps, dtype=np.float32), (2, 1))
    terminated = np.zeros((2, num_steps), bool)
    truncated = np.zeros((2, num_steps), bool)
    cut = num_steps // 2
    terminated[0, cut] = True  # env 0: s_{cut+1} is terminal
    truncated[1, cut] = True  # env 1: time limit after step `cut`
    truncation_values = np.zeros((2, num_steps), np.float32)
    truncation_values[1, cut] = 5.0  # critic's value of the final observation
    out = ops.generalized_advantage_estimation(
        rewards,
        values,
        bootstrap_value=np.array([1.0, 1.0], np.float32),
        gamma=gamma,
        lambda_=lambda_,
        terminated=terminated,
        truncated=truncated,
        truncation_values=truncation_values,
        time_major=False,
    )
    return dict(
        reward=rewards,
        value=values,
        terminated=terminated,
        truncated=truncated,
        advantage=out.advantages.numpy(),
        returns=out.returns.numpy(),
    )


def main(argv):
    del argv
    result = gae_demo(FLAGS.num_steps, FLAGS.gamma, FLAGS.lambda_)
    print(
        f"keras_gae {keras_gae.__version__}: GAE, gamma={FLAGS.gamma}, "
        f"lambda_={FLAGS.lambda_}"
    )
    for env in range(2):
        print(f"\nenvironment {env}")
        print(" t  reward  value  end         advantage  return")
        for t in range(FLAGS.num_steps):
            end = (
                "terminated"
                if result["terminated"][env, t]
                else "truncated"
                if result["truncated"][env, t]
                else ""
            )
            print(
                f"{t:2d}  {result['reward'][env, t]:6.2f}  "
                f"{result['value'][env, t]:5.2f}  {end:10s}  "
                f"{result['advantage'][env, t]:9.4f}  "
                f"{result['returns'][env, t]:6.4f}"
            )


if __name__ == "__main__":
    app.run(main)

r"""A short demonstration of keras_gae's advantage estimation.

To run:

  .venv/bin/python examples/gae_demo.py --num_steps=6

Builds two environments' worth of rollout by hand, one episode ending by
termination and one by truncation, and prints the advantages and returns next
to the rewards so the boundary rules can be read off the table, then one
summary line.

The flags are parsed and checked before TensorFlow is imported: `--help`
exits with status 0 and a bad flag is one `error:` line and status 2 at
once.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Sequence

if not __package__:
    # Run as `python examples/gae_demo.py`: make `examples` importable.
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from examples import cli  # noqa: E402
from examples import quiet_start  # noqa: E402  (before TensorFlow)

PROGRAM = "gae_demo.py"
# The critic's value of the final observation of the truncated episode.
TRUNCATION_VALUE = 5.0

flags.DEFINE_integer(
    "num_steps", 6, "Steps per environment (>= 2).", lower_bound=2
)
flags.DEFINE_float(
    "gamma", 0.9, "Discount in [0, 1].", lower_bound=0.0, upper_bound=1.0
)
flags.DEFINE_float(
    "lambda_", 0.8, "GAE lambda in [0, 1].", lower_bound=0.0, upper_bound=1.0
)
for _name in ("gamma", "lambda_"):
    # The bounds let NaN through (every comparison with it is False).
    flags.register_validator(
        _name, math.isfinite, message="must be a finite number"
    )
FLAGS = flags.FLAGS


def gae_demo(num_steps: int = 6, gamma: float = 0.9, lambda_: float = 0.8):
    """Returns the inputs and GAE outputs of the demonstration, batch-major.

    Environment 0 terminates and environment 1 is truncated after step
    `num_steps // 2`; both then start the same new episode.
    """
    from keras_gae import ops

    rewards = np.ones((2, num_steps), np.float32)
    values = np.tile(np.linspace(2.0, 0.5, num_steps, dtype=np.float32), (2, 1))
    terminated = np.zeros((2, num_steps), bool)
    truncated = np.zeros((2, num_steps), bool)
    cut = num_steps // 2
    terminated[0, cut] = True  # env 0: s_{cut+1} is terminal
    truncated[1, cut] = True  # env 1: time limit after step `cut`
    truncation_values = np.zeros((2, num_steps), np.float32)
    truncation_values[1, cut] = TRUNCATION_VALUE
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


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        cli.fail(PROGRAM, f"unexpected arguments {argv[1:]!r}")
    # Only now TensorFlow: the flags are checked.
    with quiet_start.native_start_up_logs_filtered():
        import tensorflow as tf

        import keras_gae

        # The devices now, so that the CUDA start-up lines come inside.
        tf.config.list_physical_devices()
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
    cut = FLAGS.num_steps // 2
    print(
        f"\nAfter step {cut}: the terminated episode's return is its reward "
        f"({result['returns'][0, cut]:.4f}), the truncated one's adds gamma "
        f"* V(final observation) = {FLAGS.gamma} * {TRUNCATION_VALUE} "
        f"({result['returns'][1, cut]:.4f}); neither trace crosses the end."
    )
    return 0


if __name__ == "__main__":
    cli.run(main, program=PROGRAM)

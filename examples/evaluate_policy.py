r"""Evaluates an exported keras_gae policy on a gymnasium environment.

To run:

  .venv/bin/python examples/evaluate_policy.py \
      --policy_dir=runs/cartpole/policy --env=CartPole-v1 --num_episodes=20
  .venv/bin/python examples/evaluate_policy.py \
      --policy_dir=runs/pendulum/policy --env=Pendulum-v1 --sample

The policy is a SavedModel written by `keras_gae.export.export_policy` (as
`examples/train_ppo.py` does under root_dir/policy). It is loaded with
`tf.saved_model.load` alone: this file imports only gymnasium, NumPy,
TensorFlow and absl, so it runs where keras_gae is not installed.

Each episode feeds the observation, as a batch of one, to the signature
"action" (the greedy action; for a Box action space already clipped to the
box) or, with --sample, to "sample_action" with a seed derived from --seed,
the episode and the step, so a sampled evaluation is reproducible too.
Episode i resets the environment with seed `seed + i`. Prints each return,
then one summary line: their mean and standard deviation.

The flags, the policy directory and the environment id are checked before
TensorFlow is imported. Exit status: 0 done; 1 the mean return is below
--min_mean_return (the summary line says so); 2 a bad flag or a policy or
environment that does not fit (one `error:` line).
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING
from typing import List
from typing import Sequence

if not __package__:
    # Run as `python examples/evaluate_policy.py`: make `examples`
    # importable (it holds no keras_gae).
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from examples import cli  # noqa: E402
from examples import quiet_start  # noqa: E402  (before TensorFlow)

if TYPE_CHECKING:
    import tensorflow as tf

PROGRAM = "evaluate_policy.py"

flags.DEFINE_string(
    "policy_dir",
    os.path.join("runs", "train_ppo", "CartPole-v1", "policy"),
    "SavedModel directory written by keras_gae.export.export_policy.",
)
flags.DEFINE_string("env", "CartPole-v1", "gymnasium environment id.")
flags.DEFINE_integer("num_episodes", 10, "Episodes to run.", lower_bound=1)
flags.DEFINE_bool(
    "sample",
    False,
    "Sample actions (signature sample_action) instead of the greedy ones.",
)
flags.DEFINE_integer(
    "seed", 0, "Episode i resets with seed + i.", lower_bound=0
)
flags.DEFINE_float(
    "min_mean_return",
    None,
    "If given, exit with status 1 when the mean return is below it.",
)
flags.register_validator(
    "min_mean_return",
    lambda value: value is None or math.isfinite(value),
    message="must be a finite number",
)
FLAGS = flags.FLAGS


def _tensorflow():
    """TensorFlow, loaded (the first time) without its C++ start-up lines."""
    with quiet_start.native_start_up_logs_filtered():
        import tensorflow as tf

        # The devices now, so that the CUDA start-up lines come inside.
        tf.config.list_physical_devices()
    return tf


def check_arguments(policy_dir: str, num_episodes: int) -> None:
    """The checks that need no TensorFlow (a ValueError naming the flag).

    `num_episodes` >= 1, and `policy_dir` a SavedModel directory that is
    not tf-agents' PolicySaver export.
    """
    if num_episodes < 1:
        raise ValueError(
            "`num_episodes` must be >= 1. "
            f"Received: num_episodes={num_episodes!r}"
        )
    if os.path.exists(os.path.join(policy_dir, "policy_specs.pbtxt")):
        raise ValueError(
            "This is a tf-agents PolicySaver export (it needs tf-agents and "
            "tensorflow-probability to load); point --policy_dir at the "
            "keras_gae export (root_dir/policy, not root_dir/tf_agents_policy)."
            f" Received: policy_dir={policy_dir!r}"
        )
    if not os.path.isdir(policy_dir):
        raise ValueError(
            "`policy_dir` is not a directory (train_ppo.py writes the "
            "policy to root_dir/policy). "
            f"Received: policy_dir={policy_dir!r}"
        )


def _observation_input(signature) -> tf.TensorSpec:
    inputs = signature.structured_input_signature[1]
    return inputs["observation"]


def _check_spaces(env, spec: tf.TensorSpec, env_id: str) -> None:
    """Refuses spaces the exported policy cannot serve."""
    observation_space, action_space = env.observation_space, env.action_space
    problem = None
    if not isinstance(observation_space, gymnasium.spaces.Box):
        problem = (
            f"its observation space {observation_space} is not a Box (the "
            "exported policy takes one array per observation)"
        )
    elif tuple(observation_space.shape) != tuple(spec.shape[1:]):
        problem = (
            f"its observations have shape {observation_space.shape}, the "
            f"policy's {tuple(spec.shape[1:])}"
        )
    elif not isinstance(
        action_space, (gymnasium.spaces.Discrete, gymnasium.spaces.Box)
    ):
        problem = f"its action space {action_space} is not Discrete or Box"
    if problem is not None:
        raise ValueError(
            f"The environment does not fit the policy: {problem}. "
            f"Received: env={env_id!r}"
        )


def evaluate(
    policy_dir: str,
    env_id: str,
    num_episodes: int = 10,
    sample: bool = False,
    seed: int = 0,
) -> List[float]:
    """Runs `num_episodes` episodes of `env_id` with the exported policy.

    Args:
      policy_dir: SavedModel directory from `export_policy`.
      env_id: gymnasium environment id whose observations match the
        policy's observation signature.
      num_episodes: episodes to run, >= 1.
      sample: sample actions ("sample_action", seeded) instead of taking
        the greedy ones ("action").
      seed: episode i resets the environment with `seed + i`; sampling
        seeds derive from it as well.

    Returns:
      The undiscounted return of each episode, in order.

    Raises:
      ValueError: `num_episodes` < 1, a `policy_dir` that is not a
        directory or does not hold a SavedModel loadable with TensorFlow
        alone (e.g. the tf-agents export), a SavedModel without the
        signature asked for, an unknown environment, or one whose spaces do
        not fit the policy. `num_episodes`, a missing directory, the
        tf-agents export and an unknown environment are found before
        TensorFlow is imported.
    """
    check_arguments(policy_dir, num_episodes)
    # The environment before TensorFlow: an unknown id fails at once.
    try:
        env = gymnasium.make(env_id)
    except gymnasium.error.Error as error:
        raise ValueError(
            f"Unknown gymnasium environment ({error}). Received: env={env_id!r}"
        ) from error
    try:
        return _run_episodes(
            env, env_id, policy_dir, num_episodes, sample, seed
        )
    finally:
        env.close()


def _run_episodes(env, env_id, policy_dir, num_episodes, sample, seed):
    tf = _tensorflow()
    try:
        loaded = tf.saved_model.load(policy_dir)
    except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"Cannot load a SavedModel from {policy_dir!r} with TensorFlow "
            f"alone ({type(error).__name__}: {first_line}); export one with "
            f"keras_gae.export.export_policy. Received: policy_dir="
            f"{policy_dir!r}"
        ) from error
    name = "sample_action" if sample else "action"
    if name not in loaded.signatures:
        raise ValueError(
            f"The SavedModel has no signature {name!r} (it has "
            f"{sorted(loaded.signatures)}); export it with "
            "keras_gae.export.export_policy. "
            f"Received: policy_dir={policy_dir!r}"
        )
    signature = loaded.signatures[name]
    spec = _observation_input(signature)
    dtype = spec.dtype.as_numpy_dtype
    _check_spaces(env, spec, env_id)
    returns = []
    for episode in range(num_episodes):
        observation, _ = env.reset(seed=seed + episode)
        episode_return, step, done = 0.0, 0, False
        while not done:
            batch = tf.constant(np.asarray(observation, dtype)[None])
            if sample:
                step_seed = tf.constant([seed + episode, step], tf.int64)
                outputs = signature(observation=batch, seed=step_seed)
            else:
                outputs = signature(observation=batch)
            action = outputs["action"].numpy()[0]
            if isinstance(env.action_space, gymnasium.spaces.Discrete):
                action = int(action)
            else:
                action = action.astype(env.action_space.dtype)
            observation, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            step += 1
            done = terminated or truncated
        returns.append(episode_return)
    return returns


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        cli.fail(PROGRAM, f"unexpected arguments {argv[1:]!r}")
    try:
        returns = evaluate(
            FLAGS.policy_dir,
            FLAGS.env,
            num_episodes=FLAGS.num_episodes,
            sample=FLAGS.sample,
            seed=FLAGS.seed,
        )
    except ValueError as error:
        # A bad flag value: one line, not a traceback.
        cli.fail(PROGRAM, str(error))
    for episode, episode_return in enumerate(returns):
        print(f"episode {episode}: return {episode_return:.1f}")
    mode = "sampled" if FLAGS.sample else "greedy"
    mean = float(np.mean(returns))
    below = FLAGS.min_mean_return is not None and mean < FLAGS.min_mean_return
    print(
        f"{FLAGS.env}, {FLAGS.policy_dir}, {mode}: mean return {mean:.1f} "
        f"+- {float(np.std(returns)):.1f} over {len(returns)} episodes"
        + (
            f", below --min_mean_return={FLAGS.min_mean_return}"
            if below
            else ""
        ),
        flush=True,
    )
    return 1 if below else 0


if __name__ == "__main__":
    cli.run(main, program=PROGRAM)

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
Episode i resets the environment with seed `seed + i`. Prints each return
and their mean and standard deviation.
"""

import os
import sys
from typing import List

if not __package__:
    # Run as `python examples/evaluate_policy.py`: make `examples`
    # importable (it holds no keras_gae).
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

from examples import quiet_start  # noqa: E402  (before TensorFlow)

with quiet_start.native_start_up_logs_filtered():
    import tensorflow as tf

    tf.config.list_physical_devices()

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

flags.DEFINE_string(
    "policy_dir",
    os.path.join("runs", "train_ppo", "CartPole-v1", "policy"),
    "SavedModel directory written by keras_gae.export.export_policy.",
)
flags.DEFINE_string("env", "CartPole-v1", "gymnasium environment id.")
flags.DEFINE_integer("num_episodes", 10, "Episodes to run.")
flags.DEFINE_bool(
    "sample",
    False,
    "Sample actions (signature sample_action) instead of the greedy ones.",
)
flags.DEFINE_integer("seed", 0, "Episode i resets with seed + i.")
flags.DEFINE_float(
    "min_mean_return",
    None,
    "If given, exit with status 1 when the mean return is below it.",
)
FLAGS = flags.FLAGS


def _observation_input(signature) -> tf.TensorSpec:
    inputs = signature.structured_input_signature[1]
    return inputs["observation"]


def _check_spaces(env, spec: tf.TensorSpec, env_id: str) -> None:
    """Refuses spaces the exported policy cannot serve (closing `env`)."""
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
        env.close()
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
      ValueError: `num_episodes` < 1, a directory that does not hold a
        SavedModel loadable with TensorFlow alone (e.g. the tf-agents
        export), a SavedModel without the signature asked for, an unknown
        environment, or one whose spaces do not fit the policy.
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
    try:
        env = gymnasium.make(env_id)
    except gymnasium.error.Error as error:
        raise ValueError(
            f"Unknown gymnasium environment ({error}). Received: env={env_id!r}"
        ) from error
    _check_spaces(env, spec, env_id)
    returns = []
    try:
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
    finally:
        env.close()
    return returns


def main(argv):
    del argv
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
        print(f"evaluate_policy.py: error: {error}", file=sys.stderr)
        return 2
    for episode, episode_return in enumerate(returns):
        print(f"episode {episode}: return {episode_return:.1f}")
    mode = "sampled" if FLAGS.sample else "greedy"
    mean = float(np.mean(returns))
    print(
        f"{FLAGS.env}, {FLAGS.policy_dir}, {mode}: mean return {mean:.1f} "
        f"+- {float(np.std(returns)):.1f} over {len(returns)} episodes",
        flush=True,
    )
    if FLAGS.min_mean_return is not None and mean < FLAGS.min_mean_return:
        print(f"Mean return {mean:.1f} is below {FLAGS.min_mean_return}.")
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)

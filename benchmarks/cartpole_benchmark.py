"""Time to solve CartPole-v1: keras_gae's loop against tf-agents' PPO.

To run:

  .venv/bin/python benchmarks/cartpole_benchmark.py              # seeds 0,1,2
  .venv/bin/python benchmarks/cartpole_benchmark.py --seeds=0,1,2,3,4
  # A smoke run that stops long before CartPole is solved:
  .venv/bin/python benchmarks/cartpole_benchmark.py --seeds=0 \\
      --max_env_steps=2048

Both contenders collect the same way: `--num_envs` (8) CartPole-v1 copies
seeded `seed + i` (`keras_gae.agents.make_tf_environment`), a
`DynamicStepDriver` run for `--rollout_length` (128) iterations into a
`TFUniformReplayBuffer`, with tanh 64x64 actor and critic networks, Adam,
clip ratio 0.2, gamma 0.99, GAE lambda 0.95, value coefficient 0.5, no
entropy bonus, gradients clipped to a global norm of 0.5, no observation
or reward normalization. Each trains with its own settings:

* keras_gae: `keras_gae.agents.OnPolicyTrainer` with a `PPOModel`,
  `--keras_gae_epochs` (10) passes over each rollout of
  `--num_minibatches` (4) gradient steps on minibatches of whole
  environment rows, `keras_gae.optimizers.FusedAdam` at
  `--keras_gae_learning_rate` (2e-3); the model
  is compiled with `steps_per_execution` = epochs * minibatches, so an
  iteration's gradient steps run in one call.
* tf_agents: `tf_agents.agents.ppo.PPOClipAgent` trained with
  `agent.train(buffer.gather_all())`, its documented use:
  `--tf_agents_epochs` (4) epochs of one gradient step on the whole
  rollout, Adam at `--tf_agents_learning_rate` (1e-3). It treats every
  episode end as terminal (the CartPole time limit included;
  tensorflow/agents#939).

A run ends when the mean return of the last 20 finished episodes reaches
`--target_return` (475) or after `--max_env_steps`. Per contender the
table shows the median over seeds of the environment steps and the wall
time (set-up and tracing included) to get there, and their ratio to
keras_gae; runs that never reach the target count as the budget. Seeds run
one after the other, alternating the contenders, so that load drifts on a
shared machine hit both.

keras_gae's time is split into the driver (policy inference and
environment stepping), the conversion (buffer read, rollout batch,
bootstrap value, dataset), GAE and the rest of the train steps (`model.fit`
minus GAE), and the rest (building environments, model and trainer, the
loop's bookkeeping); the first iteration's tracing counts in the part it
belongs to. GAE runs inside the compiled train step; its share is
estimated by timing the model's GAE layer alone, after training, on the
`epochs * num_minibatches` minibatch-shaped slices of one rollout, in one
compiled call per rollout.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# tf-agents and tensorflow-probability need Keras 2 inside; keras_gae
# imports them with it and leaves `keras` Keras 3 (docs/design.md, "Keras
# version"). tf-agents' PPO agent, which keras_gae.agents does not import,
# is imported the same way.
# keras_gae.agents first: it imports tf-agents without the legacy gym
# package's "Gym has been unmaintained" notice.
import keras_gae.agents  # noqa: E402, F401
from keras_gae._src import dependencies  # noqa: E402
from keras_gae._src import rollout_batch as rb  # noqa: E402

with dependencies.keras2_inside():
    from tf_agents.agents.ppo import ppo_clip_agent
    from tf_agents.networks import actor_distribution_network
    from tf_agents.networks import value_network

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from tf_agents.drivers import dynamic_step_driver  # noqa: E402
from tf_agents.metrics import tf_metrics  # noqa: E402
from tf_agents.replay_buffers import tf_uniform_replay_buffer  # noqa: E402
from tf_agents.utils import common  # noqa: E402

from keras_gae.agents import OnPolicyTrainer  # noqa: E402
from keras_gae.agents import make_tf_environment  # noqa: E402
from keras_gae.layers import CategoricalPolicyHead  # noqa: E402
from keras_gae.models import PPOModel  # noqa: E402
from keras_gae.optimizers import FusedAdam  # noqa: E402

flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; the table shows medians.")
flags.DEFINE_list(
    "contenders", ["keras_gae", "tf_agents"], "Which loops to time."
)
flags.DEFINE_integer(
    "max_env_steps", 500_000, "Environment-step budget of each run."
)
flags.DEFINE_float(
    "target_return", 475.0, "Mean return of the last 20 episodes to reach."
)
flags.DEFINE_integer("num_envs", 8, "Environments collected in parallel.")
flags.DEFINE_integer("rollout_length", 128, "Steps per environment per round.")
flags.DEFINE_integer("keras_gae_epochs", 10, "keras_gae passes per rollout.")
flags.DEFINE_integer(
    "num_minibatches", 4, "keras_gae minibatches per epoch (rows of envs)."
)
flags.DEFINE_float("keras_gae_learning_rate", 2e-3, "keras_gae Adam rate.")
flags.DEFINE_integer("tf_agents_epochs", 4, "PPOClipAgent num_epochs.")
flags.DEFINE_float("tf_agents_learning_rate", 1e-3, "PPOClipAgent Adam rate.")
FLAGS = flags.FLAGS

ENV_ID = "CartPole-v1"
RETURN_WINDOW = 20
HIDDEN = (64, 64)


def _mlp(output: keras.layers.Layer) -> keras.Sequential:
    layers = [keras.layers.Dense(units, "tanh") for units in HIDDEN]
    return keras.Sequential(layers + [output])


def _solved(episodes: int, return_mean: float) -> bool:
    return episodes >= RETURN_WINDOW and return_mean >= FLAGS.target_return


def _gae_seconds(model: PPOModel, batch: dict) -> float:
    """Seconds of the model's GAE over one rollout's minibatch slices."""
    rows = FLAGS.num_envs // FLAGS.num_minibatches
    inputs = {key: batch[key] for key in rb.GAE_ARGUMENTS if key in batch}

    @tf.function
    def all_minibatches(inputs):
        total = tf.zeros([])
        for _ in range(FLAGS.keras_gae_epochs):
            for start in range(0, FLAGS.num_envs, rows):
                piece = {k: v[start : start + rows] for k, v in inputs.items()}
                advantages, _ = model.compute_advantages(piece)
                total += tf.reduce_sum(advantages)
        return total

    all_minibatches(inputs)  # trace and compile
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        all_minibatches(inputs).numpy()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def run_keras_gae(seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    env = make_tf_environment(ENV_ID, num_envs=FLAGS.num_envs, seed=seed)
    model = PPOModel(
        _mlp(CategoricalPolicyHead(2)),
        _mlp(keras.layers.Dense(1)),
        gamma=0.99,
        lambda_=0.95,
        clip_ratio=0.2,
        value_coef=0.5,
        entropy_coef=0.0,
        max_grad_norm=0.5,
    )
    model.compile(
        optimizer=FusedAdam(FLAGS.keras_gae_learning_rate),
        steps_per_execution=FLAGS.keras_gae_epochs * FLAGS.num_minibatches,
    )
    trainer = OnPolicyTrainer(
        model,
        env,
        rollout_length=FLAGS.rollout_length,
        epochs=FLAGS.keras_gae_epochs,
        num_minibatches=FLAGS.num_minibatches,
        seed=seed,
        return_window=RETURN_WINDOW,
    )
    history = trainer.run(
        total_env_steps=FLAGS.max_env_steps,
        target_return=FLAGS.target_return,
        verbose=0,
    ).history
    seconds = time.perf_counter() - start
    iterations = len(history["iteration"])
    driver = sum(history["collect_seconds"])
    conversion = sum(history["convert_seconds"])
    fit = sum(history["fit_seconds"])
    gae = min(_gae_seconds(model, trainer.collect()) * iterations, fit)
    return {
        "env_steps": int(history["env_steps"][-1]),
        "seconds": seconds,
        "solved": _solved(
            history["episodes"][-1], history["episode_return_mean"][-1]
        ),
        "split": {
            "driver": driver,
            "conversion": conversion,
            "GAE (estimated)": gae,
            "train steps without GAE": fit - gae,
            "other": seconds - driver - conversion - fit,
        },
    }


def run_tf_agents(seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    env = make_tf_environment(ENV_ID, num_envs=FLAGS.num_envs, seed=seed)
    tanh = keras.activations.tanh
    agent = ppo_clip_agent.PPOClipAgent(
        env.time_step_spec(),
        env.action_spec(),
        optimizer=keras.optimizers.Adam(FLAGS.tf_agents_learning_rate),
        actor_net=actor_distribution_network.ActorDistributionNetwork(
            env.observation_spec(),
            env.action_spec(),
            fc_layer_params=HIDDEN,
            activation_fn=tanh,
        ),
        value_net=value_network.ValueNetwork(
            env.observation_spec(), fc_layer_params=HIDDEN, activation_fn=tanh
        ),
        importance_ratio_clipping=0.2,
        lambda_value=0.95,
        discount_factor=0.99,
        entropy_regularization=0.0,
        value_pred_loss_coef=0.5,
        num_epochs=FLAGS.tf_agents_epochs,
        use_gae=True,
        normalize_rewards=False,
        normalize_observations=False,
        gradient_clipping=0.5,
    )
    agent.initialize()
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec,
        batch_size=FLAGS.num_envs,
        max_length=FLAGS.rollout_length,
    )
    returns = tf_metrics.AverageReturnMetric(
        batch_size=FLAGS.num_envs, buffer_size=RETURN_WINDOW
    )
    episodes = tf_metrics.NumberOfEpisodes()
    env_steps = tf_metrics.EnvironmentSteps()
    driver = dynamic_step_driver.DynamicStepDriver(
        env,
        agent.collect_policy,
        observers=[buffer.add_batch, returns, episodes, env_steps],
        num_steps=FLAGS.num_envs * FLAGS.rollout_length,
    )
    collect = common.function(
        lambda: driver.run(maximum_iterations=FLAGS.rollout_length)
    )
    train = common.function(agent.train)
    while int(env_steps.result()) < FLAGS.max_env_steps:
        collect()
        train(experience=buffer.gather_all())
        buffer.clear()
        if _solved(int(episodes.result()), float(returns.result())):
            break
    return {
        "env_steps": int(env_steps.result()),
        "seconds": time.perf_counter() - start,
        "solved": _solved(int(episodes.result()), float(returns.result())),
    }


CONTENDERS = {"keras_gae": run_keras_gae, "tf_agents": run_tf_agents}


def _median(runs: list, key: str) -> float:
    """Median over seeds; unsolved runs count as the budget."""
    values = []
    for run in runs:
        if key == "env_steps" and not run["solved"]:
            values.append(FLAGS.max_env_steps)
        else:
            values.append(run[key])
    return statistics.median(values)


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    unknown = sorted(set(FLAGS.contenders) - set(CONTENDERS))
    if unknown:
        raise app.UsageError(
            f"Unknown contenders {unknown}; choose among {sorted(CONTENDERS)}."
        )
    seeds = [int(seed) for seed in FLAGS.seeds]
    runs = {name: [] for name in FLAGS.contenders}
    print(
        f"{ENV_ID}: steps and seconds until the mean return of the last "
        f"{RETURN_WINDOW} episodes reaches {FLAGS.target_return:g} "
        f"({FLAGS.num_envs} envs x {FLAGS.rollout_length} steps, "
        f"budget {FLAGS.max_env_steps} steps)"
    )
    print(
        f"keras_gae: {FLAGS.keras_gae_epochs} epochs x "
        f"{FLAGS.num_minibatches} minibatches, FusedAdam "
        f"{FLAGS.keras_gae_learning_rate:g}; tf_agents: "
        f"{FLAGS.tf_agents_epochs} epochs x 1 full batch, Adam "
        f"{FLAGS.tf_agents_learning_rate:g}"
    )
    print(
        f"{'contender':<11} {'seed':>4} {'solved':>6} {'env_steps':>10} "
        f"{'seconds':>10}"
    )
    for seed in seeds:
        for name in FLAGS.contenders:
            run = CONTENDERS[name](seed)
            runs[name].append(run)
            print(
                f"{name:<11} {seed:>4} {str(run['solved']):>6} "
                f"{run['env_steps']:>10} {run['seconds']:>8.1f} s",
                flush=True,
            )

    reference = FLAGS.contenders[0]
    print(f"\nMedian over seeds {seeds} (ratio: contender / {reference})")
    print(
        f"{'contender':<11} {'solved':>6} {'env_steps':>10} {'seconds':>8} "
        f"{'steps ratio':>11} {'time ratio':>10}"
    )
    reference_steps = _median(runs[reference], "env_steps")
    reference_seconds = _median(runs[reference], "seconds")
    for name, contender_runs in runs.items():
        steps = _median(contender_runs, "env_steps")
        seconds = _median(contender_runs, "seconds")
        solved = sum(run["solved"] for run in contender_runs)
        print(
            f"{name:<11} {solved:>3}/{len(contender_runs):<2} {steps:>10.0f} "
            f"{seconds:>8.1f} {steps / reference_steps:>11.2f} "
            f"{seconds / reference_seconds:>10.2f}"
        )

    if "keras_gae" in runs:
        keras_runs = runs["keras_gae"]
        total = _median(keras_runs, "seconds")
        print(f"\nkeras_gae time split (median over seeds, of {total:.1f} s)")
        for part in keras_runs[0]["split"]:
            seconds = statistics.median(
                run["split"][part] for run in keras_runs
            )
            share = 100 * seconds / total
            print(f"  {part:<24} {seconds:>7.2f} s {share:>5.1f} %")


if __name__ == "__main__":
    app.run(main)

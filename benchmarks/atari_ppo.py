"""PPO on an Atari game: keras_gae against stable-baselines3, interleaved.

To run (SB3 runs in .venv-peers, see benchmarks/requirements.txt; 1M
frames, 250k agent steps per side, took 24 minutes on 2 cores):

  .venv/bin/python benchmarks/atari_ppo.py
  # A smoke run (two iterations a side):
  .venv/bin/python benchmarks/atari_ppo.py --total_steps=2048 \\
      --interleave_steps=1024

Both sides train PPO with RL Zoo's Atari settings (keras_gae's preset for
`ALE/*-v5`, `keras_gae.presets`): 8 environments x 128 steps, 4 epochs of
4 minibatches of 256 steps, Adam 2.5e-4 decayed linearly to 0 over
`--total_steps` (keras_gae per gradient step, SB3 per iteration), clip
0.1, entropy 0.01, value 0.5, gamma 0.99, lambda 0.95, gradient norm 0.5,
the policy and value heads on the Nature CNN's features, seed `--seed`,
on the CPU. RL Zoo also decays the clip range; neither side does here.

* keras_gae: `keras_gae.agents.PPO(make_atari_env(env, 8, seed))`, the
  frames of `keras_gae.agents.make_atari_env`.
* SB3: `stable_baselines3.PPO("CnnPolicy", VecFrameStack(make_atari_env(
  env, 8, seed, env_kwargs={"frameskip": 1}), 4))` (its `AtariWrapper`:
  the same 30 no-ops, 4-frame skip with max-pool, episodic life, FIRE
  reset, clipped rewards, 84x84 grayscale), in its own interpreter
  (`--sb3_python`).

Each side runs in a process of its own that builds its agent, then
trains `--interleave_steps` at a time when the parent says so, one side
after the other, so that load drifts on a shared machine hit both. The
table shows, per side, the set-up time, the training time, throughput
(agent steps per second, collection and training together) over the
chunks after the first (which traces and compiles), the median of the
per-round throughput ratios, and the mean score of the last 100 games
(whole games, unclipped: SB3's `Monitor`, keras_gae's `game_statistics`).
"""

import json
import math
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_PYTHON = os.path.join(REPO_ROOT, ".venv-peers", "bin", "python")

flags.DEFINE_string("env", "ALE/Breakout-v5", "An ALE/*-v5 game.")
flags.DEFINE_integer("total_steps", 250_000, "Agent steps per side.")
flags.DEFINE_integer("seed", 0, "Seed of both sides.")
flags.DEFINE_integer(
    "interleave_steps",
    10_240,
    "Agent steps a side trains before the other's turn (a multiple of "
    "the 1,024 steps of an iteration).",
)
flags.DEFINE_list("sides", ["keras_gae", "sb3"], "Which sides run.")
flags.DEFINE_integer(
    "intra_op_threads",
    0,
    "Each side's threads within one operation (0: the library's default, "
    "one per core).",
)
flags.DEFINE_string(
    "sb3_python",
    PEERS_PYTHON if os.path.exists(PEERS_PYTHON) else sys.executable,
    "The interpreter of the SB3 side (with stable-baselines3, torch, "
    "ale-py and OpenCV).",
)
flags.DEFINE_string("side", None, "Internal: run one side's process.")
FLAGS = flags.FLAGS

NUM_ENVS, ROLLOUT_LENGTH = 8, 128
ITERATION = NUM_ENVS * ROLLOUT_LENGTH
LEARNING_RATE, WINDOW = 2.5e-4, 100


def linear_rate(steps_after_rollout, total):
    """RL Zoo's `lin_2.5e-4`: SB3's rate for the update after a rollout."""
    return LEARNING_RATE * max(0.0, 1.0 - steps_after_rollout / total)


class KerasGAESide:
    def __init__(self, env_id, seed, total, threads):
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        from keras_gae import agents

        self._agents = agents
        # The preset decays the rate linearly over total_env_steps.
        self.agent = agents.PPO(
            agents.make_atari_env(env_id, NUM_ENVS, seed),
            seed=seed,
            total_env_steps=total,
            verbose=0,
        )
        settings = self.agent.settings
        assert settings["learning_rate"] == LEARNING_RATE, settings
        assert settings["learning_rate_schedule"] == "linear", settings
        assert settings["num_envs"] * settings["rollout_length"] == ITERATION

    def learn_until(self, target):
        steps = target - int(self.agent.env_steps)
        if steps > 0:
            self.agent.learn(steps, target_return=None)
        return int(self.agent.env_steps)

    def games(self):
        statistics = self._agents.game_statistics(self.agent.env, WINDOW)
        return statistics["game_return_mean"], statistics["games"]


class SB3Side:
    def __init__(self, env_id, seed, total, threads):
        import ale_py
        import gymnasium
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack

        gymnasium.register_envs(ale_py)
        if threads:
            torch.set_num_threads(threads)
        env = VecFrameStack(
            make_atari_env(
                env_id, NUM_ENVS, seed=seed, env_kwargs={"frameskip": 1}
            ),
            4,
        )
        self._total = total
        self._games = _GameCounter()
        self.model = PPO(
            "CnnPolicy",
            env,
            learning_rate=self._rate,
            n_steps=ROLLOUT_LENGTH,
            n_epochs=4,
            batch_size=256,
            clip_range=0.1,
            ent_coef=0.01,
            vf_coef=0.5,
            seed=seed,
            device="cpu",
            verbose=0,
        )

    def _rate(self, progress_remaining):
        # From the model's own step count (the rollout's steps included
        # when SB3 updates the rate), not from the progress of one `learn`
        # call: each chunk is one. SB3 asks once before the model exists.
        steps = self.model.num_timesteps if hasattr(self, "model") else 0
        return linear_rate(steps, self._total)

    def learn_until(self, target):
        steps = target - int(self.model.num_timesteps)
        if steps > 0:
            self.model.learn(
                steps, reset_num_timesteps=False, callback=self._games
            )
        return int(self.model.num_timesteps)

    def games(self):
        buffer = list(self.model.ep_info_buffer)[-WINDOW:]
        episode_return = (
            statistics.fmean(e["r"] for e in buffer) if buffer else math.nan
        )
        return episode_return, float(self._games.count)


def _GameCounter():
    """An SB3 callback counting whole games (its Monitor's episodes)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class GameCounter(BaseCallback):
        count = 0

        def _on_step(self):
            infos = self.locals["infos"]
            self.count += sum("episode" in info for info in infos)
            return True

    return GameCounter()


def child():
    """A side's process: builds its agent, then answers the parent."""
    start = time.perf_counter()
    side_class = KerasGAESide if FLAGS.side == "keras_gae" else SB3Side
    side = side_class(
        FLAGS.env, FLAGS.seed, FLAGS.total_steps, FLAGS.intra_op_threads
    )
    reply = {"setup_seconds": time.perf_counter() - start}
    print("READY " + json.dumps(reply), flush=True)
    done = 0
    for line in sys.stdin:
        start = time.perf_counter()
        steps = side.learn_until(int(line)) - done
        done += steps
        game_return, games = side.games()
        reply = {
            "seconds": time.perf_counter() - start,
            "steps": steps,
            "env_steps": done,
            "game_return": game_return,
            "games": games,
        }
        print("DONE " + json.dumps(reply), flush=True)


def read_reply(process, tag):
    for line in process.stdout:
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise RuntimeError(f"A side ended before answering {tag}.")


def start_side(name):
    python = FLAGS.sb3_python if name == "sb3" else sys.executable
    command = [python, os.path.abspath(__file__), f"--side={name}"] + [
        f"--{flag}={getattr(FLAGS, flag)}"
        for flag in ("env", "total_steps", "seed", "intra_op_threads")
    ]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def main(argv):
    del argv
    if FLAGS.side:
        return child()
    if FLAGS.interleave_steps % ITERATION:
        raise app.UsageError(
            f"--interleave_steps must be a multiple of {ITERATION} (8 "
            "environments x 128 steps). Received: "
            f"--interleave_steps={FLAGS.interleave_steps}"
        )
    processes, results = {}, {}
    for name in FLAGS.sides:
        # One at a time: set-up (imports, environments, first trace
        # excluded) is timed without the other side's load.
        processes[name] = start_side(name)
        results[name] = {"chunks": [], **read_reply(processes[name], "READY")}
    try:
        done = 0
        # Each side counts its own agent steps (keras_gae: transitions,
        # not the LAST -> FIRST rows of its auto-reset), so a chunk may
        # run one iteration more on the keras_gae side. Both train whole
        # iterations: the last chunk ends at the first iteration past
        # --total_steps (250,880 steps for SB3 at the default).
        while done < FLAGS.total_steps:
            steps = min(FLAGS.interleave_steps, FLAGS.total_steps - done)
            for name, process in processes.items():
                # The steps to reach, so that no side drifts ahead.
                process.stdin.write(f"{done + steps}\n")
                process.stdin.flush()
                reply = read_reply(process, "DONE")
                results[name]["chunks"].append(reply)
                results[name].update(reply)
                print(
                    f"{name}: {reply['env_steps']} steps, "
                    f"{reply['steps'] / reply['seconds']:.1f} steps/s, "
                    f"score {reply['game_return']:.2f} "
                    f"({reply['games']:.0f} games)",
                    flush=True,
                )
            done += steps
    finally:
        for process in processes.values():
            process.stdin.close()
            process.wait()
    print_table(results)


def print_table(results):
    names = list(results)
    print(
        f"\n{FLAGS.env}, {FLAGS.total_steps} agent steps a side, seed "
        f"{FLAGS.seed}, chunks of {FLAGS.interleave_steps}\n"
    )
    print(
        "| side | set-up s | training s | steps/s (chunks 2+) | "
        "score, last 100 games | games |"
    )
    print("|---|---|---|---|---|---|")
    rates = {}
    for name in names:
        result = results[name]
        chunks = result["chunks"]
        rates[name] = [chunk["steps"] / chunk["seconds"] for chunk in chunks]
        training = sum(chunk["seconds"] for chunk in chunks)
        print(
            f"| {name} | {result['setup_seconds']:.1f} | {training:.1f} | "
            f"{statistics.median(rates[name][1:] or rates[name]):.1f} | "
            f"{result['game_return']:.2f} | {result['games']:.0f} |"
        )
    if len(names) == 2:
        pairs = list(zip(rates[names[0]], rates[names[1]]))
        ratios = [a / b for a, b in (pairs[1:] or pairs)]
        print(
            f"\n{names[0]} / {names[1]} throughput, median of the rounds: "
            f"{statistics.median(ratios):.2f}"
        )


if __name__ == "__main__":
    app.run(main)

"""GRPO with keras_gae against Hugging Face TRL's GRPOTrainer, by phase.

To run (TRL lives in its own virtual environment, beside .venv, because
tf-agents pins a typing-extensions that recent torch and transformers
refuse; pip takes torch 2.13.0, CPU build, from the local file):

  python3.11 -m venv .venv-peers
  .venv-peers/bin/pip install -r benchmarks/requirements.txt
  .venv/bin/python benchmarks/trl_comparison.py
  .venv/bin/python benchmarks/trl_comparison.py --rounds=5 \\
      --iterations=5 --keras_gae_xla=on --keras_gae_ref=HEAD

The same task on both sides: a GPT-2 with random weights built from one
configuration (--sizes LAYERSxWIDTH: max(2, width / 64) heads,
intermediate 4 x width, GELU (tanh), layer norm epsilon 1e-5, tied
input and output embeddings, no dropout, --vocabulary_size tokens,
prompt + new tokens positions; the parameter counts printed must match),
--num_prompts prompts of --prompt_length random tokens each, --num_samples
completions per prompt, exactly --new_tokens new tokens per row sampled at
temperature 1 from the whole vocabulary (no top-k, no top-p; the stop
token is id 1 on both sides, and both loops run until every row has
stopped, which random weights never reach: the generated width is
checked), a vectorized score of the token ids (the fraction of adjacent
pairs that do not decrease), GRPO advantages (group mean and standard
deviation), the clipped surrogate (0.2) averaged over all valid tokens of
the batch ("token mean": keras_gae's `loss_aggregation="token_mean"`,
TRL's `loss_type="dapo"`, equal with one process and no accumulation),
no KL term (TRL's `beta=0`, keras_gae without a reference network), no
entropy bonus, gradients clipped to norm 1, and one Adam step (learning
rate 1e-5, no weight decay, constant) per batch. float32 everywhere, no
gradient checkpointing, one thread per side (torch.set_num_threads(1);
TensorFlow's intra- and inter-op pools of 1; OMP_NUM_THREADS=1).

* keras_gae: `keras_gae.lm.CausalLMPPOModel` on the keras-hub
  `GPT2CausalLM` (no value head, `advantage_estimator="grpo"`,
  `value_coef=0`, `max_grad_norm=1`), compiled with keras_gae's Adam
  (`keras_gae.optimizers.FusedAdam`, as its agents train; a keras_gae
  older than it takes `keras.optimizers.Adam`); an iteration is
  `model.collect(prompts, score, max_new_tokens, num_samples)` then
  `model.fit` on `keras_gae.models.rollout_dataset(batch,
  num_minibatches=1)` for one epoch. XLA is keras_gae's default unless
  --keras_gae_xla says otherwise; the settings in force are printed.
* TRL: `trl.GRPOTrainer` with a `GRPOConfig` of the settings above
  (`per_device_train_batch_size` = prompts x samples,
  `num_generations` = samples, `use_cpu`, `bf16=False`,
  `gradient_checkpointing=False`, `report_to="none"`), the
  transformers `GPT2LMHeadModel` and a word-level tokenizer over the same
  ids (prompts are text to TRL, as its users give them); an iteration is
  one optimizer step of `trainer.train()`.

Phases, in seconds of wall time:

* generate: the sampling call alone (keras_gae's `generation.sample`
  inside `collect`, timed by wrapping it; TRL's `_generate_single_turn`,
  which runs `model.generate`);
* collect: the whole collection (keras_gae's `collect`; TRL's
  `_prepare_inputs`: prompt tokenization, generation, decoding, rewards,
  advantages);
* update: keras_gae's `fit`; TRL from the end of `_prepare_inputs` to
  `on_step_end` (log-probs, loss, backward, clipping, optimizer step);
* iteration: keras_gae's collect + fit; TRL's time between two
  `on_step_end` callbacks (the whole trainer loop, data loading
  included); also its CPU time (`time.process_time`).

Each side runs in its own process, which builds every model in turn
(sizes x lengths), runs one first iteration (tracing, compilation,
optimizer set-up: reported on its own, with the set-up before it), then
--iterations timed ones and prints their medians. A round is one
process per side, the order alternating between rounds so that load
drifts on a shared machine hit both; the table gives medians over
--rounds rounds. keras_gae is whatever `keras_gae/` holds in the work
tree (its commit and any uncommitted files under it are printed), or,
with --keras_gae_ref, that git revision's `keras_gae/` exported to a
temporary folder.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAD_ID, EOS_ID = 0, 1
PHASES = ("generate", "collect", "update", "iteration", "iteration_cpu")
LEARNING_RATE = 1e-5


def model_shape(size, vocabulary_size, positions):
    """The GPT-2 configuration both sides build, from LAYERSxWIDTH."""
    num_layers, width = (int(x) for x in size.lower().split("x"))
    return dict(
        num_layers=num_layers,
        width=width,
        heads=max(2, width // 64),
        intermediate=4 * width,
        vocabulary_size=vocabulary_size,
        positions=positions,
    )


def make_prompts(args, round_index, step):
    """`num_prompts` rows of `prompt_length` ids in [2, V), no padding."""
    import numpy as np

    rng = np.random.default_rng([round_index, step])
    return rng.integers(
        2,
        args.vocabulary_size,
        size=(args.num_prompts, args.prompt_length),
        dtype=np.int32,
    )


def monotone_score(ids):
    """Fraction of adjacent pairs in `ids` (one response) not decreasing."""
    pairs = list(zip(ids[:-1], ids[1:]))
    return sum(b >= a for a, b in pairs) / max(len(pairs), 1)


def configurations(args):
    for size in args.sizes.split(","):
        for new_tokens in (int(n) for n in args.new_tokens.split(",")):
            yield size, new_tokens


class Timer:
    """Wall and CPU seconds since the last `lap`."""

    def __init__(self):
        self.lap()

    def lap(self):
        now = (time.perf_counter(), time.process_time())
        if hasattr(self, "_last"):
            wall, cpu = (a - b for a, b in zip(now, self._last))
        else:
            wall = cpu = 0.0
        self._last = now
        return wall, cpu


# ---------------------------------------------------------------- keras_gae


def time_generation():
    """Times keras_gae's sampling calls: returns the list of their seconds.

    Wraps `keras_gae.lm.generation.sample`, where `collect` looks it up.
    """
    import numpy as np

    from keras_gae.lm import generation

    sample, seconds = generation.sample, []

    def timed_sample(*a, **k):
        start = time.perf_counter()
        outputs = sample(*a, **k)
        np.asarray(outputs.tokens)  # Waits for the values.
        seconds.append(time.perf_counter() - start)
        return outputs

    generation.sample = timed_sample
    return seconds


def keras_gae_model(size, vocabulary_size, positions, xla=None, adam=None):
    """`(model, causal_lm)`: keras_gae's GRPO model of the GPT-2 `size`,
    compiled with its Adam.

    `xla`: None keeps keras_gae's defaults; True or False sets both
    `jit_generate` and the train step's `jit_compile`. `adam`: the
    optimizer class (None: keras_gae's `FusedAdam`, or Keras' Adam in a
    keras_gae older than it).
    """
    import keras
    import keras_hub

    from keras_gae import lm

    if adam is None:
        try:
            from keras_gae.optimizers import FusedAdam as adam
        except ImportError:  # A --keras_gae_ref from before it.
            adam = keras.optimizers.Adam

    shape = model_shape(size, vocabulary_size, positions)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=shape["vocabulary_size"],
        num_layers=shape["num_layers"],
        num_heads=shape["heads"],
        hidden_dim=shape["width"],
        intermediate_dim=shape["intermediate"],
        max_sequence_length=shape["positions"],
        dropout=0.0,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    settings = {} if xla is None else {"jit_generate": xla}
    model = lm.CausalLMPPOModel(
        causal_lm,
        vocab_size=vocabulary_size,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        advantage_estimator="grpo",
        loss_aggregation="token_mean",
        value_coef=0.0,
        entropy_coef=0.0,
        clip_ratio=0.2,
        max_grad_norm=1.0,
        **settings,
    )
    model.compile(
        optimizer=adam(LEARNING_RATE),
        **({} if xla is None else {"jit_compile": xla}),
    )
    return model, causal_lm


def score_rows(tokens, mask):
    """`monotone_score` of each row's response tokens, `[B]` float32."""
    import numpy as np

    tokens, mask = np.asarray(tokens), np.asarray(mask, bool)
    return np.array(
        [monotone_score(row[m].tolist()) for row, m in zip(tokens, mask)],
        np.float32,
    )


def keras_gae_side(args):
    import tensorflow as tf

    # Before TensorFlow's first operation, which fixes its thread pools.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import keras_hub
    import numpy as np

    import keras_gae
    from keras_gae.models import rollout_dataset

    generate_seconds = time_generation()
    xla = {"default": None, "on": True, "off": False}[args.keras_gae_xla]
    results = []
    for size, new_tokens in configurations(args):
        timer = Timer()
        model, causal_lm = keras_gae_model(
            size,
            args.vocabulary_size,
            args.prompt_length + new_tokens,
            xla,
        )
        setup = timer.lap()[0]
        longest, iterations = set(), []
        for step in range(1 + args.iterations):
            del generate_seconds[:]
            timer.lap()
            rollout = model.collect(
                make_prompts(args, args.round, step),
                score_rows,
                max_new_tokens=new_tokens,
                num_samples=args.num_samples,
                seed=step,
            )
            collect = timer.lap()
            model.fit(
                rollout_dataset(rollout.batch, num_minibatches=1, seed=step),
                epochs=1,
                verbose=0,
            )
            update = timer.lap()
            longest.add(int(np.max(rollout.response_length)))
            iterations.append(
                {
                    "generate": sum(generate_seconds) or float("nan"),
                    "collect": collect[0],
                    "update": update[0],
                    "iteration": collect[0] + update[0],
                    "iteration_cpu": collect[1] + update[1],
                }
            )
        results.append(
            {
                "size": size,
                "new_tokens": new_tokens,
                "parameters": int(causal_lm.count_params()),
                "setup": setup,
                "first": iterations[0],
                "timed": iterations[1:],
                "longest_response": sorted(longest),
                "settings": (
                    f"jit_generate={model.jit_generate}, "
                    f"train step jit_compile={model.jit_compile}, "
                    f"optimizer {type(model.optimizer).__name__}"
                ),
            }
        )
    return {
        "results": results,
        "versions": (
            f"keras_gae from {os.path.dirname(keras_gae.__file__)}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"keras-hub {keras_hub.__version__}"
        ),
    }


# ---------------------------------------------------------------------- TRL


def word_level_tokenizer(vocabulary_size):
    """Ids 0 (pad), 1 (eos) and "t2" ... "t{V-1}", split at spaces."""
    import tokenizers
    import transformers

    vocabulary = {"<pad>": PAD_ID, "<eos>": EOS_ID}
    vocabulary.update({f"t{i}": i for i in range(2, vocabulary_size)})
    tokenizer = tokenizers.Tokenizer(
        tokenizers.models.WordLevel(vocabulary, unk_token="<pad>")
    )
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="<eos>",
        padding_side="left",
    )


def trl_side(args):
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    import datasets
    import transformers
    import trl

    transformers.logging.set_verbosity_error()
    tokenizer = word_level_tokenizer(args.vocabulary_size)

    def score(completions, completion_ids, **kwargs):
        del completions, kwargs
        return [monotone_score(list(ids)) for ids in completion_ids]

    # One model's marks (reset per model): the hooks below write them.
    marks = {}

    class TimedTrainer(trl.GRPOTrainer):
        def _generate_single_turn(self, *a, **k):
            start = time.perf_counter()
            out = super()._generate_single_turn(*a, **k)
            marks["generate"].append(time.perf_counter() - start)
            return out

        def _prepare_inputs(self, batch):
            start = time.perf_counter()
            out = super()._prepare_inputs(batch)
            marks["prepared"] = time.perf_counter()
            marks["collect"] = marks["prepared"] - start
            metrics = self._metrics["train"]["completions/max_length"]
            marks["longest"].add(int(metrics[-1]))
            return out

    class StepClock(transformers.TrainerCallback):
        def on_step_end(self, *unused_args, **unused_kwargs):
            now = time.perf_counter(), time.process_time()
            last = marks["last_end"]
            marks["iterations"].append(
                {
                    "generate": sum(marks["generate"]),
                    "collect": marks["collect"],
                    "update": now[0] - marks["prepared"],
                    "iteration": now[0] - last[0],
                    "iteration_cpu": now[1] - last[1],
                }
            )
            marks["generate"], marks["last_end"] = [], now

    results = []
    for size, new_tokens in configurations(args):
        marks.clear()
        marks.update(generate=[], longest=set(), iterations=[])
        timer = Timer()
        shape = model_shape(
            size, args.vocabulary_size, args.prompt_length + new_tokens
        )
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                vocab_size=shape["vocabulary_size"],
                n_positions=shape["positions"],
                n_embd=shape["width"],
                n_layer=shape["num_layers"],
                n_head=shape["heads"],
                n_inner=shape["intermediate"],
                activation_function="gelu_new",
                layer_norm_epsilon=1e-5,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                tie_word_embeddings=True,
                bos_token_id=EOS_ID,
                eos_token_id=EOS_ID,
                pad_token_id=PAD_ID,
            )
        )
        steps = 1 + args.iterations
        prompts = [
            " ".join(f"t{i}" for i in row)
            for step in range(steps)
            for row in make_prompts(args, args.round, step)
        ]
        output_dir = tempfile.mkdtemp(prefix="trl_comparison_")
        config = trl.GRPOConfig(
            output_dir=output_dir,
            per_device_train_batch_size=args.num_prompts * args.num_samples,
            gradient_accumulation_steps=1,
            num_generations=args.num_samples,
            max_completion_length=new_tokens,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            beta=0.0,
            num_iterations=1,
            epsilon=0.2,
            loss_type="dapo",
            scale_rewards="group",
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="constant",
            weight_decay=0.0,
            max_grad_norm=1.0,
            max_steps=steps,
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            shuffle_dataset=False,
            seed=args.round,
        )
        trainer = TimedTrainer(
            model=model,
            reward_funcs=score,
            args=config,
            train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
            processing_class=tokenizer,
            callbacks=[StepClock()],
        )
        setup = timer.lap()[0]
        marks["last_end"] = time.perf_counter(), time.process_time()
        trainer.train()
        shutil.rmtree(output_dir, ignore_errors=True)
        iterations = marks["iterations"]
        results.append(
            {
                "size": size,
                "new_tokens": new_tokens,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "setup": setup,
                "first": iterations[0],
                "timed": iterations[1:],
                "longest_response": sorted(marks["longest"]),
                "settings": f"attention {model.config._attn_implementation}",
            }
        )
    return {
        "results": results,
        "versions": (
            f"TRL {trl.__version__}, transformers {transformers.__version__},"
            f" torch {torch.__version__}"
        ),
    }


# ------------------------------------------------------------------- parent


def keras_gae_source(args):
    """(PYTHONPATH folder or None, description of the keras_gae measured)."""
    git = ["git", "-C", REPO_ROOT]
    if args.keras_gae_ref:
        commit = subprocess.check_output(
            git + ["rev-parse", args.keras_gae_ref], text=True
        ).strip()
        folder = tempfile.mkdtemp(prefix="keras_gae_")
        archive = subprocess.run(
            git + ["archive", commit, "keras_gae"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        return folder, f"keras_gae at commit {commit} (exported)"
    commit = subprocess.check_output(
        git + ["rev-parse", "HEAD"], text=True
    ).strip()
    changed = subprocess.check_output(
        git + ["status", "--porcelain", "--", "keras_gae"], text=True
    ).splitlines()
    note = f" plus {len(changed)} uncommitted files" if changed else ""
    return None, f"keras_gae work tree at commit {commit}{note}"


def run_side(args, side, round_index, python, pythonpath):
    command = [
        python,
        os.path.abspath(__file__),
        f"--side={side}",
        f"--round={round_index}",
    ] + [
        f"--{name}={getattr(args, name)}"
        for name in (
            "sizes",
            "new_tokens",
            "vocabulary_size",
            "num_prompts",
            "num_samples",
            "prompt_length",
            "iterations",
            "keras_gae_xla",
        )
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
    )
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [
        line for line in done.stdout.splitlines() if line.startswith("RESULT ")
    ]
    if done.returncode or not lines:
        sys.exit(
            f"{side} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1][len("RESULT ") :])
    result["process_seconds"] = time.perf_counter() - start
    return result


def median(values):
    return statistics.median(values) if values else float("nan")


def report(args, rounds, source):
    sides = ("keras_gae", "trl")
    first_round = rounds[0]
    print(f"\n{source}")
    for side in sides:
        print(f"{side}: {first_round[side]['versions']}")
    print(
        f"{args.num_prompts} prompts x {args.num_samples} samples, "
        f"{args.prompt_length}-token prompts, V={args.vocabulary_size}; "
        f"per process {args.iterations} timed iterations after the first; "
        f"medians over {len(rounds)} rounds (each the median of its "
        "process); one thread per side"
    )
    # cell[side][config][phase] -> per-round medians.
    cells = {side: {} for side in sides}
    firsts = {side: {} for side in sides}
    for one in rounds:
        for side in sides:
            for result in one[side]["results"]:
                key = (result["size"], result["new_tokens"])
                per_phase = cells[side].setdefault(key, {})
                for phase in PHASES:
                    per_phase.setdefault(phase, []).append(
                        median([t[phase] for t in result["timed"]])
                    )
                firsts[side].setdefault(key, []).append(
                    (result["setup"], result["first"]["iteration"])
                )
    keys = list(cells["keras_gae"])
    for side in sides:
        for result in first_round[side]["results"]:
            print(
                f"{side} {result['size']} N={result['new_tokens']}: "
                f"{result['parameters']:,} parameters, longest response "
                f"{result['longest_response']}, {result['settings']}"
            )
    if any(
        t["generate"] != t["generate"]  # NaN: the wrapper was never called.
        for r in first_round["keras_gae"]["results"]
        for t in r["timed"]
    ):
        print(
            "keras_gae's collect no longer calls keras_gae.lm.generation."
            "sample: its generate phase is NaN"
        )
    print(
        "\nkeras_gae time / TRL time (below 1: keras_gae faster), "
        "medians of rounds\n"
    )
    print(
        "| model | new tokens | generate | collect | update | iteration "
        "| iteration, CPU time |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size, new_tokens in keys:
        ratios = [
            median(cells["keras_gae"][(size, new_tokens)][phase])
            / median(cells["trl"][(size, new_tokens)][phase])
            for phase in PHASES
        ]
        print(
            f"| {size} | {new_tokens} | "
            + " | ".join(f"{r:.2f}" for r in ratios)
            + " |"
        )
    print("\nSeconds (median of rounds; keras_gae / TRL)\n")
    print(
        "| model | new tokens | generate | collect | update | iteration "
        "| set-up | first iteration |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in keys:
        parts = [
            " / ".join(f"{median(cells[s][key][p]):.3f}" for s in sides)
            for p in PHASES[:4]
        ]
        for index in (0, 1):
            parts.append(
                " / ".join(
                    f"{median([f[index] for f in firsts[s][key]]):.2f}"
                    for s in sides
                )
            )
        print(f"| {key[0]} | {key[1]} | " + " | ".join(parts) + " |")
    spans = {
        side: [r[side]["process_seconds"] for r in rounds] for side in sides
    }
    print(
        "\nWhole processes (imports, every model, first and timed "
        "iterations), s: "
        + "; ".join(
            f"{side} " + ", ".join(f"{s:.0f}" for s in spans[side])
            for side in sides
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2x64,4x256", help="LAYERSxWIDTH")
    parser.add_argument("--new_tokens", default="32,128")
    parser.add_argument("--vocabulary_size", type=int, default=512)
    parser.add_argument("--num_prompts", type=int, default=4)
    parser.add_argument("--num_samples", type=int, default=8)
    parser.add_argument("--prompt_length", type=int, default=8)
    parser.add_argument(
        "--iterations",
        type=int,
        default=3,
        help="timed iterations per model and process, after the first",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="processes per side"
    )
    parser.add_argument(
        "--keras_gae_xla",
        choices=("default", "on", "off"),
        default="default",
        help="jit_generate and compile(jit_compile=...) for keras_gae "
        "(default: keras_gae's own)",
    )
    parser.add_argument(
        "--keras_gae_ref",
        default="",
        help="a git revision whose keras_gae/ is measured instead of the "
        "work tree's",
    )
    parser.add_argument(
        "--python",
        default=os.path.join(REPO_ROOT, ".venv", "bin", "python"),
        help="interpreter with keras_gae's dependencies",
    )
    parser.add_argument(
        "--peer_python",
        default=os.path.join(REPO_ROOT, ".venv-peers", "bin", "python"),
        help="interpreter with torch, transformers and trl",
    )
    parser.add_argument("--side", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run = keras_gae_side if args.side == "keras_gae" else trl_side
        print("RESULT " + json.dumps(run(args)), flush=True)
        return
    pythonpath, source = keras_gae_source(args)
    try:
        rounds = run_rounds(args, pythonpath)
    finally:
        if pythonpath:
            shutil.rmtree(pythonpath, ignore_errors=True)
    report(args, rounds, source)


def run_rounds(args, pythonpath):
    start = time.perf_counter()
    rounds = []
    for round_index in range(args.rounds):
        order = [
            ("keras_gae", args.python, pythonpath),
            ("trl", args.peer_python, None),
        ]
        if round_index % 2:
            order.reverse()
        rounds.append(
            {
                side: run_side(args, side, round_index, python, path)
                for side, python, path in order
            }
        )
        print(
            f"round {round_index + 1}/{args.rounds} done, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    print(f"Total wall time {time.perf_counter() - start:.0f} s", flush=True)
    return rounds


if __name__ == "__main__":
    main()

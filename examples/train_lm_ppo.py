r"""RL fine-tuning of a small keras-hub GPT-2 to sort digits.

To run:

  .venv/bin/python examples/train_lm_ppo.py --root_dir=/tmp/lm_ppo
  .venv/bin/python examples/train_lm_ppo.py --root_dir=/tmp/lm_grpo \
      --estimator=grpo --lora_rank=4
  .venv/bin/python examples/train_lm_ppo.py --root_dir=/tmp/lm_dr_grpo \
      --estimator=dr_grpo --loss_aggregation=dr_grpo \
      --mask_truncated_completions --eval_interval=10
  tensorboard --logdir=/tmp/lm_ppo/train

Nothing is downloaded. The example

1. builds a `keras_hub.models.GPT2CausalLM` from a config (--num_layers
   blocks, width --hidden_dim, random weights) over a digit vocabulary:
   0-9, BOS, SEP, EOS, PAD;
2. pretrains it by next-token prediction on a synthetic corpus it
   generates: rows `BOS d_1 .. d_k SEP e_1 .. e_k EOS` where e is the
   prompt's digits sorted in a --sorted_fraction of the rows and shuffled
   in the others. The supervised model writes the prompt's digits back,
   in sorted order only sometimes;
3. fine-tunes it against a programmatic reward: the fraction of positions
   where the response matches the prompt's digits sorted,
   matches / max(k, response digits). It depends on the prompt, so no
   fixed pattern scores: a response scores 1 only by sorting. Prompts of
   --min_digits to --max_digits digits are left-padded with PAD, so every
   batch mixes prompt lengths.

`--estimator` picks the advantages: "gae" (token-level GAE with a value
head on the shared trunk), "grpo", "dr_grpo", "rloo" or "reinforce_pp"
(critic-free, --num_samples completions per prompt). With `--lora_rank`,
only LoRA adapters train and the reference policy is the same network with
the adapters off; without it the reference is a frozen copy. The KL to the
reference is a per-token reward penalty (k1) whose coefficient an
adaptive controller steers toward --target_kl. TRL's GRPO options have
flags of their own (docs/lm.md has the table): --scale_rewards,
--loss_aggregation=dr_grpo (the response length limit as its constant),
--importance_sampling_level=sequence (GSPO), --mask_truncated_completions,
--lora_alpha and --lora_target_names, and --eval_interval, which logs the
greedy reward on the evaluation prompts every k iterations (eval_reward).

Every iteration logs (TensorBoard scalars under root_dir/train) the
reward, the KL to the reference, the response length, the policy entropy,
the clip fraction and the losses. Checkpoints go to root_dir/checkpoints
(after pretraining, then every --checkpoint_interval iterations); a rerun
resumes from the newest readable one, as `keras_gae.agents` runs do
(`keras_gae.agents.checkpointing`): newer unreadable ones are moved to
checkpoints/unreadable-<n> with a warning naming them, none readable (or
a checkpoint of other settings) is refused with one `error:` line and
status 2, and `--restart` starts over, moving the old checkpoints to
root_dir/checkpoints.old-<n>. The policy is exported to root_dir/policy
as a SavedModel whose signatures decode with the key/value cache:

  loaded = tf.saved_model.load("/tmp/lm_ppo/policy")
  loaded.signatures["generate"](prompt_tokens=prompts)["tokens"]  # greedy
  loaded.signatures["sample"](prompt_tokens=prompts)["tokens"]

with `prompts` int32 `[B, P]`, PAD-left-padded `BOS digits SEP` rows; the
output rows are packed (prompt from column 0, then the response).

The last line printed is the summary: the fine-tuned policy's scores
next to the supervised model's. The flags are parsed and checked (positive
sizes, finite rates, --num_minibatches dividing the rollout's rows, ...)
before TensorFlow is imported: `--help` exits with status 0 and a bad flag
is one `error:` line and status 2 at once.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Sequence

if not __package__:
    # Run as `python examples/train_lm_ppo.py`: make `examples` importable.
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from examples import cli  # noqa: E402
from examples import quiet_start  # noqa: E402  (before TensorFlow)
from keras_gae.estimator_names import GROUP_ESTIMATORS  # noqa: E402
from keras_gae.estimator_names import LM_ESTIMATORS  # noqa: E402

# TensorFlow, Keras, keras-hub and keras_gae's subpackages are imported in
# the functions that use them: the flags are parsed and checked without
# them (keras_gae.estimator_names is plain Python).

PROGRAM = "train_lm_ppo.py"
NUM_DIGITS = 10
BOS_ID = 10
SEP_ID = 11
EOS_ID = 12
PAD_ID = 13
VOCAB_SIZE = 14

flags.DEFINE_string(
    "root_dir",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), "keras_gae_lm_ppo"),
    "Directory for TensorBoard logs, checkpoints and the exported policy.",
)
flags.DEFINE_integer(
    "seed", 0, "Seed of the corpus, networks and sampling.", lower_bound=0
)
flags.DEFINE_enum("estimator", "gae", LM_ESTIMATORS, "Advantage estimator.")
flags.DEFINE_integer(
    "lora_rank", 0, "LoRA rank; 0 trains every weight.", lower_bound=0
)
flags.DEFINE_float(
    "lora_alpha",
    0.0,
    "LoRA scale numerator (adapters scaled by alpha / rank); 0: the rank.",
    lower_bound=0.0,
)
flags.DEFINE_list(
    "lora_target_names",
    None,
    "Layers LoRA adapts (comma-separated); default: the backbone's "
    "(attention query and value).",
)
flags.DEFINE_enum(
    "loss_aggregation",
    "token_mean",
    ("token_mean", "sequence_sum", "sequence_mean", "dr_grpo"),
    "How the per-token policy losses are averaged (dr_grpo: the token sum "
    "over rows times the response length limit).",
)
flags.DEFINE_enum(
    "scale_rewards",
    "group",
    ("group", "batch", "none"),
    "What grpo divides the centred returns by: the group's std, the "
    "batch's, or nothing.",
)
flags.DEFINE_enum(
    "importance_sampling_level",
    "token",
    ("token", "sequence"),
    "PPO ratios per token, or one per response (GSPO).",
)
flags.DEFINE_boolean(
    "mask_truncated_completions",
    False,
    "Leave responses cut at the length limit out of the loss.",
)
flags.DEFINE_integer(
    "eval_interval",
    0,
    "Iterations between evaluations of the greedy reward on the "
    "evaluation prompts (0: none during training).",
    lower_bound=0,
)
flags.DEFINE_integer(
    "min_digits", 3, "Fewest digits of a prompt.", lower_bound=1
)
flags.DEFINE_integer("max_digits", 6, "Most digits of a prompt.", lower_bound=1)
flags.DEFINE_float(
    "sorted_fraction",
    0.3,
    "Sorted rows of the corpus.",
    lower_bound=0.0,
    upper_bound=1.0,
)
flags.DEFINE_integer(
    "corpus_size", 8192, "Rows of the synthetic corpus.", lower_bound=1
)
flags.DEFINE_integer("num_layers", 2, "GPT-2 blocks.", lower_bound=1)
flags.DEFINE_integer(
    "hidden_dim", 64, "GPT-2 width (2 heads: even).", lower_bound=2
)
flags.DEFINE_integer(
    "pretrain_steps", 1000, "Next-token training steps.", lower_bound=1
)
flags.DEFINE_float("pretrain_learning_rate", 3e-3, "Adam rate, pretraining.")
flags.DEFINE_integer(
    "num_iterations", 80, "RL iterations (collect + fit).", lower_bound=0
)
flags.DEFINE_integer(
    "prompts_per_iteration", 16, "Prompts per iteration.", lower_bound=1
)
flags.DEFINE_integer(
    "num_samples",
    4,
    "Completions per prompt (group; >= 2 for grpo, dr_grpo and rloo).",
    lower_bound=1,
)
flags.DEFINE_integer("num_epochs", 2, "Epochs per iteration.", lower_bound=1)
flags.DEFINE_integer(
    "num_minibatches",
    2,
    "Minibatches per epoch (dividing prompts_per_iteration * num_samples).",
    lower_bound=1,
)
flags.DEFINE_float("learning_rate", 3e-4, "Adam rate, RL.")
flags.DEFINE_float("clip_ratio", 0.2, "PPO clip epsilon.")
flags.DEFINE_float(
    "init_kl_coef", 0.05, "Initial KL reward coefficient.", lower_bound=0.0
)
flags.DEFINE_float("target_kl", 2.0, "Target KL to the reference, nats/seq.")
flags.DEFINE_integer("eval_size", 256, "Prompts for evaluation.", lower_bound=1)
flags.DEFINE_integer(
    "checkpoint_interval", 10, "Iterations per checkpoint.", lower_bound=1
)
flags.DEFINE_boolean(
    "jit_generate",
    True,
    "XLA-compile generation (collection, evaluation, the export's loops); "
    "--nojit_generate skips the compile time, for short runs.",
)
flags.DEFINE_boolean(
    "restart",
    False,
    "Start a new run even if root_dir holds checkpoints; they are moved to "
    "root_dir/checkpoints.old-<n>, never overwritten.",
)
# The bounds above let NaN through (every comparison with it is False).
for _name in (
    "pretrain_learning_rate",
    "learning_rate",
    "clip_ratio",
    "target_kl",
):
    flags.register_validator(
        _name,
        lambda value: math.isfinite(value) and value > 0,
        message="must be a finite number > 0",
    )
for _name in ("sorted_fraction", "init_kl_coef"):
    flags.register_validator(
        _name, math.isfinite, message="must be a finite number"
    )
flags.register_validator(
    "hidden_dim", lambda value: value % 2 == 0, message="must be even"
)
flags.register_validator("root_dir", bool, message="must not be empty")
flags.register_multi_flags_validator(
    ["min_digits", "max_digits"],
    lambda values: values["min_digits"] <= values["max_digits"],
    message="--min_digits must be <= --max_digits",
)
flags.register_validator("lora_alpha", math.isfinite, message="must be finite")
flags.register_multi_flags_validator(
    ["estimator", "scale_rewards"],
    lambda values: (
        values["estimator"] == "grpo" or values["scale_rewards"] == "group"
    ),
    message="--scale_rewards applies to --estimator=grpo",
)
flags.register_multi_flags_validator(
    ["lora_rank", "lora_alpha", "lora_target_names"],
    lambda values: (
        values["lora_rank"] > 0
        or (not values["lora_alpha"] and values["lora_target_names"] is None)
    ),
    message="--lora_alpha and --lora_target_names need --lora_rank",
)
flags.register_multi_flags_validator(
    ["estimator", "num_samples"],
    lambda values: (
        values["estimator"] not in GROUP_ESTIMATORS
        or values["num_samples"] >= 2
    ),
    message=f"--num_samples must be >= 2 for {', '.join(GROUP_ESTIMATORS)}",
)
flags.register_multi_flags_validator(
    ["prompts_per_iteration", "num_samples", "num_minibatches"],
    lambda values: (
        values["prompts_per_iteration"]
        * values["num_samples"]
        % values["num_minibatches"]
        == 0
    ),
    message="--num_minibatches must divide the rollout's rows, "
    "--prompts_per_iteration * --num_samples",
)
FLAGS = flags.FLAGS


def make_causal_lm(num_layers, hidden_dim, max_length):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB_SIZE,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=4 * hidden_dim,
        max_sequence_length=max_length,
        dropout=0.0,
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def make_prompts(rng, size, min_digits, max_digits):
    """`(prompts [size, max_digits + 2] left-padded, digit lists)`."""
    width = max_digits + 2
    prompts = np.full((size, width), PAD_ID, np.int32)
    digits = []
    for row in prompts:
        row_digits = rng.integers(
            0, NUM_DIGITS, size=rng.integers(min_digits, max_digits + 1)
        )
        row[width - len(row_digits) - 2 :] = [BOS_ID, *row_digits, SEP_ID]
        digits.append(row_digits)
    return prompts, digits


def make_corpus(rng, size, min_digits, max_digits, sorted_fraction):
    """`[size, 2 * max_digits + 3]` rows BOS d SEP e EOS, PAD after."""
    width = 2 * max_digits + 3
    rows = np.full((size, width), PAD_ID, np.int32)
    for row in rows:
        digits = rng.integers(
            0, NUM_DIGITS, size=rng.integers(min_digits, max_digits + 1)
        )
        if rng.random() < sorted_fraction:
            answer = np.sort(digits)
        else:
            answer = rng.permutation(digits)
        sequence = [BOS_ID, *digits, SEP_ID, *answer, EOS_ID]
        row[: len(sequence)] = sequence
    return rows


def sorting_scores(tokens, mask):
    """Exact-position matches with the prompt's digits sorted, per row.

    score = #{i : response_i == sorted(prompt)_i} / max(k, n), k prompt
    digits, n response tokens before EOS (any non-digit counts as a
    mismatch). Rows are packed: `BOS digits SEP` from column 0.
    """
    tokens = np.asarray(tokens)
    mask = np.asarray(mask)
    scores = np.zeros(tokens.shape[0], np.float32)
    for b, (row, valid) in enumerate(zip(tokens, mask)):
        separator = np.flatnonzero(row == SEP_ID)
        if not len(separator):
            continue
        target = np.sort(row[1 : separator[0]])
        response = row[valid]
        if len(response) and response[-1] == EOS_ID:
            response = response[:-1]
        length = max(len(target), len(response))
        if length == 0:
            continue
        matches = sum(
            int(a == c) for a, c in zip(response[: len(target)], target)
        )
        scores[b] = matches / length
    return scores


def pretrain(causal_lm, corpus, *, steps, batch_size, learning_rate, seed):
    """Next-token cross-entropy on the non-padding targets."""
    import keras
    import tensorflow as tf

    causal_lm.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    inputs, targets = corpus[:, :-1], corpus[:, 1:]
    weights = (targets != PAD_ID).astype(np.float32)
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            (
                {"token_ids": inputs, "padding_mask": inputs != PAD_ID},
                targets,
                weights,
            )
        )
        .shuffle(len(corpus), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )
    history = causal_lm.fit(
        dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False
    ).history
    return float(history["loss"][-1])


def export_policy(policy, path, max_new_tokens, jit_compile=True):
    """Writes the SavedModel with cached "generate" (greedy) and "sample"."""
    import tensorflow as tf

    from keras_gae import lm

    module = tf.Module(name="lm_policy")
    module.policy = policy
    prompt_spec = tf.TensorSpec([None, None], tf.int32, "prompt_tokens")

    def decode(prompt_tokens, top_k):
        out = lm.generate(
            module.policy,
            prompt_tokens,
            max_new_tokens=max_new_tokens,
            top_k=top_k,
            eos_id=EOS_ID,
            pad_id=PAD_ID,
            jit_compile=jit_compile,
        )
        return {
            "tokens": out.tokens,
            "mask": out.mask,
            "prompt_length": out.prompt_length,
        }

    module.generate = tf.function(
        lambda prompt_tokens: decode(prompt_tokens, top_k=1),
        input_signature=[prompt_spec],
    )
    module.sample = tf.function(
        lambda prompt_tokens: decode(prompt_tokens, top_k=None),
        input_signature=[prompt_spec],
    )
    tf.saved_model.save(
        module,
        path,
        signatures={
            "generate": module.generate.get_concrete_function(),
            "sample": module.sample.get_concrete_function(),
        },
    )
    return path


def _decode(model, prompts, max_new_tokens, **kwargs):
    """`(packed tokens, [B, W] response mask, outputs)` of `lm.generate`."""
    from keras_gae import lm

    out = lm.generate(
        model.network,
        prompts,
        max_new_tokens=max_new_tokens,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        jit_compile=model.jit_generate,
        **kwargs,
    )
    return out.tokens.numpy(), out.response_mask.numpy(), out


def evaluate(model, prompts, max_new_tokens, seed, samples=0):
    """Sampled and greedy scores, KL (k1, nats per sequence) and length."""
    from keras_gae import lm

    tokens, mask, out = _decode(model, prompts, max_new_tokens, seed=seed)
    scores = sorting_scores(tokens, mask)
    kl = 0.0
    if model.has_reference:
        log_probs = lm.causal_log_probs(model.network(tokens)[0], tokens)
        reference = model.reference_log_probs(tokens)
        kl = float(np.mean(np.sum(np.where(mask, log_probs - reference, 0), 1)))
    tokens, mask, out = _decode(model, prompts, max_new_tokens, top_k=1)
    greedy_scores = sorting_scores(tokens, mask)
    lengths = out.prompt_length.numpy()
    responses = [
        "".join(_text(t) for t in row[valid])
        for row, valid in zip(tokens, mask)
    ]
    prompts_text = [
        "".join(_text(t) for t in row[1 : p - 1])
        for row, p in zip(tokens, lengths)
    ]
    return {
        "score": float(np.mean(scores)),
        "greedy_score": float(np.mean(greedy_scores)),
        "greedy_exact": float(np.mean(greedy_scores == 1.0)),
        "kl": kl,
        "response_length": float(np.mean(mask.sum(axis=1))),
        "distinct_responses": len(set(responses)),
        "samples": list(zip(prompts_text, responses))[:samples],
    }


def _text(token):
    return str(token) if token < NUM_DIGITS else "|"


def train_eval(
    root_dir,
    *,
    seed=0,
    estimator="gae",
    lora_rank=0,
    lora_alpha=0.0,
    lora_target_names=None,
    loss_aggregation="token_mean",
    scale_rewards="group",
    importance_sampling_level="token",
    mask_truncated_completions=False,
    min_digits=3,
    max_digits=6,
    sorted_fraction=0.3,
    corpus_size=8192,
    num_layers=2,
    hidden_dim=64,
    pretrain_steps=1000,
    pretrain_learning_rate=3e-3,
    num_iterations=80,
    prompts_per_iteration=16,
    num_samples=4,
    num_epochs=2,
    num_minibatches=2,
    learning_rate=3e-4,
    clip_ratio=0.2,
    init_kl_coef=0.05,
    target_kl=2.0,
    eval_size=256,
    checkpoint_interval=10,
    eval_interval=0,
    jit_generate=True,
    restart=False,
    verbose=True,
):
    """Pretrains, fine-tunes, checkpoints, exports; returns results.

    A `root_dir` holding checkpoints is resumed from the newest readable
    one, without pretraining; `restart=True` moves them aside instead.

    Returns:
      A dict: "supervised" and "final" (evaluations of the reference and
      the fine-tuned policy on the same prompts and seed: sampled score,
      greedy score and exact-sort rate, KL, response length, distinct
      greedy responses, sample outputs), "history" (one dict of floats per
      iteration run; with `eval_interval` k, every k-th also holds
      "eval_reward", "eval_response_length" and "eval_truncated_fraction"
      of greedy completions of the evaluation prompts), "export_dir",
      "checkpoint_dir", "wall_time".

    Raises:
      keras_gae.agents.checkpointing.CheckpointError (a ValueError):
        `root_dir` cannot hold checkpoints, none of its checkpoints can be
        read, or the newest readable one was saved with other settings.
    """
    import keras
    import tensorflow as tf

    from keras_gae import lm
    from keras_gae.agents import checkpointing
    from keras_gae.losses import AdaptiveKLController
    from keras_gae.models import rollout_dataset

    start = time.time()
    if estimator not in LM_ESTIMATORS:
        raise ValueError(f"Unknown estimator. Received: estimator={estimator}")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    max_new_tokens = max_digits + 2
    max_length = max_digits + 2 + max_new_tokens
    checkpoint_dir = os.path.join(root_dir, checkpointing.CHECKPOINT_DIR)
    # Whether to pretrain is decided by the checkpoint files (a garbage
    # state file hides none); which one is read, or that none can be, is
    # the restore's to say, below.
    resuming = bool(checkpointing.prepare(root_dir, restart=restart))

    causal_lm = make_causal_lm(num_layers, hidden_dim, max_length)
    reference_lm = None
    if not resuming:
        corpus = make_corpus(
            rng, corpus_size, min_digits, max_digits, sorted_fraction
        )
        loss = pretrain(
            causal_lm,
            corpus,
            steps=pretrain_steps,
            batch_size=64,
            learning_rate=pretrain_learning_rate,
            seed=seed,
        )
        if verbose:
            print(f"Supervised next-token loss: {loss:.4f}")
    if not lora_rank:
        reference_lm = make_causal_lm(num_layers, hidden_dim, max_length)
        reference_lm.set_weights(causal_lm.get_weights())
    policy = lm.CausalLMPolicy(
        causal_lm,
        value_head="shared" if estimator == "gae" else None,
        lora_rank=lora_rank or None,
        lora_alpha=lora_alpha or None,
        lora_target_names=lora_target_names,
    )
    reference = (
        None
        if reference_lm is None
        else lm.CausalLMPolicy(reference_lm, value_head=None)
    )
    controller = AdaptiveKLController(init_kl_coef, target_kl, 256.0)
    model = lm.CausalLMPPOModel(
        policy,
        vocab_size=VOCAB_SIZE,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        reference_network=reference,
        reward_kl_coef=controller,
        advantage_estimator=estimator,
        loss_aggregation=loss_aggregation,
        max_completion_length=(
            max_new_tokens if loss_aggregation == "dr_grpo" else None
        ),
        scale_rewards=scale_rewards,
        importance_sampling_level=importance_sampling_level,
        mask_truncated_completions=mask_truncated_completions,
        clip_ratio=clip_ratio,
        value_coef=0.5 if estimator == "gae" else 0.0,
        max_grad_norm=1.0,
        jit_generate=jit_generate,
    )
    optimizer = keras.optimizers.Adam(learning_rate)
    # Slots exist before a restore fills them.
    optimizer.build(policy.trainable_variables)
    model.compile(optimizer=optimizer)
    iteration = tf.Variable(0, dtype=tf.int64, name="iteration")
    tracked = dict(policy=policy, optimizer=optimizer, kl_controller=controller)
    if reference is not None:
        tracked["reference"] = reference
    checkpoints = checkpointing.LoopCheckpoints(
        root_dir,
        max_to_keep=3,
        iteration=iteration,
        # The checkpoints also hold the pretraining optimizer's slots (the
        # CausalLM tracks its `compile` optimizer); a resumed run does not
        # pretrain, so they stay unrestored on purpose.
        partial=True,
        **tracked,
    )
    if checkpoints.restored is not None:
        if verbose:
            print(f"Restored {checkpoints.restored}")
    elif resuming:
        raise checkpointing.CheckpointError(
            f"The checkpoints of {checkpoint_dir} were gone when this run "
            "came to restore them (another run on the same root_dir?); "
            "this run did not pretrain, so it stops. Run it again. "
            f"Received: root_dir={root_dir!r}"
        )
    else:
        checkpoints.save()
    writer = tf.summary.create_file_writer(os.path.join(root_dir, "train"))

    eval_prompts, _ = make_prompts(
        np.random.default_rng(seed + 1), eval_size, min_digits, max_digits
    )
    eval_seed = seed + 12345
    # The reference policy: the frozen copy, or the adapters switched off.
    if reference is not None:
        # Only decoded, never trained: an estimator without value function.
        supervised_model = lm.CausalLMPPOModel(
            reference,
            vocab_size=VOCAB_SIZE,
            eos_id=EOS_ID,
            pad_id=PAD_ID,
            advantage_estimator="grpo",
            jit_generate=jit_generate,
        )
        supervised = evaluate(
            supervised_model, eval_prompts, max_new_tokens, eval_seed, 8
        )
    else:
        with lm.lora_disabled(causal_lm):
            supervised = evaluate(
                lm.CausalLMPPOModel(
                    lm.CausalLMPolicy(causal_lm, value_head=None),
                    vocab_size=VOCAB_SIZE,
                    eos_id=EOS_ID,
                    pad_id=PAD_ID,
                    advantage_estimator="grpo",
                    jit_generate=jit_generate,
                ),
                eval_prompts,
                max_new_tokens,
                eval_seed,
                8,
            )
    if verbose:
        print(
            f"Supervised model: score {supervised['score']:.3f}, greedy "
            f"{supervised['greedy_score']:.3f}, exact "
            f"{supervised['greedy_exact']:.3f}"
        )

    history = []
    saved_iteration = int(iteration)
    while int(iteration) < num_iterations:
        step = int(iteration)
        prompts, _ = make_prompts(
            rng, prompts_per_iteration, min_digits, max_digits
        )
        rollout = model.collect(
            prompts,
            sorting_scores,
            max_new_tokens=max_new_tokens,
            num_samples=num_samples,
            seed=seed * 100003 + step,
        )
        logs = model.fit(
            rollout_dataset(
                rollout.batch, num_minibatches=num_minibatches, seed=step
            ),
            epochs=num_epochs,
            verbose=0,
            shuffle=False,  # the dataset shuffles itself
        ).history
        record = {
            "reward": float(np.mean(rollout.scores)),
            "kl": float(rollout.kl),
            "kl_coef": float(rollout.kl_coef),
            "response_length": float(np.mean(rollout.response_length.numpy())),
        }
        for name in (
            "entropy",
            "loss",
            "policy_loss",
            "value_loss",
            "approx_kl",
            "clip_fraction",
        ):
            if name in logs:  # critic-free estimators have no value loss
                record[name] = float(logs[name][-1])
        if eval_interval and (step + 1) % eval_interval == 0:
            evaluation = lm.evaluate_completions(
                model,
                eval_prompts,
                sorting_scores,
                max_new_tokens=max_new_tokens,
            )
            for name in ("reward", "response_length", "truncated_fraction"):
                record[f"eval_{name}"] = evaluation[name]
        history.append(record)
        iteration.assign_add(1)
        with writer.as_default(step=step):
            for name, value in record.items():
                tf.summary.scalar(name, value)
        if verbose:
            print(
                f"iteration {step:3d}  reward {record['reward']:.3f}  "
                f"kl {record['kl']:.3f}  kl_coef {record['kl_coef']:.4f}  "
                f"length {record['response_length']:.2f}  "
                f"entropy {record['entropy']:.3f}  "
                f"clip {record['clip_fraction']:.3f}"
                + (
                    f"  eval greedy reward {record['eval_reward']:.3f}"
                    if "eval_reward" in record
                    else ""
                )
            )
        if int(iteration) % checkpoint_interval == 0:
            checkpoints.save()
            saved_iteration = int(iteration)
    if saved_iteration != int(iteration):
        checkpoints.save()
    writer.flush()

    final = evaluate(model, eval_prompts, max_new_tokens, eval_seed, 8)
    export_dir = export_policy(
        policy,
        os.path.join(root_dir, "policy"),
        max_new_tokens,
        jit_compile=jit_generate,
    )
    wall_time = time.time() - start
    if verbose:
        for (prompt, before), (_, after) in zip(
            supervised["samples"], final["samples"]
        ):
            print(f"  {prompt:>8} -> supervised {before:<9} fine-tuned {after}")
        # The summary, last.
        print(
            f"Fine-tuned ({estimator}, lora_rank {lora_rank}): score "
            f"{final['score']:.3f} (supervised {supervised['score']:.3f}), "
            f"greedy {final['greedy_score']:.3f} "
            f"({supervised['greedy_score']:.3f}), exact sort "
            f"{final['greedy_exact']:.3f} ({supervised['greedy_exact']:.3f}),"
            f" KL {final['kl']:.3f}, distinct greedy responses "
            f"{final['distinct_responses']} "
            f"({supervised['distinct_responses']}); {wall_time:.0f} s"
        )
    return {
        "supervised": supervised,
        "final": final,
        "history": history,
        "export_dir": export_dir,
        "checkpoint_dir": checkpoint_dir,
        "wall_time": wall_time,
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        cli.fail(PROGRAM, f"unexpected arguments {argv[1:]!r}")
    # Only now TensorFlow: the flags are checked.
    with quiet_start.native_start_up_logs_filtered():
        import keras_hub  # noqa: F401  (its start-up lines inside too)
        import tensorflow as tf
        from absl import logging

        import keras_gae.agents.checkpointing  # noqa: F401
        import keras_gae.lm  # noqa: F401

        # The devices now, so that the CUDA start-up lines come inside.
        tf.config.list_physical_devices()
    if not FLAGS["verbosity"].present:
        # TensorFlow's notes about saving would bury the progress lines.
        logging.set_verbosity(logging.ERROR)
        tf.get_logger().setLevel("ERROR")
    from keras_gae.agents import checkpointing

    try:
        _train_eval_from_flags()
    except checkpointing.CheckpointError as error:
        # A resume refused (no readable checkpoint, other settings) or a
        # root_dir that cannot hold checkpoints: one line, not a traceback.
        cli.fail(PROGRAM, str(error))
    return 0


def _train_eval_from_flags():
    train_eval(
        FLAGS.root_dir,
        seed=FLAGS.seed,
        estimator=FLAGS.estimator,
        lora_rank=FLAGS.lora_rank,
        lora_alpha=FLAGS.lora_alpha,
        lora_target_names=FLAGS.lora_target_names,
        loss_aggregation=FLAGS.loss_aggregation,
        scale_rewards=FLAGS.scale_rewards,
        importance_sampling_level=FLAGS.importance_sampling_level,
        mask_truncated_completions=FLAGS.mask_truncated_completions,
        min_digits=FLAGS.min_digits,
        max_digits=FLAGS.max_digits,
        sorted_fraction=FLAGS.sorted_fraction,
        corpus_size=FLAGS.corpus_size,
        num_layers=FLAGS.num_layers,
        hidden_dim=FLAGS.hidden_dim,
        pretrain_steps=FLAGS.pretrain_steps,
        pretrain_learning_rate=FLAGS.pretrain_learning_rate,
        num_iterations=FLAGS.num_iterations,
        prompts_per_iteration=FLAGS.prompts_per_iteration,
        num_samples=FLAGS.num_samples,
        num_epochs=FLAGS.num_epochs,
        num_minibatches=FLAGS.num_minibatches,
        learning_rate=FLAGS.learning_rate,
        clip_ratio=FLAGS.clip_ratio,
        init_kl_coef=FLAGS.init_kl_coef,
        target_kl=FLAGS.target_kl,
        eval_size=FLAGS.eval_size,
        checkpoint_interval=FLAGS.checkpoint_interval,
        eval_interval=FLAGS.eval_interval,
        jit_generate=FLAGS.jit_generate,
        restart=FLAGS.restart,
    )


if __name__ == "__main__":
    cli.run(main, program=PROGRAM)

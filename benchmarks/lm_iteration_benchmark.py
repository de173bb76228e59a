"""Times one PPO iteration of `keras_gae.lm.CausalLMPPOModel`, by phase.

To run:

  .venv/bin/python benchmarks/lm_iteration_benchmark.py
  .venv/bin/python benchmarks/lm_iteration_benchmark.py \\
      --sizes=2x64,4x256 --num_prompts=16 --num_samples=4 \\
      --max_new_tokens=32 --num_minibatches=4 --epochs=2 --iterations=5

For each size in --sizes (LAYERSxWIDTH), a keras-hub GPT2CausalLM built
from a config with random weights (nothing is downloaded; 2 heads per 64
of width, intermediate 4 x width, --vocabulary_size) is wrapped in a
`keras_gae.lm.CausalLMPolicy` (shared value head for --estimator=gae, none
for the critic-free estimators) and trained by a `CausalLMPPOModel` with a
frozen reference copy (or, with --lora_rank, the same network with its
adapters off) and an adaptive KL reward coefficient, as
examples/train_lm_ppo.py does. An iteration: --num_prompts left-padded
prompts of 4..--prompt_length random tokens, --num_samples completions each
(B = num_prompts x num_samples rows), --max_new_tokens new tokens (random
weights rarely draw the stop token: rows run to the limit), then
--num_minibatches minibatches x --epochs epochs of PPO updates.

The library has no per-phase hook, so the split iteration calls the phases
of `CausalLMPPOModel.collect` itself, in the same order and with the same
arguments (keras_gae/lm/collection.py), then `fit`:

* generate: `lm.generate(policy, ...)` (KV cache, --jit_generate) and the
  spread of its outputs onto the packed rows;
* score: `lm.RewardFunction(scorer)(tokens, mask)`, a vectorized NumPy
  scorer (a reward model would add one more forward pass here);
* reference: `model.reference_log_probs(tokens)`, one compiled pass;
* rewards: `lm.sequence_rollout_batch` (per-token KL-shaped rewards), the
  sequence KL and the KL controller update;
* advantages: the estimator. For "gae" the targets the train step would
  compute (`lm.sequence_advantages`, GAE over whole rows; minibatches are
  whole rows, so the same numbers) are computed here and handed to `fit`
  as "advantage" and "return", so the update phase is the updates alone;
  for the critic-free estimators, what `collect` runs;
* update: `model.fit(rollout_dataset(batch, ...), epochs=...)`.

The whole iteration is timed directly too: `model.collect(...)` then the
same `fit`, unchanged (for "gae" the advantages inside the train step).
The first split iteration (tracing, XLA compilation of the sampling loop,
the first train step) is reported on its own; then --iterations rounds,
each a split and a whole iteration, interleaved; medians (and min-max) in
seconds. The sum of the phase medians should match the whole iteration
within the noise of a shared machine.
"""

import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_gae import lm  # noqa: E402
from keras_gae._src import rollout_batch as rb  # noqa: E402
from keras_gae.estimator_names import LM_ESTIMATORS  # noqa: E402
from keras_gae.lm import _tokens  # noqa: E402
from keras_gae.lm import advantages as advantages_lib  # noqa: E402
from keras_gae.losses import AdaptiveKLController  # noqa: E402
from keras_gae.models import rollout_dataset  # noqa: E402
from keras_gae.ops import kl as kl_lib  # noqa: E402

PHASES = ("generate", "score", "reference", "rewards", "advantages", "update")
PAD_ID, EOS_ID = 0, 1

flags.DEFINE_list("sizes", ["2x64", "4x256"], "Model sizes, LAYERSxWIDTH.")
flags.DEFINE_integer("vocabulary_size", 512, "Vocabulary size V.")
flags.DEFINE_integer("num_prompts", 16, "Prompts per iteration.")
flags.DEFINE_integer("num_samples", 4, "Completions per prompt.")
flags.DEFINE_integer("prompt_length", 8, "Prompt width P (left-padded).")
flags.DEFINE_integer("max_new_tokens", 32, "New tokens per row.")
flags.DEFINE_integer("num_minibatches", 4, "Minibatches K per epoch.")
flags.DEFINE_integer("epochs", 2, "Passes over the rollout batch.")
flags.DEFINE_enum("estimator", "gae", LM_ESTIMATORS, "Advantage estimator.")
flags.DEFINE_integer("lora_rank", 0, "LoRA rank (0: full fine-tuning).")
flags.DEFINE_boolean("jit_generate", True, "XLA-compile the sampling loop.")
flags.DEFINE_integer("iterations", 5, "Timed rounds after the warm-up.")
FLAGS = flags.FLAGS

# `fit` on a tf.data.Dataset warns that its `shuffle=True` default is
# ignored; `rollout_dataset` shuffles.
warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")


def make_causal_lm(num_layers, hidden_dim):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=FLAGS.vocabulary_size,
        num_layers=num_layers,
        num_heads=max(2, hidden_dim // 64),
        hidden_dim=hidden_dim,
        intermediate_dim=4 * hidden_dim,
        max_sequence_length=FLAGS.prompt_length + FLAGS.max_new_tokens,
        dropout=0.0,
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def build_model(num_layers, hidden_dim):
    keras.utils.set_random_seed(0)
    causal_lm = make_causal_lm(num_layers, hidden_dim)
    reference = None
    if not FLAGS.lora_rank:
        reference_lm = make_causal_lm(num_layers, hidden_dim)
        reference_lm.set_weights(causal_lm.get_weights())
        reference = lm.CausalLMPolicy(reference_lm, value_head=None)
    gae = FLAGS.estimator == "gae"
    policy = lm.CausalLMPolicy(
        causal_lm,
        value_head="shared" if gae else None,
        lora_rank=FLAGS.lora_rank or None,
    )
    model = lm.CausalLMPPOModel(
        policy,
        vocab_size=FLAGS.vocabulary_size,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        reference_network=reference,
        reward_kl_coef=AdaptiveKLController(0.05, 2.0, 256.0),
        advantage_estimator=FLAGS.estimator,
        value_coef=0.5 if gae else 0.0,
        max_grad_norm=1.0,
        jit_generate=FLAGS.jit_generate,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    return model


def make_prompts(rng):
    """`[num_prompts, P]` left-padded with PAD_ID, 4..P tokens each."""
    width = FLAGS.prompt_length
    prompts = np.full((FLAGS.num_prompts, width), PAD_ID, np.int32)
    for row in prompts:
        length = rng.integers(min(4, width), width + 1)
        row[width - length :] = rng.integers(
            2, FLAGS.vocabulary_size, size=length
        )
    return prompts


def monotone_scores(tokens, mask):
    """Fraction of adjacent response-token pairs that do not decrease."""
    tokens, mask = np.asarray(tokens), np.asarray(mask)
    pairs = mask[:, 1:] & mask[:, :-1]
    rises = (tokens[:, 1:] >= tokens[:, :-1]) & pairs
    return rises.sum(1) / np.maximum(pairs.sum(1), 1)


def fit(model, batch, step):
    model.fit(
        rollout_dataset(
            batch, num_minibatches=FLAGS.num_minibatches, seed=step
        ),
        epochs=FLAGS.epochs,
        verbose=0,
    )


class Clock:
    """Seconds per named phase, each ended by a host read of its output."""

    def __init__(self):
        self.seconds = {}
        self._start = time.perf_counter()

    def lap(self, name, *outputs):
        for output in outputs:
            np.asarray(output)  # Waits for the values.
        now = time.perf_counter()
        self.seconds[name] = now - self._start
        self._start = now


def split_iteration(model, prompts, step):
    """`collect`'s phases called one by one, then `fit`; seconds each."""
    clock = Clock()
    outputs = lm.generate(
        model.shared,
        prompts,
        **model.generation_settings(
            max_new_tokens=FLAGS.max_new_tokens,
            num_samples=FLAGS.num_samples,
            seed=step,
        ),
    )
    tokens = outputs.tokens
    width, start = tokens.shape[1], outputs.prompt_length

    def spread(x):
        return _tokens.spread_response(x, start, width)

    log_probs = spread(outputs.log_probs)
    mask = spread(tf.cast(outputs.mask, tf.int32)) > 0
    if outputs.values is None:
        values = tf.zeros_like(log_probs)
        bootstrap_value = tf.zeros_like(log_probs[:, 0])
    else:
        values = spread(outputs.values[:, :-1])
        bootstrap_value = outputs.values[:, -1]
    clock.lap("generate", tokens, log_probs, values, mask)

    scores = lm.RewardFunction(monotone_scores)(tokens, mask)
    clock.lap("score", scores)

    ref_log_probs = model.reference_log_probs(tokens)
    clock.lap("reference", ref_log_probs)

    kl_coef = model.reward_kl_value()
    batch = lm.sequence_rollout_batch(
        tokens,
        start,
        log_probs,
        ref_log_probs,
        values,
        scores,
        eos_id=model.eos_id,
        stop_token_ids=model.stop_token_ids,
        mask=mask,
        kl_coef=kl_coef,
        estimator=model.reward_kl_estimator,
        bootstrap_value=bootstrap_value,
        whiten_rewards=model.whiten_rewards,
    )
    kl = lm.sequence_kl(
        kl_lib.kl_divergence_estimate(
            log_probs,
            ref_log_probs,
            estimator=model.reward_kl_estimator,
            mask=mask,
        ),
        mask,
    )
    model.reward_kl_coef.update(kl, tf.shape(tokens)[0])
    clock.lap("rewards", batch[rb.REWARD], kl)

    if model.advantage_estimator == "gae":
        targets = lm.sequence_advantages(
            batch, gamma=model.gamma, lambda_=model.lambda_
        )
        batch[rb.ADVANTAGE] = targets.advantages
        batch[rb.RETURN] = targets.returns
    else:
        batch[rb.ADVANTAGE], batch[rb.RETURN] = (
            advantages_lib.critic_free_targets(
                batch[rb.REWARD],
                mask,
                estimator=model.advantage_estimator,
                group_size=FLAGS.num_samples,
                gamma=model.gamma,
                scale_rewards=model.scale_rewards,
            )
        )
    clock.lap("advantages", batch[rb.ADVANTAGE], batch[rb.RETURN])

    fit(model, batch, step)
    clock.lap("update")
    return clock.seconds


def whole_iteration(model, prompts, step):
    """`model.collect` then `fit`, as a training loop runs them."""
    start = time.perf_counter()
    rollout = model.collect(
        prompts,
        monotone_scores,
        max_new_tokens=FLAGS.max_new_tokens,
        num_samples=FLAGS.num_samples,
        seed=step,
    )
    fit(model, rollout.batch, step)
    return time.perf_counter() - start


def benchmark(size, rng):
    num_layers, hidden_dim = (int(x) for x in size.lower().split("x"))
    model = build_model(num_layers, hidden_dim)
    params = model.shared.causal_lm.count_params()
    first = split_iteration(model, make_prompts(rng), 0)
    whole_iteration(model, make_prompts(rng), 1)  # Its own traces, if any.
    splits, wholes = [], []
    for step in range(2, 2 + 2 * FLAGS.iterations, 2):
        splits.append(split_iteration(model, make_prompts(rng), step))
        wholes.append(whole_iteration(model, make_prompts(rng), step + 1))
    medians = {p: float(np.median([s[p] for s in splits])) for p in PHASES}
    total = sum(medians.values())
    whole = float(np.median(wholes))
    rows = FLAGS.num_prompts * FLAGS.num_samples
    print(
        f"\n{num_layers} layers, width {hidden_dim} ({params / 1e6:.2f}M "
        f"parameters, V={FLAGS.vocabulary_size}): B={rows} "
        f"({FLAGS.num_prompts} prompts x {FLAGS.num_samples}), P="
        f"{FLAGS.prompt_length}, N={FLAGS.max_new_tokens}, "
        f"{FLAGS.num_minibatches} minibatches x {FLAGS.epochs} epochs, "
        f"estimator={FLAGS.estimator}, lora_rank={FLAGS.lora_rank}, "
        f"jit_generate={FLAGS.jit_generate}, train step "
        f"jit_compile={model.jit_compile}; medians over "
        f"{FLAGS.iterations} iterations\n"
    )

    def span(values):
        return f"{min(values):.3f}-{max(values):.3f}"

    print("| phase | seconds | share | min-max (s) | first iteration (s) |")
    print("|---|---:|---:|---:|---:|")
    for phase in PHASES:
        print(
            f"| {phase} | {medians[phase]:.3f} | "
            f"{medians[phase] / total:.1%} | "
            f"{span([s[phase] for s in splits])} | {first[phase]:.3f} |"
        )
    sums = [sum(s.values()) for s in splits]
    print(
        f"| sum of phases | {total:.3f} | 100.0% | {span(sums)} | "
        f"{sum(first.values()):.3f} |"
    )
    print(
        f"| whole iteration (collect + fit) | {whole:.3f} | "
        f"{whole / total:.0%} of sum | {span(wholes)} | |"
    )


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for size in FLAGS.sizes:
        benchmark(size, rng)
    print(f"\nTotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    app.run(main)

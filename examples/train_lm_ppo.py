r"""PPO fine-tuning of a small causal transformer with token-level GAE.

To run:

  .venv/bin/python examples/train_lm_ppo.py --root_dir=/tmp/lm_ppo
  tensorboard --logdir=/tmp/lm_ppo/train

Nothing is downloaded. The example

1. writes a synthetic corpus: rows `BOS d_1 ... d_n EOS` of uniformly random
   digits, n in [--min_digits, --max_digits];
2. trains a small causal transformer (token and position embeddings,
   --num_layers blocks of causal self-attention and an MLP, an LM head and a
   value head) by next-token prediction on it: the supervised model, which
   writes random digits;
3. fine-tunes a copy with PPO and token-level GAE
   (`keras_gae.lm.CausalLMPPOModel`) against a programmatic scorer: the
   fraction of adjacent digit pairs of the row (prompt digit and response)
   in non-decreasing order, 0 for a response without digits. Random digits
   score about 0.55, sorted ones 1. The reward carries a per-token KL
   penalty to the frozen supervised model, whose coefficient an adaptive
   controller (Ziegler et al. 2019, arXiv:1909.08593) steers toward
   --target_kl (nats per sequence).

Every iteration prints and logs (TensorBoard scalars under root_dir/train)
the mean score, the KL to the reference, the response length, the policy
entropy, the KL coefficient and the losses. Checkpoints (both networks, the
optimizer, the controller) go to root_dir/checkpoints; a rerun resumes from
the latest. The fine-tuned policy is exported to root_dir/policy as a
SavedModel that loads with `tf.saved_model.load` alone:

  loaded = tf.saved_model.load("/tmp/lm_ppo/policy")
  loaded.signatures["generate"](prompt_tokens=prompts)["tokens"]   # greedy
  loaded.signatures["sample"](prompt_tokens=prompts, seed=seed)["tokens"]

with `prompts` int32 `[B, P]` (e.g. `[[BOS, 3]]`, BOS = 11) and `seed` an
int64 `[2]`.
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from keras_gae import lm
from keras_gae.losses import AdaptiveKLController
from keras_gae.models import rollout_dataset

NUM_DIGITS = 10
EOS_ID = 10
BOS_ID = 11
VOCAB_SIZE = 12
PROMPT_LENGTH = 2  # BOS and the first digit.

flags.DEFINE_string(
    "root_dir",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), "keras_gae_lm_ppo"),
    "Directory for TensorBoard logs, checkpoints and the exported policy.",
)
flags.DEFINE_integer(
    "seed", 0, "Seed of the corpus, the networks and sampling."
)
flags.DEFINE_integer("min_digits", 3, "Fewest digits of a corpus row.")
flags.DEFINE_integer("max_digits", 7, "Most digits of a corpus row.")
flags.DEFINE_integer("corpus_size", 4096, "Rows of the synthetic corpus.")
flags.DEFINE_integer("embed_dim", 32, "Transformer width.")
flags.DEFINE_integer("num_heads", 2, "Attention heads per block.")
flags.DEFINE_integer("num_layers", 1, "Transformer blocks.")
flags.DEFINE_integer("pretrain_steps", 400, "Next-token training steps.")
flags.DEFINE_float("pretrain_learning_rate", 3e-3, "Adam rate, pretraining.")
flags.DEFINE_integer("num_iterations", 60, "PPO iterations (collect + fit).")
flags.DEFINE_integer("batch_size", 64, "Sequences sampled per iteration.")
flags.DEFINE_integer("max_new_tokens", 8, "Response length limit.")
flags.DEFINE_integer("num_epochs", 4, "PPO epochs per iteration.")
flags.DEFINE_integer("num_minibatches", 2, "Minibatches per PPO epoch.")
flags.DEFINE_float("learning_rate", 3e-4, "Adam rate, PPO.")
flags.DEFINE_float("clip_ratio", 0.2, "PPO clip epsilon.")
flags.DEFINE_float("value_coef", 0.5, "Value loss weight.")
flags.DEFINE_float("entropy_coef", 0.0, "Entropy bonus weight.")
flags.DEFINE_float("lambda_", 0.95, "GAE lambda (gamma is 1).")
flags.DEFINE_float("init_kl_coef", 0.1, "Initial KL reward coefficient.")
flags.DEFINE_float("target_kl", 3.0, "Target KL to the reference, nats/seq.")
flags.DEFINE_float("kl_horizon", 256.0, "Adaptive KL controller horizon.")
flags.DEFINE_integer("eval_size", 256, "Sequences sampled for evaluation.")
flags.DEFINE_integer("checkpoint_interval", 10, "Iterations per checkpoint.")
FLAGS = flags.FLAGS


@keras.saving.register_keras_serializable(package="keras_gae_examples")
class CausalTransformer(keras.Model):
    """A small decoder-only transformer: tokens -> (logits, values).

    Pre-norm blocks of causal multi-head self-attention
    (`MultiHeadAttention(..., use_causal_mask=True)`) and a ReLU MLP, on the
    sum of token and learned position embeddings; an LM head and a value
    head read the final normalized features.

    Args:
      vocab_size: V.
      max_length: the most positions a row may have.
      embed_dim: width D.
      num_heads: attention heads.
      num_layers: blocks.
      **kwargs: Model arguments.

    Call arguments:
      tokens: `[B, L]` integer ids, L <= max_length.

    Returns:
      `(logits [B, L, V], values [B, L])`.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        embed_dim: int = 32,
        num_heads: int = 2,
        num_layers: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.token_embedding = keras.layers.Embedding(
            vocab_size, embed_dim, name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            max_length, embed_dim, name="position_embedding"
        )
        self.blocks = []
        for index in range(num_layers):
            self.blocks.append(
                (
                    keras.layers.LayerNormalization(name=f"ln_a_{index}"),
                    keras.layers.MultiHeadAttention(
                        num_heads,
                        embed_dim // num_heads,
                        name=f"attention_{index}",
                    ),
                    keras.layers.LayerNormalization(name=f"ln_b_{index}"),
                    keras.layers.Dense(
                        4 * embed_dim, activation="relu", name=f"mlp_{index}"
                    ),
                    keras.layers.Dense(embed_dim, name=f"mlp_out_{index}"),
                )
            )
        self.final_norm = keras.layers.LayerNormalization(name="ln_final")
        self.lm_head = keras.layers.Dense(vocab_size, name="lm_head")
        self.value_head = keras.layers.Dense(1, name="value_head")

    def call(self, tokens, training=None):
        positions = tf.range(tf.shape(tokens)[1])
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for norm_a, attention, norm_b, mlp, mlp_out in self.blocks:
            h = norm_a(x)
            x += attention(h, h, use_causal_mask=True, training=training)
            x += mlp_out(mlp(norm_b(x)))
        x = self.final_norm(x)
        return self.lm_head(x), tf.squeeze(self.value_head(x), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            max_length=self.max_length,
            embed_dim=self.embed_dim,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
        )
        return config


def make_corpus(rng, size, min_digits, max_digits, length):
    """`[size, length]` int32 rows BOS d_1..d_n EOS, EOS-padded."""
    rows = np.full((size, length), EOS_ID, np.int32)
    rows[:, 0] = BOS_ID
    counts = rng.integers(min_digits, max_digits + 1, size=size)
    for row, count in zip(rows, counts):
        row[1 : 1 + count] = rng.integers(0, NUM_DIGITS, size=count)
    return rows


def sortedness_scores(tokens, mask):
    """Fraction of adjacent non-decreasing digit pairs, per row.

    The row's digits are the prompt's last token and the response tokens
    before EOS (`mask` minus the EOS); a non-digit token in the response
    breaks both pairs it is part of. 0 for a response without digits.
    """
    tokens = np.asarray(tokens)
    mask = np.asarray(mask)
    scores = np.zeros(tokens.shape[0], np.float32)
    for b in range(tokens.shape[0]):
        response = [int(t) for t, m in zip(tokens[b], mask[b]) if m]
        if response and response[-1] == EOS_ID:
            response = response[:-1]
        if not response:
            continue
        row = [int(tokens[b, PROMPT_LENGTH - 1])] + response
        good = [
            a < NUM_DIGITS and c < NUM_DIGITS and a <= c
            for a, c in zip(row[:-1], row[1:])
        ]
        scores[b] = np.mean(good)
    return scores


def make_prompts(rng, size):
    prompts = np.full((size, PROMPT_LENGTH), BOS_ID, np.int32)
    prompts[:, 1] = rng.integers(0, NUM_DIGITS, size=size)
    return prompts


def pretrain(network, corpus, *, steps, batch_size, learning_rate, seed):
    """Next-token cross-entropy over each row up to its first EOS."""
    optimizer = keras.optimizers.Adam(learning_rate)
    inputs, targets = corpus[:, :-1], corpus[:, 1:]
    # Positions up to and including the first EOS target count.
    is_eos = targets == EOS_ID
    weights = (np.cumsum(is_eos, axis=1) - is_eos == 0).astype(np.float32)
    dataset = (
        tf.data.Dataset.from_tensor_slices((inputs, targets, weights))
        .shuffle(len(corpus), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )

    @tf.function
    def step(x, y, w):
        with tf.GradientTape() as tape:
            logits, _ = network(x, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True
            )
            loss = tf.reduce_sum(losses * w) / tf.reduce_sum(w)
        variables = network.trainable_variables
        gradients = tape.gradient(loss, variables)
        # The value head plays no part in next-token prediction.
        optimizer.apply_gradients(
            (g, v) for g, v in zip(gradients, variables) if g is not None
        )
        return loss

    loss = float("nan")
    for x, y, w in dataset.take(steps):
        loss = float(step(x, y, w))
    return loss


class _GenerationModule(tf.Module):
    """Greedy and seeded generation with a fixed response length limit."""

    def __init__(self, network, max_new_tokens):
        super().__init__(name="lm_policy")
        self.network = network
        self.max_new_tokens = max_new_tokens

    def _decode(self, prompt_tokens, seed, greedy):
        batch = tf.shape(prompt_tokens)[0]
        prompt_length = tf.shape(prompt_tokens)[1]
        total = prompt_length + self.max_new_tokens
        tokens = tf.concat(
            [prompt_tokens, tf.fill([batch, self.max_new_tokens], EOS_ID)],
            axis=1,
        )
        positions = tf.range(total)[tf.newaxis, :]

        def body(step, tokens, finished):
            logits, _ = self.network(tokens, training=False)
            last = tf.gather(logits, prompt_length + step - 1, axis=1)
            if greedy:
                chosen = tf.argmax(last, axis=-1, output_type=tf.int32)
            else:
                chosen = tf.random.stateless_categorical(
                    last,
                    1,
                    tf.random.experimental.stateless_fold_in(seed, step),
                    dtype=tf.int32,
                )[:, 0]
            chosen = tf.where(finished, EOS_ID, chosen)
            tokens = tf.where(
                tf.equal(positions, prompt_length + step),
                chosen[:, tf.newaxis],
                tokens,
            )
            return step + 1, tokens, finished | tf.equal(chosen, EOS_ID)

        _, tokens, _ = tf.while_loop(
            lambda step, tokens, finished: step < self.max_new_tokens,
            body,
            (tf.constant(0), tokens, tf.zeros([batch], tf.bool)),
        )
        return {"tokens": tokens}

    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.int32, "prompt_tokens")]
    )
    def generate(self, prompt_tokens):
        return self._decode(prompt_tokens, None, greedy=True)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, "prompt_tokens"),
            tf.TensorSpec([2], tf.int64, "seed"),
        ]
    )
    def sample(self, prompt_tokens, seed):
        return self._decode(prompt_tokens, seed, greedy=False)


def export_policy(network, path, max_new_tokens):
    """Writes the SavedModel with "generate" and "sample" signatures."""
    # Variables must exist before tracing, not be created inside it.
    network(tf.zeros([1, 1], tf.int32))
    module = _GenerationModule(network, max_new_tokens)
    tf.saved_model.save(
        module,
        path,
        signatures={
            "generate": module.generate.get_concrete_function(),
            "sample": module.sample.get_concrete_function(),
        },
    )
    return path


def evaluate(model, prompts, max_new_tokens, seed):
    """Mean score and KL of one sampled batch, without a controller step."""
    rollout = model.collect(
        prompts,
        sortedness_scores,
        max_new_tokens=max_new_tokens,
        seed=seed,
        update_kl_controller=False,
    )
    return {
        "score": float(tf.reduce_mean(rollout.scores)),
        "kl": float(rollout.kl),
        "response_length": float(
            tf.reduce_mean(tf.cast(rollout.response_length, tf.float32))
        ),
    }


def train_eval(
    root_dir,
    *,
    seed=0,
    min_digits=3,
    max_digits=7,
    corpus_size=4096,
    embed_dim=32,
    num_heads=2,
    num_layers=1,
    pretrain_steps=400,
    pretrain_learning_rate=3e-3,
    num_iterations=60,
    batch_size=64,
    max_new_tokens=8,
    num_epochs=4,
    num_minibatches=2,
    learning_rate=3e-4,
    clip_ratio=0.2,
    value_coef=0.5,
    entropy_coef=0.0,
    lambda_=0.95,
    init_kl_coef=0.1,
    target_kl=3.0,
    kl_horizon=256.0,
    eval_size=256,
    checkpoint_interval=10,
    verbose=True,
):
    """Pretrains, fine-tunes with PPO, checkpoints, exports; returns results.

    Returns:
      A dict: "supervised" and "final" (evaluation of the reference and the
      fine-tuned policy on the same prompts and seed: score, KL,
      response_length), "history" (one dict of floats per iteration run),
      "export_dir", "checkpoint_dir", "wall_time".
    """
    start = time.time()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    max_length = PROMPT_LENGTH + max_new_tokens
    if max_digits + 2 > max_length:
        raise ValueError(
            "Corpus rows must fit in the prompt plus max_new_tokens: "
            f"max_digits + 2 <= {max_length}. Received: max_digits={max_digits}"
        )

    def build():
        network = CausalTransformer(
            VOCAB_SIZE, max_length, embed_dim, num_heads, num_layers
        )
        network(tf.zeros([1, max_length], tf.int32))
        return network

    policy_network = build()
    reference_network = build()
    controller = AdaptiveKLController(init_kl_coef, target_kl, kl_horizon)
    optimizer = keras.optimizers.Adam(learning_rate)
    # Keras 3 creates an optimizer's slots when it is built: build it now so
    # that a restored checkpoint fills them instead of being dropped.
    optimizer.build(policy_network.trainable_variables)
    iteration = tf.Variable(0, dtype=tf.int64, name="iteration")
    checkpoint = tf.train.Checkpoint(
        policy=policy_network,
        reference=reference_network,
        optimizer=optimizer,
        kl_controller=controller,
        iteration=iteration,
    )
    checkpoint_dir = os.path.join(root_dir, "checkpoints")
    manager = tf.train.CheckpointManager(
        checkpoint, checkpoint_dir, max_to_keep=3
    )
    writer = tf.summary.create_file_writer(os.path.join(root_dir, "train"))

    if manager.latest_checkpoint:
        checkpoint.restore(
            manager.latest_checkpoint
        ).assert_existing_objects_matched()
        if verbose:
            print(f"Restored {manager.latest_checkpoint}")
    else:
        corpus = make_corpus(
            rng, corpus_size, min_digits, max_digits, max_length
        )
        loss = pretrain(
            reference_network,
            corpus,
            steps=pretrain_steps,
            batch_size=min(64, corpus_size),
            learning_rate=pretrain_learning_rate,
            seed=seed,
        )
        policy_network.set_weights(reference_network.get_weights())
        if verbose:
            print(f"Supervised next-token loss: {loss:.4f}")
        manager.save(checkpoint_number=0)

    # The model freezes the reference network: pretrain it first.
    model = lm.CausalLMPPOModel(
        policy_network,
        vocab_size=VOCAB_SIZE,
        eos_id=EOS_ID,
        reference_network=reference_network,
        reward_kl_coef=controller,
        clip_ratio=clip_ratio,
        value_coef=value_coef,
        entropy_coef=entropy_coef,
        lambda_=lambda_,
        max_grad_norm=1.0,
    )
    model.compile(optimizer=optimizer)

    eval_prompts = make_prompts(np.random.default_rng(seed + 1), eval_size)
    eval_seed = seed + 12345
    supervised = evaluate(
        lm.CausalLMPPOModel(
            reference_network, vocab_size=VOCAB_SIZE, eos_id=EOS_ID
        ),
        eval_prompts,
        max_new_tokens,
        eval_seed,
    )
    if verbose:
        print(
            f"Supervised model: score {supervised['score']:.3f}, "
            f"response length {supervised['response_length']:.2f}"
        )

    history = []
    while int(iteration) < num_iterations:
        step = int(iteration)
        rollout = model.collect(
            make_prompts(rng, batch_size),
            sortedness_scores,
            max_new_tokens=max_new_tokens,
            seed=seed * 100003 + step,
        )
        logs = model.fit(
            rollout_dataset(
                rollout.batch, num_minibatches=num_minibatches, seed=step
            ),
            epochs=num_epochs,
            shuffle=False,  # rollout_dataset shuffles the rows itself.
            verbose=0,
        ).history
        record = {
            "reward": float(tf.reduce_mean(rollout.scores)),
            "kl": float(rollout.kl),
            "kl_coef": float(rollout.kl_coef),
            "response_length": float(
                tf.reduce_mean(tf.cast(rollout.response_length, tf.float32))
            ),
        }
        for name in (
            "entropy",
            "loss",
            "policy_loss",
            "value_loss",
            "approx_kl",
            "clip_fraction",
            "explained_variance",
        ):
            record[name] = float(logs[name][-1])
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
                f"value_loss {record['value_loss']:.4f}"
            )
        if int(iteration) % checkpoint_interval == 0:
            manager.save(checkpoint_number=int(iteration))
    manager.save(checkpoint_number=int(iteration))
    writer.flush()

    final = evaluate(model, eval_prompts, max_new_tokens, eval_seed)
    export_dir = export_policy(
        policy_network, os.path.join(root_dir, "policy"), max_new_tokens
    )
    wall_time = time.time() - start
    if verbose:
        print(
            f"Fine-tuned policy: score {final['score']:.3f} (supervised "
            f"{supervised['score']:.3f}), KL to reference {final['kl']:.3f} "
            f"(target {target_kl}), response length "
            f"{final['response_length']:.2f}; {wall_time:.0f} s; "
            f"exported to {export_dir}"
        )
    return {
        "supervised": supervised,
        "final": final,
        "history": history,
        "export_dir": export_dir,
        "checkpoint_dir": checkpoint_dir,
        "wall_time": wall_time,
    }


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # TensorFlow's notes about saving (checkpoint sharding, renamed
        # signature inputs) would bury the progress lines.
        logging.set_verbosity(logging.ERROR)
    train_eval(
        FLAGS.root_dir,
        seed=FLAGS.seed,
        min_digits=FLAGS.min_digits,
        max_digits=FLAGS.max_digits,
        corpus_size=FLAGS.corpus_size,
        embed_dim=FLAGS.embed_dim,
        num_heads=FLAGS.num_heads,
        num_layers=FLAGS.num_layers,
        pretrain_steps=FLAGS.pretrain_steps,
        pretrain_learning_rate=FLAGS.pretrain_learning_rate,
        num_iterations=FLAGS.num_iterations,
        batch_size=FLAGS.batch_size,
        max_new_tokens=FLAGS.max_new_tokens,
        num_epochs=FLAGS.num_epochs,
        num_minibatches=FLAGS.num_minibatches,
        learning_rate=FLAGS.learning_rate,
        clip_ratio=FLAGS.clip_ratio,
        value_coef=FLAGS.value_coef,
        entropy_coef=FLAGS.entropy_coef,
        lambda_=FLAGS.lambda_,
        init_kl_coef=FLAGS.init_kl_coef,
        target_kl=FLAGS.target_kl,
        kl_horizon=FLAGS.kl_horizon,
        eval_size=FLAGS.eval_size,
        checkpoint_interval=FLAGS.checkpoint_interval,
    )


if __name__ == "__main__":
    app.run(main)

"""One worker of the multi-worker test: trains PPOModel, saves its weights.

`train(strategy)` is also the test's one-device reference.

Run by tests/models/test_multi_worker.py in two processes on 127.0.0.1,
each with its TF_CONFIG, as `python -m tests.models.multi_worker_train
OUTPUT_FILE`. The data pipeline is the one a user writes: the global
rollout batch through `rollout_dataset`, sharded by data across workers.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_gae.models import PPOModel  # noqa: E402
from keras_gae.models import rollout_dataset  # noqa: E402
from tests.models import test_ppo_model  # noqa: E402

# Settings shared with the one-device reference of the test.
ROWS = 8
MINIBATCHES = 2
EPOCHS = 2
SEED = 31
OPTIONS = dict(max_grad_norm=0.5, value_clip=0.3, entropy_coef=0.01)


def dataset(batch: dict) -> tf.data.Dataset:
    data = rollout_dataset(batch, num_minibatches=MINIBATCHES, shuffle=False)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return data.with_options(options)


def train(strategy: tf.distribute.Strategy) -> list:
    """The networks' weights after training under `strategy`."""
    batch = test_ppo_model.random_batch(seed=SEED, rows=ROWS)
    with strategy.scope():
        model = test_ppo_model.linear_model(PPOModel, seed=3, **OPTIONS)
        model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(dataset(batch), epochs=EPOCHS, verbose=0, shuffle=False)
    return test_ppo_model.network_weights(model)


if __name__ == "__main__":
    # Created before TensorFlow runs any op, as the strategy requires.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    weights = train(strategy)
    np.savez(
        sys.argv[1],
        *weights,
        replicas=np.array(strategy.num_replicas_in_sync),
    )

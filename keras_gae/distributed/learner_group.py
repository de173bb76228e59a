"""A multi-host learner: N Ray actors training one model together.

Each learner is a Ray actor (its own process, on any node of the cluster)
running `tf.distribute.MultiWorkerMirroredStrategy` with `TF_CONFIG` naming
the N learners; every update's gradients are all-reduced across them, so
the N copies of the model stay equal. Each learner trains on its share of
the rollout batch, whole environment rows, and the group reaches the
weights one learner reaches on the global batch (see `LearnerGroup.fit`).

Letters: `B` rows of the rollout batch, `N` learners, `M` minibatches per
epoch, `E` epochs.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any
from typing import Callable
from typing import Mapping
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gae.distributed import _actor_calls
from keras_gae.distributed import ray_runtime
from keras_gae.ops import _checks


def minibatch_order(
    rows: int, *, num_minibatches: int, epochs: int, seed: Optional[int]
) -> np.ndarray:
    """The rows of E epochs of minibatches, `[E * B]` row indices.

    Epoch e is the identity order (`seed` None) or a permutation drawn from
    `np.random.default_rng(seed)`; minibatch k of the run is entries
    `[k * B / M, (k + 1) * B / M)`. One learner fitting
    `{key: value[order]}` cut into E * M minibatches in this order is what
    `LearnerGroup.fit` equals.

    Raises:
      ValueError: M or E < 1, or M not dividing B.
    """
    num_minibatches = _checks.check_positive_int(
        num_minibatches, "num_minibatches"
    )
    epochs = _checks.check_positive_int(epochs, "epochs")
    if seed is not None:
        seed = _checks.check_int(seed, "seed", minimum=0)
    if rows % num_minibatches:
        raise ValueError(
            f"`num_minibatches` must divide the B={rows} rows of the rollout "
            f"batch. Received: num_minibatches={num_minibatches}"
        )
    if seed is None:
        return np.tile(np.arange(rows), epochs)
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(rows) for _ in range(epochs)])


def _free_address() -> str:
    """`host:port` of a port free now on this node, for the collectives."""
    host = ray_runtime.import_ray().util.get_node_ip_address()
    with socket.socket() as probe:
        probe.bind((host, 0))
        return f"{host}:{probe.getsockname()[1]}"


def check_compiled(model: Any, builder: Callable) -> None:
    """Refuses what `builder` returned unless it is a compiled Keras model
    (fit would fail later, in every learner at once)."""
    if not getattr(model, "compiled", False):
        raise ValueError(
            "`builder` must return a compiled Keras model (call "
            "`model.compile(optimizer=...)` inside it). "
            f"Received: builder={builder!r} returning {model!r}"
        )


def _take_rows(batch: dict, rows: np.ndarray) -> dict:
    return tf.nest.map_structure(lambda value: value[rows], batch)


class _Learner:
    """One learner process (the body of a Ray actor)."""

    def address(self) -> str:
        return _free_address()

    def start(self, cluster: list, index: int, builder: Callable) -> int:
        # The strategy reads TF_CONFIG when it is created, which must be
        # before this process runs any TensorFlow op.
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": cluster},
                "task": {"type": "worker", "index": index},
            }
        )
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with self.strategy.scope():
            self.model = builder()
        check_compiled(self.model, builder)
        return int(self.strategy.num_replicas_in_sync)

    def fit(
        self, batch: dict, rows: np.ndarray, minibatch_rows: int, steps: int
    ) -> dict:
        shard = _take_rows(batch, rows)
        dataset = tf.data.Dataset.from_tensor_slices(shard).batch(
            minibatch_rows, drop_remainder=True
        )
        # Each learner reads its own rows: no auto-sharding, no rebatching.
        distributed = self.strategy.distribute_datasets_from_function(
            lambda _: dataset
        )
        history = self.model.fit(
            distributed, epochs=1, steps_per_epoch=steps, verbose=0
        )
        return {name: float(v[-1]) for name, v in history.history.items()}

    def get_weights(self) -> list:
        return self.model.get_weights()

    def set_weights(self, weights: list) -> None:
        self.model.set_weights(weights)


class LearnerGroup(_actor_calls.ActorGroup):
    """N learner processes (Ray actors) training one model as one learner.

    Learner i is a Ray actor that sets `TF_CONFIG` (worker i of the N, at a
    free port of its node), creates a `MultiWorkerMirroredStrategy` and
    calls `builder()` under its scope. The model is rebuilt in each process
    instead of being sent: Keras models hold TensorFlow variables, which do
    not pickle, and variables created under the strategy are what keeps
    the copies in sync. `builder` is pickled by Ray (cloudpickle): a
    module-level function (or a `functools.partial` of one) importable on
    every node, taking no argument and returning a compiled model, e.g. a
    `keras_gae.models.PPOModel` with its optimizer. Its initial weights are
    the strategy's (worker 0's); `set_weights` sets them all.

    Example:

    ```python
    def build_model():
        model = keras_gae.models.PPOModel(actor, critic)
        model.compile(optimizer=keras.optimizers.Adam(3e-4))
        return model

    with keras_gae.distributed.ray_cluster():
        with LearnerGroup(build_model, num_learners=2) as learners:
            learners.set_weights(weights)
            metrics = learners.fit(batch, num_minibatches=4, epochs=10)
            weights = learners.get_weights()
    ```

    Args:
      builder: a picklable callable taking no argument and returning a
        compiled Keras model.
      num_learners: N >= 1 learner processes.
      num_cpus: CPUs Ray reserves for each learner (> 0).
      num_gpus: GPUs Ray reserves for each learner (>= 0); the strategy
        uses the GPUs Ray gives the process.
      timeout_s: seconds a call on the learners may take before a
        `TimeoutError` naming the learner.

    Raises:
      TypeError: `builder` not callable.
      ValueError: N < 1, negative resources or timeout, a builder not
        returning a compiled model (naming the learner).
      RuntimeError: a learner process that died (naming it).
      ImportError: Ray is not installed.
    """

    def __init__(
        self,
        builder: Callable[[], Any],
        *,
        num_learners: int,
        num_cpus: float = 1,
        num_gpus: float = 0,
        timeout_s: float = 600.0,
    ):
        super().__init__(
            _Learner,
            builder,
            num_learners,
            count_name="num_learners",
            label="LearnerGroup: learner",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            timeout_s=timeout_s,
        )
        self.num_learners = self._num_actors
        try:
            cluster = self._gather(
                [learner.address.remote() for learner in self._actors],
                "starting",
            )
            # All start at once: the strategy's first collectives (the
            # variables' initial values) need every learner.
            replicas = self._gather(
                [
                    learner.start.remote(cluster, index, builder)
                    for index, learner in enumerate(self._actors)
                ],
                "building the model",
            )
        except BaseException:
            self.shutdown()
            raise
        self.num_replicas = replicas[0]

    def fit(
        self,
        batch: Mapping[str, Any],
        *,
        num_minibatches: int,
        epochs: int = 1,
        seed: Optional[int] = None,
    ) -> dict:
        """Trains on one rollout batch, E epochs of M minibatches.

        The run's minibatches are `minibatch_order`'s (the same order on
        every learner); learner i trains on slice i of the B / M rows of
        each, whole rows, B / (M * N) per learner, and the gradients of the
        N slices are all-reduced: the update one learner makes on the whole
        minibatch, up to float rounding (the sum of N partial means is
        rounded differently from one mean).

        Args:
          batch: a rollout batch (docs/design.md), a dict of batch-major
            arrays with leading dimension B (nests allowed).
          num_minibatches: M >= 1, with M * N dividing B.
          epochs: E >= 1 passes over the batch.
          seed: None (the rows in order every epoch) or an int >= 0 (a
            new permutation every epoch).

        Returns:
          The model's metrics after the last step (learner 0's), floats.

        Raises:
          ValueError: M * N not dividing B, values of different B, E < 1.
          TypeError: `batch` not a dict.
          TimeoutError, RuntimeError: a learner late or failed, by index.
        """
        if not isinstance(batch, Mapping) or not batch:
            raise TypeError(
                "`batch` must be a non-empty rollout batch (a dict of "
                f"batch-major arrays). Received: batch={batch!r}"
            )
        batch = tf.nest.map_structure(np.asarray, dict(batch))
        sizes = {
            leaf.shape[0] if leaf.ndim else None
            for leaf in tf.nest.flatten(batch)
        }
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                "Every value of `batch` must have the same leading dimension "
                f"B. Received: leading dimensions {sorted(map(str, sizes))}"
            )
        rows = sizes.pop()
        order = minibatch_order(
            rows, num_minibatches=num_minibatches, epochs=epochs, seed=seed
        )
        if rows % (num_minibatches * self.num_learners):
            raise ValueError(
                f"`num_minibatches` times the {self.num_learners} learners "
                f"must divide the B={rows} rows of the batch, so that each "
                "learner gets whole rows of every minibatch. Received: "
                f"num_minibatches={num_minibatches}"
            )
        share = rows // (num_minibatches * self.num_learners)
        # [E * M, N, share]: minibatch k's rows, slice i for learner i.
        slices = order.reshape(epochs * num_minibatches, self.num_learners, -1)
        # The batch goes into the object store once; each learner gets the
        # rows of its slices, E epochs of them, as indices.
        batch_ref = self._ray.put(batch)
        refs = [
            learner.fit.remote(
                batch_ref,
                slices[:, index].reshape(-1),
                share,
                epochs * num_minibatches,
            )
            for index, learner in enumerate(self._actors)
        ]
        return self._gather(refs, "training")[0]

    def get_weights(self) -> list:
        """The model's weights (equal on every learner), numpy arrays."""
        ref = self._actors[0].get_weights.remote()
        return self._gather([ref], "reading")[0]

    def set_weights(self, weights: list) -> None:
        """Sets the model's weights on every learner (sent once)."""
        ref = self._ray.put(list(weights))
        self._gather(
            [learner.set_weights.remote(ref) for learner in self._actors],
            "setting the weights",
        )

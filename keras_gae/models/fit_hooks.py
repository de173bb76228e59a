"""How `ActorCriticModel` plugs its update into Keras' `fit`.

`FitHooks` holds the Keras side of training, not the update itself
(`ActorCriticModel.train_step` tells that): the metric trackers, the
check of each rollout batch, the non-finite-step guard around Keras' train
function, `fit`'s shuffle default, and the symbolic build Keras performs
under a distribution strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from keras_gae._src import private_apis
from keras_gae._src import rollout_batch
from keras_gae.models import optimization


def _first_replica(value: Any) -> Any:
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def multi_worker(strategy: Any) -> bool:
    """Whether `strategy` is a MultiWorkerMirroredStrategy over >1 worker.

    Read from its public cluster resolver as the strategy counts its
    workers: an empty cluster is one local worker; an evaluator counts
    the evaluators, any other task the chief and the workers.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    jobs = resolver.cluster_spec().as_dict()
    if resolver.task_type == "evaluator":
        count = len(jobs.get("evaluator", []))
    else:
        count = len(jobs.get("chief", [])) + len(jobs.get("worker", []))
    return count > 1


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or Inf loss, gradient or update and stopped.

    The update of the failing step was not applied, or was undone when it
    made a weight or the optimizer's state non-finite (nor was that of any
    later step in the same `steps_per_execution` group), so the model's
    weights and optimizer state are those from before that step.
    """


class _ScalarTotals(keras.metrics.Metric):
    """Running weighted means (or sums) of named scalars, in one variable.

    One variable of `len(names) + 1` totals (the weighted sums and the
    total weight) replaces a `keras.metrics.Mean` per scalar: one update
    and one reset per step instead of one per metric, which matters when
    a training step is a few milliseconds. `result()` is a dict, which
    Keras merges into the logs.
    """

    def __init__(self, names: tuple, *, mean: bool, name: str):
        super().__init__(name=name)
        self.names = tuple(names)
        self._mean = mean
        self.totals = self.add_variable(
            shape=(len(self.names) + 1,),
            initializer="zeros",
            dtype="float32",
            name="totals",
        )

    def update_state(self, values: tf.Tensor, weight: Any = 1.0) -> None:
        weight = tf.cast(weight, tf.float32)
        self.totals.assign_add(
            tf.concat([tf.cast(values, tf.float32) * weight, [weight]], 0)
        )

    def values(self) -> tf.Tensor:
        """The means (or sums), `[len(names)]`."""
        totals = tf.convert_to_tensor(self.totals)
        if self._mean:
            return tf.math.divide_no_nan(totals[:-1], totals[-1])
        return totals[:-1]

    def result(self) -> dict:
        return dict(zip(self.names, tf.unstack(self.values())))


# The counters of refused or failed steps (`_ScalarTotals` sums): a
# positive count blocks the updates of the remaining steps of the same
# execution, and `_raise_if_nonfinite` raises after it.
_NONFINITE, _INVALID_ACTIONS, _NONBINARY = range(3)
_FAILURE_NAMES = ("nonfinite_steps", "invalid_actions", "nonbinary_flags")


class FitHooks:
    """Mixin of `ActorCriticModel`: the Keras side of `fit`.

    Metrics (means reset every epoch, each step weighted by its number of
    valid steps, masked steps left out): "loss", "policy_loss",
    "value_loss", "entropy", "approx_kl" (k3 estimate of KL(pi_old ||
    pi)), "clip_fraction" (PPO), "value_clip_fraction",
    "explained_variance", "advantage_mean" and "advantage_std" (before
    normalization), and with a KL penalty "kl_penalty" and "kl_coef".

    Mixed precision: build the networks and the model under a
    `mixed_float16` (or `mixed_bfloat16`) global policy; GAE,
    normalization, distributions and losses stay in float32. Under
    `mixed_float16`, `compile` wraps the optimizer in Keras'
    LossScaleOptimizer and the step scales the loss; steps whose scaled
    gradients overflow are skipped by the loss scale as usual and do not
    count as failures.

    Non-finite losses: a step whose loss (or, without loss scaling, a
    gradient) is NaN or Inf applies no update, nor does any later step of
    the same execution (`steps_per_execution`); `fit` (and
    `train_on_batch`) then raises `NonFiniteLossError` before any callback
    sees the step, so the weights, the optimizer state and the files of
    `ModelCheckpoint` are those from before the failing step. The check
    uses no graph assertion, so it works with `jit_compile=True`.
    """

    def _create_trackers(self) -> None:
        # Keras metrics are not TensorFlow trackables, so their state stays
        # out of checkpoints (it is not training state); `metrics` lists
        # them for Keras to reset.
        self._trackers = _ScalarTotals(
            self.metric_names, mean=True, name="rollout_metrics"
        )
        # Failed steps (non-finite loss, gradients or update) and refused
        # steps' invalid inputs (`PreparedBatch.problems`).
        self._failures = _ScalarTotals(
            _FAILURE_NAMES, mean=False, name="failed_steps"
        )

    @property
    def metric_names(self) -> tuple:
        """Names of the metrics `train_step` returns, in order."""
        names = (
            ("loss", "policy_loss", "value_loss", "entropy")
            + self._POLICY_METRICS
            + (
                "value_clip_fraction",
                "explained_variance",
                "advantage_mean",
                "advantage_std",
            )
        )
        if self.kl_coef is not None:
            names += ("kl_penalty", "kl_coef")
        return names

    @property
    def metrics(self) -> list:
        return [self._trackers, self._failures]

    # Training. The helpers below are plain TensorFlow without Python
    # control flow on tensors; `do_not_convert` spares them (and the layers
    # and ops they call) AutoGraph's conversion, which dominated the time
    # to trace a train step. The networks themselves are converted as usual.

    @tf.autograph.experimental.do_not_convert
    def _check_batch(self, data: Any) -> dict:
        return rollout_batch.check_training_batch(
            data,
            has_kl_penalty=self.kl_coef is not None,
            recurrent=self.recurrent,
        )

    def _halted(self) -> tf.Tensor:
        """Whether an earlier step of this execution failed or was refused."""
        return tf.reduce_sum(self._failures.values()) > 0

    def _record_failures(self, finite: tf.Tensor, problems: tf.Tensor) -> None:
        """Counts a non-finite step and the global batch's refused inputs."""
        self._failures.update_state(
            tf.stack(
                [
                    tf.cast(tf.logical_not(finite), tf.float32),
                    problems[0],
                    problems[1],
                ]
            )
        )

    @tf.autograph.experimental.do_not_convert
    def _update_trackers(self, results: dict, count: tf.Tensor) -> dict:
        # Keras averages the replicas' metric results, which weights every
        # replica alike; combining each step's metrics over the global
        # batch first makes every replica's trackers hold the global ones.
        names = self.metric_names
        values = tf.stack(
            [tf.cast(results[name], tf.float32) for name in names]
        )
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            sums = context.all_reduce(
                tf.distribute.ReduceOp.SUM,
                tf.concat([values * count, count[tf.newaxis]], 0),
            )
            values = tf.math.divide_no_nan(sums[:-1], sums[-1])
            count = sums[-1]
        self._trackers.update_state(values, count)
        logs = self._trackers.result()
        if multi_worker(self.distribute_strategy):
            # Keras reduces each log across workers with
            # `strategy.reduce("MEAN", log, axis=0)`, which needs an axis.
            logs = {name: log[tf.newaxis] for name, log in logs.items()}
        return logs

    def fit(self, *args, **kwargs) -> keras.callbacks.History:
        """Keras' `fit`, with `shuffle` False by default for datasets.

        A dataset of rollout batches (`rollout_dataset`, `step_dataset`)
        shuffles itself, and Keras ignores `shuffle` for datasets with a
        warning; so unless `shuffle` is passed, a `tf.data.Dataset` (or a
        distributed one) is fitted with `shuffle=False`. Other inputs, e.g.
        a dict of arrays cut into batches of rows, keep Keras' default.
        """
        # `shuffle` is fit's ninth parameter.
        if "shuffle" not in kwargs and len(args) < 9:
            data = args[0] if args else kwargs.get("x")
            if isinstance(
                data, (tf.data.Dataset, tf.distribute.DistributedDataset)
            ):
                kwargs["shuffle"] = False
        return super().fit(*args, **kwargs)

    def make_train_function(self, force: bool = False) -> Any:
        """Keras' train function, followed by the non-finite-step check.

        The optimizer is built first (its slot variables made), so the
        train step is traced once.

        The check runs in Python after every execution, before `fit` hands
        the logs to the callbacks; the optimizer's learning rate is checked
        (finite, >= 0) before every execution.
        """
        if self.train_function is not None and not force:
            return self.train_function
        optimizer = self.optimizer
        if optimizer is not None and not optimizer.built and _built(self):
            # The slot variables now, not in the first trace: a
            # tf.function that creates variables is traced twice (Keras
            # builds the optimizer first only under a tf.distribute
            # strategy). benchmarks/lm_first_iteration.py measures what
            # it saves on the first fit of a keras-hub model.
            with self.distribute_strategy.scope():
                optimizer.build(self.trainable_variables)
        super().make_train_function(force=force)
        train_function = self.train_function

        def checked_train_function(iterator):
            optimization.check_learning_rate(self.optimizer)
            logs = train_function(iterator)
            self._raise_if_nonfinite()
            return logs

        self.train_function = checked_train_function
        return checked_train_function

    def _raise_if_nonfinite(self) -> None:
        # One read of the counters from the device per execution.
        failures = self._failures.values().numpy()
        invalid_actions = int(failures[_INVALID_ACTIONS])
        if invalid_actions:
            head = getattr(self, "policy_head", None)
            raise ValueError(
                'Training stopped: batch["action"] holds actions outside '
                "the policy head's action space, "
                f"{head.valid_action_range}, at valid steps; that step's "
                "update was not applied, so the weights are those after "
                f"{int(self.optimizer.iterations.numpy())} optimizer "
                'updates. Received: batch["action"] out of range at '
                f"{invalid_actions} steps"
            )
        nonbinary = int(failures[_NONBINARY])
        if nonbinary:
            raise ValueError(
                'Training stopped: batch["terminated"], batch["truncated"] '
                'or batch["mask"] holds values other than 0 and 1 (flags, '
                "not weights); that step's update was not applied, so the "
                "weights are those after "
                f"{int(self.optimizer.iterations.numpy())} optimizer "
                f"updates. Received: {nonbinary} such values"
            )
        if failures[_NONFINITE] > 0:
            raise NonFiniteLossError(
                "Training stopped: the loss, a gradient or the updated "
                "weights or optimizer state are NaN or Inf. The failing "
                "step's update was not applied, so the weights are "
                f"those after {int(self.optimizer.iterations.numpy())} "
                "optimizer updates. Look for non-finite rewards, values, "
                "log-probs (-Inf: an action the policy gives probability "
                "0) or observations in the rollout batch or the networks' "
                "outputs, or lower the learning rate."
            )

    def _maybe_symbolic_build(
        self, iterator: Any = None, data_batch: Any = None
    ):
        # A private Keras hook (keras_gae/_src/private_apis.py says why).
        # Under a distribution strategy Keras builds the model before the
        # first step by calling it symbolically on the first element of
        # the data, which it finds by reducing the distributed element with
        # MEAN; that fails on the bool tensors of a rollout batch
        # ("terminated", "mask"), and one replica's part has the shapes.
        # The networks see `_network_inputs(batch)` of it.
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, elements in iterator:
                data_batch = tf.nest.map_structure(
                    _first_replica, next(elements)
                )
                break
        batch = data_batch
        if isinstance(batch, tuple) and batch:
            batch = batch[0]
        with self.distribute_strategy.scope():
            if (
                isinstance(batch, Mapping)
                and rollout_batch.OBSERVATION in batch
            ):
                data_batch = (self._network_inputs(batch),)
            super()._symbolic_build(data_batch=data_batch)


def _built(model: keras.Model) -> bool:
    """Whether every layer of `model` is built (all its variables made).

    A model whose networks were built by calling them (an LM's causal LM
    in generation) has them all without being marked built itself.
    """
    return model.built or all(
        layer.built
        for layer in private_apis.flatten_layers(model)
        if layer is not model
    )

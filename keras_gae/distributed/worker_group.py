"""`RolloutWorkers`: N rollout workers as Ray actors, one round at a time.

A round is synchronous and exactly on-policy. The driver puts the policy's
weights into Ray's object store once (`ray.put`); every worker
(`keras_gae.distributed.rollout_worker.RolloutWorker`) sets them, collects
one rollout of `T` rows for each of its `num_envs` environments and
returns it with the policy version it used, which the driver checks. The
results come back in worker order, so concatenating their batches along
the environment axis gives `B = num_workers * num_envs` rows, worker `i`'s
environments at rows `i * num_envs ...`.

Faults. A worker whose process dies during a round (a crash, SIGKILL, a
lost node) is replaced by a new actor (the worker's next generation,
`rollout_worker.worker_seed`) and its share of the round is collected
again with the same weights: the dead worker's partial rollout never
reached the driver, so no step is counted twice or lost. After
`max_restarts` replacements in one round the round fails. A worker that
returns nothing within `worker_timeout_s` seconds raises
`WorkerTimeoutError` naming it (index, host, process); the hung actor is
killed and made again at the next round, so the error never hangs the
program.

Ray must be initialized (`keras_gae.distributed.ray_cluster`, or the
user's `ray.init`) before the workers are made.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence

from keras_gae.distributed.ray_runtime import import_ray
from keras_gae.distributed.rollout_worker import ModelFn
from keras_gae.distributed.rollout_worker import RolloutWorker
from keras_gae.ops import _checks


class WorkerTimeoutError(TimeoutError):
    """A rollout worker returned nothing within `worker_timeout_s`."""


class RolloutWorkers:
    """`num_workers` Ray actors collecting rollouts (module docstring).

    Args:
      env: each worker's environments' source, as `make_tf_environment`
        takes it: a gymnasium id, an `EnvSpec` or a picklable factory.
      model_fn: picklable `model_fn(observation_spec, action_spec,
        num_envs)` returning a model of the learner's architecture
        (`keras_gae.distributed.rollout_worker`).
      num_workers: N >= 1 actors.
      num_envs: environments per worker, >= 1.
      rollout_length: T >= 1, rows per environment per round.
      seed: the run's seed; worker i's environments get `seed + i *
        num_envs + j`, as one process of all of them would.
      env_kwargs: keyword arguments of `gymnasium.make` (or the factory).
      vectorization_mode: `make_tf_environment`'s, in each worker.
      return_window: episodes each worker's statistics keep per round.
      worker_timeout_s: seconds a worker may take for one round (its
        start included), > 0.
      max_restarts: replacements of dead workers allowed per round, >= 0.

    Raises:
      RuntimeError: Ray is not initialized.
      TypeError, ValueError: bad arguments, named.

    Example:

    ```text
    with keras_gae.distributed.ray_cluster():
        workers = RolloutWorkers("CartPole-v1", model_fn=make_model,
                                 num_workers=2, num_envs=8,
                                 rollout_length=64)
        results = workers.collect(weights, version=0)
    ```
    """

    def __init__(
        self,
        env: Any,
        *,
        model_fn: ModelFn,
        num_workers: int,
        num_envs: int,
        rollout_length: int,
        seed: int = 0,
        env_kwargs: Optional[Mapping[str, Any]] = None,
        vectorization_mode: Optional[str] = None,
        return_window: int = 20,
        worker_timeout_s: float = 600.0,
        max_restarts: int = 3,
    ):
        if not callable(model_fn):
            raise TypeError(
                "`model_fn` must be a picklable callable "
                "model_fn(observation_spec, action_spec, num_envs). "
                f"Received: model_fn={model_fn!r}"
            )
        self.num_workers = _checks.check_positive_int(
            num_workers, "num_workers"
        )
        self.num_envs = _checks.check_positive_int(num_envs, "num_envs")
        self.rollout_length = _checks.check_positive_int(
            rollout_length, "rollout_length"
        )
        self.worker_timeout_s = _checks.check_float(
            worker_timeout_s, "worker_timeout_s", minimum=0.0, inclusive=False
        )
        self.max_restarts = _checks.check_int(
            max_restarts, "max_restarts", minimum=0
        )
        self._ray = import_ray()
        if not self._ray.is_initialized():
            raise RuntimeError(
                "RolloutWorkers need a running Ray: make them inside `with "
                "keras_gae.distributed.ray_cluster(): ...` (or after "
                "ray.init). Received: ray.is_initialized()=False"
            )
        self._options = dict(
            model_fn=model_fn,
            num_envs=self.num_envs,
            rollout_length=self.rollout_length,
            seed=_checks.check_int(seed, "seed"),
            env_kwargs=dict(env_kwargs or {}),
            vectorization_mode=vectorization_mode,
            return_window=_checks.check_positive_int(
                return_window, "return_window"
            ),
        )
        self._env = env
        self.model_fn = model_fn
        # Ray restarts nothing itself: a dead worker is replaced here,
        # with a new generation's seeds and the learner's record of it.
        self._actor_class = self._ray.remote(max_restarts=0)(RolloutWorker)
        self.generations = [0] * self.num_workers
        self._actors: List[Any] = [None] * self.num_workers
        self._where: List[str] = ["not started"] * self.num_workers
        for index in range(self.num_workers):
            self._start(index)

    def __enter__(self) -> RolloutWorkers:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def batch_size(self) -> int:
        """B, all workers' environments."""
        return self.num_workers * self.num_envs

    def _start(self, index: int) -> None:
        self._actors[index] = self._actor_class.remote(
            self._env,
            worker_index=index,
            generation=self.generations[index],
            **self._options,
        )
        self._where[index] = "starting"

    def _retire(self, index: int) -> None:
        """Kills worker `index`; its next generation starts when needed."""
        if self._actors[index] is not None:
            self._ray.kill(self._actors[index], no_restart=True)
        self._actors[index] = None
        self.generations[index] += 1
        self._where[index] = "retired"

    def reseed(self, generations: Sequence[int]) -> None:
        """Worker i collects in generation `generations[i]` from now on.

        At the next round each worker whose generation changed makes its
        environments again from that generation's seeds, in its process
        (`RolloutWorker.collect`): new episodes, no process started.
        """
        if len(generations) != self.num_workers:
            raise ValueError(
                f"`generations` must hold one generation per worker, "
                f"{self.num_workers}. Received: generations={generations!r}"
            )
        self.generations = [
            _checks.check_int(g, "generations", minimum=0) for g in generations
        ]

    def make_collector(
        self, model: Any, *, rollout_length: int, return_window: int
    ) -> Any:
        """The learner's collector over these workers (`RemoteCollector`).

        `OnPolicyTrainer(model, workers, ...)` calls it; `model` is the
        learner's, whose `policy_variables` the workers' models match.
        """
        from keras_gae.distributed.remote_collector import RemoteCollector

        return RemoteCollector(
            model,
            self,
            rollout_length=rollout_length,
            return_window=return_window,
        )

    def describe(self) -> List[Dict[str, Any]]:
        """Each worker's index, generation, host, pid and num_envs.

        Waits for every worker to be up (at most `worker_timeout_s`).
        """
        for index, actor in enumerate(self._actors):
            if actor is None:
                self._start(index)
        calls = [actor.describe.remote() for actor in self._actors]
        described = self._wait(calls)
        for index, found in enumerate(described):
            self._where[index] = f"host {found['host']}, pid {found['pid']}"
        return described

    def collect(
        self,
        weights: Sequence[Any],
        version: int,
        returns: Optional[Sequence[Any]] = None,
    ) -> List[Dict[str, Any]]:
        """One round: every worker's `RolloutWorker.collect` result.

        Args:
          weights: the policy's variables as arrays (`policy_variables`
            order); put into the object store once.
          version: the policy version (the learner's iteration).
          returns: per worker, the running returns `[num_envs]` to
            continue from (reward normalization), or None.

        Returns:
          The workers' results, in worker order.

        Raises:
          WorkerTimeoutError: a worker took longer than `worker_timeout_s`.
          RuntimeError: a worker could not start (its environments or
            model), died more than `max_restarts` times in the round,
            failed (its error attached), or returned another policy
            version.
        """
        ray = self._ray
        weights_ref = ray.put(list(weights))
        returns = list(returns) if returns is not None else None

        def submit(index: int) -> Any:
            if self._actors[index] is None:
                self._start(index)
            own = None if returns is None else returns[index]
            call = self._actors[index].collect.remote(
                weights_ref, version, own, self.generations[index]
            )
            return call, time.monotonic() + self.worker_timeout_s

        pending = {index: submit(index) for index in range(self.num_workers)}
        results: List[Any] = [None] * self.num_workers
        restarts = 0
        while pending:
            deadline = min(due for _, due in pending.values())
            calls = {call: index for index, (call, _) in pending.items()}
            ready, _ = ray.wait(
                list(calls),
                num_returns=1,
                timeout=max(deadline - time.monotonic(), 0.0),
            )
            if not ready:
                late = [
                    index
                    for index, (_, due) in pending.items()
                    if due <= time.monotonic()
                ]
                if late:
                    self._timed_out(late, unfinished=list(pending))
                continue
            index = calls[ready[0]]
            del pending[index]
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayActorError as error:
                if getattr(error, "actor_init_failed", False):
                    # Its environments or model cannot be made: a new
                    # worker would fail the same way.
                    raise RuntimeError(
                        f"Rollout worker {index} could not start: {error}"
                    ) from error
                restarts += 1
                if restarts > self.max_restarts:
                    raise RuntimeError(
                        f"Rollout worker {index} died ({self._where[index]})"
                        f" and {restarts - 1} workers were replaced in this "
                        f"round already; giving up. The last death: {error}"
                        f" Received: max_restarts={self.max_restarts}"
                    ) from error
                self._retire(index)
                pending[index] = submit(index)
                continue
            except ray.exceptions.RayTaskError as error:
                raise RuntimeError(
                    f"Rollout worker {index} ({self._where[index]}) failed "
                    f"in round {version}: {error.cause!r}"
                ) from error
            if result["version"] != version:
                raise RuntimeError(
                    f"Rollout worker {index} collected with policy version "
                    f"{result['version']}, the learner sent {version}: the "
                    "round is not on-policy. "
                    f"Received: version={result['version']}"
                )
            self._where[index] = f"host {result['host']}, pid {result['pid']}"
            results[index] = result
        return results

    def _timed_out(self, late: List[int], unfinished: List[int]) -> None:
        """Raises the error naming `late`, killing every `unfinished` one.

        A worker whose round is abandoned must not keep collecting: its
        rollout would come back to nobody, its steps never counted.
        """
        named = ", ".join(f"{i} ({self._where[i]})" for i in late)
        others = sorted(set(unfinished) - set(late))
        for index in unfinished:
            self._retire(index)
        stopped = (
            f" (with the round's unfinished workers {others})" if others else ""
        )
        raise WorkerTimeoutError(
            f"Rollout worker {named} returned no rollout within "
            f"worker_timeout_s={self.worker_timeout_s} seconds (a hung "
            "environment, or a start slower than the timeout); it was "
            f"killed{stopped} and will be made again when next needed. "
            f"Received: worker_timeout_s={self.worker_timeout_s}"
        )

    def _wait(self, calls: List[Any]) -> List[Any]:
        ready, _ = self._ray.wait(
            calls, num_returns=len(calls), timeout=self.worker_timeout_s
        )
        late = [i for i, call in enumerate(calls) if call not in ready]
        if late:
            self._timed_out(late, unfinished=late)
        return self._ray.get(calls)

    def close(self) -> None:
        """Kills the workers' actors (their environments close with them)."""
        for index, actor in enumerate(self._actors):
            if actor is not None:
                self._ray.kill(actor, no_restart=True)
                self._actors[index] = None

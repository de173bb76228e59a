"""What the actor groups of keras_gae.distributed share: their resource
arguments' checks, making N actors of one class, waiting on one call per
actor with a timeout, ending them."""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Sequence

from keras_gae.distributed import ray_runtime
from keras_gae.ops import _checks


def check_actor_options(
    builder: Any, num_actors: Any, name: str, **resources: Any
) -> int:
    """Checks a group's arguments; returns the number of actors.

    `resources`: `num_cpus` (> 0), `num_gpus` (>= 0), `timeout_s` (> 0).
    """
    if not callable(builder):
        raise TypeError(
            "`builder` must be a picklable callable taking no argument. "
            f"Received: builder={builder!r}"
        )
    for key, value in resources.items():
        _checks.check_float(
            value, key, minimum=0.0, inclusive=key == "num_gpus"
        )
    return _checks.check_positive_int(num_actors, name)


def gather(
    ray: Any, refs: list, names: list, *, timeout_s: float, doing: str
) -> list:
    """The results of `refs` (one call per actor, `names[i]` its actor).

    Raises:
      TimeoutError: naming the actors not done within `timeout_s`.
      ValueError, TypeError: an actor's own (a bad argument), naming it.
      RuntimeError: an actor whose process died, naming it.
    """
    _, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        late = [names[refs.index(ref)] for ref in pending]
        raise TimeoutError(
            f"{', '.join(late)} did not finish {doing} within "
            f"timeout_s={timeout_s} seconds."
        )
    results = []
    for name, ref in zip(names, refs):
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayError as error:
            cause = getattr(error, "cause", None)
            kind = next(
                (k for k in (ValueError, TypeError) if isinstance(cause, k)),
                RuntimeError,
            )
            raise kind(f"{name} failed {doing}: {cause or error}") from error
    return results


class ActorGroup:
    """N Ray actors of one class, each made with the same arguments.

    The base of `LearnerGroup` and `GenerationWorkers`: checks their
    arguments (`check_actor_options`), makes the actors with the group's
    resources, gathers one call per actor (`gather`, errors naming
    `f"{label} {i} of {N}"`) and ends them.

    Args:
      actor_class: the actors' body, a plain class Ray makes remote.
      builder: the user's picklable callable the actors build from.
      num_actors: N >= 1, the argument `count_name` of the subclass.
      count_name: that argument's name in errors ("num_learners").
      label: what errors call an actor, before its index.
      num_cpus, num_gpus, timeout_s: as `check_actor_options`.
      actor_args: the arguments of every actor's constructor.
    """

    def __init__(
        self,
        actor_class: type,
        builder: Any,
        num_actors: Any,
        *,
        count_name: str,
        label: str,
        num_cpus: float,
        num_gpus: float,
        timeout_s: float,
        actor_args: Sequence[Any] = (),
    ):
        self._num_actors = check_actor_options(
            builder,
            num_actors,
            count_name,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            timeout_s=timeout_s,
        )
        self._label = label
        self._timeout_s = float(timeout_s)
        self._ray = ray_runtime.import_ray()
        remote_class = self._ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(
            actor_class
        )
        self._actors = [
            remote_class.remote(*actor_args) for _ in range(self._num_actors)
        ]

    def _gather(
        self, refs: list, doing: str, indices: Optional[list] = None
    ) -> list:
        """`gather` of `refs`, one call on each actor of `indices` (default
        the first `len(refs)`)."""
        if indices is None:
            indices = range(len(refs))
        names = [f"{self._label} {i} of {self._num_actors}" for i in indices]
        return gather(
            self._ray, refs, names, timeout_s=self._timeout_s, doing=doing
        )

    def shutdown(self) -> None:
        """Ends the actors' processes (idempotent)."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

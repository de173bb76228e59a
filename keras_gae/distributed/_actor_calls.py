"""What the actor groups of keras_gae.distributed share: their resource
arguments' checks and waiting on one call per actor with a timeout."""

from __future__ import annotations

from typing import Any

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

"""Ray Core for keras_gae: imported only when workers are asked for.

`import keras_gae` and `keras_gae.agents` never import ray; the modules of
`keras_gae.distributed` call `import_ray()` where they need it, and
`ray_cluster` gives a training run a cluster for its duration: the one the
user already started (`ray.init`, `RAY_ADDRESS`, an address), else a local
one it starts and shuts down itself.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any
from typing import Iterator
from typing import Optional

from keras_gae.ops import _checks

# The tested line (setup.py's `ray` extra).
RAY_REQUIREMENT = "ray>=2.60,<2.61"


def import_ray() -> Any:
    """Returns the `ray` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "Rollout workers on Ray need Ray Core, which is not installed: "
            f"pip install 'keras_gae[ray]' (installs {RAY_REQUIREMENT}). "
            f"({error})"
        ) from None
    return ray


@contextlib.contextmanager
def ray_cluster(
    address: Optional[str] = None, *, num_cpus: Optional[int] = None
) -> Iterator[Any]:
    """Connects to a Ray cluster for the block, or starts a local one.

    - Ray already initialized in this process (the user called
      `ray.init`): that cluster is used and left running.
    - `address` given ("HOST:6379", "auto", "ray://..."), or else the
      `RAY_ADDRESS` environment variable set: connects to that cluster and
      disconnects at the end; the cluster keeps running.
    - Neither: starts a local cluster of `num_cpus` CPUs (default: all)
      without a dashboard, and shuts it down at the end.

    Args:
      address: a Ray cluster address, or None.
      num_cpus: CPUs of a local cluster this starts (>= 1), or None for
        all; ignored when connecting to a running cluster.

    Yields:
      the `ray` module.

    Raises:
      ImportError: Ray is not installed.
      TypeError: `address` not a string or None.
      ValueError: `num_cpus` < 1.
    """
    if address is not None and not isinstance(address, str):
        raise TypeError(
            "`address` must be a Ray cluster address (str) or None. "
            f"Received: address={address!r}"
        )
    if num_cpus is not None:
        num_cpus = _checks.check_positive_int(num_cpus, "num_cpus")
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options = dict(
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
    )
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, **options)
    else:
        ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()

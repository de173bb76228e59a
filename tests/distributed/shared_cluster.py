"""The one local Ray cluster the tests of tests/distributed share.

Starting a cluster costs seconds, so the test modules that need Ray call
`start()` before they make actors (in `setUpModule` or `setUpClass`): the
first starts a local cluster as a user would (`ray.init(address="local")`,
on loopback, see tests/conftest.py) and the others find it running, as does
`keras_gae.distributed.ray_cluster` in the code they test (it joins a
cluster the program started and leaves it running). tests/distributed/
conftest.py stops it after the package's last test and before each test
that needs Ray not running, which it orders after the others. Every module
that starts Ray is in the pytest-xdist group "ray", so `make test`
(`-n 2 --dist loadgroup`) runs them in one process, one cluster.
"""

from __future__ import annotations

import sys
from typing import Any

# Two actors at a time: the largest group a test makes. A module closes
# its actors before the next module makes its own.
NUM_CPUS = 2


def start() -> Any:
    """Starts the shared cluster unless it runs; returns the `ray` module."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=NUM_CPUS,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
        )
    return ray


def stop() -> None:
    """Shuts the shared cluster down if it runs (a process without ray
    imported has none)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()

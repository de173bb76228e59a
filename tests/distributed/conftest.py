"""One Ray cluster for the package (shared_cluster.py), stopped at its end.

Tests that need Ray not running (a cluster's lifetime, errors without Ray)
ask for the `ray_stopped` fixture; they run after the package's other
tests, so stopping the shared cluster for them never makes a later module
start it again.
"""

import pathlib

import pytest

from tests.distributed import shared_cluster

_PACKAGE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items):
    # Only this package's items move, among the slots they hold, so the
    # rest of the session keeps its order.
    slots = [
        i
        for i, item in enumerate(items)
        if _PACKAGE in pathlib.Path(item.path).parents
    ]
    ours = sorted(
        (items[i] for i in slots),
        key=lambda item: "ray_stopped" in item.fixturenames,
    )
    for slot, item in zip(slots, ours):
        items[slot] = item


@pytest.fixture(scope="package", autouse=True)
def _shared_cluster_stopped_at_the_end():
    yield
    shared_cluster.stop()


@pytest.fixture
def ray_stopped():
    """Ray not running in this process for the test."""
    shared_cluster.stop()

"""One Ray cluster for the package (shared_cluster.py), stopped at its end.

Tests that need Ray not running (a cluster's lifetime, errors without Ray)
ask for the `ray_stopped` fixture; they run after the package's other
tests, so stopping the shared cluster for them never makes a later module
start it again. Under `pytest -n 2 --dist loadgroup` (make test) the Ray
tests must reach one xdist worker: the package's tests fail at once if
xdist did not group them.
"""

import pathlib

import pytest

from tests.distributed import shared_cluster

_PACKAGE = pathlib.Path(__file__).parent


# Ray tests an xdist worker under `--dist loadgroup` got without their group
# (xdist marks a grouped test by a suffix of its node id).
_UNGROUPED = []


# Last: after xdist's own hook has given grouped tests their suffix.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
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
    if config.getoption("loadgroup", default=False):
        _UNGROUPED[:] = [
            item.nodeid
            for item in ours
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid
        ]


@pytest.fixture(scope="package", autouse=True)
def _one_shared_cluster():
    if _UNGROUPED:
        pytest.fail(
            "pytest-xdist's `--dist loadgroup` left the Ray tests "
            "ungrouped, so each xdist worker would start a Ray cluster: "
            "pytest 9.2 ignores the node-id suffix xdist 3.8 groups by "
            "(pytest-dev/pytest-xdist#1386). Install setup.py's test "
            "extra (pytest<9.2). Received: ungrouped "
            f"{_UNGROUPED[:2]} and {max(len(_UNGROUPED) - 2, 0)} more"
        )
    yield
    shared_cluster.stop()


@pytest.fixture
def ray_stopped():
    """Ray not running in this process for the test."""
    shared_cluster.stop()

"""Test configuration: hypothesis profiles and the opt-in soak runs.

Profiles (choose with ``HYPOTHESIS_PROFILE``): ``dev`` (default: 100 examples), ``ci``
(bounded and derandomized, so a CI run is reproducible and fits its time budget) and
``soak`` (many examples, for the long explorations).

``pytest --soak`` runs the tests marked ``soak`` (deselected otherwise) and, unless
``HYPOTHESIS_PROFILE`` names another, loads the ``soak`` profile for every property test. A
soak run's tests outlive the default per-test timeout (``timeout`` in ``pyproject.toml``):
with ``--soak``, every property test and every soak test without a ``timeout`` mark of its
own gets :data:`SOAK_TIMEOUT` seconds.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

#: per-test timeout of a soak run, in seconds, for tests without a timeout mark of their own
SOAK_TIMEOUT = 3 * 3600

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "soak",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="also run the long soak tests (soak profile unless HYPOTHESIS_PROFILE is set)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--soak") and "HYPOTHESIS_PROFILE" not in os.environ:
        settings.load_profile("soak")


def _is_property_test(item: pytest.Item) -> bool:
    test = getattr(item, "obj", None)
    return bool(getattr(test, "is_hypothesis_test", False)) or item.name == "runTest"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        for item in items:
            long = "soak" in item.keywords or _is_property_test(item)
            if long and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(SOAK_TIMEOUT))
        return
    # Soak runs are deselected (not skipped) unless asked for, so no skip is left behind.
    kept = [item for item in items if "soak" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if "soak" in i.keywords])
        items[:] = kept

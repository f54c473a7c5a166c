"""Test configuration: hypothesis profiles and the opt-in soak runs.

Profiles (choose with ``HYPOTHESIS_PROFILE``): ``dev`` (default: 100 examples), ``ci``
(bounded and derandomized, so a CI run is reproducible and fits its time budget) and
``soak`` (many examples; use with ``--soak`` for the long explorations).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("soak", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="also run the long soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    # Soak runs are deselected (not skipped) unless asked for, so no skip is left behind.
    kept = [item for item in items if "soak" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if "soak" in i.keywords])
        items[:] = kept

"""mmkit's pytest plugin: fixtures for testing mmkit plugins.

pytest loads it by itself wherever mmkit is installed (mmkit's ``pytest11`` entry point);
elsewhere, ``pytest -p mmkit.testing.pytest_plugin``. Each fixture undoes what it did.

``mmkit_registry``
    a fresh, empty plugin registry for the test (:func:`mmkit.testing.isolated_registry`
    with no entries): only what the test registers is there, built-ins included.
``mmkit_tmp_plugin``
    a function ``(group, name, obj) -> PluginReport`` that registers ``obj`` for the rest of
    the test (:func:`mmkit.testing.tmp_plugin`), in whichever registry is current.
``mmkit_tmp_site``
    a :class:`mmkit.testing.TmpSite`: temporary installed distributions whose entry points
    the (fresh) registry discovers as it would pip-installed ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mmkit import plugins
from mmkit.testing._registry import TmpSite, isolated_registry, tmp_plugin, tmp_site


@pytest.fixture
def mmkit_registry() -> Iterator[None]:
    """A fresh, empty plugin registry for the test."""
    with isolated_registry(entries=()):
        yield


@pytest.fixture
def mmkit_tmp_plugin() -> Iterator[Callable[[str, str, object], plugins.PluginReport]]:
    """Register plugins until the end of the test: ``mmkit_tmp_plugin(group, name, obj)``."""
    with contextlib.ExitStack() as stack:

        def register(group: str, name: str, obj: object) -> plugins.PluginReport:
            return stack.enter_context(tmp_plugin(group, name, obj))

        yield register


@pytest.fixture
def mmkit_tmp_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TmpSite]:
    """Temporary installed distributions, in a fresh registry that reads the metadata."""
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    with tmp_site(tmp_path / "mmkit-site") as site:
        yield site

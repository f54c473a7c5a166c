"""Registry helpers for tests: a fresh registry, a plugin registered for a block, and
temporary installed distributions (a ``*.dist-info`` with ``entry_points.txt`` on
``sys.path``, found by ``importlib.metadata`` exactly as a pip-installed one is).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmkit import plugins

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["TmpSite", "isolated_registry", "tmp_plugin", "tmp_site"]


@contextlib.contextmanager
def isolated_registry(
    entries: Iterable[plugins.PluginEntry | EntryPoint] | None = None,
) -> Iterator[None]:
    """A fresh plugin registry for the ``with`` block (see :func:`mmkit.plugins.isolated`).

    ``entries=None`` reads the installed entry points afresh; ``entries=()`` starts empty.
    In a pytest fixture::

        @pytest.fixture
        def registry():
            with isolated_registry(entries=()):
                yield
    """
    with plugins.isolated(entries):
        yield


@contextlib.contextmanager
def tmp_plugin(group: str, name: str, obj: object) -> Iterator[plugins.PluginReport]:
    """Register ``obj`` as plugin ``name`` of ``group`` for the block; yield its report.

    On exit the registration is removed, and an earlier runtime registration of the same
    name is put back. A broken plugin is not an error here: inspect the report's status.
    """
    registry = plugins._current()  # the registry current now, even if isolated() swaps later
    previous = registry.runtime.get((group, name), plugins._MISSING)
    report = plugins.register(group, name, obj)
    try:
        yield report
    finally:
        with registry._lock:
            if previous is plugins._MISSING:
                registry.runtime.pop((group, name), None)
            else:
                registry.runtime[(group, name)] = previous
            registry.forget(group)


@dataclass
class TmpSite:
    """A directory on ``sys.path`` holding temporary installed distributions.

    :meth:`add_dist` writes ``<name>-<version>.dist-info/`` (``METADATA``,
    ``entry_points.txt``) and the plugin's modules, so the registry discovers the plugin
    through its entry point, as after ``pip install``. Use it through :func:`tmp_site` or
    the ``mmkit_tmp_site`` pytest fixture, which also give a fresh registry.
    """

    root: Path
    modules: set[str] = field(default_factory=set)

    def add_dist(
        self,
        name: str,
        entry_points: Mapping[str, Mapping[str, str]],
        modules: Mapping[str, str] | None = None,
        version: str = "1.0",
        *,
        rescan: bool = True,
    ) -> None:
        """Install distribution ``name``: ``entry_points`` maps a group to ``{entry name:
        "module:attr"}``; ``modules`` maps module names to their source (dedented).
        ``rescan=False`` leaves the registry's cache alone, as a ``pip install`` in another
        terminal does to a running kernel (until :func:`mmkit.plugins.rescan`)."""
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{key} = {value}" for key, value in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            self.modules.add(module)
        importlib.invalidate_caches()
        if rescan:
            plugins.rescan()


@contextlib.contextmanager
def tmp_site(root: Path) -> Iterator[TmpSite]:
    """A :class:`TmpSite` in the empty directory ``root``, first on ``sys.path``, with a
    fresh registry that reads the installed metadata (the real and the temporary); all
    undone on exit (``sys.path``, the imported plugin modules, the registry)."""
    root.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(root))
    site = TmpSite(root)
    try:
        with plugins.isolated():
            yield site
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))
        for module in site.modules:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()

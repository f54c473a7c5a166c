"""Entry-point discovery and the cached registry.

:func:`_installed_entries` reads the installed metadata; a :class:`_Registry` caches that
discovery and each group's load (import, disable and duplicate checks, validation, one
:class:`~mmkit.plugins.PluginReport` per entry) and holds the in-process registrations.
The registry in use is :func:`mmkit.plugins._current`, which :func:`mmkit.plugins.isolated`
swaps.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmkit.plugins._disable import DISABLE_ENV, _disable_hint, _disable_patterns, _disabled_by
from mmkit.plugins._helpers import _describe_exception, _normalize, _object_ref
from mmkit.plugins._records import (
    _RUNTIME_DISTRIBUTION,
    _UNKNOWN_DISTRIBUTION,
    PluginEntry,
    PluginReport,
    _sort_key,
)
from mmkit.plugins._validate import _GROUPS, _MISSING, _Accepted, _Group, _Reject

if TYPE_CHECKING:  # importing importlib.metadata costs ~10 ms: only on first discovery
    from importlib.metadata import EntryPoint

# The entry-point value grammar of the packaging spec: ``module[:attr.path] [extras]``.
_VALUE_RE = re.compile(r"(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+)\s*)?(?:\[[^\]]*\]\s*)?")


def _installed_entries() -> list[PluginEntry]:
    import importlib.metadata as metadata  # deferred: import mmkit.plugins stays cheap

    found = metadata.entry_points()  # the one read of the metadata per scan
    return [_entry_from_ep(ep) for group in _GROUPS for ep in found.select(group=group)]


def _entry_from_ep(ep: EntryPoint | PluginEntry) -> PluginEntry:
    if isinstance(ep, PluginEntry):
        return ep
    dist = getattr(ep, "dist", None)
    return PluginEntry(
        group=ep.group,
        name=ep.name,
        value=ep.value,
        distribution=(getattr(dist, "name", None) or _UNKNOWN_DISTRIBUTION),
        version=(getattr(dist, "version", None) or ""),
    )


@dataclass
class _Loaded:
    """A group's load result (filled in while loading; read-only once stored)."""

    objects: dict[str, Any] = field(default_factory=dict)  # key -> plugin, sorted by key
    provided: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> names
    reports: tuple[PluginReport, ...] = ()


class _Registry:
    """One registry: a cached discovery, cached loads, and in-process registrations."""

    def __init__(self, source: Callable[[], Iterable[PluginEntry]]) -> None:
        self._source = source
        self._lock = threading.RLock()
        self._entries: tuple[PluginEntry, ...] | None = None
        self._loaded: dict[str, _Loaded] = {}
        self._loading: dict[str, _Loaded] = {}  # group -> what is accepted so far
        self.runtime: dict[tuple[str, str], object] = {}

    def discover(self) -> tuple[PluginEntry, ...]:
        with self._lock:
            if self._entries is None:
                # dict.fromkeys drops exact repeats (one distribution seen on two path
                # entries) while keeping same-name entries of different distributions.
                unique = dict.fromkeys(e for e in self._source() if e.group in _GROUPS)
                self._entries = tuple(sorted(unique, key=_sort_key))
            return self._entries

    def rescan(self) -> None:
        with self._lock:
            importlib.invalidate_caches()  # so a %pip install'ed package is importable
            self._entries = None
            self._loaded.clear()

    def forget(self, group: str) -> None:
        with self._lock:
            self._loaded.pop(group, None)

    def load(self, group: str) -> _Loaded:
        with self._lock:
            if group in self._loading:
                # A plugin used the registry while being loaded (e.g. a family built on
                # arm64 calls mmkit.arch.get() in create()). It sees what is accepted so far:
                # built-ins come first, so it can build on them; recursing would never end.
                return self._loading[group]
            if group not in self._loaded:
                self._loading[group] = _Loaded()
                try:
                    self._loaded[group] = self._load_group(group)
                finally:
                    del self._loading[group]
            return self._loaded[group]

    def _load_group(self, group: str) -> _Loaded:
        spec = _GROUPS[group]
        candidates: list[tuple[PluginEntry, object]] = [
            (e, _MISSING) for e in self.discover() if e.group == group
        ]
        candidates += [
            (PluginEntry(g, name, _object_ref(obj), _RUNTIME_DISTRIBUTION, ""), obj)
            for (g, name), obj in self.runtime.items()
            if g == group
        ]
        # Built-ins first, so their names are taken before any third party's.
        candidates.sort(key=lambda c: (not c[0].builtin, _sort_key(c[0])))
        builtin_names = {e.name for e, _ in candidates if e.builtin}
        patterns = _disable_patterns(os.environ.get(DISABLE_ENV, ""))
        winners: dict[str, PluginEntry] = {}  # entry name -> the entry that took it
        owners: dict[str, PluginEntry] = {}  # key or provided name -> the entry that took it
        partial = self._loading[group]
        reports: list[PluginReport] = []
        for entry, obj in candidates:
            try:
                obj = self._check_entry(entry, obj, patterns, builtin_names, winners)
                result = spec.validate(entry, obj)
                self._check_taken(entry, spec, result, owners)
            except _Reject as reject:
                reports.append(self._report(entry, reject.status, reject.message, reject.fix))
                continue
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # e.g. a mapping whose __getitem__ exits: a bug
                message = f"{entry.culprit}: checking it raised {_describe_exception(exc)}"
                fix = f"report the bug to the plugin's authors, {_disable_hint(entry)}"
                reports.append(self._report(entry, "load-error", message, fix))
                continue
            winners[entry.name] = entry
            owners.update(dict.fromkeys((result.key, *result.provides), entry))
            partial.objects[result.key] = obj
            partial.provided[result.key] = result.provides
            reports.append(self._report(entry, "ok", result.note, "", result.provides))
        reports.sort(key=lambda r: (r.group, r.name, _normalize(r.distribution)))
        return _Loaded(
            dict(sorted(partial.objects.items())), dict(partial.provided), tuple(reports)
        )

    @staticmethod
    def _report(
        entry: PluginEntry, status: str, message: str, fix: str, provides: tuple[str, ...] = ()
    ) -> PluginReport:
        return PluginReport(
            entry.group,
            entry.name,
            entry.distribution,
            entry.version,
            entry.value,
            status,
            message,
            fix,
            provides,
        )

    @staticmethod
    def _check_entry(
        entry: PluginEntry,
        obj: object,
        patterns: Sequence[str],
        builtin_names: set[str],
        winners: Mapping[str, PluginEntry],
    ) -> object:
        """Disabled? Name taken? Then import: everything decided before validation."""
        pattern = _disabled_by(entry, patterns)
        if pattern is not None:
            raise _Reject(
                "disabled",
                f"{entry.culprit}: disabled by {DISABLE_ENV} pattern {pattern!r}",
                f"remove {pattern!r} from {DISABLE_ENV} to enable it",
            )
        if not entry.builtin and entry.name in builtin_names:
            raise _Reject(
                "duplicate",
                f"{entry.culprit}: the name {entry.name!r} belongs to mmkit's built-in "
                f"{entry.group} plugin; a plugin may not shadow a built-in",
                f"rename the entry point in {entry.distribution}'s pyproject.toml, or uninstall it",
            )
        if entry.name in winners:
            first = winners[entry.name]
            raise _Reject(
                "duplicate",
                f"{entry.culprit}: {entry.group}:{entry.name} is already provided by "
                f"{first.distribution} {first.version} ({first.value}), which comes first",
                f"uninstall one of the two, or disable this one with "
                f"{DISABLE_ENV}={entry.distribution}",
            )
        if obj is not _MISSING:
            return obj
        return _import_entry(entry)

    @staticmethod
    def _check_taken(
        entry: PluginEntry, spec: _Group, result: _Accepted, owners: Mapping[str, PluginEntry]
    ) -> None:
        clashes = [n for n in dict.fromkeys((result.key, *result.provides)) if n in owners]
        if not clashes:
            return
        first = owners[clashes[0]]
        if first.builtin:
            whose, why = "mmkit's built-in", "; a plugin may not shadow a built-in"
            fix = f"rename them in {entry.distribution}: built-in names are reserved"
        else:
            whose, why = f"{first.distribution}'s", ""
            fix = (
                f"rename them in {entry.distribution}, or disable one side with "
                f"{DISABLE_ENV}={entry.distribution}"
            )
        raise _Reject(
            "duplicate",
            f"{entry.culprit}: {spec.what} name(s) {', '.join(clashes)} already provided by "
            f"{whose} {first.group}:{first.name}{why}",
            fix,
        )


def _import_entry(entry: PluginEntry) -> object:
    match = _VALUE_RE.fullmatch(entry.value.strip())
    if match is None:
        raise _Reject(
            "invalid",
            f"{entry.culprit}: entry point value {entry.value!r} is not 'module:attribute'",
            f"correct [project.entry-points.{entry.group!r}] in {entry.distribution}'s "
            "pyproject.toml",
        )
    module_name, attr = match["module"], match["attr"]
    try:
        obj: object = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a plugin must not end the kernel
        raise _Reject(
            "import-error",
            f"{entry.culprit}: importing {module_name} raised {_describe_exception(exc)}",
            f"install what {entry.distribution} needs or reinstall it, " + _disable_hint(entry),
        ) from exc
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a module __getattr__ too
            raise _Reject(
                "load-error",
                f"{entry.culprit}: getting {attr} from {module_name} raised "
                f"{_describe_exception(exc)}",
                f"correct the entry point {entry.value!r} or the module, " + _disable_hint(entry),
            ) from exc
    return obj

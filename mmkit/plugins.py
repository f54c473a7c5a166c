"""The plugin registry: architecture families and policies found through entry points.

A plugin is an object that a Python distribution names in one of mmkit's entry-point groups
(:data:`GROUPS`). mmkit registers its own arm64 family the same way a third party would, in
its ``pyproject.toml``::

    [project.entry-points."mmkit.arch"]
    arm64 = "mmkit.arch.arm64:PLUGIN"

The registry works in two phases, like flake8's:

1. :func:`discover` reads the installed entry points once per process (cached; no plugin
   module is imported) and sorts them by ``(group, name, distribution)``.
2. :func:`load` imports one group's plugins on first use and checks each against its
   contract (:class:`ArchPlugin`, :class:`PolicyPlugin`).

Every entry yields a :class:`PluginReport`. A plugin that cannot be imported, raises while
being loaded or checked, breaks the contract, declares another plugin-API major version or
repeats a name already taken is reported and skipped; the kit carries on with the others.
The statuses, and when each occurs:

``ok``
    imported and checked; it is in :func:`arch_plugins` / :func:`policy_plugins`. A plugin
    built for a newer *minor* API (``"1.3"`` here, where mmkit provides ``"1.0"``) is
    accepted with a note: minor versions only add optional features, which mmkit ignores.
``disabled``
    matched a glob in ``MMKIT_DISABLE_PLUGINS``; never imported.
``import-error``
    importing the entry point's module raised.
``load-error``
    the module imported, but the named attribute is missing, or the plugin raised while it
    was checked (reading an attribute, ``names()``, ``describe()``, ``create()``...).
``invalid``
    the object breaks the contract: a missing or mistyped attribute, a malformed
    ``api_version``, ``create()`` returning something that is not a descriptor, a required
    macro missing...
``api-mismatch``
    ``api_version`` has another major version than :data:`API_VERSION`.
``duplicate``
    its entry name, family (policy name) or one of its configuration names is already
    taken. Built-ins (distribution ``mmkit``) are taken first and their names are reserved,
    so a third party can never shadow them; among the others the first in sorted order that
    loads wins. In-process registrations (distribution ``<runtime>``) sort before installed
    distributions, so a notebook can try a fixed copy of an installed plugin.

``MMKIT_DISABLE_PLUGINS`` holds globs separated by commas or whitespace, matched
case-insensitively against an entry's name, its ``group:name`` and its distribution name.
It is read when a group is first loaded and again after :func:`rescan`.

>>> with isolated(entries=()):
...     report = register("mmkit.policy", "demo", _DemoPolicy())
...     (report.status, sorted(policy_plugins()))
('ok', ['demo'])
>>> with isolated(entries=()):
...     register("mmkit.policy", "old", _DemoPolicy(api_version="0.9")).status
'api-mismatch'
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import os
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn, Protocol, runtime_checkable

from mmkit.errors import InvalidArgument, MmkitError, PluginError, UnknownName

if TYPE_CHECKING:  # importing importlib.metadata costs ~10 ms: only on first discovery
    from importlib.metadata import EntryPoint

__all__ = [
    "API_VERSION",
    "ARCH_GROUP",
    "DISABLE_ENV",
    "GROUPS",
    "POLICY_GROUP",
    "REQUIRED_MACROS",
    "STATUSES",
    "ArchDescriptorLike",
    "ArchPlugin",
    "PluginEntry",
    "PluginReport",
    "PolicyPlugin",
    "RegionLike",
    "arch_configs",
    "arch_plugins",
    "create_arch",
    "discover",
    "format_reports",
    "isolated",
    "load",
    "natural_key",
    "policy_plugins",
    "register",
    "reports",
    "rescan",
    "unregister",
]

#: The plugin API this mmkit provides, ``"MAJOR.MINOR"``. A plugin must declare the same
#: major; a newer minor is accepted with a note (see the module docstring).
API_VERSION: Final = "1.0"

#: Entry-point group of architecture families (:class:`ArchPlugin`).
ARCH_GROUP: Final = "mmkit.arch"
#: Entry-point group of policies (:class:`PolicyPlugin`).
POLICY_GROUP: Final = "mmkit.policy"

#: Environment variable of globs that disable plugins before they are imported.
DISABLE_ENV: Final = "MMKIT_DISABLE_PLUGINS"

#: Macros every architecture descriptor's ``macros()`` must provide, as ``int`` values.
REQUIRED_MACROS: Final = (
    "PAGE_SHIFT",
    "PGDIR_SHIFT",
    "PTRS_PER_PGD",
    "PTRS_PER_PTE",
    "VMALLOC_START",
    "VMALLOC_END",
    "VMEMMAP_START",
)

#: Every :attr:`PluginReport.status`, from best to worst-but-harmless.
STATUSES: Final = (
    "ok",
    "disabled",
    "import-error",
    "load-error",
    "invalid",
    "api-mismatch",
    "duplicate",
)

_BUILTIN_DISTRIBUTION = "mmkit"
_RUNTIME_DISTRIBUTION = "<runtime>"
_UNKNOWN_DISTRIBUTION = "<unknown>"
_API_RE = re.compile(r"(\d+)\.(\d+)")
# The entry-point value grammar of the packaging spec: ``module[:attr.path] [extras]``.
_VALUE_RE = re.compile(r"(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+)\s*)?(?:\[[^\]]*\]\s*)?")
_NAME_RE = re.compile(r"[^\s=:\[\]]+")
_SEE_KIT = "see mmkit.testing.ArchConformance"


# --------------------------------------------------------------------------- contracts
@runtime_checkable
class RegionLike(Protocol):
    """One VA region of a descriptor: the half-open range ``[start, end)``."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


@runtime_checkable
class ArchDescriptorLike(Protocol):
    """What ``ArchPlugin.create()`` returns: one kernel configuration.

    ``macros()`` maps kernel macro names to ints and holds at least :data:`REQUIRED_MACROS`;
    ``regions`` lists the VA regions in address order. Descriptors should be values (frozen
    dataclasses): creating the same name with the same options twice gives equal objects.
    """

    @property
    def name(self) -> str: ...
    @property
    def regions(self) -> Sequence[RegionLike]: ...
    def macros(self) -> Mapping[str, int]: ...


@runtime_checkable
class ArchPlugin(Protocol):
    """What an ``mmkit.arch`` entry point names: one architecture family.

    ``names()`` lists the family's configuration names (``"arm64-4k-48"``) in
    :func:`natural_key` order; ``describe(name)`` is one line for listings;
    ``create(name, **options)`` raises :class:`~mmkit.errors.UnknownName` for a name it does
    not provide and :class:`~mmkit.errors.InvalidArgument` for a bad option.
    """

    @property
    def api_version(self) -> str: ...
    @property
    def family(self) -> str: ...
    def names(self) -> Sequence[str]: ...
    def describe(self, name: str) -> str: ...
    def create(self, name: str, **options: Any) -> ArchDescriptorLike: ...


@runtime_checkable
class PolicyPlugin(Protocol):
    """What an ``mmkit.policy`` entry point names: one kernel policy (e.g. a patch version).

    ``kernel_versions`` is a non-empty tuple of the versions or patch revisions it models.
    """

    @property
    def api_version(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def kernel_versions(self) -> tuple[str, ...]: ...


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class PluginEntry:
    """One discovered entry point, not imported: where a plugin would come from.

    ``value`` is the entry point's ``module:attr`` text.
    """

    group: str
    name: str
    value: str
    distribution: str = _UNKNOWN_DISTRIBUTION
    version: str = ""

    @property
    def builtin(self) -> bool:
        """True for mmkit's own entries, whose names no other plugin may take."""
        return _normalize(self.distribution) == _BUILTIN_DISTRIBUTION

    @property
    def culprit(self) -> str:
        """``distribution[name]``, the prefix of every message about this entry."""
        return f"{self.distribution}[{self.name}]"


@dataclass(frozen=True)
class PluginReport:
    """What became of one entry: its origin, its status (one of :data:`STATUSES`), why, and
    the fix. ``provides`` lists what an ``ok`` plugin contributes (configuration names of an
    architecture family, the name of a policy)."""

    group: str
    name: str
    distribution: str
    version: str
    value: str
    status: str
    message: str = ""
    fix: str = ""
    provides: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the plugin is in use."""
        return self.status == "ok"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict (``provides`` as a list)."""
        d = asdict(self)
        d["provides"] = list(self.provides)
        return d

    def __str__(self) -> str:
        text = f"{self.group}:{self.name} ({self.distribution} {self.version}): {self.status}"
        if self.message:
            text += f": {self.message}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text


# --------------------------------------------------------------------------- helpers
def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that compares digit runs as numbers: the order ``names()`` must use.

    >>> sorted(["arm64-64k-42", "arm64-16k-36", "arm64-4k-48", "arm64-4k-39"], key=natural_key)
    ['arm64-4k-39', 'arm64-4k-48', 'arm64-16k-36', 'arm64-64k-42']
    """
    # re.split with a group alternates text and digits, text first, so position i always
    # holds the same type in every key and the tuples compare without a TypeError.
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", name)))


def _normalize(distribution: str) -> str:
    """PEP 503 normalisation, so ``MMKit_Example.Arch`` and ``mmkit-example-arch`` match."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _sort_key(entry: PluginEntry) -> tuple[str, str, str]:
    return (entry.group, entry.name, _normalize(entry.distribution))


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe_exception(exc: BaseException) -> str:
    """``TypeError: boom (at plugin.py:12)``: what was raised and where, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {_one_line(exc)}{where}"


def _object_ref(obj: object) -> str:
    """The best ``module:attr`` text for an object registered at runtime."""
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        return f"{getattr(obj, '__module__', '?')}:{qualname}"
    kind = type(obj)
    return f"<{kind.__module__}.{kind.__qualname__} object>"


def _disable_patterns(value: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[,\s]+", value.strip()) if p)


def _disabled_by(entry: PluginEntry, patterns: Sequence[str]) -> str | None:
    """The first pattern in ``patterns`` that names ``entry``, if any."""
    names = (entry.name.lower(), f"{entry.group}:{entry.name}".lower())
    distribution = _normalize(entry.distribution)
    for pattern in patterns:
        # Distribution names compare normalised on both sides (Foo_Bar == foo-bar); entry
        # names only case-insensitively, as "." and "_" are significant in them.
        if any(fnmatch.fnmatchcase(n, pattern.lower()) for n in names) or (
            fnmatch.fnmatchcase(distribution, _normalize(pattern))
        ):
            return pattern
    return None


# --------------------------------------------------------------------------- validation
class _Reject(Exception):
    """Raised inside the loader to give an entry a non-ok status."""

    def __init__(self, status: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.message, self.fix = status, message, fix


class _Accepted(NamedTuple):
    key: str  # the family (arch) or policy name: the key of arch_plugins()/policy_plugins()
    provides: tuple[str, ...]  # names no other plugin of the group may provide too
    note: str  # e.g. the newer-minor-API note


def _disable_hint(entry: PluginEntry) -> str:
    return f"or disable it with {DISABLE_ENV}={entry.name}"


def _invalid(entry: PluginEntry, what: str, subject: str | None = None) -> NoReturn:
    culprit = f"{entry.distribution}[{subject}]" if subject else entry.culprit
    raise _Reject(
        "invalid",
        f"{culprit}: {what}",
        f"fix the plugin to honour the mmkit plugin API {API_VERSION} contract ({_SEE_KIT}), "
        + _disable_hint(entry),
    )


def _call(entry: PluginEntry, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a plugin's code; anything it raises becomes the entry's ``load-error``."""
    try:
        return fn(*args)
    except Exception as exc:  # a plugin bug must not take the kit down
        raise _Reject(
            "load-error",
            f"{entry.culprit}: {what} raised {_describe_exception(exc)}",
            f"report the bug to the plugin's authors, {_disable_hint(entry)}",
        ) from exc


_MISSING: Final = object()


def _get(
    entry: PluginEntry,
    obj: object,
    attr: str,
    owner: str = "the plugin",
    subject: str | None = None,
) -> Any:
    """``getattr`` where a missing attribute is ``invalid`` and a raising one ``load-error``."""
    what = f"reading {attr}" if subject is None else f"reading {attr} of {owner}"
    value = _call(entry, what, getattr, obj, attr, _MISSING)
    if value is _MISSING:
        _invalid(entry, f"{owner} has no {attr!r} attribute ({type(obj).__name__} object)", subject)
    return value


def _check_api(entry: PluginEntry, obj: object) -> str:
    """Check ``api_version``; return a note for a newer minor, raise for anything worse."""
    declared = _get(entry, obj, "api_version")
    match = _API_RE.fullmatch(declared) if isinstance(declared, str) else None
    if match is None:
        _invalid(
            entry,
            f"api_version is {declared!r}; expected a 'MAJOR.MINOR' string like {API_VERSION!r}",
        )
    major, minor = int(match[1]), int(match[2])
    ours_major, ours_minor = (int(p) for p in API_VERSION.split("."))
    if major != ours_major:
        fix = (
            f"upgrade mmkit or pin the plugin to a release built for API {ours_major}.x"
            if major > ours_major
            else f"upgrade the plugin to a release built for API {ours_major}.x, or pin mmkit "
            f"to a release that provides API {major}.x"
        )
        raise _Reject(
            "api-mismatch",
            f"{entry.culprit}: built for mmkit plugin API {major}.x (declares {declared!r}), "
            f"this mmkit provides {API_VERSION}",
            f"{fix}; {_disable_hint(entry)}",
        )
    if minor > ours_minor:
        return (
            f"built for plugin API {declared}, newer than this mmkit's {API_VERSION}: features "
            f"added after {API_VERSION} are ignored (upgrade mmkit to use them)"
        )
    return ""


def _check_identifier(entry: PluginEntry, attr: str, value: object) -> str:
    if not isinstance(value, str) or not value or not _NAME_RE.fullmatch(value):
        _invalid(entry, f"{attr} is {value!r}; expected a non-empty string without spaces")
    return value


def _check_line(entry: PluginEntry, what: str, value: object, subject: str | None = None) -> str:
    if not isinstance(value, str) or "\n" in value.strip():
        _invalid(
            entry,
            f"{what} returned {_one_line(repr(value), 80)}; expected one line of text",
            subject,
        )
    return value


def _check_descriptor(entry: PluginEntry, name: str, desc: object) -> None:
    """The structural contract of :class:`ArchDescriptorLike` (semantics: the test kit)."""
    owner = f"create({name!r}) result"
    got_name = _get(entry, desc, "name", owner, name)
    if got_name != name:
        _invalid(
            entry,
            f"create({name!r}) returned a descriptor named {got_name!r}; expected {name!r}",
            name,
        )
    macros_fn = _get(entry, desc, "macros", owner, name)
    if not callable(macros_fn):
        _invalid(entry, f"{owner}.macros is not callable ({type(desc).__name__})", name)
    macros = _call(entry, f"{name}: macros()", macros_fn)
    if not isinstance(macros, Mapping):
        _invalid(
            entry,
            f"macros() returned {type(macros).__name__}; expected a mapping of macro names to ints",
            name,
        )
    missing = [m for m in REQUIRED_MACROS if m not in macros]
    if missing:
        _invalid(entry, f"macros() is missing {', '.join(missing)}; {_SEE_KIT}", name)
    wrong = [
        f"{m}={macros[m]!r}"
        for m in REQUIRED_MACROS
        if not isinstance(macros[m], int) or isinstance(macros[m], bool)
    ]
    if wrong:
        _invalid(entry, f"macros() has non-int {', '.join(wrong)}; expected ints", name)
    regions = _get(entry, desc, "regions", owner, name)
    if isinstance(regions, (str, bytes)) or not isinstance(regions, Iterable):
        _invalid(
            entry,
            f"regions is {type(regions).__name__}; expected a sequence of "
            "records with name, kind, start and end",
            name,
        )
    for i, region in enumerate(_call(entry, f"{name}: iterating regions", list, regions)):
        for attr, kind in (("name", str), ("kind", str), ("start", int), ("end", int)):
            value = _get(entry, region, attr, f"regions[{i}]", name)
            if not isinstance(value, kind) or isinstance(value, bool):
                _invalid(entry, f"regions[{i}].{attr} is {value!r}; expected {kind.__name__}", name)


def _validate_arch(entry: PluginEntry, obj: object) -> _Accepted:
    note = _check_api(entry, obj)
    family = _check_identifier(entry, "family", _get(entry, obj, "family"))
    methods = {}
    for method in ("names", "describe", "create"):
        methods[method] = _get(entry, obj, method)
        if not callable(methods[method]):
            _invalid(entry, f"{method} is {type(methods[method]).__name__}; expected a method")
    names = _call(entry, "names()", methods["names"])
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        _invalid(entry, f"names() returned {type(names).__name__}; expected a sequence of str")
    names = tuple(names)
    if not names:
        _invalid(entry, "names() is empty; expected at least one configuration name")
    for name in names:
        _check_identifier(entry, "a configuration name in names()", name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        _invalid(entry, f"names() repeats {', '.join(repeated)}; expected unique names")
    for name in names:
        line = _call(entry, f"describe({name!r})", methods["describe"], name)
        _check_line(entry, f"describe({name!r})", line, name)
        desc = _call(entry, f"create({name!r})", methods["create"], name)
        _check_descriptor(entry, name, desc)
    return _Accepted(family, names, note)


def _validate_policy(entry: PluginEntry, obj: object) -> _Accepted:
    note = _check_api(entry, obj)
    name = _check_identifier(entry, "name", _get(entry, obj, "name"))
    _check_line(entry, "description", _get(entry, obj, "description"))
    versions = _get(entry, obj, "kernel_versions")
    if (
        not isinstance(versions, tuple)
        or not versions
        or not all(isinstance(v, str) and v.strip() for v in versions)
    ):
        _invalid(
            entry,
            f"kernel_versions is {versions!r}; expected a non-empty tuple of "
            "version strings, e.g. ('v5.7',)",
        )
    return _Accepted(name, (name,), note)


class _Group(NamedTuple):
    validate: Callable[[PluginEntry, Any], _Accepted]
    what: str  # what one provided name is, for duplicate messages


# Adding a group: add its contract here (and a Protocol above); everything else is generic.
_GROUPS: Final[dict[str, _Group]] = {
    ARCH_GROUP: _Group(_validate_arch, "family or configuration"),
    POLICY_GROUP: _Group(_validate_policy, "policy"),
}

#: The entry-point groups mmkit reads, sorted.
GROUPS: Final = tuple(sorted(_GROUPS))


def _check_group(group: str, caller: str) -> None:
    if group not in _GROUPS:
        raise UnknownName(f"{caller}: unknown plugin group {group!r}", choices=GROUPS)


# --------------------------------------------------------------------------- registry
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
            except Exception as exc:  # e.g. a mapping whose __getitem__ raises: still a bug
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
    except (Exception, SystemExit) as exc:  # SystemExit too: a plugin must not end the kernel
        raise _Reject(
            "import-error",
            f"{entry.culprit}: importing {module_name} raised {_describe_exception(exc)}",
            f"install what {entry.distribution} needs or reinstall it, " + _disable_hint(entry),
        ) from exc
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except Exception as exc:
            raise _Reject(
                "load-error",
                f"{entry.culprit}: getting {attr} from {module_name} raised "
                f"{_describe_exception(exc)}",
                f"correct the entry point {entry.value!r} or the module, " + _disable_hint(entry),
            ) from exc
    return obj


_registry = _Registry(_installed_entries)


def _current() -> _Registry:
    return _registry


# --------------------------------------------------------------------------- public API
def discover() -> tuple[PluginEntry, ...]:
    """Installed entry points of every group in :data:`GROUPS`, sorted, none imported.

    Read from the package metadata once per process; :func:`rescan` reads it again. Runtime
    registrations are not entry points: see :func:`reports` for them.
    """
    return _current().discover()


def load(group: str) -> dict[str, Any]:
    """Import and check ``group``'s plugins (once); the usable ones, by family or name.

    Raises :class:`~mmkit.errors.UnknownName` for a group not in :data:`GROUPS`.
    """
    _check_group(group, "load()")
    return dict(_current().load(group).objects)


def arch_plugins() -> dict[str, ArchPlugin]:
    """The usable architecture families, ``family -> plugin``, sorted by family."""
    return load(ARCH_GROUP)


def policy_plugins() -> dict[str, PolicyPlugin]:
    """The usable policies, ``name -> plugin``, sorted by name."""
    return load(POLICY_GROUP)


def arch_configs() -> dict[str, ArchPlugin]:
    """Every configuration name mapped to the family that provides it.

    Families in sorted order, each family's names in its own (natural) order. No name
    appears twice: the registry rejected any plugin that repeated a taken one.
    """
    loaded = _current().load(ARCH_GROUP)
    return {
        name: plugin
        for family, plugin in loaded.objects.items()
        for name in loaded.provided[family]
    }


def create_arch(name: str, **options: Any) -> ArchDescriptorLike:
    """Create configuration ``name`` with whichever family provides it.

    Errors the plugin raises on purpose (:class:`~mmkit.errors.MmkitError`) pass through;
    anything else is a plugin bug and becomes a :class:`~mmkit.errors.PluginError` naming it.
    """
    configs = arch_configs()
    if name not in configs:
        broken = [r for r in reports(ARCH_GROUP) if r.status not in ("ok", "disabled")]
        hint = (
            f"; {len(broken)} arch plugin(s) failed to load, run `mmkit plugins`" if broken else ""
        )
        raise UnknownName(f"unknown configuration {name!r}{hint}", choices=list(configs))
    plugin = configs[name]
    culprit = f"{plugin.family}[{name}]"
    try:
        desc = plugin.create(name, **options)
    except MmkitError:
        raise
    except Exception as exc:
        raise PluginError(
            f"{culprit}: create() raised {_describe_exception(exc)}; this is a bug in the "
            f"plugin: report it to its authors, or disable it with {DISABLE_ENV}"
        ) from exc
    if not isinstance(desc, ArchDescriptorLike):
        raise PluginError(
            f"{culprit}: create() returned {type(desc).__name__}, not an architecture "
            f"descriptor; {_SEE_KIT}"
        )
    return desc


def reports(group: str | None = None) -> list[PluginReport]:
    """One report per entry (installed or registered) of ``group`` or of every group,
    sorted by ``(group, name, distribution)``. Loads the groups it reports on."""
    groups = GROUPS if group is None else (group,)
    for g in groups:
        _check_group(g, "reports()")
    return [r for g in groups for r in _current().load(g).reports]


def rescan() -> None:
    """Forget discovered and loaded plugins; the next use reads the metadata again.

    Call it in a notebook after ``%pip install`` of a plugin. Runtime registrations stay.
    A plugin module that was already imported is not re-imported: after upgrading one,
    restart the kernel.
    """
    _current().rescan()


def register(group: str, name: str, obj: object) -> PluginReport:
    """Register ``obj`` as plugin ``name`` of ``group`` in this process; return its report.

    The report's distribution is ``<runtime>``. Registering the same ``(group, name)`` again
    replaces the earlier object. The plugin is checked like an installed one, and a broken
    one is reported (status not ``ok``) rather than raised, as at discovery.
    """
    _check_group(group, "register()")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"register(): plugin name {name!r} is not valid; expected a non-empty string "
            "without spaces, '=', ':' or brackets, e.g. 'toy'"
        )
    registry = _current()
    with registry._lock:
        if group in registry._loading:
            raise PluginError(
                f"register({group!r}, {name!r}) was called while {group} plugins are being "
                "loaded (from a plugin's import or checks); register from a notebook or test "
                "instead, or declare an entry point"
            )
        registry.runtime[(group, name)] = obj
        registry.forget(group)
        loaded = registry.load(group)
    return next(
        r for r in loaded.reports if r.name == name and r.distribution == _RUNTIME_DISTRIBUTION
    )


def unregister(group: str, name: str) -> None:
    """Remove a :func:`register`-ed plugin. Raises UnknownName if there is none."""
    _check_group(group, "unregister()")
    registry = _current()
    with registry._lock:
        if (group, name) not in registry.runtime:
            registered = sorted(n for g, n in registry.runtime if g == group)
            raise UnknownName(
                f"unregister(): no plugin {name!r} was registered in {group!r}",
                choices=registered,
            )
        del registry.runtime[(group, name)]
        registry.forget(group)


@contextlib.contextmanager
def isolated(entries: Iterable[PluginEntry | EntryPoint] | None = None) -> Iterator[None]:
    """Swap in a fresh registry for the ``with`` block, then restore the previous one.

    With ``entries=None`` the fresh registry reads the installed metadata itself (its own
    cache); with an iterable it sees exactly those entries (``()``: none). Registrations
    made outside are not visible inside, nor those made inside outside.
    """
    global _registry
    if entries is None:
        source: Callable[[], Iterable[PluginEntry]] = _installed_entries
    else:
        fixed = tuple(_entry_from_ep(e) for e in entries)
        source = lambda: fixed  # noqa: E731
    previous, _registry = _registry, _Registry(source)
    try:
        yield
    finally:
        _registry = previous


def format_reports(reports: Sequence[PluginReport]) -> str:
    """An aligned text table of ``reports`` (``mmkit plugins``), fixes under their rows.

    >>> print(format_reports([PluginReport("mmkit.arch", "toy", "toy-dist", "1.0",
    ...     "toy:PLUGIN", "ok", provides=("toy-4k-30", "toy-4k-32"))]))
    GROUP       NAME  DISTRIBUTION  VERSION  STATUS  DETAILS
    mmkit.arch  toy   toy-dist      1.0      ok      toy-4k-30, toy-4k-32
    1 plugin: 1 ok
    """
    if not reports:
        return f"no plugins found in {', '.join(GROUPS)}"
    header = ("GROUP", "NAME", "DISTRIBUTION", "VERSION", "STATUS")
    rows = [(r.group, r.name, r.distribution, r.version or "-", r.status) for r in reports]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    indent = sum(widths) + 2 * len(widths)

    def line(cells: Sequence[str], details: str) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + details

    out = [line(header, "DETAILS").rstrip()]
    for report, row in zip(reports, rows, strict=True):
        # The table already names distribution[name]: drop that prefix from the message.
        message = report.message.removeprefix(f"{report.distribution}[{report.name}]: ")
        details = ", ".join(report.provides) if report.ok else message
        if report.ok and message:
            details = f"{details} ({message})" if details else message
        out.append(line(row, details).rstrip())
        if report.fix:
            out.append(" " * indent + f"fix: {report.fix}")
    counts = {s: sum(r.status == s for r in reports) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    out.append(f"{len(reports)} plugin{'s' if len(reports) != 1 else ''}: {summary}")
    return "\n".join(out)


@dataclass(frozen=True)
class _DemoPolicy:
    """A minimal policy plugin, for the doctests above."""

    api_version: str = API_VERSION
    name: str = "demo"
    description: str = "does nothing, as an example"
    kernel_versions: tuple[str, ...] = ("v5.7",)

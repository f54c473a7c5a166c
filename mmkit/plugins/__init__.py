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
    ``SystemExit`` counts as raising: every call into plugin code, at load and later
    (:func:`create_arch`, a policy's hooks), is guarded against everything but
    ``KeyboardInterrupt``.
``invalid``
    the object breaks the contract: a missing or mistyped attribute, a malformed
    ``api_version``, ``create()`` returning something that is not a descriptor, a required
    macro missing...
``nonconformant``
    the object honours the contract's shape, but a configuration fails one of the semantic
    checks the registry runs at load (regions out of address order or overlapping, an empty
    vmalloc range, ``PTRS_PER_PTE`` not a page of 8-byte entries, ``names()`` out of
    :func:`natural_key` order): a cheap subset of :mod:`mmkit.testing`'s conformance kit.
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

This package holds the public functions and the registry in use (which :func:`isolated`
swaps); the pieces live in private modules: the contracts (``_contracts``), the records
(``_records``), the disable globs (``_disable``), contract checks and the group table
(``_validate``), discovery and the cached registry (``_registry``), the text table
(``_format``) and small helpers such as :func:`natural_key` (``_helpers``).

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmkit.errors import InvalidArgument, MmkitError, PluginError, UnknownName
from mmkit.plugins._contracts import (
    API_VERSION,
    ARCH_GROUP,
    MACHINE_ATTRIBUTES,
    POLICY_GROUP,
    REQUIRED_MACROS,
    ArchDescriptorLike,
    ArchPlugin,
    PolicyPlugin,
    RegionLike,
    machine_missing,
)
from mmkit.plugins._disable import DISABLE_ENV
from mmkit.plugins._format import format_reports
from mmkit.plugins._helpers import _describe_exception, natural_key
from mmkit.plugins._records import _RUNTIME_DISTRIBUTION, STATUSES, PluginEntry, PluginReport
from mmkit.plugins._registry import _entry_from_ep, _installed_entries, _Registry
from mmkit.plugins._validate import _MISSING as _MISSING  # re-exported for mmkit.testing
from mmkit.plugins._validate import _NAME_RE, _SEE_KIT, GROUPS, _check_group

if TYPE_CHECKING:  # importing importlib.metadata costs ~10 ms: only on first discovery
    from importlib.metadata import EntryPoint

__all__ = [
    "API_VERSION",
    "ARCH_GROUP",
    "DISABLE_ENV",
    "GROUPS",
    "MACHINE_ATTRIBUTES",
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
    "machine_missing",
    "natural_key",
    "policy_plugins",
    "register",
    "reports",
    "rescan",
    "unregister",
]


# The registry in use: module state kept here, next to isolated(), which swaps it.
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
    except (MmkitError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit too: a plugin must not end the process
        raise PluginError(
            f"{culprit}: create() raised {_describe_exception(exc)}; this is a bug in the "
            f"plugin: report it to its authors, or disable it with {DISABLE_ENV}"
        ) from exc
    try:  # isinstance() on a runtime Protocol reads the attributes: plugin code
        conforms = isinstance(desc, ArchDescriptorLike)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise PluginError(
            f"{culprit}: reading the descriptor create() returned raised "
            f"{_describe_exception(exc)}; {_SEE_KIT}"
        ) from exc
    if not conforms:
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


@dataclass(frozen=True)
class _DemoPolicy:
    """A minimal policy plugin, for the doctests above."""

    api_version: str = API_VERSION
    name: str = "demo"
    description: str = "does nothing, as an example"
    kernel_versions: tuple[str, ...] = ("v5.7",)
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: str = "floor-ceiling"
    linear_floor_ceiling: bool = True
    block_tlbi: str = "single"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: bool | None = None
    boot_memory_notifier: bool = True

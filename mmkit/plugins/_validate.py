"""Checking a loaded plugin against its contract, and the group table that names each
group's check.

A check raises :class:`_Reject` with the entry's status, message and fix; the registry turns
it into a :class:`~mmkit.plugins.PluginReport`. Anything the plugin's own code raises while
being checked becomes ``load-error`` (:func:`_call`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple, NoReturn

from mmkit.errors import UnknownName
from mmkit.plugins._contracts import (
    API_VERSION,
    ARCH_GROUP,
    POLICY_GROUP,
    REQUIRED_MACROS,
    machine_missing,
)
from mmkit.plugins._disable import _disable_hint
from mmkit.plugins._helpers import _describe_exception, _one_line, natural_key
from mmkit.plugins._records import PluginEntry

_API_RE = re.compile(r"(\d+)\.(\d+)")
_NAME_RE = re.compile(r"[^\s=:\[\]]+")
_SEE_KIT = "see mmkit.testing.ArchConformance"


class _Reject(Exception):
    """Raised inside the loader to give an entry a non-ok status."""

    def __init__(self, status: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.message, self.fix = status, message, fix


class _Accepted(NamedTuple):
    key: str  # the family (arch) or policy name: the key of arch_plugins()/policy_plugins()
    provides: tuple[str, ...]  # names no other plugin of the group may provide too
    note: str  # e.g. the newer-minor-API note


def _invalid(entry: PluginEntry, what: str, subject: str | None = None) -> NoReturn:
    culprit = f"{entry.distribution}[{subject}]" if subject else entry.culprit
    raise _Reject(
        "invalid",
        f"{culprit}: {what}",
        f"fix the plugin to honour the mmkit plugin API {API_VERSION} contract ({_SEE_KIT}), "
        + _disable_hint(entry),
    )


def _call(entry: PluginEntry, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a plugin's code; anything it raises becomes the entry's ``load-error``:
    ``SystemExit`` too (a plugin calling ``sys.exit()`` in ``names()`` must not end the
    process), everything but ``KeyboardInterrupt``, which is the user's."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a plugin bug, even sys.exit(), must not take the kit down
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
        _check_semantics(entry, name, desc)
    missing = _call(entry, f"{names[0]}: reading its attributes", machine_missing, desc)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        layout_only = (
            f"layouts only: a Machine needs {missing[0]}{more} on its descriptors "
            "(mmkit.plugins.MACHINE_ATTRIBUTES)"
        )
        note = f"{note}; {layout_only}" if note else layout_only
    ordered = sorted(names, key=natural_key)
    if list(names) != ordered:
        _nonconformant(entry, f"names() is not in natural order: {list(names)}, expected {ordered}")
    return _Accepted(family, names, note)


def _nonconformant(entry: PluginEntry, what: str, subject: str | None = None) -> NoReturn:
    culprit = f"{entry.distribution}[{subject}]" if subject else entry.culprit
    raise _Reject(
        "nonconformant",
        f"{culprit}: {what}",
        "run mmkit.testing.ArchConformance against the plugin and fix what it reports, "
        + _disable_hint(entry),
    )


def _check_semantics(entry: PluginEntry, name: str, desc: Any) -> None:
    """The cheap part of :class:`mmkit.testing.ArchConformance`, run at load."""
    macros = _call(entry, f"{name}: macros()", desc.macros)
    if macros["VMALLOC_START"] >= macros["VMALLOC_END"]:
        _nonconformant(
            entry,
            f"VMALLOC_START {macros['VMALLOC_START']:#x} is not below VMALLOC_END "
            f"{macros['VMALLOC_END']:#x}",
            name,
        )
    if macros["PTRS_PER_PTE"] != 1 << max(macros["PAGE_SHIFT"] - 3, 0):
        _nonconformant(
            entry,
            f"PTRS_PER_PTE is {macros['PTRS_PER_PTE']}; expected 2**(PAGE_SHIFT - 3) = "
            f"{1 << max(macros['PAGE_SHIFT'] - 3, 0)} (a page of 8-byte descriptors)",
            name,
        )
    regions = _call(entry, f"{name}: iterating regions", list, desc.regions)
    for i, r in enumerate(regions):
        if not 0 <= r.start < r.end <= 1 << 64:
            _nonconformant(
                entry, f"regions[{i}] {r.name!r} is [{r.start:#x}, {r.end:#x}): empty", name
            )
        if i and regions[i - 1].end > r.start:
            a = regions[i - 1]
            _nonconformant(
                entry,
                f"region {a.name!r} [{a.start:#x}, {a.end:#x}) overlaps or follows {r.name!r} "
                f"[{r.start:#x}, {r.end:#x}); expected address order, no overlap",
                name,
            )


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
    # exactly what the engine reads (mmkit.policies.base.PolicyLike), and the optional hooks
    from mmkit.policies.base import check_decisions, check_hooks

    problems = _call(entry, "reading its decisions", check_decisions, obj)
    if problems:
        _invalid(
            entry,
            "; ".join(problems) + " (every decision of mmkit.policies.base.DECISIONS; "
            "a HotplugPolicy has them all)",
        )
    problems = _call(entry, "reading its optional hooks", check_hooks, obj)
    if problems:
        _invalid(entry, "; ".join(problems) + " (mmkit.policies.base.OPTIONAL_HOOKS)")
    return _Accepted(name, (name,), note)


class _Group(NamedTuple):
    validate: Callable[[PluginEntry, Any], _Accepted]
    what: str  # what one provided name is, for duplicate messages


# Adding a group: add its contract here (and a Protocol in _contracts.py); everything else
# is generic.
_GROUPS: Final[dict[str, _Group]] = {
    ARCH_GROUP: _Group(_validate_arch, "family or configuration"),
    POLICY_GROUP: _Group(_validate_policy, "policy"),
}

#: The entry-point groups mmkit reads, sorted.
GROUPS: Final = tuple(sorted(_GROUPS))


def _check_group(group: str, caller: str) -> None:
    if group not in _GROUPS:
        raise UnknownName(f"{caller}: unknown plugin group {group!r}", choices=GROUPS)

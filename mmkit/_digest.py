"""What :meth:`Machine.digest <mmkit.machine.Machine.digest>` reads: everything an operation
can change, as one comparable value (see the method for what is in it and why it is a state,
not a trace)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from mmkit.events import KernelEvent

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "DIGEST_ATTRIBUTES",
    "PARTS",
    "STATE_PARTS",
    "WRITES",
    "digest_part",
    "machine_digest",
]

#: attributes the digest reads by value (besides the page tables, frames, memblock,
#: sections, blocks, sysfs, ``hotplugged``, ``vmalloc_ranges``, ``resources``, log,
#: history, stats, TLBs and locks it reads in its own way).
#: Left out: the configuration (``desc``, ``policy``, ``macros``: no operation changes
#: it), how steps are cut and kept (``fine``, ``record``), and a scheduler's bookkeeping
#: (``current_thread``, ``lock_table``: who ran last is the schedule's, not the state).
#: ``tests/test_bad_input_digest.py`` checks that every attribute is one or the other.
DIGEST_ATTRIBUTES: tuple[str, ...] = (
    "kernel",
    "online_type",
    "rodata_full",
    "debug_pagealloc",
    "kpti_enabled",
    "ng",
    "vmalloc_backing",
    "_boot_ranges",
    "boot_memory_at_boot",
    "boot_table_count",
    "_memblock_top",
    "_vmalloc_next",
    "_static_tables",
    "memstart",
    "physvirt_offset",
    "vmemmap_base",
    "kimage_va",
    "kimage_pa",
    "kimage_end",
    "stext_offset",
    "nodes_online",
    "oops",
    "added_sections_leaked",
)


#: types whose values compare and hash as themselves (an attribute keeps one type)
_PLAIN = frozenset({int, bool, str, type(None)})


def _canonical(value: object) -> object:
    """``value`` for the digest: independent of dict and set order, and of the
    history index a kernel event carries."""
    if type(value) in _PLAIN:  # what most attributes hold: the value is its own digest
        return value
    if isinstance(value, KernelEvent):
        return repr(dataclasses.replace(value, step=None))
    if isinstance(value, dict):
        return tuple(sorted((repr(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return tuple(sorted(map(repr, value)))
    if isinstance(value, list | tuple):
        return tuple(map(_canonical, value))
    return repr(value)


#: the parts of the digest, in order (:func:`machine_digest`)
PARTS: tuple[str, ...] = (
    "tables",
    "frames",
    "hotplugged",
    "vmalloc_ranges",
    "memblock",
    "sections",
    "blocks",
    "sysfs",
    "resources",
    "log",
    "history",
    "stats",
    "tlbs",
    "locks",
    "lock_holders",
    "attributes",
)


def _parts(*names: str) -> frozenset[int]:
    return frozenset(PARTS.index(n) for n in names)


#: The parts a step of each kind may change when it is performed (its generator resumed
#: to its next step), besides the log and the history, provided it records no kernel
#: event (a BUG sets ``oops``, say); an action not named here may change anything.
#: ``tests/test_step_convention.py`` checks every step of the hotplug flows against it,
#: ``tests/test_explore_reduction.py`` every step of the lesson races, and the explorer's
#: state keys rely on it (:mod:`mmkit.sched._reduction`).
WRITES: dict[str, frozenset[int]] = {
    "read": frozenset(),
    "write": _parts("tables"),
    "alloc": _parts("tables", "frames", "attributes"),
    "free": _parts("tables", "frames"),
    "tlbi": _parts("stats", "tlbs"),
    "access": _parts("tlbs"),
    "lock": _parts("locks", "lock_holders"),
    "unlock": _parts("locks", "lock_holders"),
    "memblock": _parts("memblock"),
    "device": _parts("sections", "blocks", "sysfs"),
    "sysfs": _parts("blocks", "sysfs"),
    "call": _parts("hotplugged", "vmalloc_ranges", "sections", "resources", "attributes"),
}

#: every part but the log and the history
STATE_PARTS: frozenset[int] = frozenset(range(len(PARTS))) - _parts("log", "history")


def digest_part(m: Machine, part: int) -> object:
    """Part number ``part`` of the digest of ``m`` (see :data:`PARTS`)."""
    return _PART[part](m)


def _attributes(m: Machine) -> object:
    return tuple((key, _canonical(getattr(m, key, None))) for key in DIGEST_ATTRIBUTES)


_PART: tuple[Callable[[Machine], object], ...] = (
    lambda m: m.pgtables.digest(),
    lambda m: m.physmem.digest(),
    lambda m: tuple(m.hotplugged),
    lambda m: tuple(m.vmalloc_ranges),
    lambda m: m.memblock.snapshot(),
    lambda m: tuple(sorted((n, repr(sec)) for n, sec in m.sections.items())),
    lambda m: tuple(sorted((b, repr(blk)) for b, blk in m.blocks.items())),
    lambda m: m.sysfs.digest(),
    lambda m: tuple(m.resources),
    lambda m: tuple(sorted(_canonical(e) for e in m.events)),  # type: ignore[type-var]
    lambda m: len(m.history),
    lambda m: tuple(sorted(m.stats.items())),
    lambda m: tuple((tuple(sorted(t.leaf.items())), tuple(sorted(t.walk.items()))) for t in m.tlbs),
    lambda m: tuple(sorted(m.locks.items())),
    lambda m: tuple(sorted((k, tuple(sorted(v))) for k, v in m._lock_holders.items())),
    _attributes,
)
_LOG_PARTS = _parts("log", "history")


def machine_digest(m: Machine, *, log: bool = True) -> tuple[object, ...]:
    """The digest of ``m`` (:meth:`Machine.digest <mmkit.machine.Machine.digest>`): its
    :data:`PARTS`, the log and history as None when ``log`` is false."""
    return tuple(None if not log and i in _LOG_PARTS else part(m) for i, part in enumerate(_PART))

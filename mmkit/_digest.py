"""What :meth:`Machine.digest <mmkit.machine.Machine.digest>` reads: everything an operation
can change, as one comparable value (see the method for what is in it and why it is a state,
not a trace)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mmkit.events import KernelEvent

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["DIGEST_ATTRIBUTES", "machine_digest"]

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


def machine_digest(m: Machine, *, log: bool = True) -> tuple[object, ...]:
    """The digest of ``m`` (:meth:`Machine.digest <mmkit.machine.Machine.digest>`)."""
    rest = tuple((key, _canonical(getattr(m, key, None))) for key in DIGEST_ATTRIBUTES)
    return (
        m.pgtables.digest(),
        m.physmem.digest(),
        tuple(m.hotplugged),
        tuple(m.vmalloc_ranges),
        m.memblock.snapshot(),
        tuple(sorted((n, repr(sec)) for n, sec in m.sections.items())),
        tuple(sorted((b, repr(blk)) for b, blk in m.blocks.items())),
        m.sysfs.digest(),
        tuple(m.resources),
        tuple(sorted(_canonical(e) for e in m.events)) if log else None,  # type: ignore[type-var]
        len(m.history) if log else None,
        tuple(sorted(m.stats.items())),
        tuple((tuple(sorted(t.leaf.items())), tuple(sorted(t.walk.items()))) for t in m.tlbs),
        tuple(sorted(m.locks.items())),
        tuple(sorted((k, tuple(sorted(v))) for k, v in m._lock_holders.items())),
        rest,
    )

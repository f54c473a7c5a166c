"""Walking the kernel page tables: one record per level, and typed translation faults.

``translate(machine, va)`` walks ``swapper_pg_dir`` the way the MMU (and ``follow_pte`` in a
debugger such as drgn or crash's ``vtop``) does: at each level it reads the entry that indexes
``va``, records it, and either descends into the next table, stops at a block or page (the
translation), or stops at an invalid entry (a *translation fault at level N*). Walking a
table page that is no longer a live table is reported as a use-after-free.

>>> from mmkit.machine import Machine
>>> m = Machine("arm64-64k-48")
>>> w = translate(m, m.lm_va(0x8000_0000))
>>> [s.level for s in w.steps], hex(w.pa), w.leaf_level
(['pgd', 'pmd'], '0x80000000', 'pmd')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmkit._readable import record_repr
from mmkit.errors import InvalidArgument

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["TranslationFault", "Walk", "WalkStep", "translate"]


@dataclass(frozen=True, slots=True)
class WalkStep:
    """One level of a walk: which entry was read and what it said."""

    level: str  #: Linux level ("pgd", "pud", "pmd", "pte")
    hw_level: int  #: lookup level 0..3
    index: int  #: entry index in the table
    table_pfn: int  #: the table page read
    entry_pa: int  #: physical address of the entry (table PA + index * 8)
    raw: int  #: the descriptor read
    kind: str  #: "table", "block", "page" or "invalid"

    def __repr__(self) -> str:
        """The table pfn, the entry's PA and the descriptor in hex; index and levels decimal."""
        return record_repr(self, ("table_pfn", "entry_pa", "raw"), keep=("index",))


@dataclass(frozen=True, slots=True)
class Walk:
    """A completed walk: the steps, and the translation or the fault."""

    va: int
    steps: tuple[WalkStep, ...]
    pa: int | None  #: the physical address ``va`` translates to, None on a fault
    leaf_raw: int  #: the leaf descriptor (0 on a fault)
    leaf_level: str | None  #: where the walk stopped with a translation
    fault_level: int | None  #: lookup level of the invalid entry, on a fault
    leaf_size: int = 0  #: bytes the leaf maps

    def __repr__(self) -> str:
        """``va``, ``pa``, the leaf descriptor and its size in hex; unset fields left out."""
        return record_repr(self, ("va", "pa", "leaf_raw", "leaf_size"), keep=("va", "steps"))

    @property
    def ok(self) -> bool:
        return self.pa is not None


class TranslationFault(InvalidArgument):
    """A walk that ended on an invalid entry (raised by :func:`translate_or_raise`)."""


def translate(m: Machine, va: int) -> Walk:
    """Walk ``va`` through the machine's kernel page tables (no TLB, no side effects
    other than recording a use-after-free event if the walk enters a freed table)."""
    d = m.desc
    levels = d.indices(va)  # validates va (typed error for non-kernel addresses)
    pt = m.pgtables
    table = pt.pgd_pfn
    steps: list[WalkStep] = []
    last = len(levels) - 1
    for depth, (level, index) in enumerate(levels):
        if table not in pt.info:
            m.record_event(
                "use-after-free",
                "translate",
                f"walk of {va:#x} entered pfn {table:#x}, which is not a live table page",
                va=va,
                pfn=table,
                freed_by=(m.physmem.frame(table) or None) and m.physmem.frame(table).freed_by,
            )
        arr = pt.content.get(table)
        raw = int(arr[index]) if arr is not None else 0
        entry_pa = (table << pt.page_shift) + index * 8
        if not raw & 1:
            steps.append(
                WalkStep(level.name, level.hw_level, index, table, entry_pa, raw, "invalid")
            )
            return Walk(va, tuple(steps), None, 0, None, level.hw_level)
        if depth == last:  # bit 0 is valid/present in every format; the rest it decides
            kind = "page" if pt.fmt.is_page(raw) else "invalid"
        else:
            kind = "table" if pt.fmt.is_table(raw, False) else "block"
        steps.append(WalkStep(level.name, level.hw_level, index, table, entry_pa, raw, kind))
        if kind == "invalid":  # reserved encoding at level 3
            return Walk(va, tuple(steps), None, 0, None, level.hw_level)
        if kind == "table":
            table = pt.next_table(raw)
            continue
        size = level.entry_size
        base = pt.desc_to_pa(raw) & ~(size - 1)
        return Walk(va, tuple(steps), base + (va & (size - 1)), raw, level.name, None, size)
    raise AssertionError("unreachable: the last level always ends the walk")


def translate_or_raise(m: Machine, va: int) -> Walk:
    """:func:`translate`, raising :class:`TranslationFault` naming the level on a fault."""
    w = translate(m, va)
    if w.fault_level is not None:
        raise TranslationFault(
            f"translation fault at level {w.fault_level} for {va:#x}: "
            f"the {w.steps[-1].level} entry is invalid"
        )
    return w

"""Tearing kernel mappings down: ``unmap_hotplug_range`` and ``free_empty_tables``.

Models patch 3/3 of the series as its versions did it (the policy says which):

* **Pass 1, ``unmap_hotplug_range(addr, end, free_mapped)``** (V6 on; v5.7 mmu.c): clear
  every leaf entry at every level, invalidate the TLB for it, and only then free the backing
  pages, and only when ``free_mapped`` (vmemmap). Clear → TLBI → free, so no cacheable alias
  of a freed page survives. A block takes ``flush_tlb_kernel_range(addr, next)`` up to V9
  (one TLBI per page, or a full flush past ``MAX_TLBI_OPS``) and a single TLBI from V10.
* **Pass 2, ``free_empty_tables(addr, end, floor, ceiling)``**: for each table page under the
  range, bottom up, free it when every entry is none: clear the parent entry,
  ``__flush_tlb_kernel_pgtable()``, free the page. From V8 (v5.7) a table is freed only if
  ``pgtable_range_aligned()`` says its whole span lies inside [floor, ceiling).
* **V3's single pass** (``remove_pagetable`` under ``init_mm.page_table_lock``, V3 to V5;
  :mod:`mmkit.pgtable.remove_pagetable`): frees each table as soon as the walk returns from
  it, with the parent entry cleared and ``__flush_tlb_kernel_pgtable()`` before the free, as
  pass 2 does; a vmemmap block's pages are freed before its entry is cleared and no TLBI
  follows; at the PTE level each mapped page is freed before its ``pte_clear()`` and one
  ``flush_tlb_kernel_range(start, end)`` covers the sub-range after the loop (V3 4/4 and
  V5 3/3 as posted).

Each step is yielded before it is performed (yield, then perform; see :mod:`mmkit.events`):
an entry is read when its ``read`` step is resumed and the walk goes on from the value read
then (the window in which another CPU can change it); a clear, a TLBI or a free happens when
its step is resumed.

Simplification: a run of alike entries in one table page (leaves, blocks, or none entries
above the leaf level) is cleared in one coarse step, then invalidated, then freed (each page
still sees clear → TLBI → free); the run's extent is taken from the entries as they are when
the step is yielded, and the clear performed on resume stands for the READ_ONCE + clear of
each entry. So removing a memory block is tens of steps, not hundreds. ``m.fine = True``
makes every entry its own read / clear / TLBI / free sequence, as the kernel loops.

Pass 1 and the freeing of one empty table live in :mod:`mmkit.pgtable.unmap`, V3's pass in
:mod:`mmkit.pgtable.remove_pagetable`; this module holds pass 2 and re-exports the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from mmkit.events import Step
from mmkit.pgtable.bulk_free import free_table_run
from mmkit.pgtable.remove_pagetable import remove_pagetable
from mmkit.pgtable.unmap import (
    coarse_run,
    pgtable_range_aligned,
    read_entry,
    try_free_table,
    unmap_hotplug_range,
)

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "free_empty_tables",
    "pgtable_range_aligned",
    "read_entry",
    "remove_pagetable",
    "unmap_hotplug_range",
]


def _free_level(
    m: Machine,
    depth: int,
    table: int,
    addr: int,
    end: int,
    floor: int,
    ceiling: int,
    floor_ceiling: bool,
) -> Iterator[Step]:
    pt = m.pgtables
    level = pt.levels[depth]
    fn = f"free_empty_{level.name}_table"
    arr = pt.content[table]
    size = level.entry_size
    if depth == len(pt.levels) - 1:
        i0 = level.index(addr)
        n = (end - addr + size - 1) // size
        step = Step(
            "read",
            fn,
            f"WARN_ON(!{level.name}_none({level.name}))  /* sanity */",
            level.name,
            addr,
            table,
            i0,
            count=n,
        )
        yield step
        left = int(np.count_nonzero(arr[i0 : i0 + n]))
        step.old = 0
        step.note = f"{left} still set"
        if left:
            m.warn(fn, f"WARN_ON(!pte_none(pte)): {left} entries still set after unmap", va=addr)
        return
    bulk = not m.fine and depth == len(pt.levels) - 2
    while addr < end:
        nxt = min((addr | (size - 1)) + 1, end)
        idx = level.index(addr)
        if bulk and pt.is_table(int(arr[idx]), False):  # a run of empty leaf tables?
            done = yield from free_table_run(
                m, depth, table, addr, end, floor, ceiling, floor_ceiling
            )
            if done:
                addr += done
                continue
        if not m.fine and not arr[idx]:  # a run of none entries?
            run = yield from coarse_run(m, level, table, addr, end, False, fn, "free")
            if run:
                addr = min((addr & ~(size - 1)) + run * size, end)
                continue
        raw = yield from read_entry(fn, level, addr, table, idx, arr)
        if raw:
            if not m.pgtables.is_table(raw, False):
                m.warn(
                    fn,
                    f"WARN_ON(!{level.name}_present || !{level.name}_table || {level.name}_sect)",
                    va=addr,
                )
            else:
                child = pt.next_table(raw)
                yield from _free_level(
                    m, depth + 1, child, addr, nxt, floor, ceiling, floor_ceiling
                )
                yield from try_free_table(
                    m,
                    depth + 1,
                    table,
                    idx,
                    child,
                    addr,
                    floor,
                    ceiling,
                    f"free_empty_{pt.levels[depth + 1].name}_table",
                    floor_ceiling=floor_ceiling,
                    end=nxt,
                )
        addr = nxt


def free_empty_tables(
    m: Machine,
    addr: int,
    end: int,
    floor: int = 0,
    ceiling: int = 0,
    *,
    floor_ceiling: bool = False,
) -> Iterator[Step]:
    """``free_empty_tables(addr, end[, floor, ceiling])``: pass 2 (module docstring)."""
    line = f"free_empty_tables({addr:#x}, {end:#x}" + (
        f", {floor:#x}, {ceiling:#x})" if floor_ceiling else ")"
    )
    yield Step("call", "free_empty_tables", line, va=addr)
    yield from _free_level(m, 0, m.pgtables.pgd_pfn, addr, end, floor, ceiling, floor_ceiling)

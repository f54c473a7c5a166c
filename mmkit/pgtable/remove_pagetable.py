"""V3's teardown: ``remove_pagetable(start, end, sparse_vmap)``, one pass under the kernel ptl.

Models "[PATCH V3 4/4] arm64/mm: Enable memory hot remove" (14 May 2019) as its code was
posted, with V4 and V5 unchanged in what is modelled here (V5 3/3,
``<1559121387-674-4-git-send-email-anshuman.khandual@arm.com>``, ``arch/arm64/mm/mmu.c``):

* ``remove_pagetable()`` takes ``init_mm.page_table_lock`` around the whole walk (the V3
  changelog: "Taken overall init_mm.page_table_lock instead of just while changing an
  entry") and walks the PGD entries of [start, end); ``remove_pud_table()`` and
  ``remove_pmd_table()`` walk the levels below.
* **A block entry** (``p?d_sect``): with ``sparse_vmap`` (the vmemmap) its backing pages are
  freed first, ``free_hotplug_page_range(page, P?D_SIZE)``, then the entry is cleared
  (``p?d_clear``) and **no TLB invalidation follows**.
* **A page entry** (``remove_pte_table()``): for each PTE of the sub-range, read it
  (``READ_ONCE``), skip it if none, ``WARN_ON(!pte_present)``, with ``sparse_vmap`` free the
  mapped page (``free_hotplug_page_range(page, PAGE_SIZE)``), and only then ``pte_clear()``.
  After the loop, one ``flush_tlb_kernel_range(start, end)`` over the whole sub-range: one
  TLBI per page, or ``flush_tlb_all()`` past ``MAX_TLBI_OPS`` pages. So a page is freed while
  a stale TLB entry for it may still be used, until the loop ends.
* **A table page**, as soon as the walk returns from it (``free_pte_table()``,
  ``free_pmd_table()``, ``free_pud_table()``, each skipped where that level is folded): scan
  all its entries; if all are none, clear the parent entry, ``__flush_tlb_kernel_pgtable(addr)``
  (TLBI VAAE1IS for the sub-range's first address) and free the page
  (``free_hotplug_pgtable_page``). Tables were freed with a TLB flush already in V3; what V6
  fixed was the block entries (clear, then flush, then free) and the order at the PTE level.

Mark Rutland showed on V5 that the ptl does not make the shared-table free safe: ``vmalloc()``
walks without it (kernel-facts 7.1, 7.2).

Step granularity as in :mod:`mmkit.pgtable.teardown`: coarse runs of alike PTEs (a run of
frees, then the run's clears), ``m.fine`` for one step per entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mmkit.events import Step
from mmkit.pgtable.tlb import flush_tlb_kernel_range
from mmkit.pgtable.unmap import _runs, block_tlbi, read_entry, try_free_table

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["remove_pagetable"]

#: the lock V3 to V5 held around the whole walk
PTL = "init_mm.page_table_lock"


def remove_pagetable(
    m: Machine,
    addr: int,
    end: int,
    sparse_vmap: bool,
    free_tables: bool = True,
    bounds: tuple[int, int] | None = None,
) -> Iterator[Step]:
    """V3's ``remove_pagetable(start, end, sparse_vmap)`` (module docstring).

    The ptl is taken when the policy's ``pgtable_lock`` says so (V3-V5 do); a policy that
    keeps V3's walk but not its table freeing passes ``free_tables=False``, or ``bounds``
    (floor, ceiling) to free only tables wholly inside them (``pgtable_range_aligned``)."""
    yield Step(
        "call",
        "remove_pagetable",
        f"remove_pagetable({addr:#x}, {end:#x}, sparse_vmap={sparse_vmap})",
        va=addr,
    )
    lock = m.policy.pgtable_lock
    if lock:
        yield from m.lock("remove_pagetable", PTL)
    yield from _remove_level(
        m, 0, m.pgtables.pgd_pfn, addr, end, sparse_vmap, (free_tables, bounds)
    )
    if lock:
        yield from m.unlock("remove_pagetable", PTL)


def _remove_level(
    m: Machine,
    depth: int,
    table: int,
    addr: int,
    end: int,
    sparse_vmap: bool,
    tables: tuple[bool, tuple[int, int] | None],
) -> Iterator[Step]:
    """``remove_pud_table`` / ``remove_pmd_table`` (and the PGD loop of
    ``remove_pagetable``): blocks are freed then cleared, tables walked then freed."""
    pt = m.pgtables
    level = pt.levels[depth]
    if depth == len(pt.levels) - 1:
        yield from remove_pte_table(m, depth, table, addr, end, sparse_vmap)
        return
    fn = f"remove_{level.name}_table"
    arr = pt.content[table]
    size = level.entry_size
    while addr < end:
        nxt = min((addr | (size - 1)) + 1, end)
        idx = level.index(addr)
        raw = yield from read_entry(fn, level, addr, table, idx, arr)
        if raw:
            if not raw & 1:
                m.warn(fn, f"WARN_ON(!{level.name}_present({level.name}))", va=addr)
            if pt.is_sect(raw):
                yield from _remove_block(m, level, table, idx, addr & ~(size - 1), raw, sparse_vmap)
            else:
                child = pt.next_table(raw)
                yield from _remove_level(m, depth + 1, child, addr, nxt, sparse_vmap, tables)
                free_tables, bounds = tables
                if free_tables:
                    floor, ceiling = bounds or (0, 0)
                    yield from try_free_table(
                        m,
                        depth + 1,
                        table,
                        idx,
                        child,
                        addr,
                        floor,
                        ceiling,
                        f"free_{pt.levels[depth + 1].name}_table",
                        floor_ceiling=bounds is not None,
                        end=nxt,
                    )
        addr = nxt


def _remove_block(
    m: Machine, level: Any, table: int, idx: int, base: int, raw: int, sparse_vmap: bool
) -> Iterator[Step]:
    """A block entry as V3 removed it: free the backing pages (vmemmap), clear; no TLBI
    (the policy's ``block_tlbi``: ``none`` for V3-V5)."""
    pt = m.pgtables
    fn = f"remove_{level.name}_table"
    if sparse_vmap:
        pfn = pt.desc_to_pa(raw) >> pt.page_shift
        order = level.shift - pt.page_shift
        yield from m.free_backing(pfn, order, "free_hotplug_page_range", base)
    step = Step(
        "write", fn, f"{level.name}_clear({level.name}p)", level.name, base, table, idx, new=0
    )
    yield step
    step.old = int(pt.content[table][idx])
    pt.content[table][idx] = 0
    yield from block_tlbi(m, fn, base, level.entry_size)  # V3-V5: block_tlbi "none"


def remove_pte_table(
    m: Machine, depth: int, table: int, addr: int, end: int, sparse_vmap: bool
) -> Iterator[Step]:
    """V3's ``remove_pte_table(pmdp, addr, end, sparse_vmap)``: per entry free (vmemmap)
    then ``pte_clear``; one ``flush_tlb_kernel_range(start, end)`` after the loop."""
    pt = m.pgtables
    level = pt.levels[depth]
    name = level.name
    fn = f"remove_{name}_table"
    size = level.entry_size
    i0 = level.index(addr)
    n = (end - addr + size - 1) // size
    arr = pt.content[table]
    if m.fine:  # as the kernel loops: READ_ONCE, then (if present) free, clear
        for i in range(n):
            va = addr + i * size
            raw = yield from read_entry(fn, level, va, table, i0 + i, arr)
            if not raw:
                continue
            if not raw & 1:
                m.warn(fn, f"WARN_ON(!{name}_present({name}))", va=va)
            yield from _free_then_clear(m, level, table, i0 + i, 1, va, sparse_vmap, fn, raw)
    else:
        vals = arr[i0 : i0 + n]
        for a, b in _runs(vals, size):
            va = addr + a * size
            first = int(vals[a])
            if not first:  # a run of none entries: READ_ONCE of each, nothing to do
                read = Step(
                    "read",
                    fn,
                    f"{name} = READ_ONCE(*{name}p)",
                    name,
                    va,
                    table,
                    i0 + a,
                    count=b - a,
                    va_step=size,
                )
                yield read
                read.old = int(arr[i0 + a])
                continue
            if not first & 1:
                m.warn(fn, f"WARN_ON(!{name}_present({name}))", va=va)
            yield from _free_then_clear(m, level, table, i0 + a, b - a, va, sparse_vmap, fn, first)
    yield from flush_tlb_kernel_range(m, fn, addr, end)


def _free_then_clear(
    m: Machine,
    level: Any,
    table: int,
    idx: int,
    count: int,
    va: int,
    sparse_vmap: bool,
    fn: str,
    raw: int,
) -> Iterator[Step]:
    """``count`` PTEs from ``idx`` (the first read as ``raw``): free what they map (vmemmap
    only), then clear them. A coarse run's pages are linear, so ``raw`` gives them all."""
    pt = m.pgtables
    size = level.entry_size
    if sparse_vmap:
        pfn0 = pt.desc_to_pa(raw) >> pt.page_shift
        yield from m.free_backing(pfn0, 0, "free_hotplug_page_range", va, count=count, va_step=size)
    step = Step(
        "write",
        fn,
        f"{level.name}_clear(&init_mm, addr, {level.name}p)",
        level.name,
        va,
        table,
        idx,
        count=count,
        new=0,
        stride=size,
        va_step=size,
    )
    yield step
    arr = pt.content[table]
    step.old = int(arr[idx])
    arr[idx : idx + count] = 0

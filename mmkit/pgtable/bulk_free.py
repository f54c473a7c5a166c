"""Bulk steps of the free pass, and the one way a table page is freed.

:func:`free_table_run` is the free pass's bulk step (see :mod:`mmkit.pgtable.bulk`): read the
entries of a run of ``k`` leaf tables, check and scan the tables, clear the entries that point
at empty ones, invalidate, free them; a table found still in use stays, as it would one table
at a time. :func:`free_tables` is the one function through which every table page is freed
(``free_hotplug_pgtable_page()``, v5.7 ``arch/arm64/mm/mmu.c``), one table or a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from mmkit.events import Step
from mmkit.pgtable.bulk import _counts, _entry_steps, _leaf_table_run, _rows

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["free_table_run", "free_tables"]


def free_table_run(
    m: Machine,
    depth: int,
    table: int,
    addr: int,
    end: int,
    floor: int,
    ceiling: int,
    floor_ceiling: bool,
) -> Iterator[Step]:
    """``free_empty_pmd_table`` over a run of entries of ``table`` pointing to leaf tables,
    each wholly inside [addr, end) (and, with ``floor_ceiling``, inside [floor, ceiling)):
    read the entries, the sanity check and the scan of every table, then for the tables
    found empty clear their entries, invalidate and free them. Returns the bytes done (0:
    no run of two here)."""
    from mmkit.pgtable.unmap import _M64, pgtable_range_aligned

    pt = m.pgtables
    run = _leaf_table_run(m, depth, table, addr, end)
    if run is None:
        return 0
    idx, k, vals, pfns, level, leaf = run
    size, ptrs, lsize = level.entry_size, leaf.ptrs, leaf.entry_size
    # (a table still in use is found so by the scan, and stays, as it would one by one)
    view = pt.content.view(pfns)  # rows never move: the run's rows for every step below

    def rows() -> np.ndarray:
        return (view if view is not None else _rows(m, pfns))[:, :ptrs]

    mask = ~(size - 1) & _M64
    if floor_ceiling and not (
        pgtable_range_aligned(addr, addr + size, floor, ceiling, mask)
        and pgtable_range_aligned(addr + (k - 1) * size, addr + k * size, floor, ceiling, mask)
    ):
        return 0
    name, lname = level.name, leaf.name
    fn, lfn = f"free_empty_{name}_table", f"free_empty_{lname}_table"
    line = f"{name} = READ_ONCE(*{name}p)"
    yield from _entry_steps(m, "read", fn, line, level, table, idx, addr, vals.copy(), False)
    tables = tuple(pfns)
    sanity = Step(
        "read",
        lfn,
        f"WARN_ON(!{lname}_none({lname}))  /* sanity */",
        lname,
        addr,
        pfns[0],
        0,
        count=ptrs,
        va_step=lsize,
        tables=tables,
    )
    yield sanity
    left = _counts(rows())
    sanity.old = 0
    sanity.note = "0 still set"
    sanity.result = (0,) * (2 * k)
    if left is not None:
        sanity.note = f"{left[0]} still set"
        sanity.result = tuple(x for n in left for x in (n, 0))
        for i, n in enumerate(left):
            if n:
                m.warn(
                    lfn,
                    f"WARN_ON(!pte_none(pte)): {n} entries still set after unmap",
                    va=addr + i * size,
                )
    scan = Step(
        "read",
        lfn,
        f"scan all {ptrs} entries: {lname}_none(READ_ONCE({lname}p[i]))",
        lname,
        addr,
        pfns[0],
        0,
        count=ptrs,
        va_step=lsize,
        note="0 in use",
        tables=tables,
    )
    yield scan
    block = rows()
    in_use = _counts(block)
    found = [0] * (2 * k)
    empty = list(range(k))
    if in_use is not None:
        empty = [i for i, n in enumerate(in_use) if not n]
        for i, n in enumerate(in_use):
            if n:
                row = block[i]
                found[2 * i] = n
                found[2 * i + 1] = int(row[np.flatnonzero(row)[0]])
    scan.old = found[1]
    scan.note = f"{found[0]} in use"
    scan.result = tuple(found)
    if not empty:
        return k * size
    # the entries of the empty tables, in runs [lo, hi) of consecutive entries
    if len(empty) == k:
        spans = [(0, k)]
    else:
        spans = []
        for i in empty:
            if spans and spans[-1][1] == i:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
    for lo, hi in spans:
        yield from _entry_steps(
            m,
            "write",
            lfn,  # free_empty_pte_table clears the pmd entry pointing to it
            f"{name}_clear({name}p)",
            level,
            table,
            idx + lo,
            addr + lo * size,
            vals[lo:hi].copy(),
            False,
        )
    one_run = tuple(pfns[spans[0][0] : spans[0][1]]) if len(spans) == 1 else None
    yield from _flush_pgtables(m, lfn, addr, size, spans, one_run)
    for lo, hi in spans:  # a free step covers tables mapping consecutive VA
        yield from free_tables(m, pfns[lo:hi], lfn, va_step=size)
    return k * size


def _flush_pgtables(
    m: Machine,
    fn: str,
    addr: int,
    size: int,
    spans: list[tuple[int, int]],
    tables: tuple[int, ...] | None,
) -> Iterator[Step]:
    """``__flush_tlb_kernel_pgtable(addr + i * size)`` for each ``i`` of the ``spans``
    (one TLBI VAAE1IS each), as one step (a bulk one over ``tables`` when given: the tables
    freed, one span of them)."""
    count = sum(hi - lo for lo, hi in spans)
    first = addr + spans[0][0] * size
    if count == 1:
        from mmkit.pgtable.tlb import flush_tlb_kernel_pgtable

        yield from flush_tlb_kernel_pgtable(m, fn, first)
        return
    yield Step(
        "tlbi",
        fn,
        f"__flush_tlb_kernel_pgtable({first:#x})",  # and one for each table after it
        va=first,
        count=count,
        note="vaae1is",
        va_step=size,
        tables=tables,
    )
    m.stats["vaae1is"] += count
    for tlb in m.tlbs:
        if tlb.leaf or tlb.walk:
            for lo, hi in spans:
                for i in range(lo, hi):
                    tlb.flush_walk(addr + i * size)


def free_tables(m: Machine, pfns: list[int], fn: str, *, va_step: int = 0) -> Iterator[Step]:
    """``free_hotplug_pgtable_page()`` of each of the table pages ``pfns`` (already
    unhooked), as one step: WARN on a boot (reserved) page, then free it.

    The kernel frees what its scan found empty. If another CPU wrote an entry since
    (vmalloc installs without the lock hot-remove holds), whatever that entry mapped
    is gone with the page: recorded as a ``lost-mapping`` event, naming the VAs."""
    pt = m.pgtables
    info = pt.info[pfns[0]]
    level = pt.levels[info.depth]
    yield Step(
        "free",
        fn,
        "free_hotplug_pgtable_page(virt_to_page(p?dp))",
        level.name,
        info.va_start,
        pfn=pfns[0],
        size=m.page_size,
        count=len(pfns),
        va_step=va_step,
        note="table",
        tables=tuple(pfns) if len(pfns) > 1 else None,
    )
    content = pt.content
    if len(pfns) == 1:  # one table (every policy's per-table walk): no run to look up
        rows = content[pfns[0]][None, : level.ptrs]
        counts = [1] if rows.any() else None
    else:
        rows = content.rows(pfns)[:, : level.ptrs]
        counts = _counts(rows)
    for i, n in enumerate(counts or ()):
        if not n:
            continue
        pfn = pfns[i]
        used = np.flatnonzero(rows[i])
        if len(used):
            start = pt.info[pfn].va_start
            first = start + int(used[0]) * level.entry_size
            m.record_event(
                "lost-mapping",
                fn,
                f"freed {level.name} table pfn {pfn:#x} with {len(used)} "
                f"{'entry' if len(used) == 1 else 'entries'} set since its scan (first at VA "
                f"{first:#x}): what they map is unreachable now",
                va=first,
                pfn=pfn,
                thread=getattr(m, "current_thread", ""),
            )
    frames = m.physmem.frames
    reserved = (
        [p for p in pfns if p not in frames]
        if len(pfns) == 1
        else ([] if frames.keys() >= set(pfns) else [p for p in pfns if p not in frames])
    )
    starts = {pfn: pt.info[pfn].va_start for pfn in reserved}
    for pfn in pt.free_table_pages(pfns, fn):
        m.warn(fn, f"WARN_ON(PageReserved(page)): boot table page pfn {pfn:#x}", pfn=pfn)
        m.bad_page(pfn, 0, va=starts[pfn])

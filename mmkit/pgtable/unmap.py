"""Pass 1 of the teardown, ``unmap_hotplug_range``, and freeing one empty table page (the
primitive V3's single pass and pass 2 share).

See :mod:`mmkit.pgtable.teardown` for the algorithms, the versions and the step granularity;
this module holds the walk that clears leaf and block entries (clear → TLBI → free, v5.7
``arch/arm64/mm/mmu.c`` ``unmap_hotplug_*_range``), the coarse runs, and
:func:`pgtable_range_aligned`. V3's pass is :mod:`mmkit.pgtable.remove_pagetable`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mmkit.events import Step
from mmkit.pgtable.bulk import unmap_table_run
from mmkit.pgtable.keep import free_or_defer, policy_keeps_table
from mmkit.pgtable.tlb import (
    flush_tlb_blocks,
    flush_tlb_kernel_pgtable,
    flush_tlb_kernel_range,
    flush_tlb_pages,
)

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "block_tlbi",
    "coarse_run",
    "pgtable_range_aligned",
    "read_entry",
    "try_free_table",
    "unmap_hotplug_range",
]

_M64 = (1 << 64) - 1
_I64 = np.int64


def pgtable_range_aligned(start: int, end: int, floor: int, ceiling: int, mask: int) -> bool:
    """``pgtable_range_aligned()`` (v5.7 mmu.c): does the table mapping [start, end) lie
    wholly inside [floor, ceiling)? A ceiling of 0 means the top of the address space.

    >>> MB, GB = 1 << 20, 1 << 30
    >>> pgtable_range_aligned(3 * GB, 4 * GB, 2 * GB, 8 * GB, ~(GB - 1) & (2**64 - 1))
    True
    >>> pgtable_range_aligned(3 * GB, 3 * GB + 2 * MB, 3 * GB + MB, 8 * GB, ~(GB - 1))
    False
    """
    start &= mask
    if start < floor:
        return False
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return False
    return ((end - 1) & _M64) <= ((ceiling - 1) & _M64)


def _runs(vals: np.ndarray, stride: int) -> list[tuple[int, int]]:
    """Split entries into maximal runs that are all none or linear with ``stride``."""
    n = len(vals)
    if n == 1:
        return [(0, 1)]
    first = int(vals[0])
    if first == 0:
        if not np.count_nonzero(vals):
            return [(0, n)]
    elif np.array_equal(vals, np.arange(first, first + n * stride, stride, dtype=np.uint64)):
        return [(0, n)]  # the common case: one linear run (a whole PTE table of RAM)
    signed = vals.view(_I64)
    zero = signed == 0
    diffs = np.diff(signed)
    brk = (zero[1:] != zero[:-1]) | (~zero[1:] & (diffs != stride))
    cuts = np.flatnonzero(brk) + 1
    edges = [0, *cuts.tolist(), n]
    return list(itertools.pairwise(edges))


def read_entry(
    fn: str, level: Any, va: int, table: int, idx: int, arr: np.ndarray
) -> Iterator[Step]:
    """``READ_ONCE(*p?dp)`` as a step: yield it, then read (returns the value read)."""
    step = Step("read", fn, f"{level.name} = READ_ONCE(*{level.name}p)", level.name, va, table, idx)
    yield step
    step.old = int(arr[idx])
    return step.old


def block_tlbi(m: Machine, fn: str, addr: int, size: int) -> Iterator[Step]:
    """The TLB maintenance for one cleared block entry, as the policy's ``block_tlbi`` says:
    none (V3-V5), ``flush_tlb_kernel_range(addr, next)`` (V6-V9) or
    ``flush_tlb_kernel_range(addr, addr + PAGE_SIZE)`` (one TLBI, V10 on)."""
    kind = m.policy.block_tlbi
    if kind == "single":
        yield from flush_tlb_kernel_range(m, fn, addr, addr + m.pgtables.page_size)
    elif kind == "range":
        yield from flush_tlb_kernel_range(m, fn, addr, addr + size)


def _unmap_leaves(
    m: Machine, depth: int, table: int, addr: int, end: int, free_mapped: bool, fn: str
) -> Iterator[Step]:
    """The PTE loop of ``unmap_hotplug_pte_range``."""
    pt = m.pgtables
    level = pt.levels[depth]
    name = level.name
    size = level.entry_size
    i0 = level.index(addr)
    n = (end - addr + size - 1) // size
    arr = pt.content[table]
    if m.fine:  # as the kernel loops: READ_ONCE, then (if present) clear, TLBI, free
        for i in range(n):
            va = addr + i * size
            read = Step("read", fn, f"{name} = READ_ONCE(*{name}p)", name, va, table, i0 + i)
            yield read
            raw = read.old = int(arr[i0 + i])
            if not raw:  # pte_none(): nothing mapped here
                continue
            if not raw & 1:
                m.warn(fn, f"WARN_ON(!{name}_present({name}))", va=va)
            yield from _clear_run(m, level, table, i0 + i, 1, va, free_mapped, fn, raw)
        return
    vals = arr[i0 : i0 + n]
    for a, b in _runs(vals, size):
        va = addr + a * size
        count = b - a
        if not vals[a]:  # a run of none entries: READ_ONCE of each, nothing to do
            read = Step(
                "read",
                fn,
                f"{name} = READ_ONCE(*{name}p)",
                name,
                va,
                table,
                i0 + a,
                count=count,
                va_step=size,
            )
            yield read
            read.old = int(arr[i0 + a])
            continue
        yield from _clear_run(m, level, table, i0 + a, count, va, free_mapped, fn, None)


def _clear_run(
    m: Machine,
    level,
    table: int,
    idx: int,
    count: int,
    va: int,
    free_mapped: bool,
    fn: str,
    raw: int | None,
) -> Iterator[Step]:
    """Clear ``count`` leaf entries from ``idx``, invalidate them, free what they mapped.

    ``raw`` is the entry a fine step read; for a coarse run (None) the clear stands for
    READ_ONCE + pte_clear of each entry, and ``old`` is what the first entry held."""
    pt = m.pgtables
    arr = pt.content[table]
    size = level.entry_size
    name = level.name
    step = Step(
        "write",
        fn,
        f"{name}_clear(&init_mm, addr, {name}p)",
        name,
        va,
        table,
        idx,
        count=count,
        new=0,
        stride=size,
        va_step=size,
    )
    yield step
    first = step.old = int(arr[idx])
    if raw is None:
        raw = first
        if raw and not raw & 1:
            m.warn(fn, f"WARN_ON(!{name}_present({name}))", va=va)
    arr[idx : idx + count] = 0
    # flush_tlb_kernel_range(addr, addr + PAGE_SIZE) after each entry: one TLBI each
    yield from flush_tlb_pages(m, fn, va, count, size)
    if free_mapped and raw:
        pfn0 = pt.desc_to_pa(raw) >> pt.page_shift
        yield from m.free_backing(pfn0, 0, "free_hotplug_page_range", va, count=count, va_step=size)


def _unmap_level(
    m: Machine, depth: int, table: int, addr: int, end: int, free_mapped: bool
) -> Iterator[Step]:
    pt = m.pgtables
    level = pt.levels[depth]
    fn = f"unmap_hotplug_{level.name}_range"
    if depth == len(pt.levels) - 1:
        yield from _unmap_leaves(m, depth, table, addr, end, free_mapped, fn)
        return
    arr = pt.content[table]
    size = level.entry_size
    bulk = not m.fine and depth == len(pt.levels) - 2
    while addr < end:
        nxt = min((addr | (size - 1)) + 1, end)
        idx = level.index(addr)
        if bulk and pt.is_table(int(arr[idx]), False):  # a run of leaf tables?
            done = yield from unmap_table_run(m, depth, table, addr, end, free_mapped)
            if done:
                addr += done
                continue
        if not m.fine and not pt.is_table(int(arr[idx]), False):  # none or block: a run?
            run = yield from coarse_run(m, level, table, addr, end, free_mapped, fn, "unmap")
            if run:
                addr = min((addr & ~(size - 1)) + run * size, end)
                continue
        raw = yield from read_entry(fn, level, addr, table, idx, arr)
        if raw:
            if not raw & 1:
                m.warn(fn, f"WARN_ON(!{level.name}_present({level.name}))", va=addr)
            base = addr & ~(size - 1)
            if pt.is_sect(raw):
                yield from _unmap_block(m, level, table, idx, base, raw, free_mapped, fn)
            else:
                child = pt.next_table(raw)
                yield from _unmap_level(m, depth + 1, child, addr, nxt, free_mapped)
        addr = nxt


def _unmap_block(
    m: Machine,
    level,
    table: int,
    idx: int,
    base: int,
    raw: int,
    free_mapped: bool,
    fn: str,
) -> Iterator[Step]:
    """Clear the block entry ``table[idx]`` (``raw``, as read), invalidate, free its pages."""
    pt = m.pgtables
    arr = pt.content[table]
    size = level.entry_size
    pfn = pt.desc_to_pa(raw) >> pt.page_shift
    order = level.shift - pt.page_shift
    step = Step(
        "write",
        fn,
        f"{level.name}_clear({level.name}p)",
        level.name,
        base,
        table,
        idx,
        new=0,
    )
    yield step
    step.old = int(arr[idx])
    arr[idx] = 0
    yield from block_tlbi(m, fn, base, size)
    if free_mapped:
        yield from m.free_backing(pfn, order, "free_hotplug_page_range", base)


def coarse_run(
    m: Machine, level: Any, table: int, addr: int, end: int, free_mapped: bool, fn: str, why: str
) -> Iterator[Step]:
    """Coarse mode above the leaf level: take a run of entries from ``addr`` in one go.

    A run of none entries is one ``read`` step (READ_ONCE of each, nothing to do). In the
    unmap pass a run of two or more blocks mapping consecutive memory is cleared in one
    ``write`` step, invalidated in one ``tlbi`` step (each block as
    ``flush_tlb_kernel_range(addr, next)`` would: per page, a full flush, or one TLBI from
    V10) and, for the vmemmap, freed in one ``free`` step: every block still sees clear →
    TLBI → free. Returns the number of entries taken (0: none, walk this entry alone)."""
    pt = m.pgtables
    size = level.entry_size
    name = level.name
    i0 = level.index(addr)
    n = min((end - (addr & ~(size - 1)) + size - 1) // size, level.ptrs - i0)
    arr = pt.content[table]
    first = int(arr[i0])
    if first and (why != "unmap" or not pt.is_sect(first)):
        return 0  # a table entry (or a block in the free pass): walked on its own
    vals = arr[i0 : i0 + n]
    stride = size
    if first == 0:
        stop = np.flatnonzero(vals)
    else:  # blocks mapping consecutive memory: each one `size` further on, or back (blocks
        # the allocator handed out last-freed first)
        stop = np.flatnonzero(vals != np.arange(first, first + n * size, size, dtype=np.uint64))
        if len(stop) and stop[0] < 2 <= n and first >= size:
            k = min(n, first // size + 1)  # (values stay >= 0)
            down = np.arange(first, first - k * size, -size, dtype=np.uint64)
            back = np.flatnonzero(vals[:k] != down)
            if (back[0] if len(back) else k) >= 2:
                stop, stride = (back if len(back) else np.array([k])), -size
    count = int(stop[0]) if len(stop) else n
    if first == 0:
        read = Step(
            "read",
            fn,
            f"{name} = READ_ONCE(*{name}p)",
            name,
            addr,
            table,
            i0,
            count=count,
            va_step=size,
        )
        yield read
        read.old = int(arr[i0])
        return count
    if count < 2:
        return 0
    base = addr & ~(size - 1)
    step = Step(
        "write",
        fn,
        f"{name}_clear({name}p)",
        name,
        base,
        table,
        i0,
        count=count,
        new=0,
        stride=stride,
        va_step=size,
    )
    yield step
    step.old = int(arr[i0])
    arr[i0 : i0 + count] = 0
    if m.policy.block_tlbi != "none":
        single = m.policy.block_tlbi == "single"
        yield from flush_tlb_blocks(m, fn, base, count, size, single=single)
    if free_mapped:
        pfn = pt.desc_to_pa(first) >> pt.page_shift
        order = level.shift - pt.page_shift
        yield from m.free_backing(
            pfn,
            order,
            "free_hotplug_page_range",
            base,
            count=count,
            va_step=size,
            stride=(1 << order) * (1 if stride > 0 else -1),
        )
    return count


def unmap_hotplug_range(m: Machine, addr: int, end: int, free_mapped: bool) -> Iterator[Step]:
    """``unmap_hotplug_range(addr, end, free_mapped)``: pass 1 (see the module docstring)."""
    yield Step(
        "call",
        "unmap_hotplug_range",
        f"unmap_hotplug_range({addr:#x}, {end:#x}, free_mapped={free_mapped})",
        va=addr,
    )
    yield from _unmap_level(m, 0, m.pgtables.pgd_pfn, addr, end, free_mapped)


def try_free_table(
    m: Machine,
    depth: int,
    parent: int,
    pidx: int,
    child: int,
    start: int,
    floor: int,
    ceiling: int,
    fn: str,
    *,
    floor_ceiling: bool,
    end: int | None = None,
) -> Iterator[Step]:
    """Free the table ``child`` at ``depth`` (hooked at ``parent[pidx]``, as the caller read
    it) if it is (allowed and) empty: scan it, then clear the parent entry, TLBI, free.

    ``start`` is the first address of the sub-range the caller walked under the table, as
    the kernel passes it: V3's ``free_p?d_table(..., addr)`` and v5.7's
    ``free_empty_p?d_table`` both invalidate with ``__flush_tlb_kernel_pgtable()`` of that
    address (TLBI VAAE1IS: the walk entries and the leaf entry for that one VA)."""
    pt = m.pgtables
    parent_level = pt.levels[depth - 1]
    level = pt.levels[depth]
    mask = ~(parent_level.entry_size - 1) & _M64
    if floor_ceiling and not pgtable_range_aligned(start, end or start + 1, floor, ceiling, mask):
        return
    scan = Step(
        "read",
        fn,
        f"scan all {level.ptrs} entries: {level.name}_none(READ_ONCE({level.name}p[i]))",
        level.name,
        start & mask,
        child,
        0,
        count=level.ptrs,
    )
    yield scan
    entries = pt.content[child][: level.ptrs]
    used = int(np.count_nonzero(entries))
    scan.old = int(entries[np.flatnonzero(entries)[0]]) if used else 0
    scan.note = f"{used} in use"
    if used:
        return
    step = Step(
        "write",
        fn,
        f"{parent_level.name}_clear({parent_level.name}p)",
        parent_level.name,
        start & mask,
        parent,
        pidx,
        new=0,
    )
    yield step
    step.old = int(pt.content[parent][pidx])
    lo = start & mask
    kept = policy_keeps_table(m, level.name, lo, lo + parent_level.entry_size)
    if kept is not None:  # the policy's keep_table hook (mmkit.pgtable.keep)
        step.new, step.note = step.old, f"kept: {kept}"
        return
    pt.content[parent][pidx] = 0
    yield from flush_tlb_kernel_pgtable(m, fn, start)
    yield from free_or_defer(m, level.name, lo, child, fn)

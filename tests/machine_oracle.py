"""Independent oracles for machine tests: reachability of table pages, and which vmemmap
table spans a set of hot-added blocks needs, computed from geometry alone."""

from __future__ import annotations

import numpy as np

from mmkit.machine import Machine


def reachable_tables(m: Machine) -> list[int]:
    """Every table pfn reachable from swapper_pg_dir (with repeats, if any)."""
    pt = m.pgtables
    out = [pt.pgd_pfn]
    frontier = [(pt.pgd_pfn, 0)]
    last = len(pt.levels) - 1
    while frontier:
        table, depth = frontier.pop()
        if depth == last:
            continue
        arr = pt.content[table][: pt.levels[depth].ptrs]
        for idx in np.flatnonzero((arr & np.uint64(3)) == np.uint64(3)).tolist():
            child = pt.next_table(int(arr[idx]))
            out.append(child)
            frontier.append((child, depth + 1))
    return out


def vmemmap_spans(m: Machine, blocks: set[int]) -> set[tuple[int, int]]:
    """(depth, span start) of every table below the PGD that the memmap of ``blocks``
    (block start PAs) lives under: what vmemmap_populate needs to exist."""
    d = m.desc
    levels = d.geometry.levels_used
    # with 2 MiB blocks (4K) the memmap hangs off PMD entries: tables down to the PMD table
    table_depths = range(1, len(levels) - (1 if d.vmemmap_population == "pmd_blocks" else 0))
    sec = 1 << m.macros["SECTION_SIZE_BITS"]
    spans: set[tuple[int, int]] = set()
    for start in blocks:
        for s in range(start, start + d.memory_block_size, sec):
            lo = m.vmemmap_va(s >> d.page_shift)
            hi = m.vmemmap_va((s + sec) >> d.page_shift)
            for depth in table_depths:
                span = levels[depth - 1].entry_size
                for base in range(lo & ~(span - 1), hi, span):
                    spans.add((depth, base))
    return spans


def live_spans(m: Machine) -> set[tuple[int, int]]:
    return {(info.depth, info.va_start) for info in m.pgtables.info.values()}


def inside_vmemmap(m: Machine, span: tuple[int, int]) -> bool:
    """Whether the table at ``(depth, start)`` maps only vmemmap addresses: what v5.7's
    floor/ceiling (the whole vmemmap region) lets ``free_empty_tables`` free."""
    depth, start = span
    size = m.desc.geometry.levels_used[depth - 1].entry_size
    return m.macros["VMEMMAP_START"] <= start and start + size <= m.desc.vmemmap_end

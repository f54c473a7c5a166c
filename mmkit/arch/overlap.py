"""The V7 3/3 vmalloc/vmemmap overlap test, and which table pages really are shared.

V7's ``find_vmalloc_vmemmap_overlap()`` compares the two edges of the gap between the
vmalloc area and the vmemmap under ``PGDIR_MASK``: equal means one top-level entry's subtree
maps both, so ``free_empty_tables()`` could free a table that a concurrent ``vmalloc()`` is
walking. mmkit evaluates the same test and also names every table page whose span holds both
regions, since (kernel-facts 3.5) the table that really is shared is the PUD table under the
shared PGD entry, and the fixmap pins it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmkit.arch.base import OverlapReport, SharedTable

if TYPE_CHECKING:
    from mmkit.arch.arm64 import Arm64Descriptor

__all__ = ["vmalloc_vmemmap_overlap"]

_M64 = (1 << 64) - 1


def vmalloc_vmemmap_overlap(desc: Arm64Descriptor) -> OverlapReport:
    """Evaluate V7's test (``arch/arm64/mm/mmu.c``, V7 3/3, never merged) on ``desc``.

    Models ``find_vmalloc_vmemmap_overlap()``: pick the gap (vmemmap above vmalloc: from
    ``VMALLOC_END`` to ``VMEMMAP_START``; below: from ``VMEMMAP_END`` to ``VMALLOC_START``),
    then "overlap" iff both edges are equal under ``PGDIR_MASK``.
    """
    m = desc.macros()
    g = desc.geometry
    vmemmap_start, vmemmap_end = m["VMEMMAP_START"], desc.vmemmap_end
    if vmemmap_start > m["VMALLOC_END"]:
        gap_start, gap_end = m["VMALLOC_END"], vmemmap_start
    else:
        gap_start, gap_end = vmemmap_end, m["VMALLOC_START"]
    mask = ~((1 << g.pgdir_shift) - 1) & _M64
    overlap = (gap_start & mask) == (gap_end & mask)
    shared_tables: list[SharedTable] = []
    entry = entry_end = None
    in_entry: tuple[str, ...] = ()
    if overlap:
        entry = gap_start & mask
        entry_end = entry + (1 << g.pgdir_shift)
        in_entry = _regions_in(desc, entry, entry_end)
    # A table page at level L spans one entry of its parent; walk down the levels that have
    # tables below the PGD and keep those whose span holds both bytes around the gap.
    lo, hi = gap_start - 1, gap_end  # the last byte before the gap, the first after it
    for parent, child in zip(g.levels_used, g.levels_used[1:], strict=False):
        span = parent.entry_size
        if lo // span == hi // span:
            start = (hi // span) * span
            shared_tables.append(
                SharedTable(child.name, start, start + span, _regions_in(desc, start, start + span))
            )
    return OverlapReport(
        overlap=overlap,
        gap_start=gap_start,
        gap_end=gap_end,
        pgdir_mask=mask,
        shared_entry=entry,
        shared_entry_end=entry_end,
        regions_in_entry=in_entry,
        shared_tables=tuple(shared_tables),
    )


def _regions_in(desc: Arm64Descriptor, start: int, end: int) -> tuple[str, ...]:
    return tuple(
        r.name
        for r in desc.regions
        if r.kind not in ("guard", "gap", "user") and r.start < end and start < r.end
    )

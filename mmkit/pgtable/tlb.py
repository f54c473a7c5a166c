"""A per-CPU TLB and walk cache, as far as hot-remove's ordering rules need one.

Each CPU caches leaf translations (VA page → descriptor) and intermediate walk entries
(table level + VA span → next table pfn), filled by :meth:`Machine.access`. The kernel's
invalidations drop them: ``flush_tlb_kernel_range`` (TLBI VAALE1IS: last level only, per page),
``__flush_tlb_kernel_pgtable`` (TLBI VAAE1IS: every level for one VA) and ``flush_tlb_all``
(TLBI VMALLE1IS). An access that hits a stale entry for a page that was freed is what
clear → TLBI → free exists to prevent; the machine reports it like a use-after-free.

The maintenance itself is here too, as steps: :func:`flush_tlb_kernel_range` and
:func:`flush_tlb_kernel_pgtable` as v5.4 ``asm/tlbflush.h`` defines them, and the coarse
forms that invalidate a run of entries in one step (:func:`flush_tlb_pages`,
:func:`flush_tlb_blocks`). Each counts its TLBI instructions in ``machine.stats``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmkit._readable import hex_value
from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "TLB",
    "TLBI_NAMES",
    "access",
    "flush_tlb_blocks",
    "flush_tlb_kernel_pgtable",
    "flush_tlb_kernel_range",
    "flush_tlb_pages",
    "tlbi_names_of",
]

#: The kinds of TLB invalidation the engine counts (the keys of ``machine.stats``, a
#: ``tlbi`` step's ``note``): one page's last-level entry, one page at every level (the
#: walk caches too), and everything. They are named after arm64's instructions; an
#: architecture plugin names what its kernel does for each with the optional descriptor
#: part ``tlbi_names`` (see :func:`tlbi_names_of`).
TLBI_NAMES: dict[str, str] = {
    "vaale1is": "TLBI VAALE1IS",
    "vaae1is": "TLBI VAAE1IS",
    "vmalle1is": "TLBI VMALLE1IS",
}


def tlbi_names_of(desc: Any) -> dict[str, str]:
    """What the kernel of ``desc`` does for each kind of :data:`TLBI_NAMES`, for views:
    the descriptor's ``tlbi_names``, arm64's instructions for a kind it does not name."""
    names = getattr(desc, "tlbi_names", None)
    return {kind: (names or {}).get(kind, arm64) for kind, arm64 in TLBI_NAMES.items()}


@dataclass
class TLB:
    """One CPU's cached translations."""

    #: VA of a page (or block) → (raw descriptor, size it maps)
    leaf: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: (depth of the table, first VA it maps, end of what it maps) → table pfn
    walk: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Addresses, descriptors, sizes and pfns in hex; a walk entry's depth decimal."""
        leaf = ", ".join(f"{base:#x}: {hex_value(v)}" for base, v in self.leaf.items())
        walk = ", ".join(
            f"({depth}, {lo:#x}, {hi:#x}): {pfn:#x}" for (depth, lo, hi), pfn in self.walk.items()
        )
        return f"TLB(leaf={{{leaf}}}, walk={{{walk}}})"

    def lookup_leaf(self, va: int) -> tuple[int, int, int] | None:
        """The cached leaf covering ``va`` as (base VA, raw, size), if any."""
        for base, (raw, size) in self.leaf.items():
            if base <= va < base + size:
                return base, raw, size
        return None

    def flush_range(self, start: int, end: int) -> None:
        """TLBI VAALE1IS for every page in [start, end): last-level entries only."""
        if self.leaf:
            for base in [b for b, (_, size) in self.leaf.items() if b < end and start < b + size]:
                del self.leaf[base]

    def flush_walk(self, addr: int) -> None:
        """TLBI VAAE1IS for ``addr``: all levels, walk-cache entries included."""
        self.flush_range(addr, addr + 1)
        if self.walk:
            for key in [k for k in self.walk if k[1] <= addr < k[2]]:
                del self.walk[key]

    def flush_all(self) -> None:
        """TLBI VMALLE1IS."""
        self.leaf.clear()
        self.walk.clear()


def access(m: Any, va: int, cpu: int = 0, *, fn: str = "reader") -> Iterator[Step]:
    """A data access to ``va`` from ``cpu``, through its TLB and walk cache.

    One ``access`` step, yielded before the access is made (yield, then perform): resuming
    it looks the TLB up and walks if needed, and fills the step in (its line says TLB hit,
    walk or translation fault; ``table``/``index``/``old`` the entry that decided, ``pfn``
    the page reached). A TLB hit uses the cached descriptor without looking at memory; a hit
    whose page has since been freed is a stale-TLB use-after-free. A walk-cache hit starts
    the walk at the cached table; if that table page was freed, the walk reads freed memory.
    Otherwise the walk starts at ``swapper_pg_dir`` and fills both caches. Returns the
    physical address, or None on a translation fault.
    """
    step = Step("access", fn, f"load {va:#x}", va=va, note=f"cpu{cpu}")
    yield step
    tlb = m.tlbs[cpu]
    pt = m.pgtables
    hit = tlb.lookup_leaf(va)
    if hit is not None:
        base, raw, size = hit
        pa = (pt.desc_to_pa(raw) & ~(size - 1)) + (va - base)
        pfn = pa >> pt.page_shift
        step.line = f"load {va:#x} (TLB hit)"
        step.pfn = pfn
        frame = m.physmem.frame(pfn)
        if frame is not None and frame.state == "free":
            m.record_event(
                "stale-tlb",
                fn,
                f"CPU{cpu} accessed {va:#x} through a stale TLB entry: pfn {pfn:#x} was freed",
                va=va,
                pfn=pfn,
                freed_by=frame.freed_by,
            )
        return pa
    levels = pt.levels
    depth, table = 0, pt.pgd_pfn
    cached = [k for k in tlb.walk if k[1] <= va < k[2]]
    if cached:
        key = max(cached)
        depth, table = key[0], tlb.walk[key]
    while True:
        level = levels[depth]
        if table not in pt.info:
            frame = m.physmem.frame(table)
            m.record_event(
                "use-after-free",
                fn,
                f"CPU{cpu} walked {va:#x} through table "
                f"pfn {table:#x}, which is no longer a live table page",
                va=va,
                pfn=table,
                freed_by=frame.freed_by if frame else None,
            )
        idx = level.index(va)
        raw = int(pt.content[table][idx])
        step.level, step.table, step.index, step.old = level.name, table, idx, raw
        if not raw & 1:
            step.line = f"load {va:#x}: translation fault at level {level.hw_level}"
            return None
        if depth < len(levels) - 1 and pt.is_table(raw, False):
            span = level.entry_size
            child = pt.next_table(raw)
            start = va & ~(span - 1)
            tlb.walk[(depth + 1, start, start + span)] = child
            depth, table = depth + 1, child
            continue
        size = level.entry_size
        base = va & ~(size - 1)
        tlb.leaf[base] = (raw, size)
        pa = (pt.desc_to_pa(raw) & ~(size - 1)) + (va - base)
        step.line = f"load {va:#x} (walk)"
        step.pfn = pa >> pt.page_shift
        return pa


# ------------------------------------------------------------- TLB maintenance
def _tlbi_ceiling(m: Machine) -> int:
    """Pages past which ``flush_tlb_kernel_range()`` flushes everything: arm64's
    ``MAX_TLBI_OPS``, or x86's ``tlb_single_page_flush_ceiling`` (arch/x86/mm/tlb.c)."""
    mac = m.macros
    return mac["MAX_TLBI_OPS"] if "MAX_TLBI_OPS" in mac else mac["tlb_single_page_flush_ceiling"]


def flush_tlb_kernel_range(m: Machine, fn: str, start: int, end: int) -> Iterator[Step]:
    """``flush_tlb_kernel_range(start, end)`` (v5.4 tlbflush.h)."""
    pages = (end - start) >> m.desc.page_shift
    if end - start > _tlbi_ceiling(m) * m.page_size:
        yield Step("tlbi", fn, "flush_tlb_all()", va=start, count=1, note="vmalle1is")
        m.stats["vmalle1is"] += 1
        for tlb in m.tlbs:
            tlb.flush_all()
        return
    yield Step(
        "tlbi",
        fn,
        f"flush_tlb_kernel_range({start:#x}, {end:#x})",
        va=start,
        count=pages,
        note="vaale1is",
    )
    m.stats["vaale1is"] += pages
    for tlb in m.tlbs:
        tlb.flush_range(start, end)


def flush_tlb_pages(
    m: Machine, fn: str, va: int, count: int, size: int, tables: tuple[int, ...] | None = None
) -> Iterator[Step]:
    """``count`` calls of ``flush_tlb_kernel_range(addr, addr + PAGE_SIZE)``, one per
    entry of a run (one TLBI VAALE1IS each), as one step; ``tables``: the leaf tables whose
    entries they are, for a bulk step (:meth:`~mmkit.events.Step.expand`)."""
    yield Step(
        "tlbi",
        fn,
        "flush_tlb_kernel_range(addr, addr + PAGE_SIZE)",
        va=va,
        count=count,
        note="vaale1is",
        va_step=size,
        tables=tables,
    )
    m.stats["vaale1is"] += count
    for tlb in m.tlbs:
        tlb.flush_range(va, va + count * size)


def flush_tlb_blocks(
    m: Machine, fn: str, va: int, count: int, size: int, *, single: bool
) -> Iterator[Step]:
    """The TLB maintenance after clearing each of ``count`` blocks of ``size`` bytes from
    ``va``, as one step: ``flush_tlb_kernel_range(addr, next)`` per block (one TLBI per
    page, or ``flush_tlb_all()`` past ``MAX_TLBI_OPS`` pages) or, with ``single``, one
    TLBI per block (V10 on: ``flush_tlb_kernel_range(addr, addr + PAGE_SIZE)``)."""
    end = va + count * size
    if not single and size > _tlbi_ceiling(m) * m.page_size:
        yield Step("tlbi", fn, "flush_tlb_all()", va=va, count=count, note="vmalle1is")
        m.stats["vmalle1is"] += count
        for tlb in m.tlbs:
            tlb.flush_all()
        return
    per = 1 if single else size >> m.desc.page_shift
    line = "addr + PAGE_SIZE" if single else "next"
    yield Step(
        "tlbi",
        fn,
        f"flush_tlb_kernel_range(addr, {line})",
        va=va,
        count=count * per,
        note="vaale1is",
        va_step=size,
    )
    m.stats["vaale1is"] += count * per
    for tlb in m.tlbs:
        tlb.flush_range(va, end)


def flush_tlb_kernel_pgtable(m: Machine, fn: str, addr: int) -> Iterator[Step]:
    """``__flush_tlb_kernel_pgtable(addr)``: one TLBI VAAE1IS, all levels."""
    yield Step(
        "tlbi", fn, f"__flush_tlb_kernel_pgtable({addr:#x})", va=addr, count=1, note="vaae1is"
    )
    m.stats["vaae1is"] += 1
    for tlb in m.tlbs:
        tlb.flush_walk(addr)


# ------------------------------------------------------------------ locks

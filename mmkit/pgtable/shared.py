"""Which table pages map both vmalloc and vmemmap, and what keeps each of them alive.

Patch 3/3's vmalloc race needs a table page that a ``vmalloc()`` walk can hold a pointer
into *and* that hot-remove's ``free_empty_tables()`` can find empty. The layout says which
table pages span both regions (:attr:`~mmkit.arch.arm64.Arm64Descriptor.vmalloc_vmemmap_overlap`);
the machine says what is in them now. :func:`shared_tables` joins the two: for every such
table page, its entries in use, what each maps, and whether removing a given range of
memmap would empty it. On the v5.4 layouts the answer is the fixmap: the PUD table of 4K/48
and 16K/48 holds the entry for ``bm_pmd``, a static table in the kernel image that is never
freed, so the table can never become empty (kernel-facts 7.2, "Analysis").

>>> from mmkit.machine import Machine
>>> [(t.name, t.pinned_by()) for t in shared_tables(Machine("arm64-4k-48", vmalloc_areas=0))]
[('bm_pud', ['fixed mappings+PCI I/O space+vmemmap (bm_pmd, static in the kernel image)'])]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmkit._readable import record_repr

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["SharedEntry", "SharedTableState", "shared_tables"]

_STATIC_NAMES = ("swapper_pg_dir", "bm_pud", "bm_pmd", "bm_pte")


@dataclass(frozen=True)
class SharedEntry:
    """One entry in use in a shared table page."""

    index: int
    va_start: int
    va_end: int
    regions: str  #: memory.rst labels of the regions the entry's span meets, "+"-joined
    target: str  #: what it points at ("pmd table pfn 0x41c07", "block", "page")
    pins: bool  #: True unless the removal being considered clears it

    def __repr__(self) -> str:
        """The VA span in hex; ``index`` decimal."""
        return record_repr(self, ("va_start", "va_end"), keep=("index", "pins"))


@dataclass(frozen=True)
class SharedTableState:
    """A table page spanning both vmalloc and vmemmap addresses, as the machine has it."""

    level: str
    va_start: int
    va_end: int
    regions: tuple[str, ...]  #: regions inside the span
    pfn: int | None  #: None: not allocated now (nothing is mapped in the span)
    entries: tuple[SharedEntry, ...]
    name: str = ""  #: the kernel's name for a static table page ("bm_pud"), else ""

    def __repr__(self) -> str:
        """The VA span and ``pfn`` in hex (``pfn`` left out when no table is allocated)."""
        return record_repr(self, ("va_start", "va_end", "pfn"), keep=("entries",))

    def pinned_by(self) -> list[str]:
        """The entries that keep it from becoming empty, as "region (target)"."""
        return [f"{e.regions} ({e.target})" for e in self.entries if e.pins]

    def explain(self) -> str:
        """One paragraph for a lesson or a report."""
        head = (
            f"The {self.level} table page for [{self.va_start:#x}, {self.va_end:#x}) maps "
            f"{', '.join(self.regions)}"
        )
        if self.pfn is None:
            return head + ": it is not allocated now."
        pins = self.pinned_by()
        n = len(self.entries)
        count = f"{n} {'entry' if n == 1 else 'entries'} in use"
        used = (
            f"{self.name}, static in the kernel image, {count}"
            if self.name
            else (f"pfn {self.pfn:#x}, {count}")
        )
        if pins:
            return (
                f"{head} ({used}). It can never become empty while "
                f"{'; '.join(pins)} stay{'s' if len(pins) == 1 else ''}, so no policy frees "
                "it: a vmalloc() walking through it is safe."
            )
        return (
            f"{head} ({used}). Nothing else pins it: once the removed memmap is unmapped it is "
            "empty, and a policy that frees empty tables frees it under a vmalloc() that may "
            "hold a pointer into it."
        )


def shared_tables(m: Machine, removing: tuple[int, int] | None = None) -> list[SharedTableState]:
    """The table pages of ``m`` whose span holds both vmalloc and vmemmap addresses.

    ``removing`` is a VA range ``[start, end)`` of memmap about to be unmapped (the
    ``vmemmap_free()`` range of a hot-remove): entries inside it do not pin the table.
    """
    pt = m.pgtables
    static = dict(zip(getattr(m, "_static_tables", ()), _STATIC_NAMES, strict=False))
    out = []
    report = getattr(m.desc, "vmalloc_vmemmap_overlap", None)  # arm64's; absent elsewhere
    for shared in report.shared_tables if report is not None else ():
        depth = next(i for i, lv in enumerate(pt.levels) if lv.name == shared.level)
        table: int | None = pt.pgd_pfn
        for d in range(depth):
            raw = int(pt.content[table][pt.levels[d].index(shared.start)])
            if not pt.is_table(raw, False):
                table = None
                break
            table = pt.next_table(raw)
        entries: list[SharedEntry] = []
        if table is not None:
            level = pt.levels[depth]
            arr = pt.content[table][: level.ptrs]
            for idx in np.flatnonzero(arr).tolist():
                raw = int(arr[idx])
                lo = shared.start + idx * level.entry_size
                hi = lo + level.entry_size
                if depth < len(pt.levels) - 1 and pt.is_table(raw, False):
                    child = pt.next_table(raw)
                    info = pt.info.get(child)
                    kind = pt.levels[depth + 1].name
                    if child in static:
                        target = f"{static[child]}, static in the kernel image"
                    else:
                        target = f"{kind} table pfn {child:#x}" + (
                            ", boot" if info is not None and info.boot else ""
                        )
                else:
                    target = "block" if depth < len(pt.levels) - 1 else "page"
                clears = removing is not None and _emptied(m, raw, depth, lo, hi, removing)
                names = "+".join(
                    r.name
                    for r in m.desc.regions
                    if r.kind not in ("guard", "gap", "user") and r.start < hi and lo < r.end
                )
                entries.append(SharedEntry(idx, lo, hi, names, target, not clears))
        out.append(
            SharedTableState(
                shared.level,
                shared.start,
                shared.end,
                shared.regions,
                table,
                tuple(entries),
                static.get(table, "") if table is not None else "",
            )
        )
    return out


def _emptied(m: Machine, raw: int, depth: int, lo: int, hi: int, removing: tuple[int, int]) -> bool:
    """Whether removing the memmap in ``removing`` clears the entry ``raw`` (mapping
    [lo, hi) at ``depth``): a leaf or block inside the range, or a table whose every entry in
    use is cleared so (it empties, and its parent entry goes when it is freed)."""
    pt = m.pgtables
    if removing[0] <= lo and hi <= removing[1]:
        return True
    if depth == len(pt.levels) - 1 or not pt.is_table(raw, False):
        return False
    child = pt.next_table(raw)
    level = pt.levels[depth + 1]
    arr = pt.content[child][: level.ptrs]
    for idx in np.flatnonzero(arr).tolist():
        start = lo + idx * level.entry_size
        if not _emptied(m, int(arr[idx]), depth + 1, start, start + level.entry_size, removing):
            return False
    return True

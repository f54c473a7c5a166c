"""A per-CPU TLB and walk cache, as far as hot-remove's ordering rules need one.

Each CPU caches leaf translations (VA page → descriptor) and intermediate walk entries
(table level + VA span → next table pfn), filled by :meth:`Machine.access`. The kernel's
invalidations drop them: ``flush_tlb_kernel_range`` (TLBI VAALE1IS: last level only, per page),
``__flush_tlb_kernel_pgtable`` (TLBI VAAE1IS: every level for one VA) and ``flush_tlb_all``
(TLBI VMALLE1IS). An access that hits a stale entry for a page that was freed is what
clear → TLBI → free exists to prevent; the machine reports it like a use-after-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TLB"]


@dataclass
class TLB:
    """One CPU's cached translations."""

    #: VA of a page (or block) → (raw descriptor, size it maps)
    leaf: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: (depth of the table, first VA it maps, end of what it maps) → table pfn
    walk: dict[tuple[int, int, int], int] = field(default_factory=dict)

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

"""Records every architecture descriptor shares: levels, regions and the V7 overlap report.

An architecture descriptor (see :class:`ArchDescriptor`) is one kernel configuration: a page
size, a VA size, a number of page-table levels and a kernel era. Everything it reports is
derived from the kernel's formulas; these records are how it reports them, so that tables,
figures and the CLI can render any descriptor, built in or from a plugin, the same way.

Addresses are plain Python ints in ``[0, 2**64)``; ranges are half-open ``[start, end)`` with
``end == 2**64`` allowed for the region that runs to the top of the address space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

from mmkit._readable import record_repr

__all__ = [
    "KERNEL_ERAS",
    "REGION_KINDS",
    "ArchDescriptor",
    "Level",
    "OverlapReport",
    "Region",
    "SharedTable",
    "format_size",
]

#: Kernel layout eras a descriptor can model, oldest first.
KERNEL_ERAS: tuple[str, ...] = ("v5.3", "v5.4", "v5.7", "v6.1")

RegionKind = Literal[
    "user",
    "linear",
    "kasan",
    "bpf_jit",
    "modules",
    "vmalloc",
    "fixmap",
    "pci_io",
    "vmemmap",
    "guard",
    "gap",
]

#: The kinds of kernel VA region, as used for colours and filters in the views.
REGION_KINDS: tuple[str, ...] = get_args(RegionKind)

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def format_size(size: int) -> str:
    """Format a byte count the way Documentation/arm64/memory.rst prints sizes.

    Exact sizes print in the largest unit that divides them; inexact ones print with a
    ``~`` in the largest unit that is not above them, truncated as the doc truncates.

    >>> format_size(2 << 20), format_size(4124 << 10), format_size(128 << 40)
    ('2MB', '4124KB', '128TB')
    >>> format_size((94 << 40) - (1 << 30))
    '~93TB'
    """
    if size <= 0:
        return "0B"
    exact = 0
    while exact + 1 < len(_UNITS) and size % (1 << (10 * (exact + 1))) == 0:
        exact += 1
    top = 0
    while top + 1 < len(_UNITS) and size >= (1 << (10 * (top + 1))):
        top += 1
    if exact == top or size // (1 << (10 * exact)) < 10_000:
        return f"{size >> (10 * exact)}{_UNITS[exact]}"
    return f"~{size >> (10 * top)}{_UNITS[top]}"


@dataclass(frozen=True)
class Level:
    """One Linux page-table level (``pgd``, ``pud``, ``pmd``, ``pte``) of a configuration.

    ``hw_level`` is the architecture's lookup level (0 to 3, 3 being the leaf page level).
    A folded level (``folded=True``) has no table of its own: its entry is the parent's
    entry, as ``include/asm-generic/pgtable-nopud.h`` and ``pgtable-nopmd.h`` fold it, and it
    shares the parent's shift and hardware level.
    """

    name: str  #: "pgd", "pud", "pmd" or "pte"
    hw_level: int  #: lookup level, 0..3
    shift: int  #: log2 of the bytes one entry maps (PGDIR_SHIFT, PUD_SHIFT, ...)
    ptrs: int  #: entries per table (PTRS_PER_PGD, ...); 1 when folded
    folded: bool  #: no table of its own
    linux_block: bool  #: Linux puts block (section) mappings here
    hw_block: bool  #: the architecture allows a block descriptor here

    @property
    def entry_size(self) -> int:
        """Bytes of VA one entry of this level maps (``PGDIR_SIZE``, ``PMD_SIZE``...)."""
        return 1 << self.shift

    @property
    def index_bits(self) -> tuple[int, int]:
        """The VA bit field ``(high, low)`` that indexes this level, inclusive."""
        return (self.shift + self.ptrs.bit_length() - 2, self.shift)

    def index(self, va: int) -> int:
        """The index of ``va`` in a table of this level (``pgd_index()``, ``pmd_index()``...)."""
        return (va >> self.shift) & (self.ptrs - 1)


@dataclass(frozen=True)
class Region:
    """A named kernel (or user) VA region, ``[start, end)``.

    ``name`` is the label Documentation/arm64/memory.rst uses ("vmalloc",
    "kernel logical memory map", "[guard region]"...), ``kind`` one of :data:`REGION_KINDS`.
    """

    name: str
    kind: RegionKind
    start: int
    end: int

    @property
    def size(self) -> int:
        """Bytes in the region."""
        return self.end - self.start

    @property
    def last(self) -> int:
        """The inclusive end, as memory.rst prints it."""
        return self.end - 1

    def __contains__(self, va: object) -> bool:
        return isinstance(va, int) and self.start <= va < self.end

    def __repr__(self) -> str:
        """``start`` and ``end`` in hex, then the size as memory.rst rounds it."""
        return f"{record_repr(self, ('start', 'end'))[:-1]}, size={format_size(self.size)})"


@dataclass(frozen=True)
class SharedTable:
    """A table page whose VA span holds both vmalloc and vmemmap addresses."""

    level: str  #: the Linux level of the table page ("pud" = a PUD table)
    start: int  #: first VA the table maps
    end: int  #: end of the VA the table maps
    regions: tuple[str, ...]  #: names of the regions (not guards) inside that span

    def __repr__(self) -> str:
        """The VA span in hex."""
        return record_repr(self, ("start", "end"))


@dataclass(frozen=True)
class OverlapReport:
    """The V7 3/3 ``vmalloc_vmemmap_overlap`` test evaluated on one layout.

    V7's ``find_vmalloc_vmemmap_overlap()`` (an early_initcall, never merged) took the gap
    between the vmalloc area and the vmemmap and said "overlap" when both edges of the gap
    fall in the same top-level (PGD) entry; ``vmemmap_free()`` then skipped
    ``free_empty_tables()`` so no table page shared with vmalloc could be freed under a
    concurrent ``vmalloc()``. v5.7 replaced the test with floor/ceiling (bbd6ec605c0f).
    """

    overlap: bool  #: the V7 test's answer
    gap_start: int  #: first address of the gap (VMALLOC_END when vmemmap lies above)
    gap_end: int  #: first address past the gap (VMEMMAP_START when vmemmap lies above)
    pgdir_mask: int  #: PGDIR_MASK of the configuration
    shared_entry: int | None  #: VA base of the PGD entry both edges fall in, if any
    shared_entry_end: int | None  #: end of that PGD entry's span
    regions_in_entry: tuple[str, ...]  #: names of the regions that entry's subtree maps
    shared_tables: tuple[SharedTable, ...]  #: every table page spanning both regions

    def __repr__(self) -> str:
        """Addresses and the mask in hex; an absent shared entry left out."""
        return record_repr(
            self,
            ("gap_start", "gap_end", "pgdir_mask", "shared_entry", "shared_entry_end"),
            keep=("overlap",),
        )

    def explain(self) -> str:
        """A few sentences for a learner: what was compared and what it means."""
        edges = (
            f"The gap between vmalloc and vmemmap runs from {self.gap_start:#018x} to "
            f"{self.gap_end:#018x}. With PGDIR_MASK {self.pgdir_mask:#018x} its edges map to "
            f"{self.gap_start & self.pgdir_mask:#018x} and {self.gap_end & self.pgdir_mask:#018x}."
        )
        if not self.overlap:
            return (
                f"{edges} They differ, so vmalloc and vmemmap never share a top-level entry: "
                "V7 frees empty vmemmap table pages here."
            )
        assert self.shared_entry is not None and self.shared_entry_end is not None
        tables = "; ".join(
            f"a {t.level.upper()} table for [{t.start:#x}, {t.end:#x})" for t in self.shared_tables
        )
        return (
            f"{edges} They are equal: one PGD entry, [{self.shared_entry:#x}, "
            f"{self.shared_entry_end:#x}), maps {', '.join(self.regions_in_entry)}. "
            f"Tables shared by vmalloc and vmemmap: {tables or 'none below the PGD'}. "
            "A concurrent vmalloc() may hold a pointer into such a table while hot-remove "
            "frees it, so V7 skips free_empty_tables() for vmemmap in this configuration."
        )


@runtime_checkable
class ArchDescriptor(Protocol):
    """What every architecture descriptor offers (built in or from a plugin).

    See :mod:`mmkit.testing` for the conformance tests a plugin's descriptor must pass.
    """

    name: str

    def macros(self) -> Mapping[str, int]:
        """The kernel's own macro names mapped to their values in this configuration."""
        ...

    @property
    def regions(self) -> Sequence[Region]:
        """The VA regions in address order, guards included."""
        ...

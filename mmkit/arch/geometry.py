"""arm64 page-table geometry, derived from the kernel's formulas.

Every number here comes from the formulas of v5.4 ``arch/arm64/include/asm/pgtable-hwdef.h``
(``ARM64_HW_PGTABLE_LEVEL_SHIFT``, ``ARM64_HW_PGTABLE_LEVELS``), the generic folding of
``include/asm-generic/pgtable-nopud.h`` / ``pgtable-nopmd.h``, ``sparsemem.h`` and
``kernel-pgtable.h``; nothing is a hand-typed table of results.

A translation granule (4K, 16K or 64K) fixes ``PAGE_SHIFT`` and with it how many VA bits one
table level resolves (``PAGE_SHIFT - 3``: a table is one page of 8-byte descriptors). The VA
size then fixes how many levels the kernel needs. Levels the configuration does not need are
*folded*: ``pud_offset()`` returns the PGD entry itself, so the Linux walk still names a PUD
but there is no PUD table page.

>>> g = Geometry(page_shift=14, va_bits=48)
>>> g.levels, g.pgdir_shift, g.ptrs_per_pgd
(4, 47, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mmkit.arch.base import Level

__all__ = ["GRANULES", "Geometry", "Granule", "hw_level_shift", "hw_levels"]


@dataclass(frozen=True)
class Granule:
    """A translation granule and its per-granule kernel constants (v5.4 ``Kconfig``)."""

    name: str  #: "4k", "16k" or "64k"
    page_shift: int  #: ARM64_PAGE_SHIFT
    cont_pte_shift: int  #: CONT_PTE_SHIFT: entries in one contiguous-hint run, as a shift
    cont_pmd_shift: int  #: CONT_PMD_SHIFT

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift


#: The three granules; CONT shifts from v5.4 ``pgtable-hwdef.h`` (ARM64_CONT_SHIFT et al.).
GRANULES: dict[str, Granule] = {
    g.name: g
    for g in (
        Granule("4k", 12, 4, 4),
        Granule("16k", 14, 7, 5),
        Granule("64k", 16, 5, 5),
    )
}


def hw_level_shift(page_shift: int, n: int) -> int:
    """``ARM64_HW_PGTABLE_LEVEL_SHIFT(n)``: log2 of what one entry at lookup level n maps.

    >>> hw_level_shift(12, 2), hw_level_shift(16, 1)
    (21, 42)
    """
    return (page_shift - 3) * (4 - n) + 3


def hw_levels(page_shift: int, va_bits: int) -> int:
    """``ARM64_HW_PGTABLE_LEVELS(va_bits)``: levels needed; the ``PGTABLE_LEVELS`` default.

    >>> [hw_levels(12, 39), hw_levels(16, 42), hw_levels(14, 48)]
    [3, 2, 4]
    """
    return (va_bits - 4) // (page_shift - 3)


@dataclass(frozen=True)
class Geometry:
    """Page-table geometry of one configuration.

    ``va_bits`` is ``CONFIG_ARM64_VA_BITS``; ``index_va_bits`` is what sizes the top level
    (``MAX_USER_VA_BITS`` in v5.3/v5.4, which is 52 for a 52-bit user VA build even when
    the kernel keeps 48 bits; ``VA_BITS`` from v5.7). ``pa_bits`` is ``CONFIG_ARM64_PA_BITS``.
    """

    page_shift: int
    va_bits: int
    index_va_bits: int | None = None
    pa_bits: int = 48
    section_size_bits: int = 30

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def granule(self) -> Granule:
        return next(g for g in GRANULES.values() if g.page_shift == self.page_shift)

    @property
    def levels(self) -> int:
        """``CONFIG_PGTABLE_LEVELS``, the Kconfig default for this page and VA size."""
        return hw_levels(self.page_shift, self.va_bits)

    @property
    def stride(self) -> int:
        """VA bits one table resolves: a page of 8-byte entries, ``PAGE_SHIFT - 3``."""
        return self.page_shift - 3

    @property
    def ptrs_per_table(self) -> int:
        """``PTRS_PER_PTE``: entries in a full table page."""
        return 1 << self.stride

    @property
    def pmd_shift(self) -> int:
        """``PMD_SHIFT``; folded into ``PUD_SHIFT`` with 2 levels (asm-generic nopmd)."""
        return hw_level_shift(self.page_shift, 2) if self.levels > 2 else self.pud_shift

    @property
    def pud_shift(self) -> int:
        """``PUD_SHIFT``; folded into ``PGDIR_SHIFT`` below 4 levels (asm-generic nopud)."""
        return hw_level_shift(self.page_shift, 1) if self.levels > 3 else self.pgdir_shift

    @property
    def pgdir_shift(self) -> int:
        """``PGDIR_SHIFT`` = ``ARM64_HW_PGTABLE_LEVEL_SHIFT(4 - CONFIG_PGTABLE_LEVELS)``."""
        return hw_level_shift(self.page_shift, 4 - self.levels)

    @property
    def ptrs_per_pgd(self) -> int:
        """``PTRS_PER_PGD`` = 1 << (VA bits - PGDIR_SHIFT): may be short (16K/48: 2)."""
        return 1 << ((self.index_va_bits or self.va_bits) - self.pgdir_shift)

    @property
    def ptrs_per_pud(self) -> int:
        return self.ptrs_per_table if self.levels > 3 else 1

    @property
    def ptrs_per_pmd(self) -> int:
        return self.ptrs_per_table if self.levels > 2 else 1

    @property
    def top_hw_level(self) -> int:
        """The lookup level the walk starts at: 4 - levels."""
        return 4 - self.levels

    @property
    def cont_pte_size(self) -> int:
        return (1 << self.granule.cont_pte_shift) * self.page_size

    @property
    def cont_pmd_size(self) -> int:
        return (1 << self.granule.cont_pmd_shift) << self.pmd_shift

    @property
    def swapper_uses_section_maps(self) -> bool:
        """``ARM64_SWAPPER_USES_SECTION_MAPS``: 4K only, where 2 MiB is a PMD section."""
        return self.page_shift == 12

    @property
    def uses_1g_blocks(self) -> bool:
        """``use_1G_block()`` (v5.4 mmu.c): PUD-level 1 GiB blocks only with 4K pages."""
        return self.page_shift == 12

    def hw_block_allowed(self, hw_level: int) -> bool:
        """Whether ARMv8 allows a block descriptor at this lookup level for this granule.

        4K: levels 1 and 2; 16K: level 2 only (no level-1 block before LPA2); 64K: level 2,
        and level 1 (4 TiB) only with 52-bit PA (ARMv8.2-LPA).
        """
        if self.page_shift == 12:
            return hw_level in (1, 2)
        if self.page_shift == 16 and hw_level == 1:
            return self.pa_bits == 52
        return hw_level == 2

    @cached_property
    def levels_all(self) -> tuple[Level, ...]:
        """All four Linux levels (P4D is always folded on arm64 and left out), top first.

        A folded level shares its parent's entry, shift and lookup level. Linux maps blocks
        at lookup level 2 (PMD sections, for every granule) and level 1 (1 GiB, 4K only).
        """
        top = self.top_hw_level
        rows = (
            ("pgd", top, self.pgdir_shift, self.ptrs_per_pgd, False),
            ("pud", max(1, top), self.pud_shift, self.ptrs_per_pud, self.levels <= 3),
            ("pmd", max(2, top), self.pmd_shift, self.ptrs_per_pmd, self.levels <= 2),
            ("pte", 3, self.page_shift, self.ptrs_per_table, False),
        )
        return tuple(
            Level(
                name,
                hw,
                shift,
                ptrs,
                folded,
                linux_block=name != "pte" and (hw == 2 or (hw == 1 and self.uses_1g_blocks)),
                hw_block=name != "pte" and self.hw_block_allowed(hw),
            )
            for name, hw, shift, ptrs, folded in rows
        )

    @cached_property
    def levels_used(self) -> tuple[Level, ...]:
        """The levels that have table pages, top first: what a hardware walk visits."""
        return tuple(level for level in self.levels_all if not level.folded)

    @property
    def folded(self) -> tuple[str, ...]:
        """Names of the folded levels (P4D, always folded on arm64, included)."""
        return ("p4d", *(level.name for level in self.levels_all if level.folded))

    @property
    def section_size(self) -> int:
        """``1 << SECTION_SIZE_BITS``: a sparsemem section, also the memory block size."""
        return 1 << self.section_size_bits

    @property
    def pages_per_section(self) -> int:
        return 1 << (self.section_size_bits - self.page_shift)

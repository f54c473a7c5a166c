"""mmkit-x86_64: the x86_64 architecture (v5.4, 4- and 5-level paging) as an mmkit plugin.

Two configurations, both 4K pages with KASLR off:

* ``x86_64-4k-48``: 4-level paging, 48-bit VA (``__VIRTUAL_MASK_SHIFT`` 47), the P4D folded;
* ``x86_64-4k-57``: 5-level paging (``CONFIG_X86_5LEVEL`` on a CPU with LA57), 57-bit VA.

Options: ``kernel="v5.4"`` (the only era modelled), ``kasan`` (``CONFIG_KASAN``: the shadow
region appears) and ``ghes`` (``CONFIG_ACPI_APEI_GHES``: two more fixmap slots). The layout is
:mod:`mmkit_x86_64.layout`, the entry format :mod:`mmkit_x86_64.pte`, the hot-remove policy
:mod:`mmkit_x86_64.policy`. mmkit finds all of it through entry points only::

    [project.entry-points."mmkit.arch"]
    x86_64 = "mmkit_x86_64:PLUGIN"
    [project.entry-points."mmkit.policy"]
    x86-remove-pagetable = "mmkit_x86_64.policy:POLICY"

>>> d = PLUGIN.create("x86_64-4k-57")
>>> d.levels, [lv.name for lv in d.geometry.levels_used]
(5, ['pgd', 'p4d', 'pud', 'pmd', 'pte'])
>>> hex(d.region("vmalloc").start)
'0xffa0000000000000'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from mmkit.arch.base import Level, Region
from mmkit.errors import InvalidArgument, UnknownName
from mmkit_x86_64.layout import (
    DERIVED_MACROS,
    PAGE_SHIFT,
    layout_levels,
    layout_macros,
    layout_regions,
)
from mmkit_x86_64.machine import X86MachineHooks
from mmkit_x86_64.pte import X86PteFormat

__all__ = ["CONFIGS", "PLUGIN", "X86Descriptor", "X86Geometry", "X86Plugin"]

#: configuration name -> page-table levels
_LEVELS: dict[str, int] = {"x86_64-4k-48": 4, "x86_64-4k-57": 5}
#: The configuration names, in natural order.
CONFIGS: tuple[str, ...] = tuple(_LEVELS)
#: Every option ``create()`` takes, with its valid values.
OPTIONS: dict[str, tuple[Any, ...]] = {
    "kernel": ("v5.4",),
    "kasan": (False, True),
    "ghes": (False, True),
}
_M64 = (1 << 64) - 1


@dataclass(frozen=True)
class X86Geometry:
    """The page-table shape of one configuration (what the engine reads as ``geometry``).

    x86_64 has no contiguous-hint bit: ``cont_pte_size``/``cont_pmd_size`` are 0.
    """

    levels: int
    page_shift: int = PAGE_SHIFT
    cont_pte_size: int = 0
    cont_pmd_size: int = 0

    @cached_property
    def levels_all(self) -> tuple[Level, ...]:
        """All five Linux levels, the folded P4D of 4-level paging included."""
        return layout_levels(self.levels)

    @cached_property
    def levels_used(self) -> tuple[Level, ...]:
        """The levels that have table pages, top first."""
        return tuple(lv for lv in self.levels_all if not lv.folded)

    @property
    def folded(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels_all if lv.folded)

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def ptrs_per_table(self) -> int:
        return 1 << (self.page_shift - 3)

    @property
    def pgdir_shift(self) -> int:
        return self.levels_all[0].shift

    @property
    def p4d_shift(self) -> int:
        return 39

    @property
    def pud_shift(self) -> int:
        return 30

    @property
    def pmd_shift(self) -> int:
        return 21


@dataclass(frozen=True)
class X86Descriptor:
    """One x86_64 kernel configuration: a value (equal options give equal descriptors)."""

    levels: int
    kernel: str = "v5.4"
    kasan: bool = False
    ghes: bool = False

    @property
    def name(self) -> str:
        return f"x86_64-4k-{self.va_bits}"

    @property
    def family(self) -> str:
        return "x86_64"

    def options(self) -> dict[str, object]:
        """The options this descriptor was built with."""
        return {"kernel": self.kernel, "kasan": self.kasan, "ghes": self.ghes}

    # ------------------------------------------------------------------ geometry
    @cached_property
    def geometry(self) -> X86Geometry:
        return X86Geometry(self.levels)

    @property
    def va_bits(self) -> int:
        """Implemented VA bits: 48 with 4 levels, 57 with 5 (``__VIRTUAL_MASK_SHIFT + 1``)."""
        return 57 if self.levels == 5 else 48

    @property
    def pa_bits(self) -> int:
        """Width of the address field of an entry: ``__PHYSICAL_MASK_SHIFT`` (52)."""
        return 52

    @property
    def page_shift(self) -> int:
        return PAGE_SHIFT

    @property
    def page_size(self) -> int:
        return 1 << PAGE_SHIFT

    @property
    def level_info(self) -> tuple[Level, ...]:
        return self.geometry.levels_all

    @property
    def machine_hooks(self) -> X86MachineHooks:
        """Boot and ``arch_add_memory()`` of x86 (:mod:`mmkit_x86_64.machine`)."""
        return X86MachineHooks()

    @property
    def tlbi_names(self) -> dict[str, str]:
        """What v5.4 x86 does for each kind of TLB invalidation the engine counts
        (:data:`mmkit.pgtable.tlb.TLBI_NAMES`): ``INVLPG`` drops one page's translation and
        the paging-structure caches for it (``__flush_tlb_one_kernel()``, which
        ``flush_tlb_kernel_range()`` issues per page up to ``tlb_single_page_flush_ceiling``
        pages), and ``flush_tlb_all()`` everything (arch/x86/mm/tlb.c)."""
        return {
            "vaale1is": "INVLPG",
            "vaae1is": "INVLPG (walk caches)",
            "vmalle1is": "flush_tlb_all()",
        }

    @property
    def pte_format(self) -> X86PteFormat:
        """The entry-format hook the engine uses (:class:`mmkit.arch.pte_api.PteFormat`)."""
        return X86PteFormat()

    @property
    def folded_levels(self) -> tuple[str, ...]:
        return self.geometry.folded

    @property
    def block_sizes(self) -> dict[str, tuple[int, ...]]:
        """1 GiB (PUD) and 2 MiB (PMD) leaves, in hardware and in Linux's direct map."""
        sizes = tuple(lv.entry_size for lv in self.geometry.levels_used if lv.linux_block)
        return {"linux": sizes, "hardware": sizes}

    @property
    def vmemmap_population(self) -> str:
        """``vmemmap_populate()`` with ``X86_FEATURE_PSE``: ``vmemmap_populate_hugepages()``,
        2 MiB PMD leaves (v5.4 ``arch/x86/mm/init_64.c``)."""
        return "pmd_blocks"

    @property
    def memory_block_size(self) -> int:
        """``memory_block_size_bytes()`` (``probe_memory_block_size()``, v5.4 init_64.c) on
        a machine with less than 64 GiB of boot memory: ``MIN_MEMORY_BLOCK_SIZE``, 128 MiB."""
        return self._macros["MIN_MEMORY_BLOCK_SIZE"]

    # ------------------------------------------------------------------ macros
    @cached_property
    def _macros(self) -> Mapping[str, int]:
        return MappingProxyType(layout_macros(levels=self.levels, kasan=self.kasan, ghes=self.ghes))

    def macros(self) -> dict[str, int]:
        """The kernel's macro names and their values (:mod:`mmkit_x86_64.layout`)."""
        return dict(self._macros)

    @property
    def derived_macros(self) -> frozenset[str]:
        """Names in :meth:`macros` that v5.4 x86 does not define (mmkit's own)."""
        return DERIVED_MACROS

    @property
    def vmemmap_end(self) -> int:
        return self._macros["VMEMMAP_END"]

    # ------------------------------------------------------------------ regions
    @cached_property
    def regions(self) -> tuple[Region, ...]:
        """The VA layout of Documentation/x86/x86_64/mm.rst, holes included."""
        return layout_regions(dict(self._macros))

    def region(self, kind: str) -> Region:
        """The (first) region of a kind, e.g. ``region("vmalloc")``."""
        for r in self.regions:
            if r.kind == kind:
                return r
        raise InvalidArgument(
            f"{self.name} has no {kind!r} region", choices=sorted({r.kind for r in self.regions})
        )

    def region_of(self, va: int) -> Region:
        """The region holding ``va``."""
        for r in self.regions:
            if va in r:
                return r
        raise InvalidArgument(f"{va!r} is not a 64-bit address")

    # ------------------------------------------------------------------ translation
    def kernel_va_start(self) -> int:
        """The first kernel-half address: ``-(1 << __VIRTUAL_MASK_SHIFT)``, the start of the
        upper half of ``init_top_pgt`` (``PGD_KERNEL_START``)."""
        return -(1 << self._macros["__VIRTUAL_MASK_SHIFT"]) & _M64

    def indices(self, va: int) -> list[tuple[Level, int]]:
        """``pgd_index()``, ``p4d_index()``... of ``va`` at every level with tables.

        Any 64-bit address has them: ``init_top_pgt`` spans the whole address space (its
        user half is empty) and the index macros only mask bits, as the MMU does; only a
        non-canonical address would fault (#GP) before any walk.
        """
        if not isinstance(va, int) or isinstance(va, bool) or not 0 <= va < 1 << 64:
            raise InvalidArgument(f"VA {va!r} is not a 64-bit unsigned integer")
        return [(lv, lv.index(va)) for lv in self.geometry.levels_used]


@dataclass(frozen=True)
class X86Plugin:
    """The x86_64 family as an ``mmkit.arch`` plugin (:class:`mmkit.plugins.ArchPlugin`)."""

    api_version: str = "1.0"
    family: str = "x86_64"

    def names(self) -> Sequence[str]:
        return CONFIGS

    def describe(self, name: str) -> str:
        d = self.create(name)
        return f"4K pages, {d.va_bits}-bit VA, {d.levels}-level paging (v5.4, KASLR off)"

    def create(self, name: str, **options: Any) -> X86Descriptor:
        if name not in _LEVELS:
            raise UnknownName(f"unknown x86_64 configuration {name!r}", choices=CONFIGS)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise InvalidArgument(
                f"{name}: unknown option(s) {', '.join(unknown)}", choices=tuple(OPTIONS)
            )
        for option, value in options.items():
            valid = OPTIONS[option]
            if not any(type(value) is type(v) and value == v for v in valid):
                raise InvalidArgument(
                    f"{name}: {option}={value!r} is not valid",
                    choices=tuple(repr(v) for v in valid),
                )
        return X86Descriptor(_LEVELS[name], **options)


#: What the ``mmkit.arch`` entry point names.
PLUGIN = X86Plugin()

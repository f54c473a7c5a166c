"""The built-in arm64 architecture family: the 8 configurations the v5.4 Kconfig allows.

Each configuration is named ``arm64-<granule>-<VA bits>`` and built by :class:`Arm64Plugin`,
which mmkit registers through its own ``mmkit.arch`` entry point exactly as a third-party
plugin would. Options choose the kernel era (``kernel="v5.3" | "v5.4" | "v5.7" | "v6.1"``),
KASAN (``None | "generic" | "sw_tags"``), the hardware VA size of a 52-bit build
(``vabits_actual``), the physical address size (``pa_bits``) and the config options that
size the fixmap (``ghes``, ``sdei``, ``kpti``, ``relocatable``). Invalid combinations raise
:class:`~mmkit.errors.InvalidArgument` naming the valid choices, as Kconfig would refuse them.

>>> d = PLUGIN.create("arm64-4k-48")
>>> hex(d.macros()["VMALLOC_END"]), d.vmalloc_vmemmap_overlap.overlap
('0xfffffdffbfff0000', True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from types import MappingProxyType
from typing import Any

from mmkit._readable import HexInt
from mmkit.arch.base import KERNEL_ERAS, Level, OverlapReport, Region
from mmkit.arch.geometry import GRANULES, Geometry
from mmkit.arch.layout import (
    STRUCT_PAGE_MAX_SHIFT,
    fixmap_slots,
    layout_macros,
    regions_from_macros,
)
from mmkit.arch.overlap import vmalloc_vmemmap_overlap
from mmkit.errors import InvalidArgument, UnknownName

__all__ = ["CONFIGS", "PLUGIN", "Arm64Descriptor", "Arm64Plugin"]

#: Which VA sizes each granule may choose (v5.4 ``arch/arm64/Kconfig``, "Virtual address
#: space size" and its ``depends on`` lines). Levels follow from the formulas.
KCONFIG_VA_BITS: dict[str, tuple[int, ...]] = {
    "4k": (39, 48),
    "16k": (36, 47, 48),
    "64k": (42, 48, 52),
}

#: The configuration names, in the registry's sorted order.
CONFIGS: tuple[str, ...] = tuple(
    sorted(
        (f"arm64-{g}-{va}" for g, vas in KCONFIG_VA_BITS.items() for va in vas),
        key=lambda n: (GRANULES[n.split("-")[1]].page_shift, int(n.split("-")[2])),
    )
)

#: ``macros()`` keys that hold an address, a size or an offset: shown in hex (:class:`HexInt`).
_HEX_MACRO_SUFFIXES = ("_START", "_END", "_SIZE", "_VSIZE", "_VADDR", "_TOP", "_OFFSET")

_OPTION_NAMES = (
    "kernel",
    "kasan",
    "vabits_actual",
    "pa_bits",
    "ghes",
    "sdei",
    "kpti",
    "relocatable",
)


@dataclass(frozen=True)
class Arm64Descriptor:
    """One arm64 kernel configuration: geometry, VA layout and the V7 overlap test.

    Build it with :func:`mmkit.arch.get` (or :meth:`Arm64Plugin.create`), which validates
    the options; the constructor itself assumes they are valid. Immutable and hashable.
    """

    granule: str
    va_bits: int
    kernel: str = "v5.4"
    kasan: str | None = None
    vabits_actual: int = 0  #: 0 means "as VA_BITS" (set by create())
    pa_bits: int = 48
    ghes: bool = True
    sdei: bool = False
    kpti: bool = True
    relocatable: bool = True

    # ----------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return f"arm64-{self.granule}-{self.va_bits}"

    @property
    def family(self) -> str:
        return "arm64"

    def options(self) -> dict[str, object]:
        """The options this descriptor was built with (what :func:`mmkit.arch.get` takes)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in _OPTION_NAMES}

    # ----------------------------------------------------------------- geometry
    @cached_property
    def kernel_va_bits(self) -> int:
        """``VA_BITS`` of the kernel: v5.3's 52-bit option was for user space only (48)."""
        return 48 if self.kernel == "v5.3" and self.va_bits == 52 else self.va_bits

    @cached_property
    def geometry(self) -> Geometry:
        index_bits = self.va_bits if self.kernel in ("v5.3", "v5.4") else self.kernel_va_bits
        section_bits = (29 if self.granule == "64k" else 27) if self.kernel == "v6.1" else 30
        return Geometry(
            page_shift=GRANULES[self.granule].page_shift,
            va_bits=self.kernel_va_bits,
            index_va_bits=index_bits,
            pa_bits=self.pa_bits,
            section_size_bits=section_bits,
        )

    @property
    def page_shift(self) -> int:
        return self.geometry.page_shift

    @property
    def page_size(self) -> int:
        return self.geometry.page_size

    @property
    def levels(self) -> int:
        return self.geometry.levels

    @property
    def level_info(self) -> tuple[Level, ...]:
        """Every Linux level (``pgd``, ``pud``, ``pmd``, ``pte``), folded ones included."""
        return self.geometry.levels_all

    @property
    def folded_levels(self) -> tuple[str, ...]:
        return self.geometry.folded

    @property
    def expert_only(self) -> bool:
        """16K/36 is only offered with ``CONFIG_EXPERT`` (the prompt depends on it)."""
        return self.granule == "16k" and self.va_bits == 36

    @property
    def block_sizes(self) -> dict[str, tuple[int, ...]]:
        """Block sizes per lookup level: ``linux`` (used by the kernel) and ``hardware``."""
        linux = tuple(lv.entry_size for lv in self.geometry.levels_used if lv.linux_block)
        hw = tuple(lv.entry_size for lv in self.geometry.levels_used if lv.hw_block)
        return {"linux": linux, "hardware": hw}

    @property
    def vmemmap_population(self) -> str:
        """How ``vmemmap_populate()`` maps struct pages: 2 MiB PMD blocks with 4K
        (``ARM64_SWAPPER_USES_SECTION_MAPS``), base pages otherwise."""
        return "pmd_blocks" if self.geometry.swapper_uses_section_maps else "base_pages"

    @property
    def memory_block_size(self) -> int:
        """``memory_block_size_bytes()``: arm64 keeps the default, one section."""
        return self.geometry.section_size

    @property
    def fixmap_slots(self) -> int:
        return fixmap_slots(
            self.page_shift,
            kernel=self.kernel,
            ghes=self.ghes,
            sdei=self.sdei,
            kpti=self.kpti,
            relocatable=self.relocatable,
        )

    # ------------------------------------------------------------------ macros
    @cached_property
    def _macros(self) -> Mapping[str, int]:
        g = self.geometry
        m: dict[str, int] = {
            "VA_BITS": g.va_bits,
            "PGTABLE_LEVELS": g.levels,
            "PAGE_SHIFT": g.page_shift,
            "PAGE_SIZE": g.page_size,
            "PGDIR_SHIFT": g.pgdir_shift,
            "PGDIR_SIZE": 1 << g.pgdir_shift,
            "PUD_SHIFT": g.pud_shift,
            "PUD_SIZE": 1 << g.pud_shift,
            "PMD_SHIFT": g.pmd_shift,
            "PMD_SIZE": 1 << g.pmd_shift,
            "SECTION_SHIFT": g.pmd_shift,
            "SECTION_SIZE": 1 << g.pmd_shift,
            "PTRS_PER_PGD": g.ptrs_per_pgd,
            "PTRS_PER_PUD": g.ptrs_per_pud,
            "PTRS_PER_PMD": g.ptrs_per_pmd,
            "PTRS_PER_PTE": g.ptrs_per_table,
            "CONT_PTE_SHIFT": g.granule.cont_pte_shift,
            "CONT_PTES": 1 << g.granule.cont_pte_shift,
            "CONT_PTE_SIZE": g.cont_pte_size,
            "CONT_PMD_SHIFT": g.granule.cont_pmd_shift,
            "CONT_PMDS": 1 << g.granule.cont_pmd_shift,
            "CONT_PMD_SIZE": g.cont_pmd_size,
            "SECTION_SIZE_BITS": g.section_size_bits,
            "MAX_PHYSMEM_BITS": g.pa_bits,
            "PAGES_PER_SECTION": g.pages_per_section,
            "MIN_MEMORY_BLOCK_SIZE": g.section_size,
            "STRUCT_PAGE_MAX_SHIFT": STRUCT_PAGE_MAX_SHIFT,
            "MAX_TLBI_OPS": g.ptrs_per_table,
            "ARM64_SWAPPER_USES_SECTION_MAPS": int(g.swapper_uses_section_maps),
            "SWAPPER_BLOCK_SIZE": (1 << g.pmd_shift)
            if g.swapper_uses_section_maps
            else g.page_size,
        }
        if self.kernel in ("v5.3", "v5.4"):
            m["MAX_USER_VA_BITS"] = 52 if self.va_bits == 52 else g.va_bits
        m.update(
            layout_macros(
                g,
                kernel=self.kernel,
                kasan=self.kasan,
                vabits_actual=self.vabits_actual or g.va_bits,
                fixmap_size=self.fixmap_slots * g.page_size,
            )
        )
        return MappingProxyType(m)

    @property
    def derived_macros(self) -> frozenset[str]:
        """Names in :meth:`macros` that this era's kernel does not define itself: mmkit
        computes them with the later kernel's formula so every era answers alike."""
        # VMEMMAP_END came with the hot-remove patch (v5.7)
        return frozenset({"VMEMMAP_END"}) if self.kernel in ("v5.3", "v5.4") else frozenset()

    def macros(self) -> dict[str, int]:
        """The kernel's own macro names and their values in this configuration.

        Folded levels read as the kernel folds them (``PUD_SHIFT == PGDIR_SHIFT`` below 4
        levels). ``VMEMMAP_END`` is the name the hot-remove patch added in v5.7; earlier eras
        get ``VMEMMAP_START + VMEMMAP_SIZE`` under that name (see :attr:`derived_macros`).
        v5.3's ``PAGE_END`` is 0: its linear map runs to the top of the address space.

        Values are ints. Addresses and sizes, the keys ending in ``_START``, ``_END``,
        ``_SIZE``, ``_VSIZE``, ``_VADDR``, ``_TOP`` or ``_OFFSET`` (``VMALLOC_END``,
        ``PAGE_OFFSET``, ``PGDIR_SIZE``...), are :class:`~mmkit._readable.HexInt` so that they
        show in hex; shifts, bit counts and entry counts (``PAGE_SHIFT``, ``VA_BITS``,
        ``PTRS_PER_PGD``...) are plain ints and show in decimal. ``str()`` stays decimal.

        >>> from mmkit import arch
        >>> m = arch.get("arm64-4k-48").macros()
        >>> m["VMALLOC_END"], m["PAGE_SIZE"], m["PGDIR_SHIFT"]
        (0xfffffdffbfff0000, 0x1000, 39)
        >>> m["VMALLOC_END"] == 18446741873612488704
        True
        """
        return dict(self._readable_macros)

    @cached_property
    def _readable_macros(self) -> Mapping[str, int]:
        return MappingProxyType(
            {
                k: HexInt(v) if k.endswith(_HEX_MACRO_SUFFIXES) else v
                for k, v in self._macros.items()
            }
        )

    @property
    def vmemmap_end(self) -> int:
        """``VMEMMAP_START + VMEMMAP_SIZE`` in every era (a named macro only from v5.7)."""
        return self._macros["VMEMMAP_START"] + self._macros["VMEMMAP_SIZE"]

    # ----------------------------------------------------------------- regions
    @cached_property
    def regions(self) -> tuple[Region, ...]:
        """The VA layout as memory.rst tables it, in address order, holes included."""
        m = dict(self._macros)
        m.setdefault("VMEMMAP_END", self.vmemmap_end)
        user_bits = 52 if self.va_bits == 52 else self.kernel_va_bits
        kernel_start = m.get("VA_START", m["PAGE_OFFSET"])
        return regions_from_macros(m, user_va_bits=user_bits, kernel_va_start=kernel_start)

    def region(self, kind: str) -> Region:
        """The (first) region of a kind, e.g. ``region("vmalloc")``."""
        for r in self.regions:
            if r.kind == kind:
                return r
        raise InvalidArgument(
            f"{self.name} ({self.kernel}) has no {kind!r} region",
            choices=sorted({r.kind for r in self.regions}),
        )

    def region_of(self, va: int) -> Region:
        """The region holding ``va``."""
        if not isinstance(va, int) or not 0 <= va < 1 << 64:
            raise InvalidArgument(f"VA {va!r:.40} is not a 64-bit unsigned integer")
        for r in self.regions:
            if va in r:
                return r
        raise InvalidArgument(f"{va:#x} is not a 64-bit address")

    @cached_property
    def vmalloc_vmemmap_overlap(self) -> OverlapReport:
        """The V7 3/3 overlap test on this layout (see :class:`~mmkit.arch.base.OverlapReport`)."""
        return vmalloc_vmemmap_overlap(self)

    # ------------------------------------------------------------- translation
    def kernel_va_start(self) -> int:
        """First VA that TTBR1 translates: bits [63:vabits_actual] all ones."""
        return (-(1 << (self.vabits_actual or self.kernel_va_bits))) & ((1 << 64) - 1)

    def indices(self, va: int) -> list[tuple[Level, int]]:
        """The table index of ``va`` at every level that has table pages, top first.

        Raises :class:`~mmkit.errors.InvalidArgument` for an address TTBR1 does not
        translate (the kernel page tables hold only the top ``2**VA_BITS`` bytes).
        """
        if not isinstance(va, int) or not 0 <= va < 1 << 64:
            raise InvalidArgument(f"VA {va!r} is not a 64-bit unsigned integer")
        if va < self.kernel_va_start():
            raise InvalidArgument(
                f"{va:#018x} is not a kernel address in {self.name}: TTBR1 translates only "
                f"[{self.kernel_va_start():#018x}, 2**64); use an address at or above it"
            )
        return [(lv, lv.index(va)) for lv in self.geometry.levels_used]


@dataclass(frozen=True)
class Arm64Plugin:
    """The arm64 family as an ``mmkit.arch`` plugin."""

    api_version: str = "1.0"
    family: str = "arm64"

    def names(self) -> Sequence[str]:
        return CONFIGS

    def describe(self, name: str) -> str:
        d = self.create(name)
        return f"{d.granule.upper()} pages, {d.va_bits}-bit VA, {d.levels} levels" + (
            " (needs CONFIG_EXPERT)" if d.expert_only else ""
        )

    def create(self, name: str, **options: Any) -> Arm64Descriptor:
        if name not in CONFIGS:
            raise UnknownName(f"unknown arm64 configuration {name!r}", choices=CONFIGS)
        unknown = sorted(set(options) - set(_OPTION_NAMES))
        if unknown:
            raise InvalidArgument(
                f"{name}: unknown option(s) {', '.join(unknown)}", choices=_OPTION_NAMES
            )
        _, granule, va = name.split("-")
        va_bits = int(va)
        kernel = options.get("kernel", "v5.4")
        if kernel not in KERNEL_ERAS:
            raise InvalidArgument(f"{name}: unknown kernel era {kernel!r}", choices=KERNEL_ERAS)
        kasan = options.get("kasan")
        if kasan not in (None, "generic", "sw_tags"):
            raise InvalidArgument(
                f"{name}: kasan={kasan!r} is not a KASAN mode",
                choices=["None", "generic", "sw_tags"],
            )
        if kasan and granule == "16k" and va_bits == 48:
            raise InvalidArgument(
                f"{name}: KASAN is impossible on 16K/48 (arm64 Kconfig selects HAVE_ARCH_KASAN "
                "only if !(ARM64_16K_PAGES && ARM64_VA_BITS_48)); use kasan=None or another "
                "configuration"
            )
        for flag in ("ghes", "sdei", "kpti", "relocatable"):
            if flag in options and not isinstance(options[flag], bool):
                raise InvalidArgument(f"{name}: option {flag} must be True or False")
        pa_bits = options.get("pa_bits", 48)
        if pa_bits not in (48, 52) or (pa_bits == 52 and granule != "64k"):
            raise InvalidArgument(
                f"{name}: pa_bits={pa_bits!r}; 52-bit PA (ARM64_PA_BITS_52) needs 64K pages",
                choices=["48", "52"] if granule == "64k" else ["48"],
            )
        kernel_va = 48 if kernel == "v5.3" and va_bits == 52 else va_bits
        actual = options.get("vabits_actual", kernel_va)
        allowed = (48, 52) if kernel_va == 52 else (kernel_va,)
        if actual not in allowed or isinstance(actual, bool):
            raise InvalidArgument(
                f"{name} ({kernel}): vabits_actual={actual!r}; only a 52-bit kernel VA build "
                "can run on 48-bit hardware",
                choices=[str(a) for a in allowed],
            )
        return Arm64Descriptor(
            granule=granule,
            va_bits=va_bits,
            kernel=kernel,
            kasan=kasan,
            vabits_actual=actual,
            pa_bits=pa_bits,
            ghes=options.get("ghes", True),
            sdei=options.get("sdei", False),
            kpti=options.get("kpti", True),
            relocatable=options.get("relocatable", True),
        )


PLUGIN = Arm64Plugin()

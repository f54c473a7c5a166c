"""mmkit-example-arch: a toy two-level page-table family, the smallest complete plugin.

Every number is computed from the page shift, the VA size and the user/kernel split, the
way Linux derives its macros: 8-byte descriptors, so a table page holds
``2**(PAGE_SHIFT - 3)`` entries; two levels (PGD and PTE, no PUD or PMD), so
``PGDIR_SHIFT = PAGE_SHIFT + (PAGE_SHIFT - 3)``; and a 32-bit-style layout where user space
takes the low part of the VA range and the kernel the rest::

    [0, PAGE_OFFSET)            user space
    [PAGE_OFFSET, +lowmem)      linear map (half of the kernel's share)
    [VMEMMAP_START, +...)       vmemmap: one 64-byte struct page per linear-map page
    one PGD entry or more       guard
    [VMALLOC_START, VMALLOC_END)
    one PGD entry               guard
    [FIXADDR_START, 2**VA_BITS) fixmap: the top PGD entry

mmkit finds it through this distribution's entry point (``pyproject.toml``)::

    [project.entry-points."mmkit.arch"]
    toy = "mmkit_example_arch:PLUGIN"

>>> d = PLUGIN.create("toy-4k-32")
>>> d.macros()["PGDIR_SHIFT"], d.macros()["PTRS_PER_PGD"], hex(d.macros()["PAGE_OFFSET"])
(21, 2048, '0xc0000000')
>>> PLUGIN.create("toy-4k-32", vmsplit="2:2").macros()["PAGE_OFFSET"] == 1 << 31
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmkit.errors import InvalidArgument, UnknownName

__all__ = ["CONFIGS", "PLUGIN", "VMSPLITS", "ToyDescriptor", "ToyPlugin", "ToyRegion"]

#: Page shift of each granule name.
_GRANULES = {"4k": 12, "16k": 14, "64k": 16}

#: ``name -> (page_shift, va_bits)``. The 30/36/42-bit ones fill exactly one PGD page; the
#: 32-bit one has a 4-page PGD, like 32-bit Arm's 16 KB swapper_pg_dir.
_CONFIGS: dict[str, tuple[int, int]] = {
    "toy-4k-30": (12, 30),
    "toy-4k-32": (12, 32),
    "toy-16k-36": (14, 36),
    "toy-64k-42": (16, 42),
}

#: The configuration names, in natural order (``mmkit.plugins.natural_key``).
CONFIGS: tuple[str, ...] = tuple(_CONFIGS)

#: ``vmsplit`` option values: user quarters : kernel quarters of the VA range, like Linux's
#: CONFIG_VMSPLIT_3G / _2G / _1G on 32-bit machines.
VMSPLITS: tuple[str, ...] = ("3:1", "2:2", "1:3")

_OPTIONS = ("vmsplit",)
_STRUCT_PAGE_SHIFT = 6  # sizeof(struct page) == 64, as arm64's STRUCT_PAGE_MAX_SHIFT


@dataclass(frozen=True)
class ToyRegion:
    """One VA region ``[start, end)``."""

    name: str
    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class ToyDescriptor:
    """One toy configuration: a value, so equal inputs give equal descriptors."""

    page_shift: int
    va_bits: int
    vmsplit: str = "3:1"

    @property
    def name(self) -> str:
        size = {12: "4k", 14: "16k", 16: "64k"}[self.page_shift]
        return f"toy-{size}-{self.va_bits}"

    def macros(self) -> dict[str, int]:
        """The Linux-style macros of this layout, all derived from three inputs."""
        page_shift, va_bits = self.page_shift, self.va_bits
        ptrs_per_pte = 1 << (page_shift - 3)  # 8-byte descriptors in one page
        pgdir_shift = page_shift + (page_shift - 3)  # two levels: PGD then PTE
        pgdir_size = 1 << pgdir_shift
        va_size = 1 << va_bits
        user_quarters = int(self.vmsplit.split(":")[0])
        page_offset = va_size // 4 * user_quarters
        lowmem = (va_size - page_offset) // 2
        vmemmap_start = page_offset + lowmem
        vmemmap_end = vmemmap_start + (lowmem >> page_shift << _STRUCT_PAGE_SHIFT)
        # Round up to a PGD entry, then leave one whole entry unmapped as a guard.
        vmalloc_start = -(-vmemmap_end // pgdir_size) * pgdir_size + pgdir_size
        fixaddr_start = va_size - pgdir_size
        return {
            "PAGE_SHIFT": page_shift,
            "PAGE_SIZE": 1 << page_shift,
            "VA_BITS": va_bits,
            "PGTABLE_LEVELS": 2,
            "PGDIR_SHIFT": pgdir_shift,
            "PGDIR_SIZE": pgdir_size,
            "PTRS_PER_PGD": 1 << (va_bits - pgdir_shift),
            "PTRS_PER_PTE": ptrs_per_pte,
            "STRUCT_PAGE_MAX_SHIFT": _STRUCT_PAGE_SHIFT,
            "TASK_SIZE": page_offset,
            "PAGE_OFFSET": page_offset,
            "VMEMMAP_START": vmemmap_start,
            "VMEMMAP_END": vmemmap_end,
            "VMALLOC_START": vmalloc_start,
            "VMALLOC_END": fixaddr_start - pgdir_size,
            "FIXADDR_START": fixaddr_start,
            "FIXADDR_TOP": va_size,
        }

    @property
    def regions(self) -> tuple[ToyRegion, ...]:
        """The whole VA range, in address order, guards included."""
        m = self.macros()
        return (
            ToyRegion("user space", "user", 0, m["TASK_SIZE"]),
            ToyRegion("linear map", "linear", m["PAGE_OFFSET"], m["VMEMMAP_START"]),
            ToyRegion("vmemmap", "vmemmap", m["VMEMMAP_START"], m["VMEMMAP_END"]),
            ToyRegion("[guard region]", "guard", m["VMEMMAP_END"], m["VMALLOC_START"]),
            ToyRegion("vmalloc", "vmalloc", m["VMALLOC_START"], m["VMALLOC_END"]),
            ToyRegion("[guard region]", "guard", m["VMALLOC_END"], m["FIXADDR_START"]),
            ToyRegion("fixmap", "fixmap", m["FIXADDR_START"], m["FIXADDR_TOP"]),
        )


@dataclass(frozen=True)
class ToyPlugin:
    """The toy family as an ``mmkit.arch`` plugin (see :class:`mmkit.plugins.ArchPlugin`)."""

    api_version: str = "1.0"
    family: str = "toy"

    def names(self) -> Sequence[str]:
        return CONFIGS

    def describe(self, name: str) -> str:
        m = self.create(name).macros()
        return (
            f"{m['PAGE_SIZE'] >> 10}K pages, {m['VA_BITS']}-bit VA, 2 levels "
            f"(PGD {m['PTRS_PER_PGD']} entries, PTE {m['PTRS_PER_PTE']} entries)"
        )

    def create(self, name: str, **options: Any) -> ToyDescriptor:
        if name not in _CONFIGS:
            raise UnknownName(
                f"mmkit-example-arch: unknown toy configuration {name!r}", choices=CONFIGS
            )
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise InvalidArgument(
                f"mmkit-example-arch[{name}]: unknown option(s) {', '.join(unknown)}; remove them",
                choices=_OPTIONS,
            )
        vmsplit = options.get("vmsplit", "3:1")
        if not isinstance(vmsplit, str) or vmsplit not in VMSPLITS:
            raise InvalidArgument(
                f"mmkit-example-arch[{name}]: vmsplit={vmsplit!r} is not a user:kernel split",
                choices=VMSPLITS,
            )
        page_shift, va_bits = _CONFIGS[name]
        return ToyDescriptor(page_shift, va_bits, vmsplit)


#: What the entry point names.
PLUGIN = ToyPlugin()

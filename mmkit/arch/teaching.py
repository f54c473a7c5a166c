"""The teaching layout: arm64 with a vmalloc/vmemmap table that nothing else pins.

Not a kernel layout. On every real v5.4 layout the only table page that maps both vmalloc
and vmemmap addresses is a PUD table that also holds the fixmap's entry (and the first
struct pages of boot memory), so it can never become empty and the vmalloc race of patch
3/3 stays latent (kernel-facts 3.5, 7.2). To let learners *see* that race, this family moves
the pieces the way a layout change could have, keeping every formula and size of the base
configuration (``teach-4k-39`` is ``arm64-4k-39`` rearranged):

* the vmemmap sits directly **below** the vmalloc area, 64 KiB apart (V7's overlap test
  handles this order in its second branch: the gap runs from ``VMEMMAP_END`` to
  ``VMALLOC_START``);
* ``VMEMMAP_END`` is one memory block's memmap above a boundary of the table that holds the
  vmemmap's leaf entries (a PMD table with 4K pages, whose entries are 2 MiB blocks; a PTE
  table otherwise), so that table, *T*, maps the memmap of the topmost memory block of the
  linear map and the first vmalloc addresses, and nothing else;
* the fixmap and PCI I/O move to the top of the address space, and the kernel image sits one
  table span above ``VMALLOC_START`` (inside the vmalloc area, as KASLR may put it), so
  neither pins *T*. BPF JIT and modules stay below, where v5.4 has them.

Hot-adding the topmost block fills *T* with its memmap; a ``vmalloc()`` of the first free
area then walks through *T*. See :func:`mmkit.scenarios.races.vmalloc_race`.

Registered through the ``mmkit.arch`` entry point ``arm64-teaching``, exactly as a
third-party family would be.

>>> d = PLUGIN.create("teach-4k-39")
>>> hex(d.macros()["VMEMMAP_END"]), hex(d.macros()["VMALLOC_START"])
('0xffffffc141000000', '0xffffffc141010000')
>>> d.vmalloc_vmemmap_overlap.overlap, [t.level for t in d.vmalloc_vmemmap_overlap.shared_tables]
(True, ['pmd'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from mmkit.arch.arm64 import CONFIGS as ARM64_CONFIGS
from mmkit.arch.arm64 import PLUGIN as ARM64
from mmkit.arch.arm64 import Arm64Descriptor
from mmkit.arch.layout import STRUCT_PAGE_MAX_SHIFT
from mmkit.errors import InvalidArgument, UnknownName

__all__ = ["CONFIGS", "PLUGIN", "TeachingDescriptor", "TeachingPlugin"]

_M64 = (1 << 64) - 1
_SZ_64K = 64 << 10
_SZ_2M = 2 << 20
_SZ_16M = 16 << 20

#: The eras whose layout shape the teaching variant rearranges (v5.4's; v5.7 only renames).
ERAS: tuple[str, ...] = ("v5.4", "v5.7")

#: Every non-52-bit arm64 configuration, as ``teach-<granule>-<VA bits>``.
CONFIGS: tuple[str, ...] = tuple(
    n.replace("arm64-", "teach-", 1) for n in ARM64_CONFIGS if not n.endswith("-52")
)


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


@dataclass(frozen=True)
class TeachingDescriptor(Arm64Descriptor):
    """An arm64 configuration with the teaching layout (see the module docstring)."""

    @property
    def name(self) -> str:
        return f"teach-{self.granule}-{self.va_bits}"

    @property
    def family(self) -> str:
        return "arm64-teaching"

    @property
    def teaching_layout(self) -> bool:
        """Not a kernel's layout: lessons about real kernels leave it out."""
        return True

    @property
    def base_name(self) -> str:
        """The real configuration this layout rearranges."""
        return f"arm64-{self.granule}-{self.va_bits}"

    @cached_property
    def shared_table_span(self) -> int:
        """VA span of table *T*: one entry of the level above the vmemmap's leaf entries
        (``PUD_SIZE`` with 4K pages, whose vmemmap uses PMD blocks; ``PMD_SIZE`` else)."""
        g = self.geometry
        return 1 << (g.pud_shift if g.swapper_uses_section_maps else g.pmd_shift)

    @cached_property
    def _macros(self) -> Mapping[str, int]:
        m = dict(Arm64Descriptor._macros.func(self))  # type: ignore[attr-defined]
        span = self.shared_table_span
        # the memmap of one memory block: what the topmost block puts in T
        tail = self.memory_block_size >> (self.page_shift - STRUCT_PAGE_MAX_SHIFT)
        boundary = _align_up(m["MODULES_END"] + m["VMEMMAP_SIZE"], span)
        m["VMEMMAP_START"] = boundary + tail - m["VMEMMAP_SIZE"]
        m["VMEMMAP_END"] = boundary + tail
        m["VMALLOC_START"] = m["VMEMMAP_END"] + _SZ_64K
        m["KIMAGE_VADDR"] = boundary + span
        top = -m["PUD_SIZE"] & _M64  # the top PUD_SIZE slot, as v5.4 leaves one
        m["VMALLOC_END"] = top - _SZ_64K
        m["PCI_IO_END"] = (-2 * _SZ_2M) & _M64
        m["PCI_IO_START"] = m["PCI_IO_END"] - _SZ_16M
        m["FIXADDR_TOP"] = m["PCI_IO_START"] - _SZ_2M
        m["FIXADDR_START"] = m["FIXADDR_TOP"] - m["FIXADDR_SIZE"]
        return MappingProxyType(m)

    @property
    def vmemmap_end(self) -> int:
        return self._macros["VMEMMAP_END"]


@dataclass(frozen=True)
class TeachingPlugin:
    """The teaching family as an ``mmkit.arch`` plugin."""

    api_version: str = "1.0"
    family: str = "arm64-teaching"

    def names(self) -> Sequence[str]:
        return CONFIGS

    def describe(self, name: str) -> str:
        d = self.create(name)
        return (
            f"teaching layout of {d.base_name}: vmemmap right below vmalloc, one "
            f"{d.shared_table_span >> 20} MiB table shared by nothing else (not a kernel layout)"
        )

    def create(self, name: str, **options: Any) -> TeachingDescriptor:
        if name not in CONFIGS:
            raise UnknownName(f"unknown teaching configuration {name!r}", choices=CONFIGS)
        kernel = options.get("kernel", "v5.4")
        if kernel not in ERAS:
            raise InvalidArgument(
                f"{name}: the teaching layout rearranges the v5.4 layout shape; "
                f"kernel={kernel!r} is not one of its eras",
                choices=ERAS,
            )
        base = ARM64.create(name.replace("teach-", "arm64-", 1), **options)
        return TeachingDescriptor(**asdict(base))


PLUGIN = TeachingPlugin()

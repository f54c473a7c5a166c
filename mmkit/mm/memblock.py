"""memblock: the boot-time physical memory map, and why hot-remove's order of calls matters.

Models v5.4 ``mm/memblock.c`` (identical in v5.3 and v5.7 for everything here) and
``include/linux/memblock.h``: two sorted arrays of regions, ``memory`` (what RAM exists) and
``reserved`` (what of it boot code took), kept *minimal*: no two neighbouring regions that
touch and share a node and flags are left unmerged. arm64 keeps memblock after boot
(``CONFIG_ARCH_KEEP_MEMBLOCK``) because its :func:`pfn_valid` asks it, and that is the link
patch 1/3 of "arm64/mm: Enable memory hot remove" is about (kernel-facts 4.1): in v5.3
``try_remove_memory()`` ran ``memblock_remove()`` *before* ``remove_memory_block_devices()``,
so the node-link teardown saw ``pfn_valid() == 0``, ``get_nid_for_pfn() == -1``, left the
sysfs links behind and the next hot-add hit ``BUG_ON(-EEXIST)``.

>>> mb = Memblock()
>>> mb.add_node(0x4000_0000, 0x4000_0000, 0)
>>> mb.add_node(0x8000_0000, 0x4000_0000, 0)          # touches, same nid and flags: merged
>>> [(hex(r.base), hex(r.size)) for r in mb.regions("memory")]
[('0x40000000', '0x80000000')]
>>> mb.remove(0x6000_0000, 0x1000_0000)                # a hole in the middle splits it
>>> [(hex(r.base), hex(r.end)) for r in mb.regions("memory")]
[('0x40000000', '0x60000000'), ('0x70000000', '0xc0000000')]

Simplifications: the region arrays grow without bound (``memblock_double_array()`` and its
``-ENOMEM`` are not modelled, so nothing here fails after validation); the kernel keeps one
dummy zero-size region in an empty array, mmkit keeps an empty list and reports what the
dummy would (``memblock_start_of_DRAM() == 0``); the allocator (``memblock_phys_alloc*``) and
``memblock.current_limit`` are not modelled. Where the kernel silently returns 0 for a zero
size, mmkit is stricter (see :func:`check_range`).

The code lives in two modules, and everything is re-exported here, which is the place to
import it from:

* :mod:`mmkit.mm.memblock_regions`: the records (:class:`MemblockRegion`,
  :class:`MemblockFlags`, :class:`MemblockType`), range validation, and the arithmetic on one
  type (add, isolate, remove, merge, set/clear a flag, search, :func:`for_each_mem_range`);
* this module: the :class:`Memblock` object with the kernel's entry points and queries, and
  arm64 :func:`pfn_valid` / :func:`pfn_valid_why`.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass

from mmkit._readable import record_repr
from mmkit.errors import InvalidArgument, UnknownName
from mmkit.mm.memblock_regions import (
    MAX_NUMNODES,
    NUMA_NO_NODE,
    PHYS_ADDR_MAX,
    MemblockFlags,
    MemblockRegion,
    MemblockType,
    _check_addr,
    check_range,
    for_each_mem_range,
    memblock_add_range,
    memblock_cap_size,
    memblock_isolate_range,
    memblock_merge_regions,
    memblock_remove_range,
    memblock_search,
    memblock_setclr_flag,
)

__all__ = [
    "MAX_NUMNODES",
    "NUMA_NO_NODE",
    "PFN_VALID_KERNELS",
    "PHYS_ADDR_MAX",
    "Memblock",
    "MemblockFlags",
    "MemblockRegion",
    "MemblockType",
    "PfnValidity",
    "check_range",
    "for_each_mem_range",
    "memblock_add_range",
    "memblock_cap_size",
    "memblock_isolate_range",
    "memblock_merge_regions",
    "memblock_remove_range",
    "memblock_search",
    "memblock_setclr_flag",
    "pfn_valid",
    "pfn_valid_why",
]


# --------------------------------------------------------------------------- the object
class Memblock:
    """``struct memblock memblock``: the ``memory`` and ``reserved`` arrays with the kernel's
    entry points as methods (v5.4 mm/memblock.c; names as in v5.4, where ``memblock_free``
    still takes a physical range; v5.16 renamed it ``memblock_phys_free``).

    ``warnings`` collects the messages of the kernel's ``WARN_ON``\\s (an add whose nid or
    flags disagree with a region it runs into). Every method validates first, so a call that
    raises has changed nothing.
    """

    def __init__(self, *, max_numnodes: int = MAX_NUMNODES) -> None:
        self.memory = MemblockType("memory")
        self.reserved = MemblockType("reserved")
        self.max_numnodes = max_numnodes
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"Memblock(memory={self.memory.regions!r}, reserved={self.reserved.regions!r})"

    def _type(self, name: str) -> MemblockType:
        if name == "memory":
            return self.memory
        if name == "reserved":
            return self.reserved
        raise UnknownName(f"no memblock type {name!r}", choices=["memory", "reserved"])

    # ---------------------------------------------------------------- updates
    def add_node(self, base: int, size: int, nid: int) -> None:
        """``memblock_add_node(base, size, nid)``: add memory on node ``nid`` (what hot-add's
        ``add_memory_resource()`` calls)."""
        memblock_add_range(
            self.memory, base, size, nid, MemblockFlags.NONE, warn=self.warnings.append
        )

    def add(self, base: int, size: int) -> None:
        """``memblock_add(base, size)``: add memory with node ``MAX_NUMNODES`` (unknown yet;
        ``memblock_set_node()`` assigns it later)."""
        memblock_add_range(
            self.memory,
            base,
            size,
            self.max_numnodes,
            MemblockFlags.NONE,
            warn=self.warnings.append,
        )

    def reserve(self, base: int, size: int) -> None:
        """``memblock_reserve(base, size)``: mark boot-allocated memory (node
        ``MAX_NUMNODES``)."""
        memblock_add_range(
            self.reserved,
            base,
            size,
            self.max_numnodes,
            MemblockFlags.NONE,
            warn=self.warnings.append,
        )

    def remove(self, base: int, size: int) -> None:
        """``memblock_remove(base, size)``: take the range out of ``memory``, splitting
        regions; absent parts are ignored."""
        memblock_remove_range(self.memory, base, size)

    def free(self, base: int, size: int) -> None:
        """``memblock_free(base, size)`` (v5.4 name): take the range out of ``reserved``."""
        memblock_remove_range(self.reserved, base, size)

    def set_node(self, base: int, size: int, nid: int, type_name: str = "memory") -> None:
        """``memblock_set_node(base, size, type, nid)``: isolate, set the nid, re-merge."""
        type_ = self._type(type_name)
        start_rgn, end_rgn = memblock_isolate_range(type_, base, size)
        for i in range(start_rgn, end_rgn):
            r = type_.regions[i]
            type_.regions[i] = MemblockRegion(r.base, r.size, r.flags, nid)
        memblock_merge_regions(type_)

    def mark_hotplug(self, base: int, size: int) -> None:
        """``memblock_mark_hotplug()``: set ``MEMBLOCK_HOTPLUG`` on the memory in range."""
        memblock_setclr_flag(self.memory, base, size, True, MemblockFlags.HOTPLUG)

    def clear_hotplug(self, base: int, size: int) -> None:
        """``memblock_clear_hotplug()``: clear ``MEMBLOCK_HOTPLUG`` and re-merge."""
        memblock_setclr_flag(self.memory, base, size, False, MemblockFlags.HOTPLUG)

    def mark_mirror(self, base: int, size: int) -> None:
        """``memblock_mark_mirror()``: set ``MEMBLOCK_MIRROR`` (the kernel also sets
        ``system_has_some_mirror``; not modelled)."""
        memblock_setclr_flag(self.memory, base, size, True, MemblockFlags.MIRROR)

    def mark_nomap(self, base: int, size: int) -> None:
        """``memblock_mark_nomap()``: memory stays memory but leaves the linear map, so
        :meth:`is_map_memory` (and arm64 :func:`pfn_valid`) turn false."""
        memblock_setclr_flag(self.memory, base, size, True, MemblockFlags.NOMAP)

    def clear_nomap(self, base: int, size: int) -> None:
        """``memblock_clear_nomap()``: clear ``MEMBLOCK_NOMAP`` and re-merge."""
        memblock_setclr_flag(self.memory, base, size, False, MemblockFlags.NOMAP)

    # ---------------------------------------------------------------- queries
    def is_memory(self, addr: int) -> bool:
        """``memblock_is_memory(addr)``: is ``addr`` inside a ``memory`` region?"""
        _check_addr(addr, "memblock_is_memory")
        return memblock_search(self.memory, addr) != -1

    def is_map_memory(self, addr: int) -> bool:
        """``memblock_is_map_memory(addr)``: memory and not ``NOMAP``."""
        _check_addr(addr, "memblock_is_map_memory")
        i = memblock_search(self.memory, addr)
        return i != -1 and not self.memory.regions[i].flags & MemblockFlags.NOMAP

    def is_reserved(self, addr: int) -> bool:
        """``memblock_is_reserved(addr)``: is ``addr`` inside a ``reserved`` region?"""
        _check_addr(addr, "memblock_is_reserved")
        return memblock_search(self.reserved, addr) != -1

    def is_region_memory(self, base: int, size: int) -> bool:
        """``memblock_is_region_memory()``: is the whole range inside *one* memory region?"""
        check_range(base, size, "memblock_is_region_memory")
        i = memblock_search(self.memory, base)
        return i != -1 and self.memory.regions[i].end >= base + memblock_cap_size(base, size)

    def is_region_reserved(self, base: int, size: int) -> bool:
        """``memblock_is_region_reserved()``: does the range intersect reserved memory?"""
        check_range(base, size, "memblock_is_region_reserved")
        end = base + memblock_cap_size(base, size)
        return any(r.base < end and base < r.end for r in self.reserved.regions)

    def start_of_DRAM(self) -> int:
        """``memblock_start_of_DRAM()``: base of the first memory region (0 when empty: the
        kernel's dummy region)."""
        return self.memory.regions[0].base if self.memory.regions else 0

    def end_of_DRAM(self) -> int:
        """``memblock_end_of_DRAM()``: end of the last memory region (0 when empty)."""
        return self.memory.regions[-1].end if self.memory.regions else 0

    def phys_mem_size(self) -> int:
        """``memblock_phys_mem_size()``: total bytes in ``memory`` (holes excluded)."""
        return self.memory.total_size

    def reserved_size(self) -> int:
        """``memblock_reserved_size()``: total bytes in ``reserved``."""
        return self.reserved.total_size

    def for_each_mem_range(
        self,
        type_a: str = "memory",
        type_b: str | None = None,
        *,
        nid: int = NUMA_NO_NODE,
        flags: MemblockFlags = MemblockFlags.NONE,
        movable_node: bool = False,
    ) -> Iterator[tuple[int, int, int, MemblockFlags]]:
        """:func:`for_each_mem_range` by type name; ``nid == MAX_NUMNODES`` is treated as
        ``NUMA_NO_NODE`` after a warning, as ``__next_mem_range()`` does."""
        a = self._type(type_a)
        b = None if type_b is None else self._type(type_b)
        if nid == self.max_numnodes:
            self.warnings.append(
                "__next_mem_range: Usage of MAX_NUMNODES is deprecated. Use NUMA_NO_NODE instead"
            )
            nid = NUMA_NO_NODE
        return for_each_mem_range(a, b, nid=nid, flags=flags, movable_node=movable_node)

    def for_each_free_mem_range(
        self, *, nid: int = NUMA_NO_NODE, flags: MemblockFlags = MemblockFlags.NONE
    ) -> Iterator[tuple[int, int, int, MemblockFlags]]:
        """``for_each_free_mem_range()``: memory minus reserved."""
        return self.for_each_mem_range("memory", "reserved", nid=nid, flags=flags)

    # ---------------------------------------------------------------- views
    def regions(self, type_name: str = "memory") -> list[MemblockRegion]:
        """The regions of ``"memory"`` or ``"reserved"``, as records (a copy)."""
        return list(self._type(type_name).regions)

    def snapshot(self) -> tuple[object, ...]:
        """A plain, hashable value equal before and after anything that changed nothing."""
        return tuple(
            (t.name, tuple((r.base, r.size, int(r.flags), r.nid) for r in t.regions))
            for t in (self.memory, self.reserved)
        )

    digest = snapshot


# ---------------------------------------------------------------------------- pfn_valid
#: Kernels whose arm64 ``pfn_valid()`` is modelled. The body is the same in all three:
#: v5.3 arch/arm64/mm/init.c:235-250, v5.4 :241-256, v5.7 :264-279.
PFN_VALID_KERNELS = ("v5.3", "v5.4", "v5.7")


@dataclass(frozen=True)
class PfnValidity:
    """Why arm64 ``pfn_valid()`` answered as it did: ``failed`` names the first check that
    failed (``None`` when valid): ``"overflow"``, ``"nr_mem_sections"``, ``"valid_section"``
    or ``"memblock_is_map_memory"``."""

    pfn: int
    addr: int
    section_nr: int
    valid: bool
    failed: str | None
    detail: str

    def __repr__(self) -> str:
        """``pfn`` and ``addr`` in hex; ``section_nr`` decimal."""
        return record_repr(self, ("pfn", "addr"), keep=("failed",))


def pfn_valid_why(
    memblock: Memblock,
    pfn: int,
    *,
    page_shift: int,
    sections: Callable[[int], bool] | Container[int] | None,
    kernel: str = "v5.4",
    section_size_bits: int = 30,
    max_physmem_bits: int = 48,
) -> PfnValidity:
    """arm64 ``pfn_valid()`` (``HAVE_ARCH_PFN_VALID``; v5.4 arch/arm64/mm/init.c, the same in
    v5.3 and v5.7), with the reason. The checks, in the kernel's order:

    1. ``PFN_PHYS(pfn) >> PAGE_SHIFT != pfn``: the physical address overflows 64 bits;
    2. with ``CONFIG_SPARSEMEM`` (``sections`` not ``None``):
       ``pfn_to_section_nr(pfn) >= NR_MEM_SECTIONS``, then
       ``!valid_section(__nr_to_section(nr))``; ``sections`` answers "is section nr present
       with a memmap", as a callable or a container of section numbers;
    3. ``memblock_is_map_memory(PFN_PHYS(pfn))``: in a memory region and not NOMAP.

    Step 3 is what patch 1/3 is about: after ``memblock_remove()`` the section is still
    valid but memblock no longer knows the range, so every pfn in it is invalid.

    ``section_size_bits`` and ``max_physmem_bits`` are arm64's ``SECTION_SIZE_BITS`` (30)
    and ``MAX_PHYSMEM_BITS`` (``CONFIG_ARM64_PA_BITS``, 48 or 52; v5.4
    arch/arm64/include/asm/sparsemem.h). Simplification: the generic ``pfn_valid()`` of
    later kernels (section-based, with no memblock check) is not modelled.

    >>> mb = Memblock()
    >>> mb.add_node(0x4000_0000, 0x4000_0000, 0)
    >>> pfn_valid_why(mb, 0x40000, page_shift=12, sections={1}).valid
    True
    >>> mb.remove(0x4000_0000, 0x4000_0000)
    >>> pfn_valid_why(mb, 0x40000, page_shift=12, sections={1}).failed
    'memblock_is_map_memory'
    """
    if kernel not in PFN_VALID_KERNELS:
        raise UnknownName(f"pfn_valid: no model for kernel {kernel!r}", choices=PFN_VALID_KERNELS)
    if isinstance(pfn, bool) or not isinstance(pfn, int) or not 0 <= pfn <= PHYS_ADDR_MAX:
        raise InvalidArgument(f"pfn_valid: pfn must be an unsigned long in [0, 2**64), got {pfn!r}")
    if not isinstance(page_shift, int) or not 0 < page_shift < section_size_bits:
        raise InvalidArgument(
            f"pfn_valid: page_shift must be in (0, {section_size_bits}), got {page_shift!r} "
            "(12, 14 or 16 for the 4K, 16K, 64K granules)"
        )
    addr = (pfn << page_shift) & PHYS_ADDR_MAX  # PFN_PHYS() in a 64-bit phys_addr_t
    section_nr = pfn >> (section_size_bits - page_shift)  # pfn_to_section_nr()

    def result(failed: str | None, detail: str) -> PfnValidity:
        return PfnValidity(pfn, addr, section_nr, failed is None, failed, detail)

    if addr >> page_shift != pfn:
        return result("overflow", f"PFN_PHYS({pfn:#x}) overflows 64 bits")
    if sections is not None:
        nr_mem_sections = 1 << (max_physmem_bits - section_size_bits)
        if section_nr >= nr_mem_sections:
            return result(
                "nr_mem_sections", f"section {section_nr} >= NR_MEM_SECTIONS {nr_mem_sections}"
            )
        present = sections(section_nr) if callable(sections) else section_nr in sections
        if not present:
            return result("valid_section", f"section {section_nr} has no memmap")
    if not memblock.is_map_memory(addr):
        why = "NOMAP" if memblock.is_memory(addr) else "not in memblock.memory"
        return result("memblock_is_map_memory", f"{addr:#x} is {why}")
    return result(None, f"{addr:#x} is mapped memory")


def pfn_valid(
    memblock: Memblock,
    pfn: int,
    *,
    page_shift: int,
    sections: Callable[[int], bool] | Container[int] | None,
    kernel: str = "v5.4",
    section_size_bits: int = 30,
    max_physmem_bits: int = 48,
) -> bool:
    """arm64 ``pfn_valid(pfn)`` (v5.4 arch/arm64/mm/init.c): :func:`pfn_valid_why`'s answer.

    ``sections=None`` models ``CONFIG_SPARSEMEM=n`` (no section check).

    >>> mb = Memblock()
    >>> mb.add(0x4000_0000, 0x4000_0000)
    >>> mb.mark_nomap(0x4000_0000, 0x20_0000)
    >>> pfn_valid(mb, 0x40000, page_shift=12, sections={1})
    False
    >>> pfn_valid(mb, 0x40200, page_shift=12, sections={1})
    True
    """
    return pfn_valid_why(
        memblock,
        pfn,
        page_shift=page_shift,
        sections=sections,
        kernel=kernel,
        section_size_bits=section_size_bits,
        max_physmem_bits=max_physmem_bits,
    ).valid

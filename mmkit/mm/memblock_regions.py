"""memblock's regions and types: the records, and the arithmetic on one sorted array.

Models v5.4 ``mm/memblock.c`` (identical in v5.3 and v5.7 for everything here) and
``include/linux/memblock.h`` below the ``struct memblock`` object: ``struct memblock_region``
(:class:`MemblockRegion`) with its ``enum memblock_flags`` (:class:`MemblockFlags`),
``struct memblock_type`` (:class:`MemblockType`, one sorted array of regions), the checks a
range passes before anything changes, and the functions that act on one type, each named
after its kernel function: add, isolate (split), remove, merge, set or clear a flag, search,
and ``for_each_mem_range``. Every update leaves the array minimal: no two neighbouring regions
that touch and share a node and flags are left unmerged.

:mod:`mmkit.mm.memblock` builds the :class:`~mmkit.mm.memblock.Memblock` object on these and
re-exports every name here; it explains the concept and the simplifications once, and is the
place to import from.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mmkit.errors import InvalidArgument

__all__ = [
    "MAX_NUMNODES",
    "NUMA_NO_NODE",
    "PHYS_ADDR_MAX",
    "MemblockFlags",
    "MemblockRegion",
    "MemblockType",
    "check_range",
    "for_each_mem_range",
    "memblock_add_range",
    "memblock_cap_size",
    "memblock_isolate_range",
    "memblock_merge_regions",
    "memblock_remove_range",
    "memblock_search",
    "memblock_setclr_flag",
]

#: ``PHYS_ADDR_MAX`` (``~(phys_addr_t)0``): the last byte address a 64-bit phys_addr_t holds.
PHYS_ADDR_MAX = (1 << 64) - 1
#: ``NUMA_NO_NODE`` (v5.4 include/linux/numa.h): "any node" for iterators.
NUMA_NO_NODE = -1
#: ``MAX_NUMNODES = 1 << CONFIG_NODES_SHIFT``; arm64 NUMA defaults NODES_SHIFT to 2 (v5.4
#: arch/arm64/Kconfig). ``memblock_add()`` and ``memblock_reserve()`` tag regions with it,
#: meaning "node not yet known".
MAX_NUMNODES = 4


class MemblockFlags(enum.IntFlag):
    """``enum memblock_flags`` (v5.4 include/linux/memblock.h), same numbers as the kernel."""

    NONE = 0x0  #: no special request
    HOTPLUG = 0x1  #: hotpluggable region
    MIRROR = 0x2  #: mirrored region
    NOMAP = 0x4  #: don't add to the kernel direct (linear) mapping


@dataclass(frozen=True)
class MemblockRegion:
    """``struct memblock_region``: ``[base, base + size)`` with its flags and node."""

    base: int
    size: int
    flags: MemblockFlags = MemblockFlags.NONE
    nid: int = MAX_NUMNODES

    @property
    def end(self) -> int:
        """One past the last byte (the kernel's ``base + size``)."""
        return self.base + self.size

    def __repr__(self) -> str:
        flags = self.flags.name if self.flags else "NONE"
        return f"MemblockRegion([{self.base:#x}-{self.end:#x}), flags={flags}, nid={self.nid})"


class MemblockType:
    """``struct memblock_type``: a name and a sorted list of non-overlapping regions.

    The list holds immutable :class:`MemblockRegion` records; the functions below replace
    entries. ``total_size`` is derived, not cached (the kernel caches it).
    """

    __slots__ = ("name", "regions")

    def __init__(self, name: str, regions: list[MemblockRegion] | None = None) -> None:
        self.name = name
        self.regions: list[MemblockRegion] = list(regions or [])

    def __deepcopy__(self, memo: dict[int, object]) -> MemblockType:
        """The regions are immutable records: a new list of the same ones is a deep copy."""
        return MemblockType(self.name, self.regions)

    @property
    def cnt(self) -> int:
        """Number of regions (the kernel reports 1 for an empty array: its dummy region)."""
        return len(self.regions)

    @property
    def total_size(self) -> int:
        """Sum of the region sizes."""
        return sum(r.size for r in self.regions)

    def __repr__(self) -> str:
        return f"MemblockType({self.name!r}, {self.regions!r})"


# --------------------------------------------------------------------------- validation
def check_range(base: int, size: int, what: str) -> None:
    """Reject a range the model will not take, before anything is changed.

    The kernel takes any ``phys_addr_t`` pair: a zero size is a silent no-op and a range
    running past ``PHYS_ADDR_MAX`` is clipped by :func:`memblock_cap_size`. mmkit is
    stricter where a lesson benefits from an error: ``size <= 0``, a negative base, or
    ``base + size > 2**64`` raise :class:`InvalidArgument`. A range ending exactly at
    ``2**64`` is still clipped by one byte, as the kernel does.

    >>> check_range(0x1000, 0, "memblock_add")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmkit.errors.InvalidArgument: memblock_add: size must be > 0, got 0x0 ...
    """
    if isinstance(base, bool) or not isinstance(base, int):
        raise InvalidArgument(f"{what}: base must be an int physical address, got {base!r}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgument(f"{what}: size must be an int byte count, got {size!r}")
    if size <= 0:
        raise InvalidArgument(
            f"{what}: size must be > 0, got {size:#x} (the kernel returns 0 and does nothing "
            "for size 0; mmkit refuses it so a slip is seen); pass a positive size"
        )
    if base < 0:
        raise InvalidArgument(
            f"{what}: base must be a physical address >= 0, got {base:#x}; pass an address"
        )
    if base + size > 1 << 64:
        raise InvalidArgument(
            f"{what}: range [{base:#x}, +{size:#x}) runs past the 64-bit physical address "
            "space (base + size > 2**64); shrink size or lower base"
        )


def _check_addr(addr: int, what: str) -> None:
    if isinstance(addr, bool) or not isinstance(addr, int) or not 0 <= addr <= PHYS_ADDR_MAX:
        raise InvalidArgument(
            f"{what}: addr must be a physical address in [0, 2**64), got {addr!r}"
        )


def memblock_cap_size(base: int, size: int) -> int:
    """``memblock_cap_size()`` (v5.4 mm/memblock.c): clip ``size`` so that ``base + size``
    does not pass ``PHYS_ADDR_MAX``; return the new size.

    >>> memblock_cap_size(PHYS_ADDR_MAX - 0xfff, 0x1000)
    4095
    """
    return min(size, PHYS_ADDR_MAX - base)


# ----------------------------------------------------------------------- core algorithms
def memblock_merge_regions(type_: MemblockType) -> None:
    """``memblock_merge_regions()`` (v5.4 mm/memblock.c): merge each pair of neighbours that
    touch (``this.end == next.base``) and have the same nid and flags. Overlap cannot occur
    (the kernel ``BUG_ON``\\s it; here it is an assertion)."""
    merged: list[MemblockRegion] = []
    for r in type_.regions:
        if merged:
            prev = merged[-1]
            assert prev.end <= r.base, f"memblock {type_.name}: {prev} overlaps {r}"
            if prev.end == r.base and prev.nid == r.nid and prev.flags == r.flags:
                merged[-1] = MemblockRegion(prev.base, prev.size + r.size, prev.flags, prev.nid)
                continue
        merged.append(r)
    type_.regions[:] = merged


def memblock_add_range(
    type_: MemblockType,
    base: int,
    size: int,
    nid: int,
    flags: MemblockFlags = MemblockFlags.NONE,
    *,
    warn: Callable[[str], None] | None = None,
) -> None:
    """``memblock_add_range()`` (v5.4 mm/memblock.c; ``static`` from v5.7): add
    ``[base, base + size)`` to ``type_``.

    Existing regions are never changed by an overlapping add: only the parts of the new
    range not already covered are inserted (with the new nid and flags), then
    :func:`memblock_merge_regions` leaves the array minimal. When an uncovered piece lies
    just below a covered one whose nid or flags differ, the kernel ``WARN_ON``\\s and goes on;
    ``warn`` receives that message.

    Simplification: one pass instead of the kernel's count-then-insert passes (which exist
    only to size the array first).

    >>> t = MemblockType("memory", [MemblockRegion(0x2000, 0x1000, nid=0)])
    >>> memblock_add_range(t, 0x1000, 0x3000, 0)
    >>> t.regions
    [MemblockRegion([0x1000-0x4000), flags=NONE, nid=0)]
    """
    check_range(base, size, "memblock_add_range")
    flags = MemblockFlags(flags)
    size = memblock_cap_size(base, size)
    if not size:
        return
    end = base + size
    pieces: list[MemblockRegion] = []
    cur = base
    for r in type_.regions:
        if r.base >= end:
            break
        if r.end <= cur:
            continue
        if r.base > cur:
            if warn is not None and (r.nid != nid or r.flags != flags):
                warn(
                    f"memblock_add_range: WARN_ON: [{cur:#x}-{r.base:#x}) added with "
                    f"nid={nid} flags={flags!r} below {r}"
                )
            pieces.append(MemblockRegion(cur, r.base - cur, flags, nid))
        cur = min(r.end, end)
    if cur < end:
        pieces.append(MemblockRegion(cur, end - cur, flags, nid))
    if not pieces:
        return
    type_.regions[:] = sorted([*type_.regions, *pieces], key=lambda r: r.base)
    memblock_merge_regions(type_)


def memblock_isolate_range(type_: MemblockType, base: int, size: int) -> tuple[int, int]:
    """``memblock_isolate_range()`` (v5.4 mm/memblock.c): split the regions that cross
    ``base`` or ``base + size`` so that no region straddles a boundary; return
    ``(start_rgn, end_rgn)``, the index slice of the regions inside the range (``(0, 0)``
    when none is). The pieces keep their nid and flags and are *not* re-merged.

    >>> t = MemblockType("memory", [MemblockRegion(0x0, 0x4000, nid=0)])
    >>> memblock_isolate_range(t, 0x1000, 0x2000)
    (1, 2)
    >>> [(r.base, r.size) for r in t.regions]
    [(0, 4096), (4096, 8192), (12288, 4096)]
    """
    check_range(base, size, "memblock_isolate_range")
    size = memblock_cap_size(base, size)
    if not size:
        return (0, 0)
    end = base + size
    out: list[MemblockRegion] = []
    start_rgn = end_rgn = 0
    for r in type_.regions:
        if r.end <= base or r.base >= end:
            out.append(r)
            continue
        lo, hi = max(r.base, base), min(r.end, end)
        if r.base < lo:
            out.append(MemblockRegion(r.base, lo - r.base, r.flags, r.nid))
        if not end_rgn:
            start_rgn = len(out)
        out.append(MemblockRegion(lo, hi - lo, r.flags, r.nid))
        end_rgn = len(out)
        if hi < r.end:
            out.append(MemblockRegion(hi, r.end - hi, r.flags, r.nid))
    type_.regions[:] = out
    return (start_rgn, end_rgn)


def memblock_remove_range(type_: MemblockType, base: int, size: int) -> None:
    """``memblock_remove_range()`` (v5.4 mm/memblock.c): isolate the range, then drop the
    regions inside it. Removing a range that is not there is not an error (returns 0 in the
    kernel): that is why a second ``memblock_remove()`` of hot-removed memory is silent."""
    start_rgn, end_rgn = memblock_isolate_range(type_, base, size)
    del type_.regions[start_rgn:end_rgn]


def memblock_setclr_flag(
    type_: MemblockType, base: int, size: int, set_: bool, flag: MemblockFlags
) -> None:
    """``memblock_setclr_flag()`` (v5.4 mm/memblock.c, which always acts on
    ``memblock.memory``): isolate the range, set or clear ``flag`` on the regions in it,
    then re-merge. Parts of the range that are not memory are ignored, as in the kernel."""
    start_rgn, end_rgn = memblock_isolate_range(type_, base, size)
    for i in range(start_rgn, end_rgn):
        r = type_.regions[i]
        new = r.flags | flag if set_ else r.flags & ~flag
        type_.regions[i] = MemblockRegion(r.base, r.size, MemblockFlags(new), r.nid)
    memblock_merge_regions(type_)


def memblock_search(type_: MemblockType, addr: int) -> int:
    """``memblock_search()`` (v5.4 mm/memblock.c): binary search for the region holding
    ``addr``; its index, or -1."""
    left, right = 0, len(type_.regions)
    while left < right:
        mid = (left + right) // 2
        r = type_.regions[mid]
        if addr < r.base:
            right = mid
        elif addr >= r.end:
            left = mid + 1
        else:
            return mid
    return -1


def _should_skip_region(
    r: MemblockRegion, nid: int, flags: MemblockFlags, movable_node: bool
) -> bool:
    """``should_skip_region()`` (v5.4 mm/memblock.c)."""
    if nid != NUMA_NO_NODE and nid != r.nid:
        return True
    if movable_node and r.flags & MemblockFlags.HOTPLUG:
        return True
    if flags & MemblockFlags.MIRROR and not r.flags & MemblockFlags.MIRROR:
        return True
    return bool(not flags & MemblockFlags.NOMAP and r.flags & MemblockFlags.NOMAP)


def for_each_mem_range(
    type_a: MemblockType,
    type_b: MemblockType | None = None,
    *,
    nid: int = NUMA_NO_NODE,
    flags: MemblockFlags = MemblockFlags.NONE,
    movable_node: bool = False,
) -> Iterator[tuple[int, int, int, MemblockFlags]]:
    """``for_each_mem_range()`` / ``__next_mem_range()`` (v5.4 mm/memblock.c): yield
    ``(base, end, nid, flags)`` for each region of ``type_a`` that ``should_skip_region()``
    keeps (right node; not NOMAP unless ``flags`` asks for NOMAP; mirrored only if ``flags``
    asks for MIRROR; not HOTPLUG when ``movable_node``), minus whatever ``type_b`` covers.
    ``for_each_free_mem_range`` is ``type_a=memory, type_b=reserved``.

    Simplification: the arrays are read once at the start, so changing memblock while
    iterating does not disturb the walk; the kernel's out-params carry no flags, mmkit adds
    the region's flags.
    """
    regions_a = tuple(type_a.regions)
    if type_b is None:
        for r in regions_a:
            if not _should_skip_region(r, nid, flags, movable_node):
                yield (r.base, r.end, r.nid, r.flags)
        return
    regions_b = tuple(type_b.regions)
    # The gaps of type_b: [0, b0.base), [b0.end, b1.base), ..., [b_last.end, PHYS_ADDR_MAX).
    gaps: list[tuple[int, int]] = []
    prev_end = 0
    for rb in regions_b:
        gaps.append((prev_end, rb.base))
        prev_end = rb.end
    gaps.append((prev_end, PHYS_ADDR_MAX))
    for r in regions_a:
        if _should_skip_region(r, nid, flags, movable_node):
            continue
        for g_start, g_end in gaps:
            lo, hi = max(r.base, g_start), min(r.end, g_end)
            if lo < hi:
                yield (lo, hi, r.nid, r.flags)

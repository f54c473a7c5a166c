"""Physical memory: page frames, their allocator, and use-after-free detection.

A page frame is in one of these states (the life cycle of ``struct page`` as hot-remove sees
it):

* ``free``: in the allocator, contents poisoned (KASAN would flag any access);
* ``reserved``: boot memory that is not the allocator's (kernel image, memblock
  allocations such as the boot page tables and the boot vmemmap);
* ``table``: a page-table page in use (``GFP_PGTABLE_KERNEL`` allocation);
* ``backing``: a page that backs a mapping the kernel made for itself (vmemmap struct
  pages, vmalloc pages).

RAM that nobody allocated (what the linear map maps, the hot-added memory itself) has no
frame record: it is just memory. ``alloc_pages`` hands out the most recently freed block of
the order first, as the buddy allocator's per-CPU lists do, so a freed table page is the next
one reused: exactly what makes a stale pointer into it dangerous.

>>> pm = PhysMem(pool_start=0x4800_0000, pool_end=0x4900_0000, page_shift=12)
>>> pfn = pm.alloc_pages(0, "table", owner="pmd")
>>> pm.free_pages(pfn, 0, by="free_empty_pmd_table")
>>> pm.state(pfn), pm.alloc_pages(0, "table", owner="pte") == pfn
('free', True)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import NamedTuple

from mmkit.errors import InvalidArgument, NoMemory

__all__ = ["Frame", "PhysMem"]

_HASH_EACH = 16  #: up to this many frames changed at once keep the running hash current


class Frame(NamedTuple):
    """Book-keeping for one allocated (or once allocated) page frame (immutable: a change
    of state replaces the record, so copies of the allocator can share them; a named tuple,
    as it is built for every table page allocated or freed)."""

    state: str  #: "free", "reserved", "table", "backing"
    order: int = 0  #: the frame heads a block of 2**order pages
    owner: str = ""  #: what it is used for ("pmd table", "vmemmap", "kernel image"...)
    freed_by: str | None = None  #: the function that freed it last


class PhysMem:
    """Page frames of the machine and an order-based allocator over a boot-memory pool.

    ``[pool_start, pool_end)`` is the part of boot RAM the allocator owns. Frames reserved at
    boot are registered with :meth:`reserve`. All sizes are in pages of ``2**page_shift``.
    """

    def __init__(self, *, pool_start: int, pool_end: int, page_shift: int) -> None:
        if pool_start % (1 << page_shift) or pool_end % (1 << page_shift):
            raise InvalidArgument("the allocator pool must be page aligned")
        self.page_shift = page_shift
        self.frames: dict[int, Frame] = {}
        #: boot reservations as sorted (first pfn, end pfn, owner) ranges: a machine has
        #: tens of thousands of reserved frames and nothing ever changes them
        self.reserved: list[tuple[int, int, str]] = []
        self._free_lists: dict[int, list[int]] = {}
        self._next = pool_start >> page_shift
        self._end = pool_end >> page_shift
        self.pool_start_pfn = self._next
        self.allocations = 0
        self.frees = 0
        #: fault injection: fail the allocation after this many more succeed (None: never)
        self.fail_after: int | None = None
        self._digest: tuple[object, ...] | None = None  #: cached; every mutation clears it
        #: XOR of the hashes of every (pfn, frame) in ``frames``; None when a bulk change
        #: left it to be recomputed by the next :meth:`digest`
        self._frames_hash: int | None = 0

    def __deepcopy__(self, memo: dict[int, object]) -> PhysMem:
        """A fast exact copy (scenarios copy a prepared machine for every schedule)."""
        new = PhysMem.__new__(PhysMem)
        memo[id(self)] = new
        new.__dict__.update(self.__dict__)
        new.frames = dict(self.frames)  # the Frame records are immutable
        new.reserved = list(self.reserved)
        new._free_lists = {o: list(v) for o, v in self._free_lists.items()}
        return new

    # ------------------------------------------------------------- inspection
    def state(self, pfn: int) -> str:
        """The frame's state; RAM without a record is plain memory (``"ram"``)."""
        frame = self.frame(pfn)
        return frame.state if frame else "ram"

    def frame(self, pfn: int) -> Frame | None:
        frame = self.frames.get(pfn)
        if frame is not None:
            return frame
        i = bisect.bisect_right(self.reserved, (pfn, 1 << 62, "")) - 1
        if i >= 0 and self.reserved[i][0] <= pfn < self.reserved[i][1]:
            return Frame("reserved", 0, self.reserved[i][2])
        return None

    def count(self, state: str) -> int:
        """How many frames (heads of blocks) are in ``state``."""
        extra = sum(e - s for s, e, _ in self.reserved) if state == "reserved" else 0
        return extra + sum(1 for f in self.frames.values() if f.state == state)

    def pages_in(self, state: str) -> int:
        """How many pages (blocks counted by their size) are in ``state``."""
        extra = sum(e - s for s, e, _ in self.reserved) if state == "reserved" else 0
        return extra + sum(1 << f.order for f in self.frames.values() if f.state == state)

    def available_pages(self) -> int:
        """Pages the allocator could still hand out (free lists plus the untouched pool)."""
        listed = sum(len(v) << order for order, v in self._free_lists.items())
        return listed + (self._end - self._next)

    def iter_frames(self) -> Iterator[tuple[int, Frame]]:
        return iter(sorted(self.frames.items()))

    # -------------------------------------------------------------- mutation
    def reserve(self, pfn: int, npages: int, owner: str) -> None:
        """Mark ``npages`` frames from ``pfn`` as reserved at boot (memblock allocations)."""
        self._digest = None
        bisect.insort(self.reserved, (pfn, pfn + npages, owner))

    def alloc_pages(self, order: int, state: str, owner: str = "") -> int:
        """Allocate a naturally aligned block of ``2**order`` pages; return its first pfn.

        Raises :class:`~mmkit.errors.NoMemory` when neither a free list nor the pool has one.
        """
        self._digest = None
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.fail_after = None
                raise NoMemory(f"injected allocation failure (order {order}, for {owner})")
            self.fail_after -= 1
        free = self._free_lists.get(order)
        if free:
            pfn = free.pop()
        else:
            size = 1 << order
            start = (self._next + size - 1) & ~(size - 1)
            if start + size > self._end:
                raise NoMemory(
                    f"out of memory: no free block of order {order} "
                    f"({size << self.page_shift} bytes) left in the allocator's pool"
                )
            # the alignment hole goes to the order-0 list, as splitting would leave it
            for p in range(self._next, start):
                self._free_lists.setdefault(0, []).append(p)
                self._set(p, Frame("free", 0, "", None))
            self._next = start + size
            pfn = start
        self._set(pfn, Frame(state, order, owner, None))
        self.allocations += 1
        return pfn

    def can_alloc_tables(self, count: int) -> bool:
        """Whether :meth:`alloc_tables` of ``count`` pages would succeed now."""
        listed = len(self._free_lists.get(0, ()))
        if count > listed + (self._end - self._next):
            return False
        return self.fail_after is None or self.fail_after >= count

    def alloc_tables(self, count: int, owner: str) -> list[int]:
        """``count`` order-0 ``table`` pages, exactly as ``count`` calls of
        :meth:`alloc_pages` would hand them out (most recently freed first, then the pool),
        in one go; all or nothing: :class:`~mmkit.errors.NoMemory` before any is taken."""
        if not self.can_alloc_tables(count):
            raise NoMemory(f"out of memory: {count} table pages for {owner}")
        free = self._free_lists.get(0, [])  # (no empty list made: as alloc_pages)
        self._digest = None
        if self.fail_after is not None:
            self.fail_after -= count
        take = min(count, len(free))
        pfns = free[len(free) - take :][::-1]
        del free[len(free) - take :]
        if take < count:
            pfns += range(self._next, self._next + count - take)
            self._next += count - take
        self._set_many(pfns, [Frame("table", 0, owner, None)] * count)
        self.allocations += count
        return pfns

    def free_tables(self, pfns: list[int], by: str) -> None:
        """:meth:`free_pages` of order-0 pages, in order, in one go (each must be allocated;
        checked before any is freed)."""
        self.free_pages_many(pfns, 0, by)

    def free_pages_many(self, pfns: list[int], order: int, by: str) -> None:
        """:meth:`free_pages` of blocks of ``2**order`` pages, in order, in one go (each
        must be allocated; checked before any is freed)."""
        frames = self.frames
        olds = list(map(frames.get, pfns))
        # records are immutable and a run shares a few: check and replace each kind once
        # (a run allocated together shares one: found without hashing every record)
        kinds = olds[:1] if olds and olds.count(olds[0]) == len(olds) else set(olds)
        freed: dict[Frame | None, Frame] = {}
        for frame in kinds:
            if frame is None or frame.state in ("free", "ram"):
                pfn = pfns[olds.index(frame)]
                raise InvalidArgument(f"double free or free of unallocated pfn {pfn:#x} by {by}")
            freed[frame] = Frame("free", order, frame.owner, by)
        self._digest = None
        self._set_many(pfns, list(map(freed.__getitem__, olds)))
        self._free_lists.setdefault(order, []).extend(pfns)
        self.frees += len(pfns)

    def free_pages(self, pfn: int, order: int, by: str) -> None:
        """Give a block back; its frame keeps who freed it, for use-after-free reports."""
        self._digest = None
        frame = self.frames.get(pfn)
        if frame is None or frame.state in ("free", "ram"):
            raise InvalidArgument(f"double free or free of unallocated pfn {pfn:#x} by {by}")
        self._set(pfn, Frame("free", order, frame.owner, by))
        self._free_lists.setdefault(order, []).append(pfn)
        self.frees += 1

    def unfree_pages(self, pfn: int, order: int, frame: Frame) -> None:
        """Undo :meth:`free_pages` (used to roll a failed operation back)."""
        self._digest = None
        self._free_lists[order].remove(pfn)
        self._set(pfn, frame)
        self.frees -= 1

    def unalloc_pages(self, pfn: int, order: int) -> None:
        """Undo :meth:`alloc_pages` of the most recent allocation of that block."""
        self._digest = None
        self._set(pfn, Frame("free", order, "", None))
        self._free_lists.setdefault(order, []).append(pfn)
        self.allocations -= 1

    @staticmethod
    def _frame_hash(pfn: int, f: Frame) -> int:
        return hash((pfn, f.state, f.order, f.owner))

    def _set(self, pfn: int, frame: Frame) -> None:
        """Replace the record of ``pfn``, keeping the running hash of all records."""
        old = self.frames.get(pfn)
        self.frames[pfn] = frame
        if self._frames_hash is None:  # stale: the next digest recomputes it
            return
        if old is not None:
            self._frames_hash ^= self._frame_hash(pfn, old)
        self._frames_hash ^= self._frame_hash(pfn, frame)

    def _set_many(self, pfns: list[int], records: list[Frame]) -> None:
        """:meth:`_set` for many frames: a few keep the running hash up to date, a run of
        them leaves it to the next :meth:`digest` (one pass then, not one hash each now)."""
        if len(pfns) <= _HASH_EACH and self._frames_hash is not None:
            for pfn, frame in zip(pfns, records, strict=True):
                self._set(pfn, frame)
            return
        self.frames.update(zip(pfns, records, strict=True))
        self._frames_hash = None

    def digest(self) -> tuple[object, ...]:
        """A value that changes whenever the frames or the allocator change."""
        if self._frames_hash is None:
            h = 0
            for pfn, frame in self.frames.items():
                h ^= self._frame_hash(pfn, frame)
            self._frames_hash = h
        if self._digest is None:
            self._digest = (
                tuple(self.reserved),
                (len(self.frames), self._frames_hash),  # kept up to date by _set()
                tuple(sorted((o, tuple(v)) for o, v in self._free_lists.items())),
                self._next,
            )
        return self._digest

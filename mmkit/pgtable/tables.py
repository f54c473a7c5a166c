"""Kernel page-table pages: storage, descriptors, and the records views count.

A table page is one page of 8-byte arm64 descriptors held in physical memory, so its content
is keyed by its page frame number: a stale pointer into a freed table page reads (and writes)
whatever the frame holds now, exactly as in the kernel. A table page's life:

* **live**: hooked into ``swapper_pg_dir`` (directly or through live tables), state ``table``
  in :class:`~mmkit.physmem.PhysMem`;
* **empty**: live, but every entry is none (``p?d_none``): what ``free_empty_tables()``
  looks for;
* **freed**: unhooked and given back; its frame may be reused at once.

Entries are stored by column (:class:`~mmkit.pgtable.store.TableStore`: rows of a few 2-D
numpy arrays) so that runs of alike entries (a whole PTE table of the linear map), and runs
of tables allocated together, are written and scanned in one operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from xxhash import xxh3_64_intdigest as _fingerprint

from mmkit._readable import hex_value, record_repr
from mmkit.arch.pte_api import pte_format_of
from mmkit.pgtable.store import TableStore, forward

if TYPE_CHECKING:
    from mmkit.arch.arm64 import Arm64Descriptor
    from mmkit.arch.base import Level
    from mmkit.physmem import PhysMem

__all__ = ["PageTables", "TableInfo", "TablePageRecord"]

_U64 = np.uint64


class TableInfo(NamedTuple):
    """What the kernel knows about a live table page: its level and the VA it maps.

    Immutable (a named tuple): a run of tables gets its records in one C-level pass, and a
    copy of the page tables shares them.

    >>> TableInfo(3, 0xFFFF000040000000, "linear", False)
    TableInfo(depth=3, va_start=0xffff000040000000, region='linear', boot=False)
    """

    depth: int  #: 0 for the top-level (PGD) table, then one per level with tables
    va_start: int  #: first VA the table maps (aligned to the parent entry's span)
    region: str  #: kind of the region of ``va_start`` ("linear", "vmemmap", ...)
    boot: bool  #: allocated at boot from memblock (reserved), not from the page allocator

    def __repr__(self) -> str:
        """``va_start`` in hex."""
        return (
            f"TableInfo(depth={self.depth!r}, va_start={hex_value(self.va_start)}, "
            f"region={self.region!r}, boot={self.boot!r})"
        )


@dataclass(frozen=True, slots=True)
class TablePageRecord:
    """One live table page, as ``machine.table_pages()`` lists them."""

    pfn: int
    level: str  #: Linux level of the table ("pgd", "pud", "pmd", "pte")
    hw_level: int
    va_start: int
    va_end: int
    region: str
    used_entries: int
    boot: bool

    def __repr__(self) -> str:
        """``pfn`` and the VA span in hex, every field shown."""
        return record_repr(self, ("pfn", "va_start", "va_end"))


class PageTables:
    """The kernel page tables (``init_mm``), their pages and descriptor encoding."""

    def __init__(self, desc: Arm64Descriptor, physmem: PhysMem) -> None:
        self.desc = desc
        self.geo = desc.geometry
        self.levels: tuple[Level, ...] = self.geo.levels_used
        self.physmem = physmem
        self.page_shift = self.geo.page_shift
        self.page_size = self.geo.page_size
        self.ptrs = self.geo.ptrs_per_table
        self.pa_bits = desc.pa_bits
        #: the entry format (the descriptor's ``pte_format``, arm64's by default)
        self.fmt = pte_format_of(desc)
        self.addr_mask = self.fmt.addr_mask
        #: frame contents of every page ever used as a table (pfn -> entries), by column
        self.content = TableStore(self.ptrs)
        #: live table pages (pfn -> info)
        self.info: dict[int, TableInfo] = {}
        self.pgd_pfn = -1

    def __deepcopy__(self, memo: dict[int, object]) -> PageTables:
        """A fast exact copy: the descriptor is shared, the frames' contents are copied."""
        import copy

        new = PageTables.__new__(PageTables)
        memo[id(self)] = new
        new.__dict__.update(self.__dict__)
        new.physmem = copy.deepcopy(self.physmem, memo)
        new.content = copy.deepcopy(self.content, memo)
        new.info = dict(self.info)  # the records are immutable
        return new

    # ------------------------------------------------------------ descriptors
    def pa_to_desc(self, pa: int) -> int:
        """``__phys_to_pte_val``: place a PA in a descriptor's output-address field."""
        return self.fmt.pa_to_entry(pa)

    def desc_to_pa(self, raw: int) -> int:
        """``__pte_to_phys``: the output address of a table or page descriptor."""
        return self.fmt.entry_to_pa(raw)

    def table_desc(self, pfn: int) -> int:
        """``__pmd_populate`` & co: a table descriptor pointing at table page ``pfn``."""
        return self.fmt.table_entry(pfn << self.page_shift)

    def next_table(self, raw: int) -> int:
        """The pfn a table descriptor points at."""
        return self.desc_to_pa(raw) >> self.page_shift

    def is_table(self, raw: int, depth_is_leaf: bool) -> bool:
        """``p?d_table()``: a table entry above the leaf level (the entry format decides)."""
        return self.fmt.is_table(raw, depth_is_leaf)

    def is_sect(self, raw: int) -> bool:
        """``p?d_sect()``: a block (huge leaf) entry (the entry format decides)."""
        return self.fmt.is_block(raw)

    # ----------------------------------------------------------------- pages
    def new_table(
        self, pfn: int, depth: int, va_start: int, *, boot: bool, for_va: int | None = None
    ) -> np.ndarray:
        """Register ``pfn`` as a zeroed live table page at ``depth`` mapping from ``va_start``.

        ``for_va`` is the address whose mapping needed the table: its region names the table.
        """
        self.content.claim([pfn])
        arr = self.content[pfn]
        arr.fill(0)  # GFP_PGTABLE_KERNEL includes __GFP_ZERO
        region = self.desc.region_of(va_start if for_va is None else for_va).kind
        self.info[pfn] = TableInfo(depth, va_start, region, boot)
        return arr

    def new_tables(self, pfns: list[int], depth: int, va_start: int, *, boot: bool = False) -> None:
        """:meth:`new_table` for tables mapping consecutive spans from ``va_start``, one per
        pfn, all in the region of ``va_start`` (the caller keeps the run inside one)."""
        region = self.desc.region_of(va_start).kind
        span = self.span(depth)
        content = self.content
        content.claim(pfns)
        view = content.view(pfns)
        # GFP_PGTABLE_KERNEL includes __GFP_ZERO; a reused frame is mostly zero already
        # (its entries were cleared before it was freed), and reading is cheaper than writing
        if view is None or forward(view).max():
            content.set_rows(pfns, 0)
        starts = range(va_start, va_start + len(pfns) * span, span)
        fields = zip(repeat(depth), starts, repeat(region), repeat(boot))
        # tuple.__new__ makes each record without a Python-level __new__ call
        self.info.update(zip(pfns, map(tuple.__new__, repeat(TableInfo), fields), strict=True))

    def drop_table(self, pfn: int) -> TableInfo:
        """Forget a table page that was unhooked (its content stays in the frame); the
        page itself goes back through :meth:`free_table_pages`."""
        return self.info.pop(pfn)

    def free_table_pages(self, pfns: list[int], by: str) -> list[int]:
        """Give unhooked table pages back: every table page freed goes through here.

        Each is forgotten as a table (its content stays in the frame: a stale pointer reads
        it) and its frame returns to the page allocator, in order. A page allocated at boot
        from memblock (``PageReserved``) is not the allocator's: those are returned, for the
        caller's ``WARN_ON`` and bad-page report, and not freed."""
        info = self.info
        for pfn in pfns:
            del info[pfn]
        pm = self.physmem
        if len(pfns) == 1:  # one table: the allocator's own free
            if pfns[0] not in pm.frames and pm.state(pfns[0]) == "reserved":
                return pfns
            pm.free_pages(pfns[0], 0, by)
            return []
        frames = pm.frames
        reserved = [] if frames.keys() >= set(pfns) else [p for p in pfns if p not in frames]
        if reserved:
            reserved = [pfn for pfn in reserved if pm.state(pfn) == "reserved"]
            pfns = [pfn for pfn in pfns if pfn not in reserved]
        pm.free_tables(pfns, by)
        return reserved

    def entries(self, pfn: int) -> np.ndarray:
        """The raw entries of a frame used as a table (live or not)."""
        return self.content[pfn]

    def span(self, depth: int) -> int:
        """Bytes of VA one table page at ``depth`` maps (one entry of its parent)."""
        if depth == 0:
            return 1 << 64
        return self.levels[depth - 1].entry_size

    def records(self) -> list[TablePageRecord]:
        """One record per live table page, sorted by level then VA."""
        out = []
        for pfn, info in self.info.items():
            level = self.levels[info.depth]
            used = int(np.count_nonzero(self.content[pfn][: level.ptrs]))
            span = self.span(info.depth)
            end = min(info.va_start + span, 1 << 64) if info.depth else 1 << 64
            out.append(
                TablePageRecord(
                    pfn,
                    level.name,
                    level.hw_level,
                    info.va_start if info.depth else self.desc.kernel_va_start(),
                    end,
                    info.region,
                    used,
                    info.boot,
                )
            )
        out.sort(key=lambda r: (r.hw_level, r.va_start))
        return out

    def digest(self) -> tuple[object, ...]:
        """A value that changes whenever any live table's entries change: each live table's
        pfn, level, VA and a 64-bit XXH3 fingerprint of its entries (hashing a 16K page's
        entries as bytes costs 7x more, and the explorer takes a digest at every state)."""
        content = self.content
        return tuple(
            (pfn, info.depth, info.va_start, _fingerprint(content[pfn]))
            for pfn, info in sorted(self.info.items())
        )

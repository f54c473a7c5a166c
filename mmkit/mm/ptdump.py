"""``/sys/kernel/debug/kernel_page_tables``: the arm64 kernel page-table dump, era by era.

Records first, rendering second:

* :func:`ptdump_walk` walks ``swapper_pg_dir`` of a :class:`~mmkit.machine.Machine` the way
  the machine's kernel era does, and yields what ``note_page()`` prints, in order: one
  :class:`PtdumpRange` per range line and one :class:`PtdumpMarker` per ``---[ name ]---``
  line.
* :func:`format_ptdump` renders records byte for byte in an era's line format;
  :func:`ptdump` is the two together.
* :func:`parse_ptdump` reads real dump text (v5.4, v5.7, v6.1 and the condensed sample of
  ``Documentation/arch/arm64/ptdump.rst``) back into records.

What each era does (kernel-facts 8 and 11, and the sources named on each function):

* **v5.3 / v5.4** (``arch/arm64/mm/dump.c``): the arch walker ``walk_pgd`` → ``walk_pud`` →
  ``walk_pmd`` → ``walk_pte`` calls ``note_page(st, addr, level, val)`` with levels 1 (PGD)
  to 4 (PTE) for every none or block entry and for every PTE; a range is printed only when
  its attribute bits are non-zero, so holes are silent. Clear ``UXN`` prints nothing.
* **v5.7 / v6.1** (generic ``mm/ptdump.c`` on ``walk_page_range_novma()`` + the arm64
  ``note_page``): holes come from ``pte_hole(addr, next, depth)`` with the *real* depth of
  the missing entry (0 for the top table whatever its Linux name, ``real_depth()`` of
  ``mm/pagewalk.c``), leaves from ``p?d_entry`` at their Linux level (0 PGD ... 4 PTE), and
  every range is printed, attributes only when non-zero. Clear ``UXN`` prints 3 spaces; v6.1
  adds the BTI ``GP`` column and the v6.1 memory-type strings.

A range line ends when the level or the masked attribute bits change, or when the walk
reaches the next address marker; at most two marker lines are printed per ``note_page``
call, so markers skipped by one big entry are caught up by the following calls, exactly as
in the kernel.

Faithful quirks and modelling notes:

* v5.7's ``ptdump_walk()`` (5.7.14 ``dump.c``) initialises its ``pg_state`` without
  ``.level = -1`` (only ``ptdump_check_wx()`` sets it), so ``note_page()`` never takes its
  "first call" branch: "Linear Mapping start" is not printed and the first line is a
  level-0 range from ``0x0000000000000000`` to the first change. v6.1 sets ``-1``.
* mmkit's descriptors use the v5.4 MAIR indices (``MT_NORMAL`` = 4) in every era; the v6.1
  memory-type strings are chosen by type, not by v6.1's renumbered indices.
* The generic walker's KASAN shortcut (``note_kasan_page_table``) is not modelled: mmkit does
  not map the KASAN shadow, and over fully populated early-shadow tables it prints the same.
* Table pages are read by frame, live or freed, as the kernel would read them.

The code lives in sibling modules, one idea each, and everything is re-exported here, which is
the place to import it from:

* :mod:`mmkit.mm.ptdump_records`: the records, :class:`PtdumpRange` and :class:`PtdumpMarker`;
* :mod:`mmkit.mm.ptdump_format`: the per-era ``pte_bits[]``/``pg_level[]`` tables and the
  text formatter (:func:`format_range`, :func:`format_ptdump`);
* :mod:`mmkit.mm.ptdump_parse`: the parser of real dump text (:func:`parse_ptdump`);
* this module: the address markers, the walkers with ``note_page()`` merging, and
  :func:`ptdump`.

>>> from mmkit.machine import Machine
>>> print(ptdump(Machine("arm64-64k-42", kernel="v5.4")).splitlines()[1])
0xfffffc0000000000-0xfffffc0000200000           2M PTE       RW NX SHD AF NG CON     UXN MEM/NORMAL
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmkit.errors import InvalidArgument
from mmkit.mm.ptdump_format import (
    ERAS,
    PTE_GP,
    _attr_strings,
    _Era,
    _era,
    format_ptdump,
    format_range,
)
from mmkit.mm.ptdump_parse import parse_ptdump
from mmkit.mm.ptdump_records import _M64, _TOP, PtdumpMarker, PtdumpRange, PtdumpRecord

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "ERAS",
    "PTE_GP",
    "PtdumpMarker",
    "PtdumpRange",
    "PtdumpRecord",
    "address_markers",
    "format_ptdump",
    "format_range",
    "parse_ptdump",
    "ptdump",
    "ptdump_walk",
]


# -------------------------------------------------------------------------- markers
def address_markers(m: Machine) -> list[PtdumpMarker]:
    """``address_markers[]`` of the machine's era, with the addresses ``ptdump_init()`` sets.

    v5.3 (``dump.c``): [Kasan shadow start/end], Modules, vmalloc(), Fixmap, PCI I/O,
    vmemmap, then "Linear mapping" at ``PAGE_OFFSET``; v5.4 / v5.7 (``dump.c``) and v6.1
    (``ptdump.c``): "Linear Mapping start/end" first, then the same list (KASAN only when
    built with KASAN; ``CONFIG_SPARSEMEM_VMEMMAP`` assumed, as arm64 defconfig has it).

    >>> from mmkit.machine import Machine
    >>> [k.name for k in address_markers(Machine("arm64-4k-39", kernel="v5.3"))][-3:]
    ['vmemmap start', 'vmemmap end', 'Linear mapping']
    """
    d = m.desc
    mac = d.macros()
    era = d.kernel
    kasan: list[tuple[str, str | int]] = []
    if d.kasan:
        kasan = [
            ("Kasan shadow start", "KASAN_SHADOW_START"),
            ("Kasan shadow end", "KASAN_SHADOW_END"),
        ]
    middle: list[tuple[str, str | int]] = [
        ("Modules start", "MODULES_VADDR"),
        ("Modules end", "MODULES_END"),
        ("vmalloc() area", "VMALLOC_START"),
        ("vmalloc() end", "VMALLOC_END"),
        ("Fixmap start", "FIXADDR_START"),
        ("Fixmap end", "FIXADDR_TOP"),
        ("PCI I/O start", "PCI_IO_START"),
        ("PCI I/O end", "PCI_IO_END"),
        ("vmemmap start", "VMEMMAP_START"),
        ("vmemmap end", d.vmemmap_end),
    ]
    # the kernel lists them in address order; a rearranged (teaching) layout keeps that
    middle.sort(key=lambda row: mac[row[1]] if isinstance(row[1], str) else row[1])
    if era == "v5.3":
        rows = [*kasan, *middle, ("Linear mapping", "PAGE_OFFSET")]
    else:
        rows = [
            ("Linear Mapping start", "PAGE_OFFSET"),
            ("Linear Mapping end", "PAGE_END"),
            *kasan,
            *middle,
        ]
    return [
        PtdumpMarker(name, (mac[src] if isinstance(src, str) else src) & _M64) for name, src in rows
    ]


def _walk_base(m: Machine) -> int:
    """``kernel_ptdump_info.base_addr``: ``VA_START`` in v5.3, ``PAGE_OFFSET`` after."""
    mac = m.desc.macros()
    return mac["VA_START"] if m.desc.kernel == "v5.3" else mac["PAGE_OFFSET"]


# ---------------------------------------------------------------------------- walker
@dataclass(frozen=True, slots=True)
class _Run:
    """``count`` consecutive ``note_page(addr + i * step, level, val)`` calls whose masked
    attribute bits are all ``prot``."""

    addr: int
    step: int
    count: int
    level: int
    prot: int


def _walk_runs(m: Machine, era: _Era, lo: int, hi: int) -> Iterator[_Run]:
    """The ``note_page()`` calls of the era's walker over ``[lo, hi)``, as runs.

    Both walkers visit the same entries; they differ in the level number they pass. The top
    table's entries are the Linux PGD entry and, folded into it, the PUD (3 levels) or PUD
    and PMD (2 levels): the arch walker (``walk_pgd``/``walk_pud``/``walk_pmd`` of v5.4
    ``dump.c``) notes a none or block top entry at the deepest folded level (``pgd_none`` and
    ``pud_none`` of the folded levels are stubs returning 0), the generic walker reports a
    missing top entry at depth 0 (``real_depth()``) and a block at its Linux level
    (``pud_leaf``/``pmd_leaf``). Tables below the top note at their own level, and every
    PTE is noted (level 4), none or not.

    An entry is a table when bits[1:0] are 0b11 above the leaf level, none when 0, and any
    other value is noted as a leaf (the kernel would ``BUG_ON(p?d_bad)`` on garbage).
    """
    pt = m.pgtables
    levels = pt.levels
    last = len(levels) - 1
    linux_no = {"pgd": 0 if era.generic else 1, "pud": 2, "pmd": 3, "pte": 4}
    top_chain = ["pgd"]
    for lv in m.desc.level_info[1:]:
        if not lv.folded:
            break
        top_chain.append(lv.name)
    top_leaf = linux_no[top_chain[-1]]
    mask = np.uint64(era.mask)
    zeros = np.zeros(pt.ptrs, dtype=np.uint64)

    def scan(pfn: int, depth: int, base: int, lo: int, hi: int) -> Iterator[_Run]:
        level = levels[depth]
        size = level.entry_size
        shift = level.shift
        arr = pt.content.get(pfn)
        if arr is None:
            arr = zeros  # a frame never used as a table reads as zeroes
        i0 = (lo - base) >> shift
        i1 = ((hi - 1 - base) >> shift) + 1
        entries = np.array(arr[i0:i1], dtype=np.uint64)  # READ_ONCE of the whole table
        prots = entries & mask
        if depth == last:
            kinds = np.zeros(len(entries), dtype=np.int8)
            hole_no = leaf_no = 4
        else:
            kinds = np.where(entries == 0, 0, np.where((entries & np.uint64(3)) == 3, 2, 1))
            kinds = kinds.astype(np.int8)
            if depth == 0:
                hole_no, leaf_no = (0 if era.generic else top_leaf), top_leaf
            else:
                hole_no = leaf_no = linux_no[level.name]
        n = len(entries)
        cut = (
            np.flatnonzero((prots[1:] != prots[:-1]) | (kinds[1:] != kinds[:-1]) | (kinds[1:] == 2))
            + 1
        )
        bounds = [0, *cut.tolist(), n]
        if lo > base + i0 * size and n > 1 and bounds[1] != 1:
            bounds.insert(1, 1)  # an unaligned first entry is noted at lo, not on the grid
        for s, e in itertools.pairwise(bounds):
            start = base + (i0 + s) * size
            addr = max(lo, start)
            kind = int(kinds[s])
            if kind == 2:
                child = pt.next_table(int(entries[s]))
                yield from scan(child, depth + 1, start, addr, min(hi, start + size))
                continue
            yield _Run(addr, size, e - s, hole_no if kind == 0 else leaf_no, int(prots[s]))

    top = levels[0]
    yield from scan(pt.pgd_pfn, 0, _TOP - top.ptrs * top.entry_size, lo, hi)


# ------------------------------------------------------------------------ note_page
class _NotePage:
    """``struct pg_state`` and the arm64 ``note_page()`` of one era, yielding records."""

    def __init__(self, era: _Era, markers: Sequence[PtdumpMarker], first: int = 0) -> None:
        self.era = era
        self.markers = [*markers, PtdumpMarker("", _M64)]  # { -1, NULL } ends the list
        self.idx = first
        self.level = era.initial_level
        self.prot = 0
        self.start = 0

    def _next_marker(self) -> int:
        return self.markers[self.idx + 1].address or 0

    def _range(self, addr: int) -> PtdumpRange | None:
        if not (self.prot or self.era.prints_holes):
            return None
        end = addr if addr else _TOP
        attrs = _attr_strings(self.era, self.prot) if self.prot else ()
        return PtdumpRange(
            self.start,
            end,
            self.era.level_names[self.level],
            self.prot,
            attrs,
            (addr - self.start) & _M64,
            self.level,
        )

    def note(self, addr: int, level: int, prot: int) -> Iterator[PtdumpRecord]:
        """One ``note_page(st, addr, level, val)`` call (``prot`` already masked)."""
        if self.level == self.era.unstarted:
            self.level, self.prot, self.start = level, prot, addr
            yield self.markers[self.idx]
        elif prot != self.prot or level != self.level or addr >= self._next_marker():
            rec = self._range(addr)
            if rec is not None:
                yield rec
            if addr >= self._next_marker():
                self.idx += 1
                yield self.markers[self.idx]
            self.start, self.prot, self.level = addr, prot, level
        if addr >= self._next_marker():
            self.idx += 1
            yield self.markers[self.idx]

    def run(self, r: _Run) -> Iterator[PtdumpRecord]:
        """``r.count`` calls; only the first and those reaching a marker can print."""
        yield from self.note(r.addr, r.level, r.prot)
        nxt = r.addr + r.step
        last = r.addr + (r.count - 1) * r.step
        while nxt <= last:
            target = self._next_marker()
            if target > last:
                break
            if target > nxt:
                nxt += -(-(target - nxt) // r.step) * r.step
            yield from self.note(nxt, r.level, r.prot)
            nxt += r.step


def ptdump_walk(
    m: Machine, *, start: int | None = None, end: int | None = None
) -> Iterator[PtdumpRecord]:
    """Walk the machine's kernel page tables as its era's ptdump does; yield the lines.

    Models ``ptdump_walk_pgd()`` of v5.3/v5.4 ``arch/arm64/mm/dump.c`` (arch walker, then
    ``note_page(&st, 0, 0, 0)``) and ``ptdump_walk()`` of v5.7 ``arch/arm64/mm/dump.c`` /
    v6.1 ``arch/arm64/mm/ptdump.c`` over v5.7 / v6.1 ``mm/ptdump.c`` ``ptdump_walk_pgd()``
    (generic walker, then ``note_page(st, 0, -1, 0)``), with their ``note_page()``.

    The walk covers ``[start, end)``, by default ``[base, 2**64)`` with base ``PAGE_OFFSET``
    (``VA_START`` in v5.3) as ``kernel_page_tables`` does. With ``start`` given, the marker
    list starts at the last marker at or below ``start`` (the kernel has no such option);
    with ``end`` given, the final flush is at ``end`` instead of 0.

    It is a generator: table pages are read when the walk reaches them and each record is
    yielded as soon as ``note_page()`` would print it, so a caller can interleave the walk
    with machine operations (the race the ``get_online_mems()`` lock of patch 2/3 closes).

    >>> from mmkit.machine import Machine
    >>> recs = list(ptdump_walk(Machine("arm64-4k-48", kernel="v6.1")))
    >>> recs[0].name, hex(recs[0].address), recs[1].level
    ('Linear Mapping start', '0xffff000000000000', 'PMD')
    >>> sorted(recs[1].tokens)
    ['AF', 'BLK', 'MEM/NORMAL-TAGGED', 'NG', 'NX', 'RW', 'SHD', 'UXN']
    """
    hooks = getattr(m.desc, "machine_hooks", None)  # another architecture's own dump
    if hooks is not None and hasattr(hooks, "ptdump_walk"):
        return hooks.ptdump_walk(m, start=start, end=end)  # type: ignore[no-any-return]
    d = m.desc
    era = _era(d.kernel, d.levels)
    lo = _walk_base(m) if start is None else start
    hi = _TOP if end is None else end
    kernel_start = _TOP - m.pgtables.levels[0].ptrs * m.pgtables.levels[0].entry_size
    if not (isinstance(lo, int) and isinstance(hi, int) and kernel_start <= lo < hi <= _TOP):
        raise InvalidArgument(
            f"ptdump_walk: range [{lo:#x}, {hi:#x}) must be non-empty and inside the kernel "
            f"page tables [{kernel_start:#x}, 2**64)"
        )
    markers = address_markers(m)
    first = 0
    if start is not None:
        for i, mk in enumerate(markers):
            if mk.address is not None and mk.address <= lo:
                first = i
    return _walk(m, era, _NotePage(era, markers, first), lo, hi)


def _walk(m: Machine, era: _Era, st: _NotePage, lo: int, hi: int) -> Iterator[PtdumpRecord]:
    for r in _walk_runs(m, era, lo, hi):
        yield from st.run(r)
    yield from st.note(hi & _M64, era.final_level, 0)


def ptdump(m: Machine) -> str:
    """``cat /sys/kernel/debug/kernel_page_tables`` on the machine (its era's format, or
    the text of the architecture's own dump when its machine hooks have one)."""
    hooks = getattr(m.desc, "machine_hooks", None)
    if hooks is not None and hasattr(hooks, "ptdump"):
        return str(hooks.ptdump(m))
    return format_ptdump(ptdump_walk(m), m.desc.kernel)

"""The per-era line format of ``kernel_page_tables``: attribute tables and range lines.

What the eras' ``note_page()`` print differs in is kept here as data (:class:`_Era`): the
``pte_bits[]`` attribute strings (v5.3/v5.4 ``arch/arm64/mm/dump.c``, v5.7 ``dump.c``, v6.1
``arch/arm64/mm/ptdump.c``), the ``pg_level[]`` names by ``note_page()`` level number and the
levels that start and flush the walk. v5.3/v5.4 print nothing for clear ``UXN``, v5.7 and
v6.1 print 3 spaces; v6.1 adds the BTI ``GP`` column (``PTE_GP`` of v6.1
``arch/arm64/include/asm/pgtable-hwdef.h``) and its own memory-type strings.

:func:`format_range` and :func:`format_ptdump` render :mod:`~mmkit.mm.ptdump_records` records
byte for byte in an era's format (``"0x%016lx-0x%016lx   %9lu%c %s"`` then ``dump_prot()``).
The private ``_era`` and ``_attr_strings`` are also used by the walker in
:mod:`mmkit.mm.ptdump`, which is where to import the public names from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mmkit.arch import pte as hw
from mmkit.errors import InvalidArgument
from mmkit.mm.ptdump_records import _M64, PtdumpMarker, PtdumpRange, PtdumpRecord

__all__ = ["ERAS", "PTE_GP", "format_ptdump", "format_range"]

#: Kernel eras whose ptdump :mod:`mmkit.mm.ptdump` reproduces.
ERAS: tuple[str, ...] = ("v5.3", "v5.4", "v5.7", "v6.1")

#: ``PTE_GP`` (v6.1 ``pgtable-hwdef.h``): bit 50, BTI guarded page. v6.1 ptdump prints it.
PTE_GP = 1 << 50

#: ``units[]`` of ``note_page()``: the size is printed in KiB, scaled while divisible.
_UNITS = "KMGTPE"


# ------------------------------------------------------------------------ era formats
# One entry of ``pte_bits[]``: (mask, value, printed when equal, printed otherwise or None).
_ProtBit = tuple[int, int, str, str | None]

_COMMON_BITS: tuple[_ProtBit, ...] = (
    (hw.PTE_VALID, hw.PTE_VALID, " ", "F"),
    (hw.PTE_USER, hw.PTE_USER, "USR", "   "),
    (hw.PTE_RDONLY, hw.PTE_RDONLY, "ro", "RW"),
    (hw.PTE_PXN, hw.PTE_PXN, "NX", "x "),
    (hw.PTE_SHARED, hw.PTE_SHARED, "SHD", "   "),
    (hw.PTE_AF, hw.PTE_AF, "AF", "  "),
    (hw.PTE_NG, hw.PTE_NG, "NG", "  "),
    (hw.PTE_CONT, hw.PTE_CONT, "CON", "   "),
    (hw.PTE_TABLE_BIT, hw.PTE_TABLE_BIT, "   ", "BLK"),
)

# Memory types, keyed by the AttrIndx values mmkit's descriptors use (the v5.4 MAIR layout,
# mmkit.arch.pte.MT_*, plus MT_NORMAL_TAGGED). v5.x prints the five strings of v5.4 dump.c;
# v6.1 ptdump.c has no DEVICE/GRE and adds MEM/NORMAL-TAGGED, which its linear map uses.
_MEM_V5: tuple[tuple[int, str], ...] = tuple(hw.PTDUMP_MEM_TYPES.items())
_MEM_V61: tuple[tuple[int, str], ...] = (
    (hw.MT_DEVICE_nGnRnE, "DEVICE/nGnRnE"),
    (hw.MT_DEVICE_nGnRE, "DEVICE/nGnRE"),
    (hw.MT_NORMAL_NC, "MEM/NORMAL-NC"),
    (hw.MT_NORMAL, "MEM/NORMAL"),
    (hw.MT_NORMAL_TAGGED, "MEM/NORMAL-TAGGED"),
)


@dataclass(frozen=True)
class _Era:
    """What differs between the eras' ``note_page()`` / walkers."""

    name: str
    generic: bool  #: generic mm/ptdump.c walker (holes noted with their depth)
    prints_holes: bool  #: ranges with prot 0 are printed (without attributes)
    bits: tuple[_ProtBit, ...]  #: pte_bits[] in print order
    level_names: dict[int, str]  #: pg_level[].name by note_page level number
    initial_level: int  #: st->level when the walk starts
    unstarted: int  #: the st->level value that means "nothing noted yet"
    final_level: int  #: level of the flushing call after the walk

    @property
    def mask(self) -> int:
        """``pg_level[].mask``: the OR of every ``pte_bits[]`` mask (same for all levels)."""
        out = 0
        for mask, _val, _set, _clear in self.bits:
            out |= mask
        return out


def _era(era: str, levels: int) -> _Era:
    if era not in ERAS:
        raise InvalidArgument(f"ptdump: unknown kernel era {era!r}", choices=ERAS)
    pud = "PUD" if levels > 3 else "PGD"  # (CONFIG_PGTABLE_LEVELS > 3) ? "PUD" : "PGD"
    pmd = "PMD" if levels > 2 else "PGD"  # (CONFIG_PGTABLE_LEVELS > 2) ? "PMD" : "PGD"
    v61 = era == "v6.1"
    uxn: tuple[_ProtBit, ...] = (
        (hw.PTE_UXN, hw.PTE_UXN, "UXN", None if era in ("v5.3", "v5.4") else "   "),
    )
    gp: tuple[_ProtBit, ...] = ((PTE_GP, PTE_GP, "GP", "  "),) if v61 else ()
    mem = tuple(
        (hw.PTE_ATTRINDX_MASK, hw.PTE_ATTRINDX(idx), s, None)
        for idx, s in (_MEM_V61 if v61 else _MEM_V5)
    )
    bits = _COMMON_BITS + uxn + gp + mem
    if era in ("v5.3", "v5.4"):
        # dump.c: pg_level[0] is the empty "not started" slot, 1..4 are PGD..PTE
        return _Era(
            era,
            False,
            False,
            bits,
            {1: "PGD", 2: pud, 3: pmd, 4: "PTE"},
            initial_level=0,
            unstarted=0,
            final_level=0,
        )
    # v5.7 ptdump_walk() builds its pg_state without ".level = -1" (ptdump_check_wx() has
    # it), so the first range of the v5.7 dump starts at 0 with level 0; v6.1 sets -1.
    return _Era(
        era,
        True,
        True,
        bits,
        {0: "PGD", 1: "P4D", 2: pud, 3: pmd, 4: "PTE"},
        initial_level=0 if era == "v5.7" else -1,
        unstarted=-1,
        final_level=-1,
    )


def _attr_strings(era: _Era, prot: int) -> tuple[str, ...]:
    """``dump_prot()``: each ``pte_bits[]`` entry's set or clear string (NULL ones skipped)."""
    out = []
    for mask, val, when_set, when_clear in era.bits:
        s = when_set if prot & mask == val else when_clear
        if s is not None:
            out.append(s)
    return tuple(out)


def _attr_strings_from_tokens(era: _Era, tokens: frozenset[str]) -> tuple[str, ...]:
    """The strings ``dump_prot()`` would print for a range showing ``tokens`` (parsed text)."""
    out = []
    for mask, _val, when_set, when_clear in era.bits:
        if when_set.strip() and when_set in tokens:
            out.append(when_set)
        elif mask == hw.PTE_ATTRINDX_MASK:
            continue  # a memory type the range does not show prints nothing
        elif when_clear is not None and when_clear.strip() and when_clear.strip() in tokens:
            out.append(when_clear)
        elif not when_set.strip():
            out.append(when_set)  # blank "set" string (valid, page/table): the default
        elif when_clear is not None:
            out.append(when_clear)
    return tuple(out)


# ------------------------------------------------------------------------- rendering
def _size_field(size: int) -> str:
    """``"%9lu%c"`` of ``note_page()``: KiB scaled by 1024 while divisible.

    >>> _size_field(0x210000), _size_field(2 << 20), _size_field(((1 << 64) - (1 << 48)))
    ('     2112K', '        2M', ' 16776960T')
    """
    delta = (size & _M64) >> 10
    unit = 0
    while not delta & 1023 and unit + 1 < len(_UNITS):
        delta >>= 10
        unit += 1
    return f"{delta:9d}{_UNITS[unit]}"


def format_range(rec: PtdumpRange, era: str) -> str | None:
    """One range line (no newline) as ``era`` prints it, or ``None`` if that era's
    ``note_page()`` would not print it (v5.3/v5.4 skip ranges without attributes)."""
    spec = _era(era, 4)
    if rec.prot is not None:
        attrs = _attr_strings(spec, rec.prot) if rec.prot else ()
        shown = bool(rec.prot)
    else:
        shown = bool(rec.tokens)
        attrs = _attr_strings_from_tokens(spec, rec.tokens) if shown else ()
    if not shown and not spec.prints_holes:
        return None
    head = f"0x{rec.start & _M64:016x}-0x{rec.end & _M64:016x}   "
    return (
        head + f"{_size_field(rec.end - rec.start)} {rec.level}" + "".join(" " + a for a in attrs)
    )


def format_ptdump(records: Iterable[PtdumpRecord], era: str) -> str:
    """Render records as ``era``'s ``kernel_page_tables`` text, byte for byte.

    Range lines: ``0x%016lx-0x%016lx``, 3 spaces, ``%9lu%c`` size, a space, the level name,
    then each attribute string preceded by one space (v5.4: none for clear UXN; v5.7: 3
    spaces; v6.1 also ``GP``/2 spaces). Marker lines: ``---[ name ]---``. Attribute strings
    are derived from ``prot`` (walk records) or from the tokens (parsed records), so parsed
    text can be re-rendered in another era's spacing.

    >>> r = PtdumpRange(0xffff000000000000, 0xffff000000200000, "PMD", 0x68000000000f11,
    ...                 (), 2 << 20)
    >>> text = format_ptdump([PtdumpMarker("Linear Mapping start"), r], "v5.4")
    >>> marker, line = text.splitlines()
    >>> print(marker); print(line[:54]); print(line[54:])
    ---[ Linear Mapping start ]---
    0xffff000000000000-0xffff000000200000           2M PMD
           RW NX SHD AF NG     BLK UXN MEM/NORMAL
    """
    _era(era, 4)  # validates the era name
    lines = []
    for rec in records:
        if isinstance(rec, PtdumpMarker):
            lines.append(f"---[ {rec.name} ]---")
            continue
        line = format_range(rec, era)
        if line is not None:
            lines.append(line)
    return "".join(line + "\n" for line in lines)

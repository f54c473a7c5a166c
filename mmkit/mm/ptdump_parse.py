"""Reading real ``kernel_page_tables`` text back into records.

:func:`parse_ptdump` accepts the range and marker lines of every era
:mod:`mmkit.mm.ptdump` models: v5.3/v5.4 and v5.7 ``arch/arm64/mm/dump.c``, v6.1
``arch/arm64/mm/ptdump.c`` (``GP`` column, v6.1 memory-type strings), and the condensed sample
of ``Documentation/arch/arm64/ptdump.rst``, whose fields are separated by any amount of space.
Parsed :class:`~mmkit.mm.ptdump_records.PtdumpRange` records carry the printed tokens but no
``prot`` or level number, so :func:`~mmkit.mm.ptdump.format_ptdump` can re-render them in any
era's spacing. Import :func:`parse_ptdump` from :mod:`mmkit.mm.ptdump`.
"""

from __future__ import annotations

import re

from mmkit.errors import InvalidArgument
from mmkit.mm.ptdump_format import _UNITS
from mmkit.mm.ptdump_records import _TOP, PtdumpMarker, PtdumpRange, PtdumpRecord

__all__ = ["parse_ptdump"]


# --------------------------------------------------------------------------- parsing
_RANGE_RE = re.compile(
    r"^\s*0x([0-9a-fA-F]{1,16})\s*-\s*0x([0-9a-fA-F]{1,16})\s+(\d+)\s*([KMGTPE])\s+"
    r"(PGD|P4D|PUD|PMD|PTE)(?:\s+(.*?))?\s*$"
)
_MARKER_RE = re.compile(r"^\s*---\[\s*(.*?)\s*\]---\s*$")
#: Every attribute word any era prints (memory types are matched by pattern).
_TOKENS = frozenset(
    {"F", "USR", "ro", "RW", "NX", "x", "SHD", "AF", "NG", "CON", "BLK", "UXN", "GP"}
)
_MEM_RE = re.compile(r"^(DEVICE|MEM)/[A-Za-z-]+$")


def parse_ptdump(text: str) -> list[PtdumpRecord]:
    """Parse ``kernel_page_tables`` text of any era into records.

    Accepts the v5.3/v5.4, v5.7 and v6.1 formats and the condensed sample of
    ``Documentation/arch/arm64/ptdump.rst`` (any amount of spaces between fields). Blank
    lines are skipped. A range ending at ``0x0000000000000000`` ends at ``2**64``. The size
    column must agree with the addresses. Raises :class:`~mmkit.errors.InvalidArgument`
    naming the line number and text of the first malformed line.

    >>> recs = parse_ptdump('''---[ Modules start ]---
    ... 0xffff800000000000-0xffff800008000000   128M PTE
    ... 0xfff0000000000000-0xfff0000000210000  2112K PTE RW NX SHD AF  UXN  MEM/NORMAL''')
    >>> recs[1].mapped, recs[2].size == 0x210000, sorted(recs[2].tokens)[:3]
    (False, True, ['AF', 'MEM/NORMAL', 'NX'])
    """
    if not isinstance(text, str):
        raise InvalidArgument(
            f"parse_ptdump: expected the text of kernel_page_tables as a str, got "
            f"{type(text).__name__}"
            + ("; decode it first: data.decode()" if isinstance(text, bytes | bytearray) else "")
        )
    out: list[PtdumpRecord] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        mk = _MARKER_RE.match(line)
        if mk:
            if not mk.group(1):
                raise _bad_line(lineno, line, "the marker has no name")
            out.append(PtdumpMarker(mk.group(1)))
            continue
        mr = _RANGE_RE.match(line)
        if not mr:
            raise _bad_line(
                lineno,
                line,
                "expected '0x<start>-0x<end> <size><K|M|G|T|P|E> "
                "<PGD|P4D|PUD|PMD|PTE> [attributes]' or '---[ <name> ]---'",
            )
        start, end = int(mr.group(1), 16), int(mr.group(2), 16)
        if end == 0:
            end = _TOP
        if end <= start:
            raise _bad_line(lineno, line, "the end address is not above the start")
        size = int(mr.group(3)) << (10 * (1 + _UNITS.index(mr.group(4))))
        if size != end - start:
            raise _bad_line(
                lineno,
                line,
                f"the size column says {size:#x} bytes but the addresses span {end - start:#x}",
            )
        attrs = tuple((mr.group(6) or "").split())
        for tok in attrs:
            if tok not in _TOKENS and not _MEM_RE.match(tok):
                raise _bad_line(lineno, line, f"unknown attribute {tok!r}")
        out.append(PtdumpRange(start, end, mr.group(5), None, attrs, size))
    return out


def _bad_line(lineno: int, line: str, why: str) -> InvalidArgument:
    shown = line if len(line) <= 120 else f"{line[:100]}...({len(line)} characters)"
    return InvalidArgument(f"ptdump text line {lineno}: {shown!r}: {why}")

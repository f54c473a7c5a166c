"""Page-table state as tables: the live table pages, and the ptdump ranges.

:func:`table_pages_frame` lists ``machine.table_pages()`` (one row per live table page, with
its physical address) and :func:`ptdump_frame` the range lines of
``/sys/kernel/debug/kernel_page_tables`` as :func:`~mmkit.mm.ptdump.ptdump_walk` yields them,
each with the address-marker section it falls under. Addresses, pfns and attribute bits are
``"0x..."`` strings and VA ends are exclusive, as in the records; ``raw=True`` gives ints.

>>> from mmkit.machine import Machine
>>> m = Machine("arm64-4k-48")
>>> pages = table_pages_frame(m)
>>> pages.iloc[0][["pfn", "level", "va start"]].tolist()[1:]
['pgd', '0xffff000000000000']
>>> ptdump_frame(m).iloc[0][["section", "start", "level"]].tolist()
['Linear Mapping start', '0xffff000000000000', 'PMD']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from mmkit import _validate
from mmkit.arch import format_size
from mmkit.tables._columns import typed_frame

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["PTDUMP_COLUMNS", "TABLE_PAGE_COLUMNS", "ptdump_frame", "table_pages_frame"]

#: Columns of :func:`table_pages_frame`, in order (``pa`` is the page's physical address).
TABLE_PAGE_COLUMNS: tuple[str, ...] = (
    "pfn",
    "pa",
    "level",
    "hw level",
    "va start",
    "va end",
    "region",
    "used entries",
    "boot",
)

#: Columns of :func:`ptdump_frame`, in order. ``size`` reads as memory.rst rounds it ("2MB")
#: unless ``raw``; ``attrs`` is the printed attribute words, blanks dropped.
PTDUMP_COLUMNS: tuple[str, ...] = (
    "section",
    "start",
    "end",
    "size",
    "level",
    "prot",
    "attrs",
)


def table_pages_frame(machine: Machine, *, raw: bool = False) -> pd.DataFrame:
    """One row per live table page, sorted by level then VA (``machine.table_pages()``)."""
    _validate.shaped(machine, "machine", "a Machine", "pgtables", "table_pages")
    shift = machine.pgtables.page_shift
    rows = [
        {
            "pfn": r.pfn,
            "pa": r.pfn << shift,
            "level": r.level,
            "hw level": r.hw_level,
            "va start": r.va_start,
            "va end": r.va_end,
            "region": r.region,
            "used entries": r.used_entries,
            "boot": r.boot,
        }
        for r in machine.table_pages()
    ]
    return typed_frame(
        rows, TABLE_PAGE_COLUMNS, hex_columns={"pfn", "pa", "va start", "va end"}, raw=raw
    )


def ptdump_frame(machine: Machine, *, raw: bool = False) -> pd.DataFrame:
    """One row per range line of the machine's kernel page-table dump, in walk order.

    ``section`` names the last ``---[ marker ]---`` printed before the line.
    """
    _validate.shaped(machine, "machine", "a Machine", "pgtables", "desc")
    from mmkit.mm.ptdump import PtdumpMarker, ptdump_walk

    section: str | None = None
    rows: list[dict[str, object]] = []
    for rec in ptdump_walk(machine):
        if isinstance(rec, PtdumpMarker):
            section = rec.name
            continue
        rows.append(
            {
                "section": section,
                "start": rec.start,
                "end": rec.end,
                "size": rec.size if raw else format_size(rec.size),
                "level": rec.level,
                "prot": rec.prot,
                "attrs": " ".join(a.strip() for a in rec.attrs if a.strip()),
            }
        )
    return typed_frame(rows, PTDUMP_COLUMNS, hex_columns={"start", "end", "prot"}, raw=raw)

"""The configurations table and memory.rst-style layout tables.

The engine reports plain records (:func:`mmkit.arch.config_rows`, :class:`mmkit.arch.Region`);
this module only arranges them for reading. Addresses print as Documentation/arm64/memory.rst
prints them (16 hex digits, inclusive ends) and sizes as the doc rounds them ("~93TB").

>>> from mmkit import arch
>>> frame = layout_frame(arch.get("arm64-4k-48", kasan="generic"))
>>> frame.loc[frame["use"] == "fixed mappings", ["start", "end", "size"]].iloc[0].tolist()
['fffffdfffe5f9000', 'fffffdfffe9fffff', '4124KB']
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from mmkit import _validate, arch
from mmkit.arch import ArchDescriptor, format_size
from mmkit.tables._columns import typed_frame

__all__ = ["CONFIG_COLUMNS", "configs_frame", "layout_frame", "layout_html"]

#: Columns of :func:`configs_frame`: (column title, key in :func:`mmkit.arch.config_rows`).
#: Kernel macro names stay spelled as the kernel spells them.
CONFIG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("page size", "page_size"),
    ("VA bits", "va_bits"),
    ("levels", "levels"),
    ("folded levels", "folded"),
    ("PGDIR_SHIFT", "PGDIR_SHIFT"),
    ("PTRS_PER_PGD", "PTRS_PER_PGD"),
    ("vmalloc size", "vmalloc_size"),
    ("vmemmap size", "vmemmap_size"),
    ("memory block", "memory_block_size"),
    ("V7 overlap", "v7_overlap"),
)

# Byte counts print as the doc prints sizes; everything else passes through unchanged.
_SIZE_KEYS = frozenset({"page_size", "vmalloc_size", "vmemmap_size", "memory_block_size"})


def _cell(key: str, value: object) -> object:
    if key in _SIZE_KEYS and isinstance(value, int):
        return format_size(value)
    return value


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows to a frame indexed by name, numbers kept exact (see :func:`typed_frame`)."""
    return typed_frame(rows).set_index("name")


def configs_frame(*, raw: bool = False, **options: Any) -> pd.DataFrame:
    """Every configuration as one row, indexed by name.

    ``options`` go to :func:`mmkit.arch.config_rows` (``kernel="v5.7"``, ``kasan="generic"``...).
    A configuration that refuses the options (KASAN on 16K/48) keeps its row, with the reason
    in an ``error`` column. ``raw=True`` returns every key of the rows with numbers unformatted,
    for computing rather than reading.

    >>> frame = configs_frame()
    >>> row = frame.loc["arm64-4k-48"]
    >>> row["page size"], int(row["levels"]), int(row["PGDIR_SHIFT"]), bool(row["V7 overlap"])
    ('4KB', 4, 39, True)
    >>> flagged = frame.index[frame["V7 overlap"].fillna(False)]  # NA: no V7 test (a plugin)
    >>> [name for name in flagged if name.startswith("arm64-")]  # teach-*: by construction
    ['arm64-4k-48', 'arm64-16k-48']
    """
    rows = arch.config_rows(**options)
    if raw:
        return _frame(rows)
    table: list[dict[str, object]] = []
    for row in rows:
        out: dict[str, object] = {"name": row["name"]}
        for title, key in CONFIG_COLUMNS:
            out[title] = _cell(key, row.get(key))
        if "error" in row:
            out["error"] = row["error"]
        table.append(out)
    frame = _frame(table)
    if "error" in frame.columns:
        frame["error"] = frame["error"].fillna("")
    return frame


def layout_frame(descriptor: ArchDescriptor) -> pd.DataFrame:
    """The VA layout of ``descriptor`` as memory.rst tables it, plus each region's kind.

    Columns: ``start`` and ``end`` (inclusive) as 16 hex digits, ``size`` as the doc rounds
    it, ``use`` (the doc's label) and ``kind`` (for filtering, e.g. ``kind == "guard"``).

    >>> from mmkit import arch
    >>> layout_frame(arch.get("arm64-4k-48")).iloc[0].tolist()
    ['0000000000000000', '0000ffffffffffff', '256TB', 'user', 'user']
    """
    _validate.shaped(
        descriptor, "descriptor", "a descriptor from mmkit.arch.get()", "regions", "macros"
    )
    return pd.DataFrame(
        [
            {
                "start": f"{r.start:016x}",
                "end": f"{r.end - 1:016x}",
                "size": format_size(r.end - r.start),  # plugins' regions have no .size
                "use": r.name,
                "kind": r.kind,
            }
            for r in descriptor.regions
        ],
        columns=["start", "end", "size", "use", "kind"],
    )


def layout_html(descriptor: ArchDescriptor) -> str:
    """:func:`layout_frame` as an HTML table (no index), with the rows of the PGD entry that
    the V7 test found shared marked in bold. Used by the widgets; needs no jinja2."""
    _validate.shaped(
        descriptor, "descriptor", "a descriptor from mmkit.arch.get()", "regions", "macros"
    )
    frame = layout_frame(descriptor)
    # Escape here, not in to_html: the bold markers below must stay HTML.
    frame["use"] = [html.escape(use) for use in frame["use"]]
    report = getattr(descriptor, "vmalloc_vmemmap_overlap", None)
    if report is not None and report.overlap and report.shared_entry is not None:
        shared = {html.escape(name) for name in report.regions_in_entry}
        frame["use"] = [
            f"<b>{use}</b> (shared PGD entry)" if use in shared else use for use in frame["use"]
        ]
    return frame.to_html(index=False, escape=False, classes="mmkit-layout", border=0)

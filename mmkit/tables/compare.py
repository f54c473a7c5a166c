"""Policies compared as a table: one row per policy on the same scenario.

Reads the records of :func:`mmkit.mm.compare.compare_policies`: table pages hot-add
allocated, hot-remove freed and left behind (in all, then by ``level/region``), the bytes
left, TLB invalidations by kind, and the kernel reports. Sizes read as memory.rst rounds
them ("8KB") unless ``raw=True``.

>>> from mmkit.mm.compare import compare_policies
>>> rows = compare_policies("arm64-4k-48", blocks=[0x400000000000], policies=["v6", "v5.7"])
>>> comparison_frame(rows)[["tables left", "bytes left", "left pmd/vmemmap"]].values.tolist()
[[2, '8KB', 1], [0, '0B', 0]]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from mmkit import _validate
from mmkit.arch import format_size
from mmkit.tables._columns import typed_frame

if TYPE_CHECKING:
    from mmkit.mm.compare import PolicyOutcome

__all__ = ["comparison_frame"]


def comparison_frame(outcomes: Iterable[PolicyOutcome], *, raw: bool = False) -> pd.DataFrame:
    """One row per policy, indexed by policy name.

    Columns: ``config``, ``tables allocated``, ``tables freed``, ``tables left``, ``bytes
    left``, then ``left <level>/<region>`` for every pair any policy left (0 where a policy
    left none), ``tlbi <kind>`` for every TLBI kind, ``kernel events`` (how many reports) and
    ``kernel log`` (the reports, one per line).
    """
    _validate.records(
        outcomes,
        "outcomes",
        "the outcomes of mmkit.mm.compare.compare_policies()",
        "policy",
        "tables_left",
    )
    outcomes = list(outcomes)
    left_keys = sorted({k for o in outcomes for k in o.left_by_level_region})
    tlbi_keys = sorted({k for o in outcomes for k in o.tlbi})
    rows = []
    for o in outcomes:
        row: dict[str, object] = {
            "policy": o.policy,
            "config": o.config,
            "tables allocated": o.tables_allocated,
            "tables freed": o.tables_freed,
            "tables left": o.tables_left,
            "bytes left": o.bytes_left if raw else format_size(o.bytes_left),
        }
        row.update({f"left {k}": o.left_by_level_region.get(k, 0) for k in left_keys})
        row.update({f"tlbi {k}": o.tlbi.get(k, 0) for k in tlbi_keys})
        row["kernel events"] = len(o.events)
        row["kernel log"] = "\n".join(o.events)
        rows.append(row)
    return typed_frame(rows).set_index("policy")

"""How a page-table tree node looks: its colours, its hover text and the legend line.

Used by :mod:`mmkit.viz.tree` (which re-exports the colour tables). A node's hover gives its
level and entry index, VA range and region, table pfn or output address, the descriptor
decoded in one line (the parent's entry for a table), and its state with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmkit.arch import format_size
from mmkit.arch.pte import decode
from mmkit.errors import InvalidArgument
from mmkit.viz.layout import KIND_COLORS, KIND_LABELS
from mmkit.viz.tree_model import STATES, TreeNode, state_counts

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["REGION_COLORS", "REGION_LABELS", "STATE_COLORS", "STATE_LABELS"]

#: Colour of each node state (Okabe-Ito hues; live is a quiet blue-grey).
STATE_COLORS: dict[str, str] = {
    "touched-after-free": "#D55E00",
    "freed": "#BBBBBB",
    "unmapped": "#E8E8E8",
    "shared": "#CC79A7",
    "empty": "#E69F00",
    "added": "#009E73",
    "live": "#9DB4CC",
}

#: Legend words of each state.
STATE_LABELS: dict[str, str] = {
    "touched-after-free": "touched after free",
    "freed": "freed table page",
    "unmapped": "entries cleared",
    "shared": "shared with vmalloc",
    "empty": "empty table page",
    "added": "added",
    "live": "live",
}

#: Region colours of the tree: the layout figure's, and the kernel image (inside vmalloc).
REGION_COLORS: dict[str, str] = {**KIND_COLORS, "kernel": "#882255"}
REGION_LABELS: dict[str, str] = {
    **KIND_LABELS,
    "kernel": "kernel image",
    "kernel-va": "the kernel's half of the VA space",
}


_ROOT_COLOR = "#5F6B7A"
_HOVER = (
    "<b>%{customdata[0]}</b><br>%{customdata[1]}<br>%{customdata[2]}<br>"
    "%{customdata[3]}<br>%{customdata[4]}<extra></extra>"
)


# ----------------------------------------------------------------- node text
def _descriptor_text(m: Machine, raw: int | None, hw_level: int) -> str:
    """The descriptor decoded in one line (the parent's entry for a table)."""
    if raw is None:
        return "descriptor: —"
    describe = getattr(m.pgtables.fmt, "describe", None)  # a format's own decoding, if any
    if describe is not None:
        name = next(lv.name for lv in m.pgtables.levels if lv.hw_level == hw_level)
        return str(describe(raw, name))
    d = m.desc
    block_levels = frozenset(lv.hw_level for lv in d.geometry.levels_used if lv.hw_block)
    return _decoded(raw, hw_level, d.page_shift, d.pa_bits, block_levels)


@functools.lru_cache(maxsize=8192)
def _decoded(
    raw: int, hw_level: int, page_shift: int, pa_bits: int, block_levels: frozenset[int]
) -> str:
    """The one-line decoding (cached: a stepping view redraws the same entries each step)."""
    try:
        x = decode(raw, hw_level, page_shift=page_shift, pa_bits=pa_bits, block_levels=block_levels)
    except InvalidArgument:
        return f"descriptor {raw:#018x}"
    head = f"descriptor {raw:#018x}: {x.kind.name}"
    if x.kind.name == "TABLE" and x.output_address is not None:
        flags = [f for f, on in (("PXNTable", x.pxn_table), ("UXNTable", x.uxn_table)) if on]
        return f"{head} → {x.output_address:#x} {' '.join(flags)}".rstrip()
    if x.output_address is None:
        return head
    flags = [
        x.mem_type or f"AttrIndx {x.attr_index}",
        "RO" if x.rdonly else "RW",
        *(
            f
            for f, on in (
                ("PXN", x.pxn),
                ("UXN", x.uxn),
                ("AF", x.af),
                ("nG", x.ng),
                ("CONT", x.cont),
            )
            if on
        ),
    ]
    return f"{head} → {x.output_address:#x} {' '.join(flags)}"


def _where(n: TreeNode) -> str:
    if n.kind == "run":
        return f"PA {n.pa:#x}, {n.count} entries" if n.pa is not None else f"{n.count} entries"
    if n.pfn is None:
        return "table page"
    if n.kind == "tables":
        last = f"…{n.pfn_last:#x}" if n.pfn_last is not None else ""
        under = sum(k for (level, _), k in n.pages.items() if level != n.level)
        below = f" (and {under} table pages under them)" if under else ""
        return f"{n.count} table pages, pfn {n.pfn:#x}{last}{below}"
    return f"table page pfn {n.pfn:#x}" + (" (boot)" if n.boot else "")


def _title(n: TreeNode) -> str:
    index = ""
    if n.index is not None:
        last = n.index + n.count - 1
        index = f" [{n.index}]" if last == n.index or n.kind == "table" else f" [{n.index}..{last}]"
    return f"{n.label().replace('<br>', ' ')} · {n.level} (L{n.hw_level}){index}"


def _customdata(m: Machine, n: TreeNode) -> list[str]:
    state = STATE_LABELS[n.state] + (f": {n.note}" if n.note else "")
    region = REGION_LABELS.get(n.region, n.region)
    last = (n.va_end - 1) & ((1 << 64) - 1)
    va = f"VA {n.va_start:#x}–{last:#x} ({format_size(n.span)}), {region}"
    raw_level = n.hw_level - 1 if n.kind in ("table", "tables") else n.hw_level
    return [_title(n), va, _where(n), _descriptor_text(m, n.raw, raw_level), state]


def _colors(nodes: Sequence[TreeNode], color: str) -> list[str]:
    out = []
    for n in nodes:
        if n.id == "pgd":
            out.append(_ROOT_COLOR)
        elif color == "state" or n.state in ("freed", "unmapped"):
            out.append(STATE_COLORS[n.state])
        else:
            out.append(REGION_COLORS.get(n.region, "#999999"))
    return out


# ----------------------------------------------------------------- traces


def _legend(nodes: Sequence[TreeNode], color: str, *, counts: bool = True) -> str:
    """A one-line legend of the colours in use (with table pages per state)."""
    if color == "state":
        tally = state_counts(list(nodes[1:]))
        parts = []
        for s in STATES:
            if any(n.state == s for n in nodes[1:]):
                extra = f" ({tally[s]} tables)" if tally[s] and counts else ""
                parts.append(
                    f"<span style='color:{STATE_COLORS[s]}'>■</span> {STATE_LABELS[s]}{extra}"
                )
        return "   ".join(parts)
    kinds = sorted(
        {n.region for n in nodes[1:]},
        key=lambda k: list(REGION_COLORS).index(k) if k in REGION_COLORS else 99,
    )
    return "   ".join(
        f"<span style='color:{REGION_COLORS.get(k, '#999999')}'>■</span> {REGION_LABELS.get(k, k)}"
        for k in kinds
    )


def _legend_annotation(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "x": 0,
        "y": -0.02,
        "xref": "paper",
        "yref": "paper",
        "xanchor": "left",
        "yanchor": "top",
        "showarrow": False,
        "font": {"size": 11},
        "align": "left",
    }

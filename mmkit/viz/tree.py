"""The kernel page tables as plotly trees: icicle, treemap, sunburst and node-link.

Every figure is built from :func:`mmkit.viz.tree_model.tree_nodes` (table pages, runs of
alike entries folded as ptdump folds them, states against a snapshot) and is a plain
:class:`plotly.graph_objects.Figure`: the static fallback of the stepping widgets, which
bring their ``FigureWidget`` to the same content with :func:`update_tree_figure` (one
``batch_update()`` per change).

* ``style="icicle"`` (the default): the root ``swapper_pg_dir`` on top, each level below its
  parent, in VA order, each box sized by the VA it maps (unmapped VA is not drawn). Kernel
  mappings range from a 4 KiB page to a 512 GiB PGD entry, so by default (``size="log"``) a
  run of entries or a table with nothing drawn under it is as wide as ``log2(span) -
  PAGE_SHIFT + 1`` and a table as wide as its children together, as the layout figure
  scales regions; ``size="linear"`` makes widths proportional to the VA span itself (the
  linear map then dwarfs everything). Click a box to zoom into it.
* ``"treemap"`` and ``"sunburst"``: the same nodes and sizes.
* ``"nodelink"``: a drawing of nodes and edges for small trees (a teaching layout, one
  hot-added block); larger trees raise :class:`~mmkit.errors.InvalidArgument`.

``color="region"`` colours by the VA region (the colours of :func:`mmkit.viz.layout_figure`);
``color="state"`` by the node's state (live, added, freed, unmapped, empty, shared with
vmalloc, touched after free: see :mod:`mmkit.viz.tree_model`). The hover of every node gives
its level, entry index, VA range, table pfn or output address, the descriptor decoded, and
why it is in its state.

>>> from mmkit.machine import Machine
>>> m = Machine("teach-4k-39", rodata_full=True)
>>> before = snapshot(m, "before hot-add")
>>> m.hot_add(0x1_0000_0000, 1 << 30)
>>> fig = tree_figure(m, since=before, color="state")
>>> fig.data[0].type, fig.data[0].ids[0]
('icicle', 'pgd')
>>> "added" in tree_figure(m, since=before, color="state").layout.annotations[0].text
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmkit.arch import format_size
from mmkit.arch.pte import decode
from mmkit.errors import InvalidArgument
from mmkit.viz.layout import KIND_COLORS, KIND_LABELS
from mmkit.viz.tree_model import (
    STATES,
    TreeNode,
    TreeSnapshot,
    level_counts,
    snapshot,
    state_counts,
    tree_nodes,
)

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "NODELINK_MAX_NODES",
    "REGION_COLORS",
    "STATE_COLORS",
    "STATE_LABELS",
    "STYLES",
    "snapshot",
    "tree_diff_figure",
    "tree_figure",
    "tree_pair_figure",
    "update_tree_figure",
]

#: The drawing styles.
STYLES: tuple[str, ...] = ("icicle", "treemap", "sunburst", "nodelink")

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

#: The largest tree drawn as nodes and edges.
NODELINK_MAX_NODES = 250

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
def _values(m: Machine, nodes: Sequence[TreeNode], size: str) -> list[int]:
    """Box sizes: a childless node by its span (log or linear), a parent by its children."""
    parents = {n.parent for n in nodes}
    shift = m.desc.page_shift
    out: dict[str, int] = {}
    for n in reversed(nodes):  # children come after their parent (sorted by VA, then level)
        if n.id not in parents:
            out[n.id] = max(n.span.bit_length() - shift, 1) if size == "log" else n.span
    for n in reversed(nodes):
        if n.id in parents:
            out.setdefault(n.id, 0)
        if n.parent:
            out[n.parent] = out.get(n.parent, 0) + out[n.id]
    return [out[n.id] for n in nodes]


_TRACES = {"icicle": go.Icicle, "treemap": go.Treemap, "sunburst": go.Sunburst}


def _hier_trace(
    style: str,
    m: Machine,
    nodes: Sequence[TreeNode],
    color: str,
    maxdepth: int | None,
    size: str = "log",
) -> Any:
    return _TRACES[style](**_hier_props(style, m, nodes, color, maxdepth, size))


def _hier_props(
    style: str,
    m: Machine,
    nodes: Sequence[TreeNode],
    color: str,
    maxdepth: int | None,
    size: str,
) -> dict[str, Any]:
    """The properties of a hierarchical trace, as plain values (compared to update)."""
    kw: dict[str, Any] = {
        "ids": [n.id for n in nodes],
        "parents": [n.parent for n in nodes],
        "labels": [n.label() for n in nodes],
        "values": _values(m, nodes, size),
        "branchvalues": "total",
        "customdata": [_customdata(m, n) for n in nodes],
        "hovertemplate": _HOVER,
        "marker": {"colors": _colors(nodes, color), "line": {"width": 1, "color": "white"}},
        "sort": False,
        "maxdepth": maxdepth if maxdepth is not None else -1,
        "textinfo": "label",
        "insidetextfont": {"size": 11},
        "name": "page tables",
    }
    if style == "icicle":
        kw["tiling"] = {"orientation": "v"}
    return kw


def _nodelink_props(m: Machine, nodes: Sequence[TreeNode], color: str) -> list[dict[str, Any]]:
    if len(nodes) > NODELINK_MAX_NODES:
        raise InvalidArgument(
            f"the tree has {len(nodes)} nodes; a node-link drawing stays readable up to "
            f"{NODELINK_MAX_NODES}: use style='icicle' (or a teaching layout, one block)"
        )
    kids: dict[str, list[TreeNode]] = {}
    for n in nodes:
        kids.setdefault(n.parent, []).append(n)
    pos: dict[str, tuple[float, float]] = {}
    leaf = 0

    def place(n: TreeNode, depth: int) -> float:
        nonlocal leaf
        ch = kids.get(n.id, [])
        if ch:
            y = sum(place(c, depth + 1) for c in ch) / len(ch)
        else:
            y, leaf = float(leaf), leaf + 1
        pos[n.id] = (float(depth), y)
        return y

    place(nodes[0], 0)
    ex: list[float | None] = []
    ey: list[float | None] = []
    for n in nodes[1:]:
        (x0, y0), (x1, y1) = pos[n.parent], pos[n.id]
        ex += [x0, x1, None]
        ey += [-y0, -y1, None]
    edges = {
        "x": ex,
        "y": ey,
        "mode": "lines",
        "line": {"color": "#AAAAAA", "width": 1},
        "hoverinfo": "skip",
        "showlegend": False,
        "name": "entries",
    }
    dots = {
        "x": [pos[n.id][0] for n in nodes],
        "y": [-pos[n.id][1] for n in nodes],
        "ids": [n.id for n in nodes],
        "mode": "markers+text",
        "marker": {
            "size": [16 if n.kind != "run" else 10 for n in nodes],
            "symbol": ["square" if n.kind != "run" else "circle" for n in nodes],
            "color": _colors(nodes, color),
            "line": {"width": 1, "color": "#333333"},
        },
        "text": [n.label().replace("<br>", " ") for n in nodes],
        "textposition": "middle right",
        "textfont": {"size": 10},
        "customdata": [_customdata(m, n) for n in nodes],
        "hovertemplate": _HOVER,
        "showlegend": False,
        "name": "page tables",
    }
    return [edges, dots]


def _title_text(m: Machine, since: TreeSnapshot | None, title: str | None) -> str:
    if title is not None:
        return title
    teach = " (a teaching layout, not a kernel's)" if m.desc.name.startswith("teach-") else ""
    head = f"{m.desc.name}{teach}: kernel page tables, Linux {m.kernel}, policy {m.policy.name}"
    sub = f"<br><sup>states since: {since.label}</sup>" if since is not None and since.label else ""
    return head + sub


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


def _check_style(style: str, color: str) -> None:
    if style not in STYLES:
        raise InvalidArgument(f"tree style {style!r}", choices=STYLES)
    if color not in ("region", "state"):
        raise InvalidArgument(f"tree colour {color!r}", choices=("region", "state"))


# ----------------------------------------------------------------- public figures
@dataclass
class _TreeParts:
    """What a tree figure is made of, as plain values (compared by an in-place update)."""

    types: list[str]
    props: list[dict[str, Any]]
    title: str
    legend: str
    nodes: list[TreeNode]


def _tree_parts(
    m: Machine,
    *,
    style: str = "icicle",
    color: str = "region",
    since: TreeSnapshot | None = None,
    title: str | None = None,
    maxdepth: int | None = None,
    fold_min: int = 3,
    size: str = "log",
) -> _TreeParts:
    _check_style(style, color)
    if size not in ("log", "linear"):
        raise InvalidArgument(f"tree size {size!r}", choices=("log", "linear"))
    nodes = tree_nodes(m, since=since, fold_min=fold_min)
    if style == "nodelink":
        types, props = ["scatter", "scatter"], _nodelink_props(m, nodes, color)
    else:
        types, props = [style], [_hier_props(style, m, nodes, color, maxdepth, size)]
    return _TreeParts(types, props, _title_text(m, since, title), _legend(nodes, color), nodes)


def tree_figure(
    m: Machine,
    *,
    style: str = "icicle",
    color: str = "region",
    since: TreeSnapshot | None = None,
    title: str | None = None,
    maxdepth: int | None = None,
    fold_min: int = 3,
    size: str = "log",
) -> go.Figure:
    """The kernel page tables of ``m`` as a figure (see the module docstring)."""
    parts = _tree_parts(
        m,
        style=style,
        color=color,
        since=since,
        title=title,
        maxdepth=maxdepth,
        fold_min=fold_min,
        size=size,
    )
    return _figure(parts)


def _figure(parts: _TreeParts) -> go.Figure:
    fig = go.Figure()
    for kind, props in zip(parts.types, parts.props, strict=True):
        fig.add_trace(go.Scatter(**props) if kind == "scatter" else _TRACES[kind](**props))
    fig.update_layout(
        title={"text": parts.title, "x": 0.01, "font": {"size": 15}},
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        height=520,
        annotations=[_legend_annotation(parts.legend)],
        uniformtext={"minsize": 9, "mode": "hide"},
    )
    if parts.types[0] == "scatter":  # node-link: no axes; room on the right for the labels
        depth = max(parts.props[1]["x"])
        fig.update_xaxes(visible=False, range=[-0.1, depth + 0.9])
        fig.update_yaxes(visible=False)
        fig.update_layout(plot_bgcolor="white")
    return fig


def update_tree_figure(fig: go.Figure, m: Machine, **options: Any) -> None:
    """Bring ``fig`` (a ``FigureWidget`` in a widget) to ``tree_figure(m, **options)`` in place.

    Inside one ``batch_update()``, only the properties that differ from the last update are
    sent (the browser redraws once, and a step that changes one table sends little); a change
    of style replaces the traces."""
    parts = _tree_parts(m, **options)
    if [t.type for t in fig.data] != parts.types:
        new = _figure(parts)
        width = fig.layout.width  # a widget's own width stays
        fig.data = ()
        fig.add_traces(list(new.data))
        fig.layout = new.layout
        fig.layout.width = width
        fig._mmkit_tree = parts  # type: ignore[attr-defined]
        return
    last: _TreeParts | None = getattr(fig, "_mmkit_tree", None)
    with fig.batch_update():
        for i, (trace, props) in enumerate(zip(fig.data, parts.props, strict=True)):
            before = last.props[i] if last is not None else {}
            changed = {k: v for k, v in props.items() if before.get(k) != v}
            if changed:
                trace.update(changed)
        if last is None or last.title != parts.title:
            fig.layout.title.text = parts.title
        if last is None or last.legend != parts.legend:
            fig.layout.annotations = [_legend_annotation(parts.legend)]
    fig._mmkit_tree = parts  # type: ignore[attr-defined]


def tree_diff_figure(
    before: TreeSnapshot,
    m: Machine,
    *,
    style: str = "icicle",
    title: str | None = None,
    fold_min: int = 3,
    size: str = "log",
) -> go.Figure:
    """What changed in ``m``'s page tables since ``before``: added, freed, unmapped, and the
    empty table pages the policy left, each with why (in the hover and the summary)."""
    fig = tree_figure(
        m, style=style, color="state", since=before, title=title, fold_min=fold_min, size=size
    )
    nodes = tree_nodes(m, since=before, fold_min=fold_min)
    fig.add_annotation(_legend_annotation(diff_summary(nodes)) | {"y": -0.08})
    fig.update_layout(margin={"b": 70})
    return fig


def _counts_line(nodes: Sequence[TreeNode]) -> str:
    """Table pages freed, left empty and touched after free, in a few words."""
    c = state_counts(list(nodes))
    words = [
        f"{c[s]} {STATE_LABELS[s].replace(' table page', '')}"
        for s in ("added", "freed", "empty", "touched-after-free")
        if c[s]
    ]
    return ", ".join(words) or "no table page added or freed"


def diff_summary(nodes: Sequence[TreeNode]) -> str:
    """One line: table pages added, freed and left empty by level, and why they were left."""
    per = level_counts(list(nodes))
    why: dict[str, int] = {}
    for n in nodes:
        if n.state == "empty" and n.note and n.kind != "run":
            why[n.note] = why.get(n.note, 0) + sum(n.pages.values())
    order = ["pgd", "pud", "pmd", "pte"]
    parts = []
    for state in ("added", "freed", "empty", "touched-after-free"):
        levels = sorted(
            ((lv, k) for (st, lv), k in per.items() if st == state and k),
            key=lambda item: order.index(item[0]) if item[0] in order else 9,
        )
        if levels:
            parts.append(
                f"{STATE_LABELS[state]}: " + ", ".join(f"{k} {lv.upper()}" for lv, k in levels)
            )
    text = "; ".join(parts) or "no table page added or freed"
    if why:
        text += "<br>left: " + "; ".join(f"{c} × {w}" for w, c in why.items())
    return text


def tree_pair_figure(
    left: Machine,
    right: Machine,
    *,
    titles: tuple[str, str] | None = None,
    since: tuple[TreeSnapshot | None, TreeSnapshot | None] | None = None,
    color: str = "state",
    style: str = "icicle",
    fold_min: int = 3,
    size: str = "log",
) -> go.Figure:
    """Two machines' trees side by side (the same scenario under two policies)."""
    _check_style(style, color)
    if style == "nodelink":
        raise InvalidArgument("tree_pair_figure draws hierarchical styles", choices=STYLES[:3])
    snaps = since or (None, None)
    trees = [
        tree_nodes(m, since=snap, fold_min=fold_min)
        for m, snap in zip((left, right), snaps, strict=True)
    ]
    names = titles or tuple(
        f"policy {m.policy.name}: {_counts_line(nodes)}"
        for m, nodes in zip((left, right), trees, strict=True)
    )
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"type": "domain"}, {"type": "domain"}]],
        subplot_titles=list(names),
        horizontal_spacing=0.03,
    )
    for col, (m, nodes) in enumerate(zip((left, right), trees, strict=True), start=1):
        fig.add_trace(_hier_trace(style, m, nodes, color, None, size), row=1, col=col)
    head = f"{left.desc.name}: kernel page tables, Linux {left.kernel}, two policies"
    fig.update_layout(
        title={"text": head, "x": 0.01, "font": {"size": 15}},
        margin={"l": 10, "r": 10, "t": 80, "b": 50},
        height=520,
        uniformtext={"minsize": 9, "mode": "hide"},
    )
    fig.add_annotation(
        _legend_annotation(_legend(trees[0][:1] + trees[0][1:] + trees[1][1:], color))
    )
    return fig

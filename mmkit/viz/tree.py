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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmkit import _validate
from mmkit.errors import InvalidArgument
from mmkit.viz.tree_model import (
    TreeNode,
    TreeSnapshot,
    level_counts,
    snapshot,
    state_counts,
    tree_nodes,
)
from mmkit.viz.tree_style import (
    _HOVER,
    REGION_COLORS,
    STATE_COLORS,
    STATE_LABELS,
    _colors,
    _customdata,
    _legend,
    _legend_annotation,
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

#: The largest tree drawn as nodes and edges.
NODELINK_MAX_NODES = 250


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
    _validate.shaped(m, "m", "a Machine", "pgtables")
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
    _validate.shaped(m, "m", "a Machine", "pgtables")
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
    _validate.shaped(m, "m", "a Machine", "pgtables")
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
    _validate.shaped(left, "left", "a Machine", "pgtables")
    _validate.shaped(right, "right", "a Machine", "pgtables")
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

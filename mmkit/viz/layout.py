"""The kernel VA layout of one configuration as a plotly figure, with the V7 test drawn on it.

Kernel regions range from 2 MB guards to a 2 PB linear map: on a linear axis everything but
the linear map and vmalloc would be invisible. The figure is therefore a *schematic* map, in
the spirit of memory.rst's boxes: the regions stand side by side in address order, each as
wide as ``log2(size) - 12`` (so a region 1024 times bigger is 10 units wider, and every region
is visible), one row per region so that the labels never collide. Inside a region, addresses
are placed linearly; hover over a bar for its exact addresses and size.

On top of the bars the figure draws what V7 3/3's ``find_vmalloc_vmemmap_overlap()`` looked
at: the gap between the vmalloc area and the vmemmap (a red band), the top-level (PGD) entries
around it (a row of their own, and dotted boundary lines), and, when both edges of the gap fall
in one PGD entry (the "overlap" that made V7 skip ``free_empty_tables()`` for the vmemmap),
that shared entry (a dashed red box).

The figure is a plain :class:`plotly.graph_objects.Figure`, the static fallback of
:class:`mmkit.widgets.ConfigExplorer`, and deterministic: the same descriptor gives the same
``to_dict()``.

>>> from mmkit import arch
>>> fig = layout_figure(arch.get("arm64-4k-48"))
>>> fig.layout.title.text.split("<br>")[0]
'arm64-4k-48: kernel VA layout, Linux v5.4'
>>> [s.name for s in fig.layout.shapes if s.name and s.name.startswith("v7")]
['v7-gap', 'v7-shared-entry']
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from mmkit import _validate
from mmkit.arch import ArchDescriptor, Region, format_size

__all__ = [
    "KIND_COLORS",
    "KIND_LABELS",
    "SchematicAxis",
    "layout_figure",
    "pgd_boundaries",
    "pgd_entries",
]

#: One past the highest address.
TOP = 1 << 64

#: The most PGD entries drawn; a 2-level 64K build has 8192 kernel PGD entries.
_MAX_ENTRIES = 16

#: Colour of each region kind (colour-blind-safe Okabe-Ito hues, guards grey).
KIND_COLORS: dict[str, str] = {
    "linear": "#0072B2",
    "kasan": "#CC79A7",
    "bpf_jit": "#E69F00",
    "modules": "#D55E00",
    "vmalloc": "#009E73",
    "fixmap": "#56B4E9",
    "pci_io": "#F0E442",
    "vmemmap": "#7B3FA0",
    "guard": "#BBBBBB",
    "gap": "#DDDDDD",
}

#: Legend label of each region kind.
KIND_LABELS: dict[str, str] = {
    "linear": "linear map",
    "kasan": "KASAN shadow",
    "bpf_jit": "BPF JIT",
    "modules": "modules",
    "vmalloc": "vmalloc",
    "fixmap": "fixmap",
    "pci_io": "PCI I/O",
    "vmemmap": "vmemmap",
    "guard": "guard region",
    "gap": "gap",
}

_GUARD_ROW = "[guard regions]"
_PGD_ROW = "PGD entries"
_GAP_COLOR = "#E41A1C"


@dataclass(frozen=True)
class SchematicAxis:
    """Maps addresses to the figure's schematic x axis.

    Regions (in address order, without holes between them) stand side by side; each is
    ``max(1, log2(size) - 12)`` units wide. ``cuts`` (the PGD entry boundaries drawn) split a
    region into pieces that share its width in proportion to their sizes, except that every
    piece gets at least a fifth of it before normalising: a 512 GB PGD entry at the end of a
    94 TB vmalloc area stays visible. Inside a piece, addresses are placed linearly.

    >>> from mmkit.arch import Region
    >>> axis = SchematicAxis.of([Region("a", "vmalloc", 0, 1 << 22), Region("b", "guard",
    ...                          1 << 22, 1 << 23)])
    >>> axis.x(0), axis.x(1 << 21), axis.x(1 << 22), axis.x(1 << 23)
    (0.0, 5.0, 10.0, 20.0)
    """

    starts: tuple[int, ...]  #: first address of each piece
    ends: tuple[int, ...]  #: end (exclusive) of each piece
    lefts: tuple[float, ...]  #: x of each piece's start
    widths: tuple[float, ...]  #: x width of each piece

    @classmethod
    def of(cls, regions: Sequence[Region], cuts: Sequence[int] = ()) -> SchematicAxis:
        starts: list[int] = []
        ends: list[int] = []
        lefts: list[float] = []
        widths: list[float] = []
        cursor = 0.0
        for region in regions:
            size = region.end - region.start  # RegionLike: plugins' regions have no .size
            width = max(1.0, math.log2(size) - 12)
            edges = [region.start, *sorted(c for c in cuts if region.start < c < region.end)]
            edges.append(region.end)
            shares = [max((hi - lo) / size, 0.2) for lo, hi in itertools.pairwise(edges)]
            total = sum(shares)
            for (lo, hi), share in zip(itertools.pairwise(edges), shares, strict=True):
                starts.append(lo)
                ends.append(hi)
                lefts.append(cursor)
                widths.append(width * share / total)
                cursor += width * share / total
        return cls(tuple(starts), tuple(ends), tuple(lefts), tuple(widths))

    @property
    def length(self) -> float:
        """x of the end of the last region."""
        return self.lefts[-1] + self.widths[-1]

    def x(self, va: int) -> float:
        """The x position of ``va`` (clamped to the regions' span)."""
        if va <= self.starts[0]:
            return 0.0
        if va >= self.ends[-1]:
            return self.length
        i = bisect.bisect_right(self.starts, va) - 1
        fraction = (va - self.starts[i]) / (self.ends[i] - self.starts[i])
        return self.lefts[i] + self.widths[i] * fraction


def _has_report(descriptor: ArchDescriptor) -> bool:
    return getattr(descriptor, "vmalloc_vmemmap_overlap", None) is not None


def _row(region: Region) -> str:
    # Guards and gaps share one row: memory.rst names them all alike.
    return _GUARD_ROW if region.kind in ("guard", "gap") else region.name


def _kernel_regions(descriptor: ArchDescriptor) -> list[Region]:
    return sorted((r for r in descriptor.regions if r.kind != "user"), key=lambda r: r.start)


def _pgd_shift(descriptor: ArchDescriptor) -> int:
    return int(descriptor.macros()["PGDIR_SHIFT"])


def _pgd_index(descriptor: ArchDescriptor, va: int) -> int:
    m = descriptor.macros()
    return (va >> int(m["PGDIR_SHIFT"])) & (int(m["PTRS_PER_PGD"]) - 1)


def pgd_entries(descriptor: ArchDescriptor, limit: int = _MAX_ENTRIES) -> list[tuple[int, int]]:
    """The top-level (PGD) entries around the vmalloc/vmemmap gap, as ``(start, end)`` spans
    in address order: from the entry below the one holding the gap's lower edge to the entry
    above the one holding its upper edge (at most ``limit`` entries, kernel space only).

    >>> from mmkit import arch
    >>> [(hex(a), hex(b)) for a, b in pgd_entries(arch.get("arm64-4k-48"))][1]
    ('0xfffffd8000000000', '0xfffffe0000000000')
    """
    entry = 1 << _pgd_shift(descriptor)
    regions = _kernel_regions(descriptor)
    # arm64's kernel space runs to 2**64; a plugin's (a 32-bit toy's) may end lower.
    kernel_start, top = regions[0].start, max(r.end for r in regions)
    report = getattr(descriptor, "vmalloc_vmemmap_overlap", None)
    if report is not None:
        low, high = report.gap_start, report.gap_end - 1
    else:  # no V7 report (a plugin's family): the entries at the top of its address space
        low = high = top - 1
    first = max((low & ~(entry - 1)) - entry, kernel_start & ~(entry - 1))
    last = min((high & ~(entry - 1)) + entry, top - entry)  # start of the highest entry
    first = max(first, last - (limit - 1) * entry)
    return [(va, va + entry) for va in range(first, last + 1, entry)]


def pgd_boundaries(descriptor: ArchDescriptor, limit: int = _MAX_ENTRIES) -> list[int]:
    """Where the entries of :func:`pgd_entries` begin and end, in address order.

    >>> from mmkit import arch
    >>> [hex(va) for va in pgd_boundaries(arch.get("arm64-4k-48"))]
    ['0xfffffd0000000000', '0xfffffd8000000000', '0xfffffe0000000000', '0xfffffe8000000000']
    """
    _validate.shaped(
        descriptor, "descriptor", "a descriptor from mmkit.arch.get()", "regions", "macros"
    )
    spans = pgd_entries(descriptor, limit)
    edges = [start for start, _ in spans]
    top = max(r.end for r in _kernel_regions(descriptor))
    if spans and spans[-1][1] < top:
        edges.append(spans[-1][1])
    return edges


_HOVER = (
    "<b>%{customdata[0]}</b><br>%{customdata[1]} – %{customdata[2]}"
    "<br>%{customdata[3]}<extra></extra>"
)


def _bar_traces(regions: Sequence[Region], axis: SchematicAxis) -> list[go.Bar]:
    """One horizontal bar trace per region kind, every kind always present (empty if the
    configuration has none) so that the widget can update the traces in place."""
    kinds = [k for k in KIND_COLORS if k != "gap"]
    kinds += sorted({r.kind for r in regions} - set(KIND_COLORS))  # kinds a plugin invented
    traces = []
    for kind in kinds:
        members = [r for r in regions if r.kind == kind or (kind == "guard" and r.kind == "gap")]
        lefts = [axis.x(r.start) for r in members]
        traces.append(
            go.Bar(
                name=KIND_LABELS.get(kind, kind),
                orientation="h",
                y=[_row(r) for r in members],
                base=lefts,
                x=[axis.x(r.end) - left for r, left in zip(members, lefts, strict=True)],
                ids=[f"{r.name}@{r.start:016x}" for r in members],
                text=[format_size(r.end - r.start) for r in members],
                textposition="inside",
                insidetextanchor="middle",
                customdata=[
                    [r.name, f"{r.start:016x}", f"{r.end - 1:016x}", format_size(r.end - r.start)]
                    for r in members
                ],
                hovertemplate=_HOVER,
                marker={
                    "color": KIND_COLORS.get(kind, "#999999"),
                    "line": {"color": "#333333", "width": 0.5},
                },
                showlegend=bool(members),
            )
        )
    return traces


def _pgd_trace(
    descriptor: ArchDescriptor, spans: Sequence[tuple[int, int]], axis: SchematicAxis
) -> go.Bar:
    """The PGD entries around the gap as alternating bars: which entry holds which address."""
    lefts = [axis.x(start) for start, _ in spans]
    size = format_size(1 << _pgd_shift(descriptor))
    return go.Bar(
        name="PGD entry",
        orientation="h",
        y=[_PGD_ROW] * len(spans),
        base=lefts,
        x=[axis.x(end) - left for (_, end), left in zip(spans, lefts, strict=True)],
        ids=[f"pgd[{_pgd_index(descriptor, s)}]@{s:016x}" for s, _ in spans],
        text=[f"PGD entry {_pgd_index(descriptor, s)}" for s, _ in spans],
        textposition="inside",
        insidetextanchor="middle",
        customdata=[
            [f"PGD entry {_pgd_index(descriptor, s)}", f"{s:016x}", f"{e - 1:016x}", size]
            for s, e in spans
        ],
        hovertemplate=_HOVER,
        marker={
            "color": ["#F4F4F4" if _pgd_index(descriptor, s) % 2 else "#DADADA" for s, _ in spans],
            "line": {"color": "#555555", "width": 1},
        },
        showlegend=False,
    )


def _band(name: str, x0: float, x1: float, **style: Any) -> dict[str, Any]:
    return {
        "type": "rect",
        "name": name,
        "xref": "x",
        "yref": "paper",
        "x0": x0,
        "x1": x1,
        "y0": 0,
        "y1": 1,
        **style,
    }


def _v7_marks(
    descriptor: ArchDescriptor, axis: SchematicAxis
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shapes and annotations for the V7 gap and, when the test says overlap, its PGD entry."""
    report = getattr(descriptor, "vmalloc_vmemmap_overlap", None)
    if report is None:
        return [], []
    gap0, gap1 = axis.x(report.gap_start), axis.x(report.gap_end)
    shapes = [
        _band(
            "v7-gap",
            gap0,
            gap1,
            fillcolor=_GAP_COLOR,
            opacity=0.15,
            line={"width": 0},
            layer="below",
        )
    ]
    annotations: list[dict[str, Any]] = [
        {
            "name": "v7-gap",
            "xref": "x",
            "yref": "paper",
            "x": (gap0 + gap1) / 2,
            "y": 0,
            "yanchor": "top",
            "text": f"V7 gap: {format_size(report.gap_end - report.gap_start)}",
            "showarrow": False,
            "font": {"color": _GAP_COLOR, "size": 11},
        }
    ]
    if report.overlap and report.shared_entry is not None:
        end = report.shared_entry_end if report.shared_entry_end is not None else TOP
        x0, x1 = axis.x(report.shared_entry), axis.x(end)
        shapes.append(
            _band(
                "v7-shared-entry",
                x0,
                x1,
                fillcolor="rgba(0,0,0,0)",
                line={"color": _GAP_COLOR, "width": 2, "dash": "dash"},
                layer="above",
            )
        )
        index = _pgd_index(descriptor, report.shared_entry)
        annotations.append(
            {
                "name": "v7-shared-entry",
                "xref": "x",
                "yref": "paper",
                "x": x1,
                "xanchor": "right",
                "y": 1,
                "yanchor": "bottom",
                "text": (
                    f"PGD entry {index} maps vmalloc <i>and</i> vmemmap: "
                    "V7 skips free_empty_tables()"
                ),
                "showarrow": False,
                "font": {"color": _GAP_COLOR, "size": 12},
            }
        )
    return shapes, annotations


def _boundary_shapes(boundaries: Sequence[int], axis: SchematicAxis) -> list[dict[str, Any]]:
    return [
        {
            "type": "line",
            "name": f"pgd-boundary-{va:016x}",
            "xref": "x",
            "yref": "paper",
            "x0": axis.x(va),
            "x1": axis.x(va),
            "y0": 0,
            "y1": 1,
            "line": {"color": "#555555", "width": 1, "dash": "dot"},
            "layer": "below",
        }
        for va in boundaries
    ]


def _title(descriptor: ArchDescriptor) -> str:
    kernel = getattr(descriptor, "kernel", None)
    kasan = getattr(descriptor, "kasan", None)
    if getattr(descriptor, "teaching_layout", False):
        # not a kernel's layout: say so, and which era's layout it rearranges
        head = f"{descriptor.name}: teaching VA layout (not a kernel's)"
        if kernel:
            head += f", rearranged from Linux {kernel}"
    else:
        head = f"{descriptor.name}: kernel VA layout"
        if kernel:
            head += f", Linux {kernel}"
    if kasan:
        head += f", KASAN {kasan}"
    report = getattr(descriptor, "vmalloc_vmemmap_overlap", None)
    if report is None:
        sub = "no V7 overlap test for this configuration (it is arm64's)"
    elif report.overlap:
        sub = f"V7 test: overlap, both gap edges in the PGD entry at {report.shared_entry:#018x}"
    else:
        sub = "V7 test: no overlap, the gap's edges fall in different PGD entries"
    return f"{head}<br><sup>{sub}</sup>"


def layout_figure(descriptor: ArchDescriptor) -> go.Figure:
    """The kernel VA layout of ``descriptor`` (see the module docstring for how to read it).

    Traces: one horizontal bar trace per region kind (always all of them, in a fixed order;
    ``ids`` are ``"<region name>@<start>"``), then the ``PGD entry`` trace. Shapes: the PGD
    entry boundaries (``name="pgd-boundary-<va>"``), the V7 gap (``"v7-gap"``) and the shared
    PGD entry when the test says overlap (``"v7-shared-entry"``).
    """
    _validate.shaped(
        descriptor, "descriptor", "a descriptor from mmkit.arch.get()", "regions", "macros"
    )
    regions = _kernel_regions(descriptor)
    spans = pgd_entries(descriptor)
    boundaries = pgd_boundaries(descriptor)
    axis = SchematicAxis.of(regions, cuts=boundaries)
    rows = [_PGD_ROW]
    for region in regions:
        if _row(region) not in rows:
            rows.append(_row(region))
    v7_shapes, v7_annotations = _v7_marks(descriptor, axis)
    note = {
        "name": "pgd-note",
        "xref": "paper",
        "yref": "paper",
        "x": 0,
        "y": -0.08,
        "xanchor": "left",
        "yanchor": "top",
        "showarrow": False,
        "align": "left",
        "font": {"size": 10, "color": "#555555"},
        "text": (
            "Schematic, not to scale: regions in address order (addresses grow →),<br>"
            "each as wide as log2(its size) - 12; hover for exact addresses.<br>"
            "Dotted lines: PGD entry boundaries, one every "
            f"{format_size(1 << _pgd_shift(descriptor))}; the {len(spans)} "
            + ("around the V7 gap" if _has_report(descriptor) else "at the top")
            + " are drawn."
        ),
    }
    fig = go.Figure(data=[*_bar_traces(regions, axis), _pgd_trace(descriptor, spans, axis)])
    fig.update_layout(
        template="plotly_white",
        title={"text": _title(descriptor), "x": 0.01, "xanchor": "left"},
        barmode="overlay",
        bargap=0.3,
        height=540,
        margin={"l": 180, "r": 20, "t": 95, "b": 150},
        legend={"orientation": "h", "y": -0.25, "x": 0, "yanchor": "top", "traceorder": "normal"},
        hovermode="closest",
        uniformtext={"minsize": 9, "mode": "hide"},
        shapes=[*_boundary_shapes(boundaries, axis), *v7_shapes],
        annotations=[*v7_annotations, note],
        xaxis={
            "range": [-0.5, axis.length + 0.5],
            "showticklabels": False,
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": rows,
            "autorange": "reversed",  # memory.rst order, top to bottom
        },
    )
    return fig

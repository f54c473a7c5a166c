"""memblock's ``memory`` and ``reserved`` arrays on a physical-address axis, and ``pfn_valid()``.

arm64 keeps memblock after boot and its ``pfn_valid()`` asks it (v5.4
arch/arm64/mm/init.c; the model is :mod:`mmkit.mm.memblock`): a pfn is valid when its sparse
section is present with a memmap *and* ``memblock_is_map_memory()`` says its address is in a
``memblock.memory`` region without ``NOMAP``. Patch 1/3 is about the second half: v5.3's
hot-remove called ``memblock_remove()`` while the section was still there, so every pfn of
the block turned invalid before the node links were torn down.

The figure has three rows: ``memblock.memory`` (what RAM exists), ``memblock.reserved``
(what boot code took) and the present sparse sections (``mem_section``, with a memmap:
``valid_section()``), one bar per region (sections: per run of alike sections). Hover a bar
for its base, end, size, flags and node, all in hex. With ``mark_pfn`` a red line marks
that pfn's address and says what ``pfn_valid()`` answers and why.

The axis is *schematic*: RAM ranges lie terabytes apart and a 4 KB reservation sits next to
2 GB of memory, so on a linear axis almost everything would be invisible. Every region
boundary is a tick (in hex); between two ticks the axis is linear, and each piece is as wide
as ``1 + 16 * size / largest piece``, so that small regions stay visible; holes (addresses in
no row) are drawn narrow, with their size written in them.

>>> from mmkit.machine import Machine
>>> m = Machine("arm64-4k-48")
>>> fig = memblock_figure(m, mark_pfn=0x40000)
>>> [c[1] for c in fig.data[0].customdata]
['0x40000000']
>>> [a.text.split(":")[0] for a in fig.layout.annotations if a.name == "mark"]
['pfn 0x40000 (PA 0x40000000)']
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from mmkit import _validate
from mmkit.arch import format_size
from mmkit.mm.memblock import MAX_NUMNODES, MemblockFlags, MemblockRegion, pfn_valid_why
from mmkit.viz._common import OKABE_ITO, RED, machine_label
from mmkit.viz.layout import KIND_COLORS, SchematicAxis

__all__ = ["PhysAxis", "memblock_figure", "section_runs"]

ROWS = ("memblock.memory", "memblock.reserved", "mem_section (present)")
_COLORS = {
    # memblock.memory is what the linear map maps (unless NOMAP): the linear map's colour
    "memblock.memory": KIND_COLORS["linear"],
    "memblock.reserved": OKABE_ITO["orange"],
    # a present section has a memmap in the vmemmap: the vmemmap's colour
    "mem_section (present)": KIND_COLORS["vmemmap"],
}
_HOLE = 2.0  #: width of a hole on the schematic axis
_SCALE = 16.0  #: width of the largest piece, on top of the 1 every piece gets


@dataclass(frozen=True)
class PhysAxis(SchematicAxis):
    """Maps physical addresses to the figure's schematic x (see the module docstring); the
    pieces are placed as the layout figure's are (:class:`~mmkit.viz.layout.SchematicAxis`),
    but sized by this figure's rule."""

    holes: tuple[bool, ...]  #: whether the piece lies in no region

    @classmethod
    def of(  # type: ignore[override]
        cls, ranges: list[tuple[int, int]], extra: tuple[int, ...] = ()
    ) -> PhysAxis:
        """An axis through every edge of ``ranges`` (``(base, end)`` pairs) and ``extra``."""
        edges = sorted({e for r in ranges for e in r} | set(extra))
        if len(edges) < 2:
            edges = [0, 1] if not edges else [edges[0], edges[0] + 1]
        pieces: list[tuple[int, int]] = []
        covered: list[bool] = []
        for lo, hi in itertools.pairwise(edges):
            c = any(b <= lo and hi <= e for b, e in ranges)
            if pieces and not c and not covered[-1]:  # one hole, however many edges in it
                pieces[-1] = (pieces[-1][0], hi)
            else:
                pieces.append((lo, hi))
                covered.append(c)
        largest = max(
            (hi - lo for (lo, hi), c in zip(pieces, covered, strict=True) if c), default=1
        )
        lefts, widths = [], []
        x = 0.0
        for (lo, hi), c in zip(pieces, covered, strict=True):
            w = 1.0 + _SCALE * (hi - lo) / largest if c else _HOLE
            lefts.append(x)
            widths.append(w)
            x += w
        return cls(
            tuple(lo for lo, _ in pieces),
            tuple(hi for _, hi in pieces),
            tuple(lefts),
            tuple(widths),
            tuple(not c for c in covered),
        )


def section_runs(machine: Any) -> list[tuple[int, int, bool, bool]]:
    """The present sections with a memmap as ``(base, end, early, online)`` runs of
    consecutive alike sections, in address order."""
    bits = machine.macros["SECTION_SIZE_BITS"]
    runs: list[list[Any]] = []
    for nr in sorted(machine.sections):
        s = machine.sections[nr]
        if not (s.present and s.has_memmap):
            continue
        key = (bool(s.early), bool(s.online))
        if runs and runs[-1][1] == nr << bits and (runs[-1][2], runs[-1][3]) == key:
            runs[-1][1] = (nr + 1) << bits
        else:
            runs.append([nr << bits, (nr + 1) << bits, *key])
    return [tuple(r) for r in runs]  # type: ignore[misc]


def _flags(flags: MemblockFlags) -> str:
    if not flags:
        return "NONE"
    return "|".join(f.name for f in MemblockFlags if f and flags & f)  # type: ignore[misc]


def _nid(nid: int) -> str:
    return f"{nid} (MAX_NUMNODES: no node set)" if nid == MAX_NUMNODES else str(nid)


_HOVER = (
    "<b>%{customdata[0]}</b><br>base %{customdata[1]}<br>end %{customdata[2]} (exclusive)"
    "<br>size %{customdata[3]}<br>%{customdata[4]}<extra></extra>"
)


def _region_trace(row: str, regions: list[MemblockRegion], axis: PhysAxis) -> go.Bar:
    lefts = [axis.x(r.base) for r in regions]
    return go.Bar(
        name=row,
        orientation="h",
        y=[row] * len(regions),
        base=lefts,
        x=[axis.x(r.end) - left for r, left in zip(regions, lefts, strict=True)],
        ids=[f"{row}[{i}]@{r.base:#x}" for i, r in enumerate(regions)],
        text=[format_size(r.size) for r in regions],
        textposition="inside",
        textangle=0,
        insidetextanchor="middle",
        customdata=[
            [
                f"{row}[{i}]",
                f"{r.base:#x}",
                f"{r.end:#x}",
                f"{r.size:#x} ({format_size(r.size)})",
                f"flags {_flags(r.flags)}, nid {_nid(r.nid)}",
            ]
            for i, r in enumerate(regions)
        ],
        hovertemplate=_HOVER,
        marker={
            "color": _COLORS[row],
            "line": {"color": "#333333", "width": 1},
            # NOMAP memory is not linear-mapped: hatched, so it differs without colour
            "pattern": {
                "shape": ["/" if r.flags & MemblockFlags.NOMAP else "" for r in regions],
                "fgcolor": "#FFFFFF",
            },
        },
        showlegend=False,
    )


def _section_trace(machine: Any, runs: list[tuple[int, int, bool, bool]], axis: PhysAxis) -> go.Bar:
    row = ROWS[2]
    bits = machine.macros["SECTION_SIZE_BITS"]
    lefts = [axis.x(b) for b, *_ in runs]
    return go.Bar(
        name=row,
        orientation="h",
        y=[row] * len(runs),
        base=lefts,
        x=[axis.x(e) - left for (_, e, *_), left in zip(runs, lefts, strict=True)],
        ids=[f"{row}@{b:#x}" for b, *_ in runs],
        text=[format_size(e - b) for b, e, *_ in runs],
        textposition="inside",
        textangle=0,
        insidetextanchor="middle",
        customdata=[
            [
                f"sections {b >> bits}–{(e >> bits) - 1}",
                f"{b:#x}",
                f"{e:#x}",
                f"{e - b:#x} ({format_size(e - b)})",
                ("early (boot memory)" if early else "hot-added")
                + (", online" if online else ", offline"),
            ]
            for b, e, early, online in runs
        ],
        hovertemplate=_HOVER,
        marker={"color": _COLORS[row], "line": {"color": "#333333", "width": 1}},
        showlegend=False,
    )


def _ticks(axis: PhysAxis) -> tuple[list[float], list[str]]:
    """A hex tick at every piece edge, thinned so rotated labels do not overlap."""
    gap = axis.length / 70
    vals: list[float] = []
    text: list[str] = []
    for pa in [*axis.starts, axis.ends[-1]]:
        x = axis.x(pa)
        if vals and x - vals[-1] < gap:
            continue
        vals.append(x)
        text.append(f"{pa:#x}")
    return vals, text


def _mark(machine: Any, pfn: int, axis: PhysAxis) -> tuple[dict[str, Any], dict[str, Any]]:
    why = pfn_valid_why(
        machine.memblock,
        pfn,
        page_shift=machine.desc.page_shift,
        sections=lambda nr: nr in machine.sections and machine.sections[nr].has_memmap,
        kernel="v5.4",
        section_size_bits=machine.macros["SECTION_SIZE_BITS"],
        max_physmem_bits=machine.macros["MAX_PHYSMEM_BITS"],
    )
    x = axis.x(why.addr)
    line = {
        "type": "line",
        "name": "mark",
        "xref": "x",
        "yref": "paper",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "line": {"color": RED, "width": 2, "dash": "dash"},
        "layer": "above",
    }
    verdict = "true" if why.valid else f"false ({why.failed} failed)"
    note = {
        "name": "mark",
        "xref": "x",
        "yref": "paper",
        "x": x,
        "y": 1,
        "xanchor": "left" if x < axis.length / 2 else "right",
        "yanchor": "bottom",
        "showarrow": False,
        "text": f"pfn {pfn:#x} (PA {why.addr:#x}): pfn_valid() = {verdict}: {why.detail}",
        "font": {"color": RED, "size": 12},
        "bgcolor": "rgba(255,255,255,0.9)",
    }
    return line, note


def memblock_figure(
    machine: Any, *, title: str | None = None, mark_pfn: int | None = None
) -> go.Figure:
    """memblock of ``machine`` as bars on a schematic physical-address axis (see the module
    docstring); ``mark_pfn`` draws a red line at that pfn with ``pfn_valid()``'s answer.

    Traces: ``memblock.memory``, ``memblock.reserved``, ``mem_section (present)``, in that
    order (each always present); ``customdata`` of a bar is ``[name, base, end, size,
    details]``, all addresses hex strings. Shapes: the holes (``name="hole"``) and the mark
    (``"mark"``).
    """
    _validate.shaped(machine, "machine", "a Machine", "memblock", "physmem")
    memory = machine.memblock.regions("memory")
    reserved = machine.memblock.regions("reserved")
    runs = section_runs(machine)
    ranges = [(r.base, r.end) for r in (*memory, *reserved)] + [(b, e) for b, e, *_ in runs]
    extra: tuple[int, ...] = ()
    if mark_pfn is not None:
        pa = mark_pfn << machine.desc.page_shift
        # inside the drawn span the mark is placed by interpolation; outside, the axis
        # is extended to a (narrow) hole up to it
        if not ranges or pa < min(b for b, _ in ranges) or pa >= max(e for _, e in ranges):
            extra = (pa, pa + machine.page_size)
    axis = PhysAxis.of(ranges, extra)
    traces = [
        _region_trace(ROWS[0], memory, axis),
        _region_trace(ROWS[1], reserved, axis),
        _section_trace(machine, runs, axis),
    ]
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for lo, hi, left, width, hole in zip(
        axis.starts, axis.ends, axis.lefts, axis.widths, axis.holes, strict=True
    ):
        if not hole:
            continue
        shapes.append(
            {
                "type": "rect",
                "name": "hole",
                "xref": "x",
                "yref": "paper",
                "x0": left,
                "x1": left + width,
                "y0": 0,
                "y1": 1,
                "fillcolor": "#EEEEEE",
                "line": {"width": 0},
                "layer": "below",
            }
        )
        annotations.append(
            {
                "name": "hole",
                "xref": "x",
                "yref": "paper",
                "x": left + width / 2,
                "y": 0.5,
                "textangle": -90,
                "showarrow": False,
                "text": f"hole {format_size(hi - lo)}",
                "font": {"size": 10, "color": "#555555"},
            }
        )
    if mark_pfn is not None:
        line, note = _mark(machine, mark_pfn, axis)
        shapes.append(line)
        annotations.append(note)
    annotations.append(
        {
            "name": "axis-note",
            "xref": "paper",
            "yref": "paper",
            "x": 0,
            "y": 0,
            "yshift": -110,
            "xanchor": "left",
            "yanchor": "top",
            "showarrow": False,
            "align": "left",
            "font": {"size": 10, "color": "#555555"},
            "text": (
                "Schematic physical-address axis: linear between two ticks, small regions "
                "widened, holes narrowed (grey); hover a bar for its exact base, end, size, "
                "flags and node."
            ),
        }
    )
    tickvals, ticktext = _ticks(axis)
    sub = (
        f"memblock.memory: {len(memory)} region{'s' * (len(memory) != 1)}, "
        f"{format_size(sum(r.size for r in memory))}; memblock.reserved: {len(reserved)} "
        f"region{'s' * (len(reserved) != 1)}, {format_size(sum(r.size for r in reserved))}"
    )
    head = f"{title or 'memblock and sections'}, {machine_label(machine)}"
    fig = go.Figure(data=traces)
    fig.update_layout(
        template="plotly_white",
        title={"text": f"{head}<br><sup>{sub}</sup>", "x": 0.01, "xanchor": "left"},
        barmode="overlay",
        bargap=0.35,
        height=440,
        margin={"l": 170, "r": 30, "t": 110, "b": 140},
        hovermode="closest",
        showlegend=False,
        uniformtext={"minsize": 9, "mode": "hide"},
        shapes=shapes,
        annotations=annotations,
        xaxis={
            "range": [-0.3, axis.length + 0.3],
            "tickmode": "array",
            "tickvals": tickvals,
            "ticktext": ticktext,
            "tickangle": -45,
            "tickfont": {"size": 10},
            "showgrid": True,
            "zeroline": False,
        },
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": list(ROWS),
            "autorange": "reversed",
        },
    )
    return fig

"""Hotplug policies side by side: table pages allocated, freed and left, and TLB invalidations.

Reads the rows of :func:`mmkit.mm.compare.compare_policies` (one
:class:`~mmkit.mm.compare.PolicyOutcome` per policy: the same blocks hot-added, then all
removed). Three panels, one group of bars per policy:

1. **table pages**: allocated by hot-add, freed by hot-remove, left behind (allocated and
   still live at the end). A policy that never frees vmemmap tables (V6) leaves some; the
   v5.7 floor/ceiling test frees exactly what only the block used.
2. **left behind, by level and region**: the left-over pages stacked by ``level/region``
   (colour: the region, as :data:`mmkit.viz.layout.KIND_COLORS`; hatching: the level).
3. **TLB invalidations by kind**: ``TLBI VAALE1IS`` (one page, last level, every ASID: what
   ``flush_tlb_kernel_range()`` issues per page), ``TLBI VAAE1IS`` (one address, all levels:
   ``__flush_tlb_kernel_pgtable()`` after a table is unhooked) and ``TLBI VMALLE1IS`` (the
   whole TLB: the range flush's fallback for big ranges), on a log scale since they run from
   none to hundreds of thousands; no bar means none.

A policy whose run recorded kernel events (warnings, bugs, use-after-free) gets a red cross
above its bars in the first panel, with the events in its hover.

>>> from mmkit.mm.compare import compare_policies
>>> rows = compare_policies("arm64-4k-48", blocks=[0x400000000000], policies=["v6", "v5.7"])
>>> fig = comparison_figure(rows)
>>> [t.name for t in fig.data][:3], list(fig.data[2].y)
(['allocated', 'freed', 'left'], [2, 0])
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmkit import _validate
from mmkit.viz._common import OKABE_ITO, RED, config_label
from mmkit.viz.layout import KIND_COLORS

__all__ = ["TLBI_KINDS", "comparison_figure"]

#: The TLBI kinds counted, in the order drawn.
TLBI_KINDS: tuple[str, ...] = ("vaale1is", "vaae1is", "vmalle1is")

_COUNT_COLORS = {
    "allocated": OKABE_ITO["blue"],
    "freed": OKABE_ITO["green"],
    "left": OKABE_ITO["vermillion"],
}
_TLBI_COLORS = {
    "vaale1is": OKABE_ITO["orange"],
    "vaae1is": OKABE_ITO["sky"],
    "vmalle1is": OKABE_ITO["purple"],
}
_LEVEL_PATTERN = {"pgd": "", "p4d": "+", "pud": "/", "pmd": "x", "pte": "."}


def _dtick(top: int, ticks: int = 6) -> int:
    """An integer tick spacing (1, 2, 5, 10, 20...) giving at most about ``ticks`` ticks."""
    scale = 1
    while True:
        for d in (1, 2, 5):
            if d * scale * ticks >= top:
                return d * scale
        scale *= 10


def _configs(outcomes: Sequence[Any], kernel: str | None) -> str:
    from mmkit import arch

    names = sorted({o.config for o in outcomes})
    labels = []
    for name in names:
        try:
            labels.append(config_label(arch.get(name), kernel))
        except Exception:  # a configuration a plugin no longer provides: its name will do
            labels.append(name)
    return "; ".join(labels)


def _tlbi_names(outcomes: Sequence[Any]) -> dict[str, str]:
    """What the outcomes' kernel does for each TLBI kind (arm64's instructions unless their
    configuration's architecture names its own, and unless configurations disagree)."""
    from mmkit import arch
    from mmkit.pgtable.tlb import TLBI_NAMES, tlbi_names_of

    found = set()
    for name in dict.fromkeys(o.config for o in outcomes):
        try:
            found.add(tuple(tlbi_names_of(arch.get(name)).items()))
        except Exception:  # a configuration a plugin no longer provides
            found.add(tuple(TLBI_NAMES.items()))
    return dict(found.pop()) if len(found) == 1 else dict(TLBI_NAMES)


def comparison_figure(
    outcomes: Sequence[Any], *, title: str | None = None, kernel: str | None = None
) -> go.Figure:
    """The comparison of ``outcomes`` (see the module docstring).

    A :class:`~mmkit.mm.compare.PolicyOutcome` names its configuration but not the kernel
    era it ran: the title names the configuration's default era unless ``kernel`` says
    which one ``compare_policies(..., kernel=...)`` was given.

    Traces, in a fixed order: ``"allocated"``, ``"freed"``, ``"left"`` (panel 1, ``y`` one
    count per policy), one trace per ``"level/region"`` key that any policy left (panel 2,
    stacked), one per TLBI kind of :data:`TLBI_KINDS` (panel 3), then ``"kernel events"``
    (red crosses over the policies that recorded any; ``customdata`` the event count).
    """
    _validate.records(
        outcomes,
        "outcomes",
        "the outcomes of mmkit.mm.compare.compare_policies()",
        "policy",
        "tables_left",
    )
    policies = [o.policy for o in outcomes]
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.08,
        subplot_titles=(
            "table pages:<br>allocated, freed, left",
            "left behind,<br>by level/region",
            "TLB invalidations<br>(log scale; no bar = 0)",
        ),
    )
    counts = {
        "allocated": [o.tables_allocated for o in outcomes],
        "freed": [o.tables_freed for o in outcomes],
        "left": [o.tables_left for o in outcomes],
    }
    for name, ys in counts.items():
        fig.add_trace(
            go.Bar(
                name=name,
                legendgroup="tables",
                offsetgroup=name,
                legendgrouptitle={"text": "table pages"} if name == "allocated" else None,
                x=policies,
                y=ys,
                text=[str(y) for y in ys],
                textposition="outside",
                textangle=-90,
                textfont={"size": 10},
                constraintext="none",
                cliponaxis=False,
                marker={"color": _COUNT_COLORS[name]},
                hovertemplate=f"%{{x}}: %{{y}} table pages {name}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    keys = sorted({k for o in outcomes for k in o.left_by_level_region})
    for i, key in enumerate(keys):
        level, _, region = key.partition("/")
        ys = [o.left_by_level_region.get(key, 0) for o in outcomes]
        fig.add_trace(
            go.Bar(
                name=key,
                legendgroup="left",
                offsetgroup="left",
                legendgrouptitle={"text": "left: level/region"} if i == 0 else None,
                x=policies,
                y=ys,
                marker={
                    "color": KIND_COLORS.get(region, OKABE_ITO["grey"]),
                    "pattern": {"shape": _LEVEL_PATTERN.get(level, "-"), "fgcolor": "#FFFFFF"},
                    "line": {"color": "#333333", "width": 0.5},
                },
                hovertemplate=(
                    f"%{{x}}: %{{y}} {level} table pages of the {region} left<extra></extra>"
                ),
            ),
            row=1,
            col=2,
        )
    names = _tlbi_names(outcomes)
    for kind in TLBI_KINDS:
        ys = [int(o.tlbi.get(kind, 0)) for o in outcomes]
        fig.add_trace(
            go.Bar(
                name=names[kind],
                legendgroup="tlbi",
                offsetgroup=kind,
                legendgrouptitle={"text": "TLB invalidations"} if kind == TLBI_KINDS[0] else None,
                x=policies,
                y=[y if y > 0 else None for y in ys],
                customdata=ys,
                text=[str(y) if y else "" for y in ys],
                textposition="outside",
                textangle=-90,
                textfont={"size": 10},
                constraintext="none",
                cliponaxis=False,
                marker={"color": _TLBI_COLORS[kind]},
                hovertemplate=f"%{{x}}: %{{customdata}} x {names[kind]}<extra></extra>",
            ),
            row=1,
            col=3,
        )
    top = max([0, *(max(v) for v in counts.values() if v)])
    with_events = [o for o in outcomes if o.events]
    fig.add_trace(
        go.Scatter(
            name="kernel events",
            x=[o.policy for o in with_events],
            y=[top * 1.25 + 1] * len(with_events),
            mode="markers+text",
            marker={"symbol": "x", "size": 16, "color": RED},
            text=[f"{len(o.events)} event{'s' * (len(o.events) != 1)}" for o in with_events],
            textposition="top center",
            textfont={"color": RED, "size": 11},
            customdata=[len(o.events) for o in with_events],
            hovertext=[
                "<br>".join(
                    textwrap.shorten(line, 100) for e in o.events[:4] for line in e.splitlines()[:1]
                )
                + (f"<br>… {len(o.events) - 4} more" if len(o.events) > 4 else "")
                for o in with_events
            ],
            hovertemplate="<b>%{x}</b><br>%{hovertext}<extra></extra>",
            showlegend=bool(with_events),
        ),
        row=1,
        col=1,
    )
    left_top = max([0, *(sum(o.left_by_level_region.values()) for o in outcomes)])
    fig.update_yaxes(
        title_text="table pages",
        range=[0, (top * 1.25 + 1) * 1.25],
        tickmode="linear",
        tick0=0,
        dtick=_dtick(int(top * 1.5) + 1),
        row=1,
        col=1,
    )
    fig.update_yaxes(
        range=[0, max(left_top, 1) * 1.15],
        tickmode="linear",
        tick0=0,
        dtick=_dtick(max(left_top, 1)),
        row=1,
        col=2,
    )
    tl_top = max([1, *(int(v) for o in outcomes for v in o.tlbi.values())])
    fig.update_yaxes(
        type="log", range=[-0.2, len(str(tl_top)) + 0.6], dtick=1, tickformat="~s", row=1, col=3
    )
    if not keys:
        # a panel with no trace draws no axes, and plotly then places an annotation meant
        # for it in the first panel: zero bars keep the policies' axis and the note in place
        fig.add_trace(
            go.Bar(
                name="nothing left",
                legendgroup="left",
                showlegend=False,
                x=policies,
                y=[0] * len(policies),
                marker={"color": "rgba(0, 0, 0, 0)"},
                hoverinfo="skip",
            ),
            row=1,
            col=2,
        )
        fig.add_annotation(
            name="nothing-left",
            text="no policy left a table page",
            showarrow=False,
            xref="x2 domain",
            yref="y2 domain",
            x=0.5,
            y=0.5,
            font={"color": "#555555"},
        )
    # the series' short names stand upright; longer ones (a plugin's) slant so they never meet
    slant = max(map(len, policies), default=0) * len(policies) > 40
    fig.update_xaxes(tickangle=-35 if slant else 0)
    sub = (
        f"{len(outcomes)} polic{'ies' if len(outcomes) != 1 else 'y'}; the same blocks hot-added "
        "then removed under each"
        + (
            f"; <span style='color:{RED}'><b>kernel events under "
            + ", ".join(o.policy for o in with_events)
            + "</b></span>"
            if with_events
            else "; no kernel events"
        )
    )
    head = f"{title or 'Hotplug policies compared'}, {_configs(outcomes, kernel)}"
    fig.update_layout(
        template="plotly_white",
        title={"text": f"{head}<br><sup>{sub}</sup>", "x": 0.01, "xanchor": "left"},
        # panel 2 stacks; panels 1 and 3 stand side by side, one offset group per trace
        barmode="relative",
        height=620 if slant else 560,
        margin={"l": 70, "r": 30, "t": 110, "b": 210 if slant else 150},
        legend={
            "orientation": "h",
            "x": 0,
            "y": -0.3 if slant else -0.12,
            "yanchor": "top",
            "groupclick": "toggleitem",
        },
        hovermode="closest",
    )
    return fig

"""The policy comparison chart against compare_policies()'s own numbers."""

from __future__ import annotations

import dataclasses
import functools

from mmkit.mm.compare import compare_policies
from mmkit.pgtable.tlb import TLBI_NAMES
from mmkit.viz.compare import TLBI_KINDS, comparison_figure


@functools.cache
def _rows(config="arm64-4k-48", block=0x4000_0000_0000, rodata_full=False):
    return tuple(compare_policies(config, blocks=[block], rodata_full=rodata_full))


def _trace(fig, name):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


def test_table_counts_are_the_outcomes():
    rows = _rows(rodata_full=True)
    fig = comparison_figure(rows)
    policies = [r.policy for r in rows]
    for name, field in (
        ("allocated", "tables_allocated"),
        ("freed", "tables_freed"),
        ("left", "tables_left"),
    ):
        trace = _trace(fig, name)
        assert list(trace.x) == policies
        assert list(trace.y) == [getattr(r, field) for r in rows]
        assert trace.xaxis == "x"
    # the policies that free no vmemmap table leave some: the chart must show a difference
    assert len({r.tables_left for r in rows}) > 1


def test_left_by_level_and_region_stacks_to_tables_left():
    rows = _rows()
    fig = comparison_figure(rows)
    keys = sorted({k for r in rows for k in r.left_by_level_region})
    assert keys  # v6 and v7 leave vmemmap tables on arm64-4k-48
    stacked = [t for t in fig.data if t.legendgroup == "left"]
    assert [t.name for t in stacked] == keys
    assert {t.xaxis for t in stacked} == {"x2"} and {t.offsetgroup for t in stacked} == {"left"}
    for t in stacked:
        assert list(t.y) == [r.left_by_level_region.get(t.name, 0) for r in rows]
    totals = [sum(t.y[i] for t in stacked) for i in range(len(rows))]
    assert totals == [r.tables_left for r in rows]
    # coloured by region as the layout figure colours it, hatched by level
    from mmkit.viz.layout import KIND_COLORS

    for t in stacked:
        assert t.marker.color == KIND_COLORS[t.name.split("/")[1]]
    assert len({t.marker.pattern.shape for t in stacked}) == len({k.split("/")[0] for k in keys})


def test_tlbis_by_kind():
    rows = _rows()
    fig = comparison_figure(rows)
    for kind in TLBI_KINDS:
        trace = _trace(fig, TLBI_NAMES[kind])  # arm64's instruction for each kind
        assert trace.xaxis == "x3"
        assert list(trace.customdata) == [r.tlbi[kind] for r in rows]
        assert list(trace.y) == [r.tlbi[kind] or None for r in rows]
    assert fig.layout.yaxis3.type == "log"
    assert len({r.tlbi["vaale1is"] for r in rows}) > 1


def test_kernel_events_are_noted_per_policy():
    rows = list(_rows())
    assert not any(r.events for r in rows)
    fig = comparison_figure(rows)
    assert list(_trace(fig, "kernel events").x) == []
    assert "no kernel events" in fig.layout.title.text
    report = "BUG: KASAN: use-after-free in walk_pmd\nRead of size 8"
    rows[1] = dataclasses.replace(rows[1], events=(report, "WARNING: in free_empty_tables: x"))
    fig = comparison_figure(rows)
    ev = _trace(fig, "kernel events")
    assert list(ev.x) == [rows[1].policy] and list(ev.customdata) == [2]
    assert "use-after-free in walk_pmd" in ev.hovertext[0]
    assert f"kernel events under {rows[1].policy}" in fig.layout.title.text


def test_titles_integers_and_determinism():
    rows = _rows()
    fig = comparison_figure(rows)
    assert "arm64-4k-48, Linux v5.4" in fig.layout.title.text
    assert "Linux v5.3" in comparison_figure(rows, kernel="v5.3").layout.title.text
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):  # counts: integer ticks only
        assert axis.tickmode == "linear" and axis.dtick == int(axis.dtick) >= 1
    assert fig.to_dict() == comparison_figure(rows).to_dict()
    teach = comparison_figure(compare_policies("teach-4k-39", blocks=[0x40_0000_0000]))
    assert "teaching layout" in teach.layout.title.text
    assert any(a.name == "nothing-left" for a in teach.layout.annotations)
    # the empty panel still draws its axes (zero bars), so the note lands in it
    (zeros,) = [t for t in teach.data if t.xaxis == "x2"]
    assert not any(zeros.y) and not zeros.showlegend and len(zeros.x) == len(teach.data[0].x)


def test_long_policy_names_slant_so_they_never_meet():
    rows = [r for r in _rows() if r.policy in ("naive", "v3", "v6", "v7", "v5.7")]
    upright = comparison_figure(rows)
    assert {ax.tickangle for ax in (upright.layout.xaxis, upright.layout.xaxis3)} == {0}
    long = [dataclasses.replace(r, policy=f"{r.policy}-from-a-plugin-package") for r in rows]
    slanted = comparison_figure(long)
    assert slanted.layout.xaxis.tickangle == slanted.layout.xaxis3.tickangle == -35
    assert slanted.layout.margin.b > upright.layout.margin.b

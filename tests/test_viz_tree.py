"""The page-table tree and its figures against the engine's own tables.

Structure: the tree's table nodes stand for every live table page once (level by level,
folded nodes by their ``count``), each unfolded table's children account for exactly its
entries in use, runs are alike and maximal, and every node lies inside its parent (checked
by :mod:`tests.tree_oracle`, which reads ``m.pgtables`` only). Figures: the traces carry the
tree's nodes, addresses in hex, colours by state, and an in-place update equals a fresh
figure after every step of a hot-remove. States against snapshots are in
``test_viz_tree_states.py``.
"""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.viz.layout import KIND_COLORS
from mmkit.viz.tree import (
    NODELINK_MAX_NODES,
    REGION_COLORS,
    STATE_COLORS,
    diff_summary,
    tree_diff_figure,
    tree_figure,
    tree_pair_figure,
    update_tree_figure,
)
from mmkit.viz.tree_model import snapshot, state_counts, tree_nodes
from tests.tree_oracle import (
    check_changes,
    check_structure,
    depth_of,
    next_block,
    truth,
)

CONFIGS = ["arm64-4k-48", "arm64-16k-47", "arm64-64k-48", "arm64-64k-52", "teach-4k-39"]
CONFIGS += ["teach-16k-47"]


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize("rodata_full", [False, True], ids=["blocks", "rodata_full"])
@pytest.mark.parametrize("config", CONFIGS)
def test_tree_stands_for_every_table_page_and_entry(config, rodata_full):
    m = Machine(config, rodata_full=rodata_full, record=False)
    check_structure(m, tree_nodes(m))
    start, block = next_block(m), m.desc.memory_block_size
    before = truth(m)
    m.hot_add(start, block)
    nodes = tree_nodes(m, since=snapshot(m))  # a snapshot of now: nothing added
    check_structure(m, nodes)
    assert state_counts(nodes)["added"] == 0
    check_structure(m, tree_nodes(m, since=None), None)
    # against the boot tables: what the hot-add allocated is "added", runs it wrote too
    m2 = Machine(config, rodata_full=rodata_full, record=False)
    snap = snapshot(m2)
    m2.hot_add(start, block)
    nodes = tree_nodes(m2, since=snap)
    check_structure(m2, nodes, before)
    check_changes(m2, nodes, before)


@pytest.mark.parametrize("gib", [2, 3, 5])
def test_folded_tables_count_the_table_pages_under_them(gib):
    """Several GiB in pages: the PTE tables under folded PMD tables still count."""
    m = Machine("teach-4k-39", rodata_full=True, record=False)
    before, snap = truth(m), snapshot(m)
    m.hot_add(0x1_0000_0000, gib << 30)
    new = len(truth(m).keys - before.keys)
    assert new == gib * 513  # a PMD table and 512 PTE tables per GiB
    nodes = tree_nodes(m, since=snap)
    assert state_counts(nodes)["added"] == new
    check_structure(m, nodes, before)
    check_changes(m, nodes, before)


@pytest.fixture(scope="module")
def big_machine():
    m = Machine("arm64-4k-48", rodata_full=True, record=False)
    m.hot_add(0x1_0000_0000, 64 << 30)
    return m


def test_64_gib_in_pages_folds_small(big_machine):
    m = big_machine
    nodes = tree_nodes(m)
    assert len(m.table_pages()) > 32768  # 64 GiB of PTE tables, and the boot ones
    assert len(nodes) <= 2000
    assert sum(state_counts(nodes).values()) == len(m.table_pages())
    check_structure(m, nodes)


@pytest.mark.parametrize("config", ["teach-4k-39", "arm64-16k-47", "arm64-64k-52"])
def test_no_folding_gives_one_node_per_table_page(config):
    m = Machine(config, rodata_full=True, record=False)
    m.hot_add(next_block(m), m.desc.memory_block_size)
    nodes = tree_nodes(m, fold_min=10**9)
    tables = [n for n in nodes if n.kind != "run"]
    assert all(n.kind == "table" for n in tables)
    assert sorted(n.pfn for n in tables) == sorted(r.pfn for r in m.table_pages())
    check_structure(m, nodes)
    # folding changes the drawing, never what it stands for
    folded = tree_nodes(m)
    assert len(folded) < len(nodes)
    assert state_counts(folded) == state_counts(nodes)


# ------------------------------------------------------------------ figures
def _small(rodata_full: bool = False) -> tuple[Machine, object]:
    """teach-4k-39 with one hot-added block, and a snapshot from before the add."""
    m = Machine("teach-4k-39", rodata_full=rodata_full, record=False)
    snap = snapshot(m, "boot")
    m.hot_add(0x1_0000_0000, 1 << 30)
    return m, snap


def _dots(fig):
    return fig.data[0] if fig.data[0].type != "scatter" else fig.data[1]


@pytest.mark.parametrize("style", ["icicle", "treemap", "sunburst", "nodelink"])
def test_figure_carries_the_tree(style):
    m, snap = _small(rodata_full=style != "nodelink")
    nodes = tree_nodes(m, since=snap)
    fig = tree_figure(m, style=style, color="state", since=snap)
    trace = _dots(fig)
    assert list(trace.ids) == [n.id for n in nodes]
    colors = trace.marker.colors if style != "nodelink" else trace.marker.color
    for n, c in list(zip(nodes, colors, strict=True))[1:]:
        assert c == STATE_COLORS[n.state], n
    assert set(colors[1:]) >= {STATE_COLORS["added"], STATE_COLORS["live"]}
    if style == "nodelink":
        pos = {i: (x, y) for i, x, y in zip(trace.ids, trace.x, trace.y, strict=True)}
        edges = fig.data[0]
        segments = {
            (edges.x[k], edges.y[k], edges.x[k + 1], edges.y[k + 1])
            for k in range(0, len(edges.x), 3)
        }
        assert len(edges.x) == 3 * (len(nodes) - 1)
        assert segments == {(*pos[n.parent], *pos[n.id]) for n in nodes[1:]}
        return
    assert list(trace.parents) == [n.parent for n in nodes]
    assert trace.branchvalues == "total"
    kids: dict[str, int] = {}
    for n, v in zip(nodes, trace.values, strict=True):
        assert v > 0, n
        kids[n.parent] = kids.get(n.parent, 0) + v
    for n, v in zip(nodes, trace.values, strict=True):
        assert v >= kids.get(n.id, 0), n


def test_linear_size_is_the_va_span():
    m, snap = _small(rodata_full=True)
    nodes = tree_nodes(m, since=snap)
    trace = tree_figure(m, since=snap, size="linear").data[0]
    parents = {n.parent for n in nodes}
    for n, v in zip(nodes, trace.values, strict=True):
        if n.id not in parents:
            assert v == n.va_end - n.va_start, n


def test_region_colours_are_the_layout_colours():
    m, _ = _small()
    nodes = tree_nodes(m)
    colors = tree_figure(m, color="region").data[0].marker.colors
    for n, c in list(zip(nodes, colors, strict=True))[1:]:
        # the layout's colours, and one more for the kernel image inside vmalloc
        assert c == (REGION_COLORS["kernel"] if n.region == "kernel" else KIND_COLORS[n.region]), n
        inside = m.kimage_va <= n.va_start and n.va_end <= m.kimage_end
        assert (n.region == "kernel") == inside, n
    assert len(set(colors[1:])) >= 3  # linear map, vmemmap, vmalloc, fixmap...
    assert REGION_COLORS["kernel"] in colors  # the image's PTE tables and runs


@pytest.mark.parametrize("config", ["teach-4k-39", "arm64-4k-48", "arm64-64k-52"])
def test_hover_shows_addresses_in_hex_and_the_entries_the_engine_holds(config):
    m = Machine(config, rodata_full=True, record=False)
    start = next_block(m)
    m.hot_add(start, m.desc.memory_block_size)
    snap = snapshot(m)
    m.hot_remove(start, m.desc.memory_block_size)
    nodes = tree_nodes(m, since=snap)
    pt = m.pgtables
    by_id = {n.id: n for n in nodes}
    custom = tree_figure(m, since=snap, color="state").data[0].customdata
    for n, cd in zip(nodes, custom, strict=True):
        text = " ".join(cd)
        for v in (n.va_start, n.pfn, n.pa, n.pfn_last):
            if v is not None and v > 4096:  # never a decimal address or pfn
                assert not re.search(rf"(?<![0-9a-fx]){v}(?![0-9])", text), (n, text)
        assert f"VA {n.va_start:#x}" in cd[1], cd
        if n.kind == "table" and n.pfn is not None:
            assert f"pfn {n.pfn:#x}" in cd[2] or f"pfn {n.pfn:#x}" in cd[0], cd
        if n.kind == "table" and n.id != "pgd" and n.state != "freed":
            p = by_id[n.parent]
            raw = int(pt.content[p.pfn][n.index])  # the parent's entry, from the engine
            assert f"{raw:#018x}" in cd[3] and "TABLE" in cd[3], cd
            assert f"→ {n.pfn << pt.page_shift:#x}" in cd[3], cd
        if n.kind == "run" and n.state != "unmapped":
            raw = int(pt.content[by_id[n.parent].pfn][n.index])
            assert f"{raw:#018x}" in cd[3], cd
            assert f"{pt.desc_to_pa(raw) & ~(m.page_size - 1):#x}" in cd[3], cd


def test_same_state_same_figure():
    a, snap_a = _small(rodata_full=True)
    b, snap_b = _small(rodata_full=True)
    for style in ("icicle", "sunburst"):
        fa = tree_figure(a, style=style, color="state", since=snap_a)
        assert fa.to_dict() == tree_figure(a, style=style, color="state", since=snap_a).to_dict()
        assert fa.to_dict() == tree_figure(b, style=style, color="state", since=snap_b).to_dict()
    fa = tree_figure(a, style="nodelink", fold_min=2)
    assert fa.to_dict() == tree_figure(b, style="nodelink", fold_min=2).to_dict()


@pytest.mark.parametrize(
    "kw", [{"style": "pie"}, {"color": "level"}, {"size": "sqrt"}, {"style": "Icicle"}]
)
def test_bad_options_raise(kw):
    m = Machine("teach-4k-39", record=False)
    with pytest.raises(InvalidArgument):
        tree_figure(m, **kw)
    with pytest.raises(InvalidArgument):
        update_tree_figure(go.Figure(), m, **kw)


def test_nodelink_limit_counts_nodes():
    m = Machine("teach-4k-39", rodata_full=True, record=False)
    flat = tree_nodes(m, fold_min=10**9)
    assert len(flat) > NODELINK_MAX_NODES >= len(tree_nodes(m))
    tree_figure(m, style="nodelink")
    with pytest.raises(InvalidArgument):
        tree_figure(m, style="nodelink", fold_min=10**9)


# ------------------------------------------------------------------ in-place update
def _trace_props(fig) -> list[tuple]:
    out = []
    for t in fig.data:
        keys = ("ids", "parents", "values", "labels", "customdata", "x", "y", "text")
        props = tuple(None if t[k] is None else tuple(map(repr, t[k])) for k in keys if k in t)
        colors = t.marker.colors if "colors" in t.marker else t.marker.color
        out.append((t.type, props, None if colors is None else tuple(colors)))
    return out


def _same(widget, fresh) -> None:
    assert _trace_props(widget) == _trace_props(fresh)
    assert widget.layout.title.text == fresh.layout.title.text
    assert [a.text for a in widget.layout.annotations] == [a.text for a in fresh.layout.annotations]


@pytest.mark.parametrize(
    ("config", "rodata_full", "style"),
    [("arm64-64k-48", True, "icicle"), ("teach-4k-39", False, "nodelink")],
)
def test_update_equals_a_fresh_figure_after_every_step(config, rodata_full, style):
    m = Machine(config, rodata_full=rodata_full, record=False)
    start, block = next_block(m), m.desc.memory_block_size
    m.hot_add(start, block)
    opts = {"style": style, "color": "state", "since": snapshot(m, "before hot-remove")}
    widget = go.FigureWidget(tree_figure(m, **opts))
    first = _trace_props(widget)
    steps = 0
    for _ in m.arch_remove_memory(start, block):
        steps += 1
        update_tree_figure(widget, m, **opts)
        _same(widget, tree_figure(m, **opts))
    assert steps > 10 and _trace_props(widget) != first
    assert state_counts(tree_nodes(m, since=opts["since"]))["freed"] > 0 or any(
        n.state == "unmapped" for n in tree_nodes(m, since=opts["since"])
    )
    # another style replaces the trace type; back again
    other = {**opts, "style": "treemap" if style == "nodelink" else "sunburst"}
    update_tree_figure(widget, m, **other)
    _same(widget, tree_figure(m, **other))
    update_tree_figure(widget, m, **opts)
    _same(widget, tree_figure(m, **opts))


# ------------------------------------------------------------------ diff and pair
def _levels_in(text: str, label: str) -> dict[str, int]:
    """{"PMD": 1, "PTE": 512} from "label: 1 PMD, 512 PTE" in a summary line."""
    m = re.search(rf"{label}: ([^;<]*)", text)
    if m is None:
        return {}
    return {lv: int(c) for c, lv in re.findall(r"(\d+) ([A-Z]+)", m.group(1))}


def _by_level(m: Machine, keys) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, depth, _ in keys:
        name = m.pgtables.levels[depth].name.upper()
        out[name] = out.get(name, 0) + 1
    return out


@pytest.mark.parametrize("gib", [1, 3])
def test_diff_summary_counts_what_the_engine_freed_and_added(gib):
    m = Machine("teach-4k-39", rodata_full=True, record=False)
    boot, snap0 = truth(m), snapshot(m, "boot")
    m.hot_add(0x1_0000_0000, gib << 30)
    added = truth(m).keys - boot.keys
    fig = tree_diff_figure(snap0, m)
    text = fig.layout.annotations[-1].text
    assert _levels_in(text, "added") == _by_level(m, added)
    assert diff_summary(tree_nodes(m, since=snap0)) == text
    before, snap1 = truth(m), snapshot(m, "before hot-remove")
    m.hot_remove(0x1_0000_0000, gib << 30)
    freed = before.keys - truth(m).keys
    text = tree_diff_figure(snap1, m).layout.annotations[-1].text
    assert _levels_in(text, "freed table page") == _by_level(m, freed)
    assert "empty" not in text  # v5.7 frees them all here


def test_pair_figure_draws_both_machines():
    ms, snaps = [], []
    for policy in ("v6", "v5.7"):
        m = Machine("arm64-4k-48", policy=policy, record=False)
        m.hot_add(0x400000000000, m.desc.memory_block_size)
        snaps.append(snapshot(m))
        m.hot_remove(0x400000000000, m.desc.memory_block_size)
        ms.append(m)
    fig = tree_pair_figure(ms[0], ms[1], since=(snaps[0], snaps[1]))
    assert len(fig.data) == 2
    for trace, m, snap in zip(fig.data, ms, snaps, strict=True):
        nodes = tree_nodes(m, since=snap)
        assert list(trace.ids) == [n.id for n in nodes]
        assert list(trace.parents) == [n.parent for n in nodes]
    assert fig.data[0].domain.x[1] <= fig.data[1].domain.x[0]
    left, right = (a.text for a in fig.layout.annotations[:2])
    assert "v6" in left and "2 empty" in left and "v5.7" in right and "empty" not in right
    with pytest.raises(InvalidArgument):
        tree_pair_figure(ms[0], ms[1], style="nodelink")


def test_tree_levels_are_the_engine_levels():
    m, _ = _small()
    names = [lv.name for lv in m.pgtables.levels]
    for n in tree_nodes(m):
        assert n.hw_level == m.pgtables.levels[depth_of(m, n)].hw_level
        assert n.level in names
    assert np.unique([n.level for n in tree_nodes(m)]).tolist() == sorted(names)

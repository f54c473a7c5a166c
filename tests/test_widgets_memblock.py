"""MemblockOrder driven from Python as clicks drive it; figures checked against the engine.

The ground truth is the scenario itself (:mod:`mmkit.scenarios.memblock_order`), run again
independently of the widget: its frames record memblock, ``pfn_valid()`` and the node links
as they were at each step, and its machine at frame *i* gives the static figures.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest

from mmkit.scenarios.memblock_order import memblock_order
from mmkit.viz.memblock import memblock_figure
from mmkit.viz.sysfs import stale_links, sysfs_figure
from mmkit.widgets._sync import plain
from mmkit.widgets.memblock import KERNELS, MemblockOrder, frame_figures


def _replayed(kernel: str, index: int) -> Any:
    """An independent run of the scenario, stopped once frame ``index`` is performed."""
    sc = memblock_order(kernel)
    frames = sc.frames()
    for _ in range(index + 1):
        next(frames)
    return sc


def _stale_drawn(fig: go.Figure) -> bool:
    """Whether the sysfs figure draws a stale link (its trace is always there, empty when
    there is none)."""
    return any(t.name == "stale link" and len(t.x or ()) > 0 for t in fig.data)


def _memory_ranges(fig: go.Figure) -> list[tuple[str, str]]:
    trace = next(t for t in fig.data if t.name == "memblock.memory")
    return [(row[1], row[2]) for row in trace.customdata]


@pytest.fixture(scope="module")
def v53() -> MemblockOrder:
    return MemblockOrder("v5.3")


def test_v53_reaches_the_bug_with_the_stale_link(v53: MemblockOrder) -> None:
    v53.go_to(0)
    v53.event_button.click()
    truth = memblock_order("v5.3").run()
    bug = next(i for i, f in enumerate(truth) if f.event)
    assert v53.index == bug == len(truth) - 1
    assert truth[bug].event.startswith("kernel BUG in add_memory_resource")
    assert "BUG_ON(ret)" in v53.banner.value and "-EEXIST" in v53.banner.value
    assert "stale link" in v53.pfn_html.value
    assert _stale_drawn(v53.sysfs)
    # the machine the widget shows is the engine's at that frame
    sc = _replayed("v5.3", bug)
    assert (
        [(s.nid, s.block) for s in v53.stale_links()]
        == [(s.nid, s.block) for s in stale_links(sc.machine)]
        == [(0, sc.block)]
    )
    assert v53.event_button.disabled and v53.step_button.disabled


def test_v53_shows_pfn_invalid_when_the_node_is_looked_up(v53: MemblockOrder) -> None:
    truth = memblock_order("v5.3").run()
    lookup = next(i for i, f in enumerate(truth) if "get_nid_for_pfn" in f.step.line)
    v53.slider.value = lookup  # what dragging the slider does
    assert v53.index == lookup
    pfn = v53.scenario.pfn
    assert f"pfn_valid({pfn:#x}) = <b>false</b>" in v53.pfn_html.value
    assert f"get_nid_for_pfn({pfn:#x}) = <b>-1</b>" in v53.pfn_html.value
    assert truth[lookup].pfn_valid is False and truth[lookup].nid_for_pfn == -1
    assert "get_nid_for_pfn" in v53.step_html.value
    assert v53.banner.value == ""


@pytest.mark.parametrize("kernel", ["v5.4", "v5.5"])
def test_fixed_kernels_leave_no_stale_link(kernel: str) -> None:
    mo = MemblockOrder(kernel)
    assert mo.title.value.count(f"Linux {kernel}") == 1
    assert not any(f.event for f in mo.frames)
    assert mo.event_button.disabled
    removed = max(i for i, f in enumerate(mo.frames) if f.operation == "remove")
    for index in (removed, len(mo.frames) - 1):
        mo.go_to(index)
        assert mo.stale_links() == []
        assert not _stale_drawn(mo.sysfs)
        assert mo.banner.value == ""
    mo.go_to(removed)
    assert mo.frame.links == ()  # every link of the block went with it


def test_figures_equal_the_static_figures_of_that_frame(v53: MemblockOrder) -> None:
    truth = memblock_order("v5.3").run()
    add_node = next(i for i, f in enumerate(truth) if "memblock_add_node" in f.step.line)
    removed = next(i for i, f in enumerate(truth) if "memblock_remove" in f.step.line)
    # forward, then back across the removal (the widget rebuilds and replays)
    for index in (add_node - 1, add_node, removed, removed - 1, 0):
        v53.go_to(index)
        sc = _replayed("v5.3", index)
        mb, sysfs = frame_figures(sc, truth[index], index, len(truth))
        assert plain(v53.memblock) == mb.to_dict()
        assert plain(v53.sysfs) == sysfs.to_dict()
        # and the bars are memblock.memory as the engine recorded it at that step
        assert _memory_ranges(v53.memblock) == [
            (f"{b:#x}", f"{e:#x}") for b, e, _n in truth[index].memblock_memory
        ]
        assert mb.to_dict() == _with_title(memblock_figure(sc.machine, mark_pfn=sc.pfn), mb)
        assert sysfs.to_dict() == _with_title(sysfs_figure(sc.machine), sysfs)
    before, after = _memory_ranges(_at(v53, removed - 1)), _memory_ranges(_at(v53, removed))
    assert before != after  # memblock_remove() really changed what is drawn


def _at(mo: MemblockOrder, index: int) -> go.FigureWidget:
    mo.go_to(index)
    return go.Figure(mo.memblock)


def _with_title(fig: go.Figure, titled: go.Figure) -> dict[str, Any]:
    fig.layout.title = titled.layout.title
    return fig.to_dict()


def test_step_and_back_buttons_and_in_place_updates(v53: MemblockOrder) -> None:
    v53.go_to(0)
    fig, sysfs = v53.memblock, v53.sysfs
    assert v53.back_button.disabled
    v53.step_button.click()
    v53.step_button.click()
    assert v53.index == 2 and v53.slider.value == 2
    v53.back_button.click()
    assert v53.index == 1 and v53.slider.value == 1
    assert v53.memblock is fig and v53.sysfs is sysfs
    assert "frame 2/" in v53.memblock.layout.title.text


def test_kernel_switch_replays_the_other_order(v53: MemblockOrder) -> None:
    mo = MemblockOrder("v5.3")
    mo.kernel_picker.value = "v5.5"
    assert mo.kernel == "v5.5" and mo.index == 0
    assert [f.step.line for f in mo.frames] == [f.step.line for f in memblock_order("v5.5").run()]
    assert mo.slider.max == len(mo.frames) - 1
    assert "Linux v5.5" in mo.title.value
    assert list(mo.kernel_picker.options) == list(KERNELS)


def test_callback_errors_land_in_the_error_pane(monkeypatch: pytest.MonkeyPatch) -> None:
    mo = MemblockOrder("v5.4")
    mo.back_button.click()  # refused: the first frame
    assert "first frame" in mo.errors.widget.value
    mo.event_button.click()
    assert "no kernel event" in mo.errors.widget.value

    def broken() -> None:
        raise RuntimeError("figure failed")

    monkeypatch.setattr(mo, "static_figures", broken)
    mo.step_button.click()
    assert "RuntimeError: figure failed" in mo.errors.widget.value
    assert isinstance(mo.errors.errors[-1], RuntimeError)


def test_is_a_displayable_widget(v53: MemblockOrder) -> None:
    import ipywidgets as widgets

    assert isinstance(v53.widget, widgets.VBox)
    assert v53.errors.widget in v53.widget.children
    assert callable(v53._ipython_display_)
    # addresses read by people are hex
    assert "0xc0000000" in v53.title.value

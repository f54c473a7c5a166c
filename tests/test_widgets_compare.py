"""PolicyComparison driven from Python as clicks drive it, checked against compare_policies.

The ground truth is :func:`mmkit.mm.compare.compare_policies` run independently of the
widget, and machines built and hot-added/removed here for the trees.
"""

from __future__ import annotations

import html
import re

import ipywidgets as widgets
import pytest

from mmkit import policies
from mmkit.machine import Machine
from mmkit.mm import compare as mm_compare
from mmkit.mm.compare import compare_policies
from mmkit.tables import comparison_frame
from mmkit.viz.compare import comparison_figure
from mmkit.viz.tree import snapshot, tree_pair_figure
from mmkit.widgets._sync import plain
from mmkit.widgets.compare import PolicyComparison, default_block

BLOCK = 0x400040000000  # half way up arm64-4k-48's linear map (see default_block)


@pytest.fixture(scope="module")
def pc() -> PolicyComparison:
    return PolicyComparison("arm64-4k-48")


def _rows(table_html: str) -> dict[str, list[str]]:
    """policy -> its row's cells, read back from the table's HTML."""
    body = table_html.split("<tbody>")[1].split("</tbody>")[0]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [html.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row, flags=re.S)]
        out[cells[0]] = cells[1:]
    return out


def _after_removal(config: str, policy: str, block: int, rodata_full: bool = False) -> tuple:
    m = Machine(config, policy=policy, rodata_full=rodata_full)
    size = m.desc.memory_block_size
    m.hot_add(block, size)
    snap = snapshot(m)
    m.hot_remove(block, size)
    return m, snap


def test_default_block_is_far_from_boot_memory() -> None:
    assert default_block("arm64-4k-48") == BLOCK
    for config in ("arm64-64k-42", "teach-4k-39"):
        m = Machine(config)
        block = default_block(config)
        assert block % m.desc.memory_block_size == 0
        assert all(not (s <= block < s + n) for s, n in m.boot_memory)


def test_chart_and_table_equal_compare_policies(pc: PolicyComparison) -> None:
    pc.select("arm64-4k-48", rodata_full=False)
    truth = compare_policies("arm64-4k-48", blocks=[BLOCK])
    assert [o.policy for o in pc.outcomes] == policies.names() == [o.policy for o in truth]
    assert pc.outcomes == truth
    by_name = {t.name: t for t in pc.chart.data}
    assert list(by_name["allocated"].y) == [o.tables_allocated for o in truth]
    assert list(by_name["freed"].y) == [o.tables_freed for o in truth]
    assert list(by_name["left"].y) == [o.tables_left for o in truth]
    assert plain(pc.chart) == comparison_figure(truth).to_dict()
    rows = _rows(pc.table.value)
    frame = comparison_frame(truth)
    header = re.findall(r"<th>(.*?)</th>", pc.table.value.split("<tbody>")[0])
    for o in truth:
        cells = dict(zip(header[1:], rows[o.policy], strict=True))
        assert int(cells["tables allocated"]) == o.tables_allocated
        assert int(cells["tables freed"]) == o.tables_freed
        assert int(cells["tables left"]) == o.tables_left
        for kind, n in o.tlbi.items():
            assert int(cells[f"tlbi {kind}"]) == n
        for key, n in o.left_by_level_region.items():
            assert int(cells[f"left {key}"]) == n
        assert cells["bytes left"] == frame.loc[o.policy, "bytes left"]
    # the story the lesson tells: V6 and V7 leave vmemmap tables behind, v5.7 none
    left = {o.policy: o.tables_left for o in truth}
    assert left["v6"] > 0 and left["v7"] > 0 and left["v5.7"] == 0
    assert "0x400040000000" in pc.title.value and "0x400080000000" in pc.title.value


def test_rodata_full_toggle_and_cache(
    pc: PolicyComparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    pc.select("arm64-4k-48", rodata_full=False)
    plain_counts = [o.tables_allocated for o in pc.outcomes]
    pc.rodata_full.value = True  # what ticking the box does
    truth = compare_policies("arm64-4k-48", blocks=[BLOCK], rodata_full=True)
    assert pc.outcomes == truth
    assert [o.tables_allocated for o in truth] != plain_counts  # PTE tables for the map
    assert plain(pc.chart) == comparison_figure(truth).to_dict()
    assert "rodata_full on" in pc.title.value
    calls: list[object] = []
    real = mm_compare.compare_policies

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("mmkit.widgets.compare.compare_policies", counting)
    pc.rodata_full.value = False
    pc.rodata_full.value = True
    assert calls == []  # both were cached


def test_trees_side_by_side_follow_the_pickers(pc: PolicyComparison) -> None:
    pc.select("arm64-4k-48", rodata_full=False)
    figure = pc.trees
    assert pc.pair == ("v6", "v5.7")  # the default: one policy that leaves tables, one not
    pc.left_picker.value = "naive"
    pc.right_picker.value = "v6"
    assert pc.pair == ("naive", "v6")
    ml, sl = _after_removal("arm64-4k-48", "naive", BLOCK)
    mr, sr = _after_removal("arm64-4k-48", "v6", BLOCK)
    expected = tree_pair_figure(
        ml,
        mr,
        titles=("naive: after removal", "v6: after removal"),
        since=(sl, sr),
        color="state",
    )
    assert pc.trees is figure and plain(pc.trees) == expected.to_dict()
    pc.show_pair("v5.7", "v7")
    assert (pc.left_picker.value, pc.right_picker.value) == ("v5.7", "v7")
    titles = [a.text for a in pc.trees.layout.annotations]
    assert "v5.7: after removal" in titles and "v7: after removal" in titles


def test_config_picker_recomputes_on_its_default_block(pc: PolicyComparison) -> None:
    pc.config_picker.value = "teach-4k-39"
    block = default_block("teach-4k-39")
    assert pc.block == block and pc.block_text.value == f"{block:#x}"
    truth = compare_policies("teach-4k-39", blocks=[block], rodata_full=pc.rodata_full.value)
    assert pc.outcomes == truth
    assert "teaching layout" in pc.title.value and "teach-4k-39, Linux v5.4" in pc.title.value
    pc.config_picker.value = "arm64-4k-48"
    assert pc.block == BLOCK


def test_block_text_and_bad_input(pc: PolicyComparison) -> None:
    pc.select("arm64-4k-48", rodata_full=False)
    other = BLOCK + (1 << 30)
    pc.block_text.value = f"{other:#x}"
    assert pc.block == other
    assert pc.outcomes == compare_policies("arm64-4k-48", blocks=[other])
    pc.block_text.value = "not an address"
    assert "write it in hex" in pc.errors.widget.value
    assert pc.block == other and pc.block_text.value == f"{other:#x}"  # unchanged
    pc.block_text.value = "0x1"  # not a block boundary: the engine refuses, nothing changes
    assert pc.errors.widget.value != ""
    assert pc.block == other and pc.block_text.value == f"{other:#x}"
    pc.select(block=BLOCK)


def test_callback_errors_land_in_the_error_pane(monkeypatch: pytest.MonkeyPatch) -> None:
    pc = PolicyComparison("arm64-4k-48")
    shown = pc.outcomes

    def no_machine(config: str) -> int:
        raise RuntimeError(f"cannot boot {config}")

    monkeypatch.setattr("mmkit.widgets.compare.default_block", no_machine)
    pc.config_picker.value = "arm64-64k-42"
    assert "RuntimeError: cannot boot arm64-64k-42" in pc.errors.widget.value
    assert pc.config_picker.value == pc.config == "arm64-4k-48"  # back to what is shown
    assert pc.outcomes is shown

    def broken() -> None:
        raise RuntimeError("chart failed")

    monkeypatch.setattr(pc, "static_chart", broken)
    pc.rodata_full.value = True
    assert "RuntimeError: chart failed" in pc.errors.widget.value
    assert isinstance(pc.errors.errors[-1], RuntimeError)


def test_is_a_displayable_widget(pc: PolicyComparison) -> None:
    assert isinstance(pc.widget, widgets.VBox)
    shown = [id(c) for c in pc.widget.children]
    for part in (pc.errors.widget, pc.table, pc.chart, pc.trees):
        assert id(part) in shown
    assert callable(pc._ipython_display_)

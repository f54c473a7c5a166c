"""The kit's views on x86_64: ptdump text, trees, the Stepper, the explorer, compare."""

from __future__ import annotations

import itertools
import re

import pytest
from mmkit_x86_64.ptdump import ptdump

from mmkit.machine import Machine
from mmkit.mm.compare import compare_policies
from mmkit.scenarios.races import tlb_order
from mmkit.viz.tree import tree_figure
from mmkit.widgets.stepper import Stepper

GIB = 1 << 30
_LINE = re.compile(r"0x([0-9a-f]{16})-0x([0-9a-f]{16}) +\d+[BKMGTPE] (.{30})(pgd|p4d|pud|pmd|pte)$")


@pytest.fixture(scope="module", params=["x86_64-4k-48", "x86_64-4k-57"])
def machine(request):
    m = Machine(request.param, memory=[(0, 2 * GIB)], policy="x86-remove-pagetable")
    m.hot_add(4 * GIB, GIB)
    return m


def test_ptdump_lines_tile_the_address_space_between_markers(machine):
    text = ptdump(machine)
    lines = text.splitlines()
    assert lines[0] == "---[ User Space ]---"
    ranges = [_LINE.fullmatch(line) for line in lines if not line.startswith("---[")]
    assert all(ranges), [line for line in lines if not _LINE.fullmatch(line) and "---" not in line]
    spans = [(int(r[1], 16), int(r[2], 16)) for r in ranges]
    assert spans[0][0] == 0 and spans[-1][1] == 0  # the last flush wraps to 0
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start
    markers = [line for line in lines if line.startswith("---[")]
    assert markers[:5] == [
        "---[ User Space ]---",
        "---[ Kernel Space ]---",
        "---[ LDT remap ]---",
        "---[ Low Kernel Mapping ]---",
        "---[ vmalloc() Area ]---",
    ]


def test_ptdump_shows_the_hot_added_gigabyte(machine):
    start = machine.lm_va(4 * GIB)
    line = f"0x{start:016x}-0x{start + GIB:016x}           1G     RW         PSE     GLB NX pud"
    assert line in ptdump(machine).splitlines()
    machine_copy = Machine(machine.desc, memory=[(0, 2 * GIB)], policy="x86-remove-pagetable")
    assert line not in ptdump(machine_copy).splitlines()


def test_tree_figure_draws_every_level_with_x86_hovers(machine):
    fig = tree_figure(machine)
    text = " ".join(
        str(x)
        for trace in fig.data
        for attr in ("labels", "hovertext", "customdata", "text")
        for x in (getattr(trace, attr, None) or [])
    )
    for level in [lv.name for lv in machine.pgtables.levels][1:-1]:
        assert f"{level.upper()} table" in text
    assert "1GB block" in text and "pud leaf, pa 0x100000000, RW PSE GLB NX" in text


def test_stepper_steps_the_x86_teardown():
    st = Stepper.hot_remove(
        "x86_64-4k-48",
        4 * GIB,
        GIB,
        policy="x86-remove-pagetable",
        op="arch_remove_memory",
        memory=[(0, 2 * GIB)],
    )
    n = st.run_to_end()
    lines = [s.line for s in st.machine.history]
    assert n > 10 and "flush_tlb_all()" in lines
    assert any(line.startswith("remove_pagetable(") for line in lines)


def test_explorer_finds_x86s_missing_tlb_maintenance():
    """Pages freed before their entry is cleared, with only flush_tlb_all() at the end: a
    reader holding a TLB entry reads a freed page (kernel-facts 9, Mark Rutland's point)."""
    result = tlb_order("x86-remove-pagetable", "x86_64-4k-48").explore(bound=1)
    assert result.found and result.events[0].startswith("stale-tlb")
    assert not tlb_order("v5.7", "x86_64-4k-48").explore(bound=1).found


def test_compare_shows_x86_beside_arm64_policies():
    rows = compare_policies(
        "x86_64-4k-48", blocks=[4 * GIB], policies=["v5.7", "x86-remove-pagetable"]
    )
    by = {r.policy: r for r in rows}
    assert by["x86-remove-pagetable"].tlbi == {"vaale1is": 0, "vaae1is": 0, "vmalle1is": 2}
    assert by["v5.7"].tlbi["vaale1is"] > 0 and by["v5.7"].tables_left == 0


def test_every_x86_step_line_has_a_listing_line():
    """The policy's own listings (mmkit.kernel_source picks them first) hold every line of
    the functions they list, as the x86 teardown steps through them, on x86 and on an arm64
    layout (the shared mapping code keeps arm64's listings: README)."""
    from mmkit import kernel_source as ks
    from mmkit.kernel_source import WIDTH

    policy = "x86-remove-pagetable"
    missing = []
    functions: set[str] = set()
    for config, memory in (("x86_64-4k-57", [(0, 2 * GIB)]), ("arm64-64k-42", None)):
        kw = {"memory": memory} if memory else {}
        m = Machine(config, policy=policy, **kw)
        block = m.desc.memory_block_size
        start = -(-max(s + n for s, n in m.boot_memory) // block) * block
        m.hot_add(start, block)
        m.hot_remove(start, block)
        listed = {ls.function for ls in m.policy.listings}
        functions |= {s.function for s in m.history}
        for s in m.history:
            if s.function in listed and ks.locate(s, m.kernel, policy, strict=True) is None:
                missing.append((s.function, s.line))
    assert not missing, missing
    assert {"remove_pte_table", "free_pmd_table", "free_pud_table", "vmemmap_free"} <= functions
    for ls in m.policy.listings:
        assert all(len(line) <= WIDTH for line in (ls.header, *ls.lines)), ls.function


def test_v7s_arm64_overlap_test_is_not_offered_yet_v7_runs():
    """V7's find_vmalloc_vmemmap_overlap() is arm64 code: the x86 layout has no report
    (lessons on it leave x86 out), and V7 on x86 frees vmemmap tables as if no overlap."""
    from mmkit import arch

    d = arch.get("x86_64-4k-48")
    assert getattr(d, "vmalloc_vmemmap_overlap", None) is None
    assert arch.summary(d)["v7_overlap"] is None
    (row,) = compare_policies("x86_64-4k-48", blocks=[4 * GIB], policies=["v7"])
    assert row.tables_left == 0 and row.events == ()


def test_the_comparison_names_x86s_invalidations_not_arm64s():
    from mmkit.viz.compare import comparison_figure

    rows = compare_policies("x86_64-4k-48", blocks=[4 * GIB], policies=["x86-remove-pagetable"])
    fig = comparison_figure(rows)
    names = [t.name for t in fig.data if t.legendgroup == "tlbi"]
    assert names == ["INVLPG", "INVLPG (walk caches)", "flush_tlb_all()"]
    (whole,) = [t for t in fig.data if t.name == "flush_tlb_all()"]
    assert list(whole.customdata) == [2]
    assert not any("TLBI" in (t.name or "") for t in fig.data)


def test_mmkit_compare_heads_its_columns_with_x86s_invalidations(capsys):
    from mmkit.cli import main

    assert main(["compare", "x86_64-4k-48", "--block", hex(4 * GIB)]) == 0
    out = capsys.readouterr().out
    assert "flush_tlb_all()" in out.splitlines()[0] and "VMALLE1IS" not in out

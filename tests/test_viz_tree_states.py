"""The tree's node states against the engine: added, freed and unmapped since a snapshot
(set differences of the live table pages and their entries), empty tables a policy leaves
behind (``compare_policies``), patch 3/3's shared tables (``shared_tables``), and tables
touched after free in the races' failing schedules (their use-after-free events)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit import policies
from mmkit.machine import Machine
from mmkit.mm.compare import compare_policies
from mmkit.pgtable.shared import shared_tables
from mmkit.policies.base import hook
from mmkit.scenarios.races import ptdump_race, vmalloc_race
from mmkit.sched.explore import replay
from mmkit.viz.tree_model import STATES, snapshot, state_counts, tree_nodes, why_left
from tests.tree_oracle import (
    check_changes,
    check_structure,
    expected_states,
    hollow_pfns,
    next_block,
    truth,
)


@pytest.mark.parametrize("rodata_full", [False, True], ids=["blocks", "rodata_full"])
@pytest.mark.parametrize("config", ["arm64-4k-48", "arm64-16k-47", "arm64-64k-52", "teach-4k-39"])
def test_add_then_remove_against_snapshots(config, rodata_full):
    m = Machine(config, rodata_full=rodata_full, record=False)
    start, block = next_block(m), m.desc.memory_block_size
    boot, snap0 = truth(m), snapshot(m, "boot")
    m.hot_add(start, block)
    nodes = tree_nodes(m, since=snap0)
    check_changes(m, nodes, boot)
    added = truth(m).keys - boot.keys
    assert state_counts(nodes)["added"] == len(added)
    before, snap1 = truth(m), snapshot(m, "before hot-remove")
    m.hot_remove(start, block)
    nodes = tree_nodes(m, since=snap1)
    check_structure(m, nodes, before)
    check_changes(m, nodes, before)
    freed = before.keys - truth(m).keys
    assert state_counts(nodes)["freed"] == len(freed) == len(added)  # v5.7 frees them all
    # against the boot snapshot nothing is left: no added, no freed, no cleared entries
    nodes = tree_nodes(m, since=snap0)
    assert {n.state for n in nodes} <= {"live", "shared"}


def test_unmapped_entries_are_where_entries_were_cleared():
    """Entries cleared in tables that stay (the block's memmap in the vmemmap PMD table) are
    drawn as unmapped runs; cleared entries that pointed at tables, as the freed tables."""
    m = Machine("teach-4k-39", memory=((0x4000_0000, 1 << 30),), rodata_full=True, record=False)
    m.hot_add(0x8000_0000, 1 << 30)
    before, snap = truth(m), snapshot(m)
    m.hot_remove(0x8000_0000, 1 << 30)
    nodes = tree_nodes(m, since=snap)
    check_changes(m, nodes, before)
    pt = m.pgtables
    leaf = len(pt.levels) - 1
    cleared_entries = cleared_tables = 0
    for p in set(pt.info) & set(before.content):
        d = pt.info[p].depth
        gone = (before.content[p] != 0) & (pt.content[p] == 0)
        was_table = (before.content[p] & 3) == 3 if d < leaf else gone & False
        cleared_tables += int((gone & was_table).sum())
        cleared_entries += int((gone & ~was_table).sum())
    assert cleared_entries > 0 and cleared_tables > 0
    assert sum(n.count for n in nodes if n.state == "unmapped") == cleared_entries
    assert state_counts(nodes)["freed"] == len(before.keys - truth(m).keys) >= cleared_tables


@pytest.mark.parametrize("policy", ["v6", "v5.7", "naive", "v3", "v7"])
def test_empty_tables_are_what_the_policy_leaves(policy):
    block_start = 0x400000000000
    (outcome,) = compare_policies("arm64-4k-48", blocks=[block_start], policies=[policy])
    m = Machine("arm64-4k-48", policy=policy, record=False)
    boot = truth(m)
    m.hot_add(block_start, m.desc.memory_block_size)
    snap = snapshot(m, "before hot-remove")
    m.hot_remove(block_start, m.desc.memory_block_size)
    left = truth(m).keys - boot.keys
    assert len(left) == outcome.tables_left
    nodes = tree_nodes(m, since=snap)
    assert state_counts(nodes)["empty"] == outcome.tables_left
    assert state_counts(tree_nodes(m))["empty"] == outcome.tables_left  # without a snapshot
    empty = [n for n in nodes if n.state == "empty"]
    assert {n.pfn for n in empty if n.kind == "table"} <= hollow_pfns(m)
    for n in empty:
        assert n.note == why_left(m, n)
        if policy == "v6" and n.region == "vmemmap":
            assert "never frees" in n.note
    if policy == "v6":
        assert outcome.tables_left == 2 and empty
    check_structure(m, nodes)


@pytest.mark.parametrize(
    "config", ["arm64-4k-48", "arm64-16k-48", "teach-4k-39", "teach-16k-47", "arm64-64k-48"]
)
def test_shared_tables_are_drawn_shared(config):
    m = Machine(config, record=False)
    m.hot_add(next_block(m), m.desc.memory_block_size)
    truth_shared = {t.pfn for t in shared_tables(m) if t.pfn is not None}
    nodes = tree_nodes(m)
    drawn = {n.pfn for n in nodes if n.kind == "table" and n.state == "shared"}
    assert drawn == truth_shared
    assert sum(n.count for n in nodes if n.state == "shared") == len(truth_shared)
    if config in ("arm64-4k-48", "teach-16k-47"):
        assert truth_shared  # bm_pud; the teaching layout's vmalloc/vmemmap tables
    for n in nodes:
        if n.state == "shared":
            assert "vmalloc" in n.note and "vmemmap" in n.note


def _failing_run(race):
    res = race.explore(bound=2)
    assert res.shortest, f"{race.name} has a failing schedule at bound 2"
    s = replay(race.make, res.shortest)
    s.run()
    return s.machine


@pytest.mark.parametrize(
    "race",
    [ptdump_race("arm64-4k-48", "naive"), vmalloc_race("teach-4k-39", "naive")],
    ids=["ptdump", "vmalloc"],
)
def test_touched_after_free_is_the_use_after_free_events(race):
    start, _ = race.make()
    snap = snapshot(start, "race start")
    m = _failing_run(race)
    uaf = {e.pfn for e in m.events if e.kind == "use-after-free" and e.pfn is not None}
    assert uaf
    nodes = tree_nodes(m, since=snap)
    touched = [n for n in nodes if n.state == "touched-after-free"]
    assert {n.pfn for n in touched} == uaf
    for n in touched:
        assert n.pfn not in m.pgtables.info or m.pgtables.info[n.pfn].depth != (
            [lv.name for lv in m.pgtables.levels].index(n.level)
        )
        fns = {e.function for e in m.events if e.kind == "use-after-free" and e.pfn == n.pfn}
        assert n.note.split(":")[0] in fns, n
    # before the race nothing was touched after free
    assert "touched-after-free" not in state_counts(tree_nodes(start, since=snap))
    # without a snapshot, freed tables are not drawn, so neither is their use after free
    assert "touched-after-free" not in state_counts(tree_nodes(m))


def test_states_are_ranked_as_documented():
    assert STATES[0] == "touched-after-free" and STATES[-1] == "live"
    assert set(STATES) == {"touched-after-free", "freed", "unmapped", "shared", "empty"} | {
        "added",
        "live",
    }


def test_no_snapshot_no_change_states():
    m = Machine("teach-4k-39", rodata_full=True, record=False)
    m.hot_add(0x1_0000_0000, 1 << 30)
    m.hot_remove(0x1_0000_0000, 1 << 30)
    nodes = tree_nodes(m)
    assert {n.state for n in nodes} <= {"live", "shared", "empty"}
    exp = expected_states(m, None)
    assert {exp[n.pfn] for n in nodes if n.kind == "table"} <= {"live", "shared", "empty"}


# ------------------------------------------------------------------ property
_BLOCKS = 4


@settings(settings(), max_examples=max(12, settings().max_examples // 6))
@given(
    config=st.sampled_from(["teach-4k-39", "arm64-64k-48"]),
    rodata_full=st.booleans(),
    # every policy whose table pages stay in the tree: a page a policy's defer_table_free hook
    # keeps after unhooking it (RCU-style) is in no page table, so no tree can show it
    policy=st.sampled_from(
        sorted(p for p in policies.names() if hook(policies.get(p), "defer_table_free") is None)
    ),
    ops=st.lists(st.integers(0, _BLOCKS - 1), min_size=1, max_size=6),
)
def test_random_hotplug_keeps_the_tree_true(config, rodata_full, policy, ops):
    """Add a block if absent, else remove it; after each operation the tree stands for
    every table page and entry, and its states match the engine's set differences."""
    ro = rodata_full and config != "teach-4k-39"  # 4K pages: 512 PTE tables a block
    m = Machine(config, policy=policy, rodata_full=ro, record=False)
    block = m.desc.memory_block_size
    base = next_block(m)
    present: set[int] = set()
    for i in ops:
        start = base + i * block
        before, snap = truth(m), snapshot(m)
        if i in present:
            m.hot_remove(start, block)
            present.discard(i)
        else:
            m.hot_add(start, block)
            present.add(i)
        nodes = tree_nodes(m, since=snap)
        check_structure(m, nodes, before)
        check_changes(m, nodes, before)
        counts = state_counts(nodes)
        assert counts["freed"] == len(before.keys - truth(m).keys)

"""Steps: coarse and fine runs agree, coarse steps expand to the fine writes, and the V7
unwind of a failed hot-add."""

from __future__ import annotations

import pytest

from mmkit.errors import NoMemory
from mmkit.machine import Machine
from mmkit.pgtable.walk import translate


def writes(steps):
    return [
        (s.table, s.index, s.old or 0, s.new or 0)
        for step in steps
        if step.action == "write"
        for s in step.entries()
    ]


def frees(steps):
    """Each block or table page freed: (pfn, size, VA), from the steps as they expand."""
    return [
        (s.pfn, s.size, s.va)
        for step in steps
        if step.action == "free"
        for part in (step.expand() if step.bulk else [step])
        for s in part.expand()
    ]


@pytest.mark.parametrize(
    ("name", "rodata_full"),
    [
        ("arm64-4k-48", False),
        ("arm64-16k-47", False),
        ("arm64-16k-47", True),
        ("arm64-64k-42", True),
    ],
)
def test_fine_and_coarse_runs_do_the_same_writes(name, rodata_full):
    machines = [Machine(name, rodata_full=rodata_full, fine=fine) for fine in (False, True)]
    start = machines[0].memstart + (8 << 30)
    block = machines[0].desc.memory_block_size
    for m in machines:
        mark = len(m.history)
        # the second time, blocks and table pages come back last-freed first (descending)
        for _ in range(2):
            m.hot_add(start, block)
            m.hot_remove(start, block)
        m.trace = m.history[mark:]
    coarse, fine = machines
    assert coarse.digest(log=False) == fine.digest(log=False)
    assert sorted(writes(coarse.trace)) == sorted(writes(fine.trace))
    assert frees(coarse.trace) == frees(fine.trace)  # and in the same order
    # with blocks every write is its own step anyway; without them coarse runs appear
    assert (
        len(fine.trace) > len(coarse.trace) if rodata_full else len(fine.trace) >= len(coarse.trace)
    )
    assert coarse.stats == fine.stats


def test_a_coarse_step_expands_to_linear_entries():
    m = Machine("arm64-4k-48", rodata_full=True)
    mark = len(m.history)
    m.hot_add(0x1_0000_0000, 1 << 30)
    run = next(s for s in m.history[mark:] if s.action == "write" and s.level == "pte")
    # a bulk step: one coarse step per PTE table (the 512 tables of the 1 GiB), each of
    # 512 entries, and those the entry writes
    parts = list(run.expand())
    assert run.bulk and len(parts) == len(run.tables) == 512
    assert [p.table for p in parts] == list(run.tables)
    assert all(p.count == 512 and not p.bulk for p in parts)
    assert len(list(run.entries())) == 512 * 512
    for part in (parts[0], parts[1], parts[-1]):
        fine = list(part.expand())
        assert len(fine) == 512
        for step in fine:
            w = translate(m, step.va)
            assert w.leaf_raw == step.new and w.steps[-1].table_pfn == part.table


def test_failed_vmemmap_population_unwinds_the_linear_map():
    m = Machine("arm64-16k-47", policy="v5.7")
    boot = set(m.pgtables.info)
    start = m.memstart + (64 << 30)
    m.physmem.fail_after = 3  # a few memmap pages, then -ENOMEM
    with pytest.raises(NoMemory):
        m.hot_add(start, 1 << 30)
    assert not translate(m, m.lm_va(start)).ok  # __remove_pgd_mapping() undid it
    assert not translate(m, m.vmemmap_va(start >> m.desc.page_shift)).ok
    assert set(m.pgtables.info) == boot and m.hotplugged == []
    assert m.events == []

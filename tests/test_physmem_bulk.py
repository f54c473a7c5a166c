"""physmem's run calls (``alloc_tables``, ``free_pages_many``) do what as many single calls
do, and refuse a bad run before they change anything."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkit.errors import InvalidArgument
from mmkit.physmem import PhysMem


def pool() -> PhysMem:
    return PhysMem(pool_start=0x4800_0000, pool_end=0x4810_0000, page_shift=12)


def state(pm: PhysMem) -> tuple[object, ...]:
    return (
        dict(pm.frames),
        {o: list(v) for o, v in pm._free_lists.items() if v},
        pm._next,
        pm.allocations,
        pm.frees,
        pm.digest(),
    )


@given(
    runs=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    frees=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 39), st.integers(1, 40))),
    owners=st.sampled_from(["pte", "pmd"]),
)
def test_runs_of_tables_are_allocated_and_freed_as_one_call_each_would(runs, frees, owners):
    bulk, single = pool(), pool()
    taken: list[list[int]] = []
    for count in runs:
        got = bulk.alloc_tables(count, f"{owners} table")
        assert got == [single.alloc_pages(0, "table", f"{owners} table") for _ in range(count)]
        taken.append(got)
    assert state(bulk) == state(single)
    freed: set[int] = set()
    for which, lo, n in frees:
        run = taken[which % len(taken)][lo : lo + n]
        run = [p for p in run if p not in freed]
        if not run:
            continue
        freed.update(run)
        bulk.free_pages_many(run, 0, "free_empty_pte_table")
        for p in run:
            single.free_pages(p, 0, "free_empty_pte_table")
        assert state(bulk) == state(single)
    # and the freed frames come back last-freed first, as single allocations would take them
    again = len(freed)
    if again:
        assert bulk.alloc_tables(again, "pte table") == [
            single.alloc_pages(0, "table", "pte table") for _ in range(again)
        ]
        assert state(bulk) == state(single)


@pytest.mark.parametrize("bad", ["double", "never", "mixed", "again"])
def test_a_bad_run_is_refused_before_any_frame_is_freed(bad):
    pm = pool()
    pfns = pm.alloc_tables(8, "pte table")
    other = pm.alloc_pages(0, "backing", "vmemmap")
    pm.free_pages(pfns[5], 0, "free_empty_pte_table")
    pm.free_pages_many(pfns[6:], 0, "free_empty_pte_table")
    run = {
        "double": pfns,  # pfns[5] is free already
        "never": [*pfns[:5], 0x4900_0000 >> 12],  # outside anything allocated
        "mixed": [other, *pfns[:5], pfns[5]],  # records of two kinds, then a free one
        "again": pfns[6:],  # a whole run freed twice (one shared record)
    }[bad]
    before = copy.deepcopy(state(pm))
    with pytest.raises(InvalidArgument, match="double free or free of unallocated"):
        pm.free_pages_many(run, 0, "free_empty_pte_table")
    assert state(pm) == before

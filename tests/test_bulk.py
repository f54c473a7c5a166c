"""Bulk steps: a run of leaf tables taken in a handful of steps does what the per-table
steps do, and the table store behind them keeps the meaning of a frame's content."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.pgtable import bulk
from mmkit.pgtable.store import TableStore
from mmkit.pgtable.teardown import free_empty_tables, unmap_hotplug_range
from tests.test_step_convention import drive

GIB = 1 << 30


def canonical(steps: list[Step]) -> tuple[Counter, Counter]:
    """The steps as per-table and entry steps (a multiset), and the TLBIs issued per kind
    and function: what a run does, whatever its step granularity."""
    done: Counter = Counter()
    tlbis: Counter = Counter()
    for step in steps:
        if step.action == "tlbi":
            tlbis[(step.function, step.note)] += step.count
            continue
        for part in step.expand() if step.bulk else [step]:
            whole = part.action not in ("read", "write") or part.note  # a table scan
            for e in [part] if whole else part.expand():
                where = (e.level, e.va, e.table, e.index, e.count)
                done[(e.action, e.function, *where, e.old, e.new, e.pfn, e.note, e.line)] += 1
    return done, tlbis


def per_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every run too short for bulk steps: the per-table steps."""
    monkeypatch.setattr(bulk, "_MIN_RUN", 1 << 30)


@pytest.mark.parametrize(
    ("name", "options", "size"),
    [
        ("arm64-4k-48", {"rodata_full": True}, GIB),
        ("arm64-4k-48", {"rodata_full": True, "policy": "v6"}, 2 * GIB),
        ("arm64-16k-47", {"rodata_full": True}, GIB),
        ("arm64-64k-42", {"rodata_full": True}, 2 * GIB),
        ("arm64-64k-48", {"debug_pagealloc": True, "policy": "v7"}, 2 * GIB),
        ("arm64-16k-47", {}, 4 * GIB),  # blocks: the vmemmap's PTE tables only
    ],
)
def test_bulk_steps_do_what_the_per_table_steps_do(name, options, size, monkeypatch):
    runs = []
    for bulk_on in (True, False):
        if not bulk_on:
            per_table(monkeypatch)
        m = Machine(name, **options)
        start = m.memstart + (16 << 30)
        mark = len(m.history)
        for _ in range(2):  # the second time, table pages come back from the free lists
            m.hot_add(start, size)
            m.hot_remove(start, size)
        runs.append((m, m.history[mark:]))
    (bm, bsteps), (pm, psteps) = runs
    # the history's length differs (that is the point): compare all but the log and history
    assert bm.digest(log=False) == pm.digest(log=False) and bm.stats == pm.stats
    assert bm.events == pm.events == []
    assert canonical(bsteps) == canonical(psteps)
    if options.get("rodata_full"):  # every run of PTE tables was taken in bulk
        assert len(bsteps) < len(psteps)
        assert any(s.bulk for s in bsteps) and not any(s.bulk for s in psteps)


def _unmapped_with_a_stray_entry(name: str) -> tuple[Machine, int, int, int]:
    """A machine whose hot-added range is unmapped but not yet freed, with one entry
    written back into one of its PTE tables (as a racing CPU might)."""
    m = Machine(name, rodata_full=True)
    start = m.memstart + (16 << 30)
    m.hot_add(start, GIB)
    lo, hi = m.lm_va(start), m.lm_va(start) + GIB
    m.run(unmap_hotplug_range(m, lo, hi, False))
    pmd = m.pgtables.levels[-2].entry_size
    va = lo + 5 * pmd + 3 * m.page_size
    from mmkit.pgtable.walk import translate

    table = translate(m, lo + 5 * pmd).steps[-1].table_pfn
    idx = m.pgtables.levels[-1].index(va)
    m.pgtables.content[table][idx] = m.pgtables.pa_to_desc(start) | 0x713
    return m, lo, hi, table


@pytest.mark.parametrize("name", ["arm64-4k-48", "arm64-16k-47"])
def test_a_bulk_free_keeps_a_table_found_in_use_as_the_per_table_walk_does(name, monkeypatch):
    m, lo, hi, table = _unmapped_with_a_stray_entry(name)
    steps, _ = drive(m, free_empty_tables(m, lo, hi))  # each step checked as it is taken
    assert any(s.bulk for s in steps)
    scan = next(s for s in steps if s.bulk and "in use" in s.note)
    notes = {p.table: p.note for p in scan.expand()}
    assert notes[table] == "1 in use" and Counter(notes.values())["0 in use"] == len(notes) - 1
    assert table in m.pgtables.info  # kept, hooked, with its entry
    assert [e.kind for e in m.events] == ["warn"] and "1 entries" in m.events[0].message
    per_table(monkeypatch)
    p, lo, hi, _ = _unmapped_with_a_stray_entry(name)
    psteps, _ = drive(p, free_empty_tables(p, lo, hi))
    assert m.digest(log=False) == p.digest(log=False) and m.stats == p.stats  # not the history
    assert [e.message for e in m.events] == [e.message for e in p.events]
    assert canonical(steps) == canonical(psteps)


def test_a_bulk_allocation_and_free_expand_to_one_step_per_table_page():
    m = Machine("arm64-4k-48", rodata_full=True)
    start = m.memstart + (16 << 30)
    mark = len(m.history)
    m.hot_add(start, GIB)
    alloc = next(s for s in m.history[mark:] if s.action == "alloc" and s.bulk)
    parts = list(alloc.expand())
    assert [p.pfn for p in parts] == list(alloc.tables) and len(parts) == alloc.count == 512
    assert [p.va for p in parts] == [m.lm_va(start) + i * (2 << 20) for i in range(512)]
    assert all(m.pgtables.info[p.pfn].va_start == p.va for p in parts)
    mark = len(m.history)
    m.hot_remove(start, GIB)
    free = next(s for s in m.history[mark:] if s.action == "free" and s.bulk)
    assert sorted(p.pfn for p in free.expand()) == sorted(alloc.tables)
    assert all(m.physmem.state(p) == "free" for p in alloc.tables)


# ------------------------------------------------------------------ the store
@given(
    st.lists(
        st.tuples(st.sampled_from(["claim", "write", "copy"]), st.lists(st.integers(0, 40))),
        max_size=25,
    )
)
def test_the_store_reads_and_writes_as_one_array_per_frame(ops):
    store, model = TableStore(4), {}
    copies = []
    for n, (op, pfns) in enumerate(ops):
        pfns = list(dict.fromkeys(pfns))
        if op == "claim" and pfns:
            store.claim(pfns)
            for p in pfns:
                model.setdefault(p, np.zeros(4, dtype=np.uint64))
        elif op == "write":
            known = [p for p in pfns if p in model]
            if known:
                store.set_rows(known, n + 1)
                for p in known:
                    model[p][:] = n + 1
                assert np.array_equal(store.rows(known), np.stack([model[p] for p in known]))
        else:
            copies.append((copy.deepcopy(store), copy.deepcopy(model)))
        assert set(store) == set(model)
        assert all(np.array_equal(store[p], model[p]) for p in model)
    for kept, was in copies:  # copies stay as they were
        assert set(kept) == set(was)
        assert all(np.array_equal(kept[p], was[p]) for p in was)


def test_a_run_of_rows_is_a_view_either_way_round():
    store = TableStore(8)
    store.claim([10, 11, 12, 13])
    assert store.view([11, 12, 13]) is not None and store.view([13, 12, 11]) is not None
    assert store.view([10, 12]) is None
    store.view([13, 12, 11])[:] = np.arange(3, dtype=np.uint64)[:, None]
    assert [int(store[p][0]) for p in (11, 12, 13)] == [2, 1, 0]


def test_a_stale_pointer_reads_what_the_reused_frame_holds_now():
    m = Machine("arm64-4k-48", rodata_full=True)
    start = m.memstart + (16 << 30)
    m.hot_add(start, GIB)
    from mmkit.pgtable.walk import translate

    va = m.lm_va(start)
    old = translate(m, va).steps[-1].table_pfn
    stale = m.pgtables.content[old]  # a pointer held into the PTE table
    m.hot_remove(start, GIB)
    assert m.physmem.state(old) == "free"
    m.hot_add(start + 4 * GIB, GIB)  # the freed frames come back as tables
    assert m.physmem.state(old) == "table" and old in m.pgtables.info
    now = translate(m, m.pgtables.info[old].va_start).steps[-1]
    assert now.table_pfn == old
    assert np.array_equal(stale, m.pgtables.content[old]) and int(stale[now.index]) == now.raw
    # and a copy of the machine keeps its own frames
    c = copy.deepcopy(m)
    c.pgtables.content[old][0] = 0
    assert int(m.pgtables.content[old][0]) != 0


@given(
    k=st.integers(1, 140),
    ptrs=st.sampled_from([1, 8, 512]),
    stride=st.sampled_from([1, 4096, 1 << 16, (1 << 64) - 4096]),
    first=st.integers(0, (1 << 64) - 1),
    bad=st.lists(st.tuples(st.integers(0, 139), st.integers(0, 511)), max_size=3),
    backwards=st.booleans(),
)
def test_the_linear_prefix_is_the_rows_before_the_first_that_differs(
    k, ptrs, stride, first, bad, backwards
):
    """Against a row-by-row comparison with values built one by one (modulo 2**64), on
    store views either way round (frames handed back last-freed first)."""
    store = TableStore(ptrs)
    pfns = list(range(100, 100 + k))
    store.claim(pfns)
    order = pfns[::-1] if backwards else pfns
    rows = store.view(order)
    want = [[(first + (i * ptrs + j) * stride) % (1 << 64) for j in range(ptrs)] for i in range(k)]
    rows[:] = np.array(want, dtype=np.uint64)
    for i, j in bad:
        if i < k and j < ptrs:
            rows[i, j] ^= np.uint64(1 << (j % 64))
    expected = next((i for i in range(k) if rows[i].tolist() != want[i]), k)
    assert bulk._linear_prefix(rows, first, stride) == expected
    # and a run filled through a view taken backwards holds the same values
    store.set_rows(order, 0)
    assert not bulk._in_use(rows)
    if k >= 2 and ptrs == 512:
        bulk._linear(first, k, ptrs, stride, out=rows)
        assert bulk._linear_prefix(rows, first, stride) == k


@pytest.mark.parametrize("stale", [False, True])
def test_a_bulk_allocation_hands_out_zeroed_tables_whatever_the_frames_held(stale):
    """A reused frame is zero once its ``alloc`` step is performed (``__GFP_ZERO``), also
    when a stale pointer wrote into it after it was freed; then it is filled."""
    m = Machine("arm64-4k-48", rodata_full=True)
    start = m.memstart + (16 << 30)
    m.hot_add(start, GIB)
    m.hot_remove(start, GIB)
    freed = [p for p in m.pgtables.content if m.physmem.state(p) == "free"]
    assert len(freed) >= 512
    if stale:  # a racing CPU's store through a pointer it kept
        for p in freed[::7]:
            m.pgtables.content[p][3] = 0x713
    op = m.arch_add_memory(start, GIB)
    for step in op:
        if step.action == "alloc" and step.bulk:
            next(op)  # performs the allocation
            rows = np.stack([m.pgtables.content[p] for p in step.tables])
            assert set(step.tables) <= set(freed) and not rows.any()
    assert m.events == []  # no BUG_ON for a live entry
    pa = start + 5 * (2 << 20) + 3 * m.page_size
    from mmkit.pgtable.walk import translate

    assert translate(m, m.lm_va(pa)).pa == pa

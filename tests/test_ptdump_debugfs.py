"""``ptdump_show()``: which kernels take the hotplug lock, and the v5.4 walk entry by entry.

Ground truth: v5.4 ``arch/arm64/mm/ptdump_debugfs.c`` (no lock), v5.7's (``get_online_mems()``
around ``ptdump_walk()``), v5.4 ``arch/arm64/mm/dump.c`` ``walk_pmd()``: ``READ_ONCE(*pmdp)``
of each entry in turn, ``walk_pte(st, pmdp, ...)`` for a table (``pte_offset_kernel(pmdp)``
reads the entry again), then ``pmdp++``: the parent page is read again after each child.
"""

from __future__ import annotations

import copy

import pytest

from mmkit.machine import Machine
from mmkit.mm.hotplug import remove_memory
from mmkit.mm.ptdump_debugfs import ptdump_show
from mmkit.sched import Scheduler, Thread

GIB = 1 << 30


def _machine(fine: bool) -> tuple[Machine, int, int]:
    """4K/48 with rodata_full: the hot-added GiB's linear map is one PMD table T of 512 PTE
    tables; removing the block frees them all, and T (floor/ceiling allow it)."""
    m = Machine(
        "arm64-4k-48",
        policy="naive",
        rodata_full=True,
        online_type="offline",
        vmalloc_areas=0,
        record=False,
    )
    start = m.memstart + (64 << 30)
    m.add_memory(0, start, GIB)
    va = m.lm_va(start)
    w = [r for r in m.table_pages() if r.level == "pmd" and r.va_start <= va < r.va_end]
    [pmd] = w
    m.fine = fine
    return m, start, pmd.pfn


def _step_until(s: Scheduler, name: str, cond) -> None:
    while not cond(s.peek()[name]):
        s.step(name)


def _race(fine: bool):
    base, start, pmd = _machine(fine)

    def make():
        m = copy.deepcopy(base)
        return m, [
            Thread("H", "hot-remove", 0, remove_memory(m, start, GIB)),
            Thread("P", "ptdump", 1, ptdump_show(m, take_lock=False)),
        ]

    return Scheduler(make), pmd


def test_the_walk_reads_the_parent_again_after_a_child_so_a_freed_parent_is_seen():
    """P walks T's first PTE table and is about to read T's next entry when H removes the
    block (freeing every PTE table and T): the next READ_ONCE(*pmdp) reads freed T. (Before,
    the walker read T whole and never came back to it.)"""
    s, pmd = _race(fine=False)
    _step_until(s, "P", lambda nxt: nxt.table == pmd and nxt.index == 1)
    assert s.peek()["P"].line == "pmd = READ_ONCE(*pmdp)"
    while not s.threads["H"].done:
        s.step("H")
    assert s.machine.events == []
    s.run()
    first = s.machine.events[0]
    assert first.kind == "use-after-free" and first.function == "walk_pmd"
    assert first.pfn == pmd and first.freed_by == "free_empty_pmd_table"


def test_each_table_entry_is_its_own_step_and_runs_of_leaves_or_gaps_one():
    for name in ("arm64-4k-48", "arm64-16k-47", "arm64-64k-42"):
        m = Machine(name, record=False)
        steps = list(ptdump_show(m))
        pt = m.pgtables
        for s in (s for s in steps if s.action == "read"):
            raw = int(pt.content[s.table][s.index])
            if s.count > 1:  # a run the walker only notes: none entries, or leaves
                level = pt.levels[pt.info[s.table].depth]
                leaf = level is pt.levels[-1]
                assert not raw or leaf or raw & 3 == 1
        assert list(ptdump_show(Machine(name, record=False, fine=True))) == steps


def test_a_garbage_table_entry_trips_bug_on_pmd_bad():
    m = Machine("arm64-4k-48", record=False, fine=True)
    pgd = m.pgtables.content[m.pgtables.pgd_pfn]
    i = int(next(i for i, v in enumerate(pgd) if int(v) & 3 == 3))
    pud = m.pgtables.next_table(int(pgd[i]))
    j = int(next(j for j, v in enumerate(m.pgtables.content[pud]) if int(v) & 3 == 3))
    m.pgtables.content[pud][j] = 0x4000_0000  # not none, not a section, no table bit
    list(ptdump_show(m, take_lock=False))
    [bug] = m.events
    assert bug.kind == "bug" and bug.message.startswith("BUG_ON(pud_bad(pud))")


@pytest.mark.parametrize(("policy", "locks"), [("naive", []), ("v3", ["mem_hotplug_lock:read"])])
def test_the_policy_decides_the_lock(policy, locks):
    m = Machine("arm64-64k-42", policy=policy, record=False, fine=True)
    assert [s.note for s in ptdump_show(m) if s.action == "lock"] == locks

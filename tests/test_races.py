"""The race scenarios, stepped by hand and searched by the explorer."""

from __future__ import annotations

import itertools

import pytest

from mmkit.pgtable.walk import translate
from mmkit.scenarios.races import ptdump_race, tlb_order, vmalloc_race
from mmkit.sched.explore import explore, replay

POLICIES = ["naive", "v3", "v6", "v7", "v5.7"]


def ptdump_then_remove(race):
    """P walks (v5.4's walk_*, entry by entry) until it is inside a table page that
    hot-remove will free (one not allocated at boot); H runs as far as it can; then both
    finish."""
    s = race.scheduler()
    pt = s.machine.pgtables

    def inside(step):
        return step.table in pt.info and not pt.info[step.table].boot

    while not (s.peek()["P"] is not None and inside(s.peek()["P"])):
        s.step("P")
    s.run(until=lambda sc: sc.threads["H"].done or sc.blocked("H"))
    s.run()
    return s


def test_without_get_online_mems_ptdump_reads_a_freed_table():
    s = ptdump_then_remove(ptdump_race("arm64-4k-48", "naive"))
    assert s.finished()
    uaf = [e for e in s.machine.events if e.kind == "use-after-free"]
    assert uaf and all(e.thread == "P" for e in uaf)
    assert uaf[0].freed_by.startswith("free_empty_")
    assert "KASAN: use-after-free" in uaf[0].report()


@pytest.mark.parametrize("policy", ["v3", "v6", "v7", "v5.7"])
def test_with_the_lock_hot_remove_waits_for_the_dump(policy):
    race = ptdump_race("arm64-4k-48", policy)
    s = race.scheduler()
    s.follow(["P"] * 3)  # P holds mem_hotplug_lock for read
    s.run(until=lambda sc: sc.blocked("H"))
    blocked_on = s.peek()["H"]
    assert blocked_on.action == "lock" and blocked_on.note == "mem_hotplug_lock:write"
    s.run()
    assert s.finished() and s.machine.events == []


def test_replaying_the_schedule_reproduces_the_events():
    race = ptdump_race("arm64-64k-48", "naive")
    first = ptdump_then_remove(race)
    again = race.scheduler()
    again.follow(first.schedule)
    assert first.machine.events
    assert [e.report() for e in again.machine.events] == [e.report() for e in first.machine.events]
    assert again.schedule_string() == first.schedule_string()


def test_explorer_finds_the_ptdump_race_with_one_preemption_not_zero():
    race = ptdump_race("arm64-64k-42", "naive")
    assert not race.explore(bound=0).found
    result = race.explore(bound=1)
    assert result.found and result.failing >= 1
    assert result.haystack > result.schedules  # far fewer schedules than interleavings
    again = replay(race.make, result.shortest)
    assert [e.report() for e in again.machine.events] == result.events
    order = result.shortest.split()
    assert sum(a != b for a, b in itertools.pairwise(order)) >= 1


@pytest.mark.parametrize("policy", ["v3", "v5.7"])
def test_explorer_proves_the_locked_dump_safe_at_bound_two(policy):
    result = ptdump_race("arm64-64k-42", policy).explore(bound=2)
    assert result.complete and not result.found and result.schedules >= 3


@pytest.mark.parametrize("config", ["arm64-4k-48", "arm64-16k-47", "arm64-64k-42"])
def test_v3_leaves_a_stale_translation_that_a_reader_uses(config):
    """V3 freed the memmap (a 2 MiB block on 4K, base pages on 16K/64K) before clearing its
    entry. On 4K no TLBI ever covers a block, but the freed PMD table's
    ``__flush_tlb_kernel_pgtable(addr)`` names the range's first address, the one ``R``
    cached; on 16K/64K ``remove_pte_table``'s flush after the loop covers it. So ``H`` run to
    the end leaves ``R`` nothing stale: it takes one preemption inside the window."""
    race = tlb_order("v3", config)
    assert not race.explore(bound=0).found
    result = race.explore(bound=1)
    assert result.found and result.events[0].startswith("stale-tlb")
    assert result.shortest.split()[-1] == "R"
    again = replay(race.make, result.shortest)
    assert [e.kind for e in again.machine.events] == ["stale-tlb"]
    assert again.machine.events[0].freed_by == "free_hotplug_page_range"


@pytest.mark.parametrize("policy", ["v6", "v7", "v5.7"])
def test_clear_tlbi_free_leaves_no_stale_translation(policy):
    result = tlb_order(policy).explore(bound=2)
    assert result.complete and not result.found and result.schedules >= 2


def test_the_locked_dump_is_safe_in_every_schedule_of_the_small_variant():
    """Exhaustive: no preemption bound at all (the state cache keeps it small)."""
    steps = ptdump_race("arm64-64k-42", "v3")
    result = steps.explore(bound=10_000)
    assert result.complete and not result.found and result.schedules >= 3


# --------------------------------------------------------------- patch 3/3: vmalloc
@pytest.mark.parametrize(("config", "level"), [("teach-4k-39", "pmd"), ("teach-64k-42", "pte")])
@pytest.mark.parametrize("policy", ["naive", "v3"])
def test_vmalloc_race_fails_where_empty_tables_are_freed(config, level, policy):
    """V3's init_mm lock does not help: V holds no lock between its pointer and its use.
    The shortest failure is either V using its pointer into the freed table, or V filling
    in an entry after H's scan and H freeing the table with it (both lose V's area)."""
    race = vmalloc_race(config, policy)
    assert not race.explore(bound=0).found  # either thread alone first is safe
    result = race.explore(bound=1)
    assert result.found
    stale = f"through a stale {level} table pointer"
    freed_full = f"lost-mapping: free_empty_{level}_table: freed {level} table"
    if policy == "v3":
        freed_full = f"lost-mapping: free_{level}_table: freed {level} table"
    assert stale in result.events[0] or result.events[0].startswith(freed_full)
    again = replay(race.make, result.shortest)
    assert [e.report() for e in again.machine.events] == result.events
    assert {"H", "V"} == set(result.shortest.split())


def test_vmalloc_race_consequences_play_out_as_kernel_facts_tells():
    """Kernel-facts 7.2, step by step: V takes its pointer into T, H frees T, V goes on.
    The freed PMD table is reused as V's own new PTE table, V writes a table descriptor
    into it through the stale pointer, and its area is not mapped: the first touch oopses."""
    race = vmalloc_race("teach-4k-39", "naive")
    s = race.scheduler()
    s.follow(["V"] * 3)  # vmalloc, its page, pmd_alloc: the PGD entry points at T
    assert s.history[-1].line.startswith("unlikely(pgd_none(*pgd))")
    s.run(until=lambda sc: sc.threads["H"].done)  # H removes the block and frees T
    assert s.machine.events == []
    s.run()
    assert s.finished()
    kinds = [e.kind for e in s.machine.events]
    assert kinds == ["use-after-free", "use-after-free", "use-after-free", "lost-mapping"]
    reads_then_write = [e.message.split(" of size")[0] for e in s.machine.events[:3]]
    assert reads_then_write == ["Read", "Read", "Write"]
    assert "reused as a pte table for vmalloc" in s.machine.events[2].message
    assert s.machine.events[0].freed_by == "free_empty_pmd_table"
    va = s.threads["V"].result
    assert translate(s.machine, va).fault_level is not None


@pytest.mark.parametrize("config", ["teach-4k-39", "teach-64k-42"])
@pytest.mark.parametrize("policy", ["v6", "v7", "v5.7"])
def test_vmalloc_race_cannot_fail_under_the_later_versions(config, policy):
    """V6 never frees vmemmap tables, V7 skips when the gap edges share a PGD entry, v5.7
    frees only tables inside [VMEMMAP_START, VMEMMAP_END)."""
    result = vmalloc_race(config, policy).explore(bound=2)
    assert result.complete and not result.found and result.schedules >= 2


@pytest.mark.parametrize("policy", POLICIES)
def test_on_the_real_4k_48_layout_the_race_is_latent(policy):
    race = vmalloc_race("arm64-4k-48", policy)
    result = race.explore(bound=2)
    assert result.complete and not result.found
    [note] = race.notes
    assert "bm_pud" in note and "bm_pmd" in note and "no policy frees it" in note


def test_where_no_table_is_shared_the_notes_say_so():
    race = vmalloc_race("arm64-4k-39", "naive")
    assert race.notes[0].startswith("No table page maps both vmalloc and vmemmap")
    assert not race.explore(bound=1).found


@pytest.mark.parametrize(
    "race",
    [
        ptdump_race("arm64-64k-42", "naive"),
        vmalloc_race("teach-64k-42", "naive"),
        tlb_order("v3", "arm64-64k-42"),
    ],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("bound", [1, 10_000])
def test_skipping_switches_before_local_steps_loses_no_outcome(race, bound):
    """Explored to the end (no schedule counts as failing), the reduced search reaches
    exactly as many distinct end states as the full one, with fewer schedules or as many."""

    def never(_):
        return False

    reduced = race.explore(bound=bound, failing=never)
    full = explore(race.make, bound=bound, failing=never)
    assert reduced.classes == full.classes >= 2
    assert reduced.schedules <= full.schedules


@pytest.mark.parametrize(
    ("scenario", "config", "policy", "fails"),
    [
        (ptdump_race, "arm64-64k-42", "naive", True),
        (vmalloc_race, "teach-64k-42", "naive", True),
        (vmalloc_race, "teach-64k-42", "v5.7", False),
        (tlb_order, "arm64-64k-42", "v3", True),
    ],
)
def test_entry_level_steps_give_the_same_verdict(scenario, config, policy, fails):
    """fine=True: every entry its own step, for stepping by hand; the verdict stands."""
    coarse = scenario(config=config, policy=policy)
    fine = scenario(config=config, policy=policy, fine=True)
    assert fine.name.endswith("fine=True)")
    c, f = coarse.explore(bound=1), fine.explore(bound=1)
    assert c.found is f.found is fails
    assert f.thread_steps["H"] > 2 * c.thread_steps["H"]
    if fails:
        assert f.events[0].split("\n")[0] == c.events[0].split("\n")[0]


def test_a_warning_fails_a_schedule():
    """WARN_ON is a failure condition too: vmalloc over a PTE someone else set warns."""
    from mmkit.machine import Machine
    from mmkit.mm.vmalloc import vmap_page_range
    from mmkit.sched import Thread
    from mmkit.sched.explore import explore as search

    def make():
        m = Machine("arm64-64k-42", vmalloc_areas=0, record=False)
        va = m.macros["VMALLOC_START"]
        return m, [
            Thread("A", "vmap one page", 0, vmap_page_range(m, va, [0x40000], 0x713)),
            Thread("B", "vmap the same page", 1, vmap_page_range(m, va, [0x40001], 0x713)),
        ]

    result = search(make, bound=0)
    assert result.found and result.events[0].startswith("WARNING: in vmap_pte_range")


@pytest.mark.parametrize(
    "config", ["teach-4k-48", "teach-16k-36", "teach-16k-47", "teach-16k-48", "teach-64k-48"]
)
@pytest.mark.parametrize("policy", POLICIES)
def test_every_teaching_layout_gives_each_policy_its_verdict(config, policy):
    """Bound 1 (one preemption) is enough to break naive and V3 everywhere."""
    result = vmalloc_race(config, policy).explore(bound=1)
    assert result.found is (policy in ("naive", "v3"))


def test_notes_explain_every_shared_level_and_what_pins_it():
    """teach-4k-48 shares a PUD and a PMD table: the PMD table (T) empties with the removed
    memmap; the PUD table does not, because the kernel image's PMD table hangs off it too."""
    pud, pmd = vmalloc_race("teach-4k-48", "naive").notes
    assert pud.startswith("The pud table page") and "no policy frees it" in pud
    assert "vmalloc (pmd table pfn" in pud and "boot)" in pud
    assert pmd.startswith("The pmd table page") and "Nothing else pins it" in pmd


def test_vmalloc_of_nothing_warns_and_returns_null():
    """v5.4 __vmalloc_node_range(): ``if (!size ...) goto fail``: warn_alloc, NULL."""
    from mmkit.machine import Machine
    from mmkit.mm.vmalloc import vmalloc

    m = Machine("arm64-64k-42", vmalloc_areas=0)
    before = m.digest(log=False)
    op = vmalloc(m, 0)
    assert m.run(op) >= 1
    assert [(e.kind, e.message) for e in m.events] == [
        ("warn", "vmalloc: allocation failure: 0 bytes")
    ]
    assert m.digest(log=False) == before


@pytest.mark.parametrize("policy", ["naive", "v3"])
def test_an_entry_written_after_the_emptiness_scan_is_freed_with_the_table(policy):
    """The second way to lose the area (found by the random-schedule test): V's unlocked
    set_pte_at lands in T after H's scan found T empty and before H frees it. No
    use-after-free: the loss is reported where it happens, when H frees T with the entry."""
    race = vmalloc_race("teach-64k-42", policy)
    s = race.scheduler()
    s.run(until=lambda sc: bool(sc.history) and sc.history[-1].line.startswith("scan all"))
    assert s.history[-1].level == "pte"  # H scanned T: all none
    s.follow(["V"] * 4)  # vmalloc, its page, the PGD entry (T is still there), set_pte_at
    assert s.history[-1].line.startswith("set_pte_at") and s.machine.events == []
    s.run(until=lambda sc: sc.threads["H"].done)
    first = s.machine.events[0]
    assert (first.kind, first.thread) == ("lost-mapping", "H")
    assert "with 1 entry set since its scan" in first.message
    s.run()
    assert [e.kind for e in s.machine.events] == ["lost-mapping", "lost-mapping"]
    assert not translate(s.machine, s.threads["V"].result).ok

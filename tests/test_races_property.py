"""Random schedules, any number of preemptions (hypothesis), beyond the explorer's bound."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.pgtable.walk import translate
from mmkit.scenarios.races import Race, ptdump_race, tlb_order, vmalloc_race

TEACHING = ["teach-4k-39", "teach-64k-42"]
#: run lengths: short runs stop a thread at any step, long ones let the other finish
RUNS = (1, 2, 3, 4, 8, 16, 64)


@cache
def race(kind: str, config: str, policy: str) -> Race:
    scenarios = {"vmalloc": vmalloc_race, "ptdump": ptdump_race, "tlb": tlb_order}
    return scenarios[kind](config=config, policy=policy)


def v_done_before_the_free(s) -> bool:
    """V finished (its touch succeeded) before H freed the table under it."""
    frees = [
        i for i, step in enumerate(s.history) if step.action == "free" and step.note == "table"
    ]
    return bool(frees) and all(step.thread != "V" for step in s.history[frees[-1] :])


def run_random(r: Race, data: st.DataObject):
    """A random schedule as a series of runs (a thread, then how far it goes before a
    switch): long runs reach the narrow windows that coin flips per step would miss."""
    s = r.scheduler()
    while ready := s.runnable():
        name = data.draw(st.sampled_from(ready), label="thread")
        for _ in range(data.draw(st.sampled_from(RUNS), label="run")):
            if name not in s.runnable():
                break
            s.step(name)
    assert s.finished()  # these scenarios never deadlock
    return s


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(
    config=st.sampled_from(TEACHING),
    policy=st.sampled_from(["v6", "v7", "v5.7"]),
    data=st.data(),
)
def test_no_schedule_breaks_vmalloc_under_the_later_versions(config, policy, data):
    s = run_random(race("vmalloc", config, policy), data)
    assert s.machine.events == []
    va = s.threads["V"].result
    walk = translate(s.machine, va)
    assert walk.ok and walk.pa >> s.machine.desc.page_shift == s.machine.vmalloc_backing[va][0]


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(config=st.sampled_from(TEACHING), policy=st.sampled_from(["naive", "v3"]), data=st.data())
def test_under_naive_and_v3_a_schedule_either_works_or_loses_the_mapping(config, policy, data):
    """Either V's area ends up mapped and nothing is reported, or it is lost and the log
    says how: V went through a stale pointer into the freed table, or (found by this test)
    V wrote its entry after H's scan found the table empty (even after H unhooked it), and
    H freed it with the entry in it. Never a silent loss, never a report with a working
    map. The soak profile (``--soak``) runs thousands of schedules here."""
    s = run_random(race("vmalloc", config, policy), data)
    m = s.machine
    va = s.threads["V"].result
    mapped = translate(m, va).ok
    kinds = [e.kind for e in m.events]
    if mapped:
        assert kinds == []
    else:
        assert set(kinds) <= {"use-after-free", "lost-mapping"} and "lost-mapping" in kinds
        # V's own touch oopses, unless V touched its area before H freed the table
        assert v_done_before_the_free(s) or any(
            e.kind == "lost-mapping" and e.thread == "V" for e in m.events
        )
        # and the log explains the loss: V used its pointer into the freed table, or H freed
        # the table with V's entry in it (written after H's scan, even after the unhooking)
        assert any(
            e.kind == "use-after-free" and e.thread == "V" and "through a stale" in e.message
            for e in m.events
        ) or any(
            e.kind == "lost-mapping" and e.thread == "H" and "set since its scan" in e.message
            for e in m.events
        )


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(policy=st.sampled_from(["v3", "v6", "v7", "v5.7"]), data=st.data())
def test_no_schedule_lets_the_locked_ptdump_read_a_freed_table(policy, data):
    s = run_random(race("ptdump", "arm64-64k-42", policy), data)
    assert s.machine.events == []


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(
    policy=st.sampled_from(["naive", "v6", "v7", "v5.7"]),
    config=st.sampled_from(["arm64-4k-48", "arm64-64k-42"]),
    data=st.data(),
)
def test_clear_tlbi_free_never_leaves_a_stale_translation(policy, config, data):
    """The reader may run before, during or after the teardown: it reads its struct page,
    or it faults; it never reaches a freed page through its TLB."""
    s = run_random(race("tlb", config, policy), data)
    assert s.machine.events == []

"""Patch 2/3's race, driven by hand through the scheduler."""

from __future__ import annotations

import itertools

import pytest

from mmkit.scenarios.races import ptdump_race, tlb_order
from mmkit.sched.explore import replay


def ptdump_then_remove(race, ptdump_steps=3):
    """P reads the PGD and its first tables; H runs as far as it can; then both finish."""
    s = race.scheduler()
    s.follow(["P"] * ptdump_steps)
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
    first = ptdump_then_remove(race, 2)
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


def test_v3_leaves_a_stale_translation_that_a_reader_uses():
    race = tlb_order("v3")
    result = race.explore(bound=0)  # even H running to the end, then R, fails
    assert result.found and result.events[0].startswith("stale-tlb")
    again = replay(race.make, result.shortest)
    assert [e.kind for e in again.machine.events] == ["stale-tlb"]


@pytest.mark.parametrize("policy", ["v6", "v7", "v5.7"])
def test_clear_tlbi_free_leaves_no_stale_translation(policy):
    result = tlb_order(policy).explore(bound=2)
    assert result.complete and not result.found and result.schedules >= 2

"""``Machine.digest()`` covers everything an operation can change, so "nothing changed" is
one comparison: each part below changes it, and every attribute a machine carries is either
read by the digest or left out on purpose (``Machine.DIGEST_ATTRIBUTES``)."""

from __future__ import annotations

import copy

import pytest

from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.mm.vmalloc import vmalloc
from mmkit.scenarios.races import ptdump_race

#: what the digest reads in its own way, or leaves out (see Machine.DIGEST_ATTRIBUTES)
OWN_WAY = {"pgtables", "physmem", "memblock", "sections", "blocks", "sysfs", "tlbs"}
OWN_WAY |= {"events", "history", "stats", "locks", "_lock_holders", "hotplugged"}
OWN_WAY |= {"vmalloc_ranges", "resources"}
LEFT_OUT = {"desc", "policy", "macros", "fine", "record", "current_thread", "lock_table"}

BASE = Machine("arm64-4k-48", vmalloc_areas=1)
KVA = BASE.lm_va(0x4000_0000)


def changes(change) -> bool:
    m = copy.deepcopy(BASE)
    before = m.digest()
    change(m)
    return m.digest() != before


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.record_event("warn", "test", "a warning"),
        lambda m: m.history.append(Step("call", "test", "x")),
        lambda m: m.stats.__setitem__("vmalle1is", 1),
        lambda m: m.access(KVA, cpu=1),  # fills CPU 1's TLB and walk cache, and a step
        lambda m: m._acquire("mem_hotplug_lock", "write", "H"),
        lambda m: m._lock_holders.setdefault("x", []).append("H"),
        lambda m: m.hot_add(0x1_0000_0000, 1 << 30),
        lambda m: m.run(vmalloc(m, 4 * m.page_size)),
        lambda m: m.add_memory(0, 0x1_0000_0000, 1 << 30),
        lambda m: m.blocks.pop(1),
    ],
    ids=[
        "event",
        "history",
        "stats",
        "tlb",
        "lock",
        "lock-holder",
        "hot_add",
        "vmalloc",
        "add_memory",
        "block",
    ],
)
def test_each_part_changes_the_digest(change):
    assert changes(change)


@pytest.mark.parametrize("name", Machine.DIGEST_ATTRIBUTES)
def test_each_attribute_read_by_value_changes_the_digest(name):
    def change(m):
        value = getattr(m, name, None)
        setattr(m, name, ("changed", value))

    assert changes(change)


def test_every_attribute_is_read_or_left_out_on_purpose():
    m = copy.deepcopy(BASE)
    m.add_memory(0, 0x1_0000_0000, 1 << 30)
    m.access(KVA)
    s = ptdump_race("arm64-64k-42", "naive").scheduler()
    s.run()
    seen = set(m.__dict__) | set(s.machine.__dict__)
    covered = set(Machine.DIGEST_ATTRIBUTES) | OWN_WAY | LEFT_OUT
    assert seen - covered == set(), "add the new attribute to Machine.DIGEST_ATTRIBUTES"


def test_the_log_is_left_out_only_when_asked():
    m = copy.deepcopy(BASE)
    before, state = m.digest(), m.digest(log=False)
    m.record_event("warn", "test", "a warning")
    m.history.append(Step("call", "test", "x"))
    assert m.digest() != before and m.digest(log=False) == state


def test_the_digest_is_a_state_not_the_order_steps_were_taken_in():
    """Two schedules that take the same steps, commuting, reach the same digest (what the
    race explorer relies on to merge them)."""
    race = ptdump_race("arm64-64k-42", "v5.7")
    a, b = race.scheduler(), race.scheduler()
    a.follow(["H", "P"])
    b.follow(["P", "H"])
    assert a.machine.digest() == b.machine.digest()

"""Deadlocks with the real kernel locks, as the scheduler reports them.

The kernel's order is ``lock_device_hotplug()`` then ``mem_hotplug_begin()``
(``device_hotplug_lock`` then ``mem_hotplug_lock`` for write; ``remove_memory()`` takes them
so). A thread taking them the other way round deadlocks against it after one preemption.
The expected messages below are written out by hand from the scheduler's documented format.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.mm.hotplug import remove_memory
from mmkit.scenarios.races import _far_block
from mmkit.sched import Scheduler, Thread
from mmkit.sched.explore import explore, replay

CONFIG = "arm64-64k-42"
DEVICE, MEM = "device_hotplug_lock", "mem_hotplug_lock"
#: the mode each lock is taken in by the hotplug paths
MODE = {DEVICE: "exclusive", MEM: "write"}


def fresh_machine(**kw: object) -> Machine:
    # remove_memory()'s two lock steps are adjacent in the v5.4 order (v5.7 moved the block
    # device removal between them); pin it so the hand-written schedules below hold
    return Machine(CONFIG, vmalloc_areas=0, record=False, kernel="v5.4", **kw)


def removable_machine() -> tuple[Machine, int, int]:
    """A machine with one hot-added, offline block that remove_memory() can take away."""
    m = fresh_machine(online_type="offline")
    start, size = _far_block(m), m.desc.memory_block_size
    m.add_memory(0, start, size)
    return m, start, size


def take_both(m: Machine, fn: str, first: str, second: str) -> Iterator[Step]:
    """Take ``first`` then ``second`` (each in its hotplug mode), release in reverse."""
    yield from m.lock(fn, first, MODE[first])
    yield from m.lock(fn, second, MODE[second])
    yield from m.unlock(fn, second)
    yield from m.unlock(fn, first)


def get_online_mems(m: Machine, fn: str) -> Iterator[Step]:
    """A reader: ``get_online_mems()``, one read of the memmap, ``put_online_mems()``."""
    yield from m.lock(fn, MEM, "read")
    yield Step("read", fn, "pfn_to_online_page(pfn)")
    yield from m.unlock(fn, MEM)


def two_threads_abba():
    m = fresh_machine()
    return m, [
        Thread("A", "device then mem (documented)", 0, take_both(m, "a", DEVICE, MEM)),
        Thread("B", "mem then device (inverted)", 1, take_both(m, "b", MEM, DEVICE)),
    ]


def two_threads_documented():
    m = fresh_machine()
    return m, [
        Thread("H", "device then mem", 0, take_both(m, "h", DEVICE, MEM)),
        Thread("W", "device then mem", 1, take_both(m, "w", DEVICE, MEM)),
    ]


def remove_vs(second_first: str):
    """``H`` = remove_memory(); ``W`` takes both locks, ``second_first`` first."""

    def make():
        m, start, size = removable_machine()
        other = DEVICE if second_first == MEM else MEM
        return m, [
            Thread("H", "remove_memory()", 0, remove_memory(m, start, size)),
            Thread("W", f"{second_first} first", 1, take_both(m, "w", second_first, other)),
        ]

    return make


remove_vs_inverted = remove_vs(MEM)
remove_vs_documented = remove_vs(DEVICE)


def deadlock_message(waits: str) -> str:
    return f"deadlock: every unfinished thread is blocked on a lock ({waits})"


ABBA_CASES = [
    pytest.param(
        two_threads_abba,
        ["A", "B"],
        "A waits for mem_hotplug_lock, B waits for device_hotplug_lock",
        {"A": {DEVICE: "exclusive"}, "B": {MEM: "write"}},
        id="two-threads",
    ),
    pytest.param(
        remove_vs_inverted,
        ["H", "W"],
        "H waits for mem_hotplug_lock, W waits for device_hotplug_lock",
        {"H": {DEVICE: "exclusive"}, "W": {MEM: "write"}},
        id="remove_memory",
    ),
]


def deadlocked(make, schedule: list[str]) -> Scheduler:
    s = Scheduler(make)
    s.step(schedule[0])
    assert not s.deadlock and len(s.runnable()) == 2  # one lock taken: nobody waits yet
    s.step(schedule[1])
    return s


@pytest.mark.parametrize(("make", "schedule", "waits", "held"), ABBA_CASES)
def test_abba_interleaving_is_reported_as_a_deadlock(make, schedule, waits, held):
    s = deadlocked(make, schedule)
    assert s.deadlock and s.runnable() == [] and not s.finished()
    assert {n: s.locks.held_by(n) for n in held} == held
    bugs = [(e.kind, e.function, e.message) for e in s.machine.events]
    assert bugs == [("bug", "scheduler", deadlock_message(waits))]
    # run() has nothing it may run: the state stays as it is
    s.run()
    assert s.schedule == schedule and len(s.machine.events) == 1


@pytest.mark.parametrize(("make", "schedule", "waits", "held"), ABBA_CASES)
def test_stepping_a_blocked_thread_is_refused_and_changes_nothing(make, schedule, waits, held):
    s = deadlocked(make, schedule)

    def state():
        return (
            list(s.schedule),
            s.machine.digest(),
            s.locks.snapshot(),
            dict(s.machine.locks),
            [e.report() for e in s.machine.events],
            {n: t.pending for n, t in s.threads.items()},
        )

    before = state()
    first, second = schedule
    for name, lock in ((first, MEM), (second, DEVICE)):
        with pytest.raises(InvalidArgument, match=f"^thread {name} is blocked on {lock};"):
            s.step(name)
        assert state() == before


def test_explorer_needs_one_preemption_to_find_the_deadlock_and_replays_it():
    assert not explore(remove_vs_inverted, bound=0).found  # each thread alone is fine
    result = explore(remove_vs_inverted, bound=1)
    assert result.found and result.complete and result.failing >= 1
    # the two first lock steps, either way round, and nothing else
    assert result.shortest in ("H W", "W H")
    again = replay(remove_vs_inverted, result.shortest)
    assert again.deadlock
    assert [e.report() for e in again.machine.events] == result.events
    waits = "H waits for mem_hotplug_lock, W waits for device_hotplug_lock"
    assert result.events == ["kernel BUG in scheduler: " + deadlock_message(waits)]


@pytest.mark.parametrize(
    "make", [two_threads_documented, remove_vs_documented], ids=["two-threads", "remove_memory"]
)
def test_the_documented_lock_order_never_deadlocks(make):
    result = explore(make, bound=2)
    assert result.complete and not result.found and result.failing == 0
    assert result.thread_steps["W"] == 4 and result.schedules >= 2
    # either thread first: the other waits for device_hotplug_lock, then goes on
    for first, other in (("H", "W"), ("W", "H")):
        s = Scheduler(make)
        s.step(first)
        assert s.blocked(other) and s.peek()[other].note == "device_hotplug_lock:exclusive"
        s.run()
        assert s.finished() and not s.deadlock and s.machine.events == []


def test_readers_share_mem_hotplug_lock_and_the_writer_waits_for_both():
    def make():
        m, start, size = removable_machine()
        return m, [
            Thread("H", "remove_memory()", 0, remove_memory(m, start, size)),
            Thread("A", "reader", 1, get_online_mems(m, "reader_a")),
            Thread("B", "reader", 2, get_online_mems(m, "reader_b")),
        ]

    s = Scheduler(make)
    s.follow(["A", "B"])
    assert s.locks.holders == {MEM: {"A": "read", "B": "read"}}
    s.step("H")  # lock_device_hotplug()
    assert s.peek()["H"].note == "mem_hotplug_lock:write"
    assert s.blocked("H") and s.runnable() == ["A", "B"]
    s.follow(["A", "A"])  # A reads and puts its reference
    assert s.threads["A"].done and s.blocked("H") and s.runnable() == ["B"]
    s.follow(["B", "B"])
    assert not s.blocked("H") and s.runnable() == ["H"]
    s.run()
    assert s.finished() and not s.deadlock and s.machine.events == []
    assert s.schedule[:7] == ["A", "B", "H", "A", "A", "B", "B"]
    assert set(s.schedule[7:]) == {"H"}
    assert s.locks.holders == {}


def test_a_writer_holding_mem_hotplug_lock_keeps_readers_out():
    def make():
        m, start, size = removable_machine()
        return m, [
            Thread("H", "remove_memory()", 0, remove_memory(m, start, size)),
            Thread("A", "reader", 1, get_online_mems(m, "reader_a")),
        ]

    s = Scheduler(make)
    s.follow(["H", "H"])  # device_hotplug_lock, then mem_hotplug_lock for write
    assert s.blocked("A") and s.runnable() == ["H"]
    s.run(until=lambda sc: not sc.blocked("A"))
    assert s.peek()["H"].action == "unlock" and s.peek()["H"].note == DEVICE
    assert MEM not in s.locks.holders
    s.run()
    assert s.finished() and s.schedule[-3:] == ["A", "A", "A"]


def take_twice(m: Machine, name: str, mode: str) -> Iterator[Step]:
    yield from m.lock("take_twice", name, mode)
    yield from m.lock("take_twice", name, mode)
    yield from m.unlock("take_twice", name)


def twice(name: str, mode: str):
    def make():
        m = fresh_machine()
        return m, [Thread("X", f"{name} twice", 0, take_twice(m, name, mode))]

    return make


def test_taking_mem_hotplug_lock_for_read_twice_is_a_self_deadlock():
    # percpu_down_read() is not recursive: a writer queued in between blocks the second read
    s = Scheduler(twice(MEM, "read"))
    s.run()
    bugs = [(e.kind, e.function, e.message) for e in s.machine.events]
    msg = "X takes mem_hotplug_lock again while holding it: self-deadlock"
    assert bugs == [("bug", "take_twice", msg)]


@pytest.mark.parametrize(("name", "mode"), [(DEVICE, "exclusive"), (MEM, "write")])
def test_taking_a_mutex_or_write_lock_twice_is_a_self_deadlock(name, mode):
    """Reported as the second request becomes the thread's next step, then the deadlock."""
    s = Scheduler(twice(name, mode))
    assert s.machine.events == []
    s.step("X")  # the lock is taken; the next step asks for it again
    assert s.deadlock and s.schedule == ["X"] and s.locks.held_by("X") == {name: mode}
    msgs = [e.message for e in s.machine.events if e.kind == "bug"]
    assert msgs == [
        f"X takes {name} again while holding it: self-deadlock",
        deadlock_message(f"X waits for {name}"),
    ]

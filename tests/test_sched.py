"""The scheduler on toy threads: peek, blocking, deadlock, undo and replay."""

from __future__ import annotations

import pytest

from mmkit.errors import InvalidArgument
from mmkit.events import KernelEvent, Step
from mmkit.sched import LockTable, Scheduler, Thread


class ToyMachine:
    def __init__(self):
        self.events: list[KernelEvent] = []
        self.log: list[str] = []
        self.current_thread = ""

    def record_event(self, kind, fn, message, **kw):
        self.events.append(KernelEvent(kind, fn, message, **kw))


def worker(m, name, locks, work=1):
    for lock in locks:
        yield Step("lock", name, f"lock({lock})", note=f"{lock}:exclusive")
    for i in range(work):
        yield Step("write", name, f"work {i}")
        m.log.append(f"{name}{i}")
    for lock in reversed(locks):
        yield Step("unlock", name, f"unlock({lock})", note=lock)


def factory(a_locks=("X",), b_locks=("X",)):
    def make():
        m = ToyMachine()
        return m, [
            Thread("A", "a", 0, worker(m, "A", a_locks, 2)),
            Thread("B", "b", 1, worker(m, "B", b_locks, 1)),
        ]

    return make


def test_peek_shows_the_next_step_before_it_is_taken():
    s = Scheduler(factory())
    assert s.peek()["A"].line == "lock(X)" and s.machine.log == []
    s.step("A")
    s.step("A")
    assert s.peek()["A"].line == "work 1"
    assert s.machine.log == ["A0"]  # the write ran when its step was taken


def test_a_blocked_thread_cannot_step_until_the_lock_is_free():
    s = Scheduler(factory())
    s.step("A")  # A holds X
    assert s.runnable() == ["A"] and s.blocked("B")
    with pytest.raises(InvalidArgument, match="blocked"):
        s.step("B")
    s.follow(["A", "A", "A"])  # work, work, unlock
    assert s.runnable() == ["B"]
    s.run()
    assert s.finished() and s.machine.log == ["A0", "A1", "B0"]
    assert s.schedule_string() == "A A A A B B B"


def test_deadlock_is_detected_and_reported():
    s = Scheduler(factory(("X", "Y"), ("Y", "X")))
    s.follow(["A", "B"])
    assert s.deadlock and s.runnable() == []
    assert "deadlock" in s.machine.events[-1].message


def test_undo_and_replay_are_exact():
    s = Scheduler(factory())
    s.follow(["A", "A", "A", "A"])
    log = list(s.machine.log)
    s.undo()
    assert s.schedule == ["A", "A", "A"] and s.machine.log == log[:2]
    s.replay(["A", "A", "A", "A", "B", "B", "B"])
    assert s.finished() and s.machine.log == ["A0", "A1", "B0"]


def test_read_locks_share_and_write_locks_exclude():
    t = LockTable()
    t.acquire("mem_hotplug_lock", "read", "P")
    t.acquire("mem_hotplug_lock", "read", "Q")
    assert not t.available("mem_hotplug_lock", "write", "H")
    t.release("mem_hotplug_lock", "P")
    t.release("mem_hotplug_lock", "Q")
    t.acquire("mem_hotplug_lock", "write", "H")
    assert not t.available("mem_hotplug_lock", "read", "P")
    with pytest.raises(InvalidArgument):
        t.release("mem_hotplug_lock", "P")


def test_status_tells_a_stepping_view_who_can_run_and_why_not():
    s = Scheduler(factory())
    s.step("A")  # A holds X; B asks for it next
    a, b = s.status()
    assert (a.name, a.state, a.holds, a.steps, a.waits_for) == (
        "A",
        "runnable",
        {"X": "exclusive"},
        1,
        None,
    )
    assert a.next == "A: work 0 [write]"
    assert (b.state, b.waits_for, b.holds, b.next) == ("blocked", "X", {}, "B: lock(X) [lock]")
    s.run()
    assert [(t.state, t.next, t.holds) for t in s.status()] == [("done", None, {})] * 2


def test_take_gives_one_row_per_step_and_runs_on_when_asked():
    s = Scheduler(factory(("X", "Y"), ("Y", "X")))
    rows = list(s.take(["A", "B"]))  # ABBA: both now wait for each other
    assert [(r.n, r.thread, r.cpu, r.step.line) for r in rows] == [
        (1, "A", 0, "lock(X)"),
        (2, "B", 1, "lock(Y)"),
    ]
    assert rows[0].events == () and [e.kind for e in rows[1].events] == ["bug"]
    assert list(s.take([], run_on=True)) == []  # nothing can run: run_on takes nothing


def test_take_stops_at_a_refused_name_after_the_rows_before_it():
    s = Scheduler(factory())
    taken = s.take(["A", "B", "A"])
    assert next(taken).thread == "A"
    with pytest.raises(InvalidArgument, match="blocked"):
        next(taken)  # B waits for X, which A holds
    assert s.schedule == ["A"]
    rows = list(Scheduler(factory()).take([], run_on=True))
    assert "".join(r.thread for r in rows) == "AAAABBB"


def test_a_kernel_event_names_the_scheduler_step_that_recorded_it() -> None:
    from mmkit.scenarios.races import ptdump_race
    from mmkit.sched.explore import replay

    race = ptdump_race("arm64-4k-48", "naive")
    schedule = race.explore(bound=2).shortest
    s = replay(race.make, schedule)
    assert s.machine.history is s.history
    # ground truth: the rows of a fresh run say which step recorded which event
    rows = list(race.scheduler().take(schedule.split()))
    truth = [row.n - 1 for row in rows for _ in row.events]
    assert truth and [e.step for e in s.machine.events] == truth


@pytest.mark.parametrize(
    ("locks", "names"),
    [
        ((("X",), ("X",)), ["A", "A", "A", "A", "B", "B", "B"]),
        ((("X", "Y"), ("Y", "X")), ["A", "B"]),  # the last step blocks both: a deadlock
        ((("X",), ()), ["A", "B", "A", "A", "A"]),  # B takes no lock
    ],
)
def test_retaking_a_prefix_is_taking_it_step_by_step(locks, names):
    one, again = Scheduler(factory(*locks)), Scheduler(factory(*locks))
    for name in names:
        one.step(name)
    again._retake(names)
    assert one.schedule == again.schedule and one.machine.log == again.machine.log
    assert one.locks.snapshot() == again.locks.snapshot()
    assert [e.message for e in one.machine.events] == [e.message for e in again.machine.events]
    assert [len(t.steps) for t in one.threads.values()] == [
        len(t.steps) for t in again.threads.values()
    ]
    assert again.deadlock is (locks == (("X", "Y"), ("Y", "X")))

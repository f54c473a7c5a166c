"""The swimlane against the scheduler's own records: history, schedule, locks, events."""

from __future__ import annotations

import functools

import pytest

from mmkit.events import ACTIONS
from mmkit.scenarios.races import ptdump_race, tlb_order, vmalloc_race
from mmkit.sched.explore import replay
from mmkit.viz.timeline import event_steps, lock_holds, timeline_figure


@functools.cache
def _failing(kind: str):
    race = {
        "ptdump": lambda: ptdump_race("arm64-4k-48", "naive"),
        "tlb": lambda: tlb_order("v3"),
        "vmalloc": lambda: vmalloc_race("teach-4k-39", "naive"),
    }[kind]()
    result = race.explore(bound=2)
    assert result.found
    return race, result.shortest


def _markers(fig):
    return [t for t in fig.data if t.name in ACTIONS]


def _trace(fig, name):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


def _truth_event_steps(race, schedule: str) -> list[int]:
    """Ground truth: step numbers (1-based) whose taking recorded a kernel event."""
    rows = list(race.scheduler().take(schedule.split()))
    return [row.n for row in rows for _ in row.events]


def test_one_lane_per_thread_and_one_marker_per_step():
    race, shortest = _failing("ptdump")
    s = replay(race.make, shortest)
    fig = timeline_figure(s)
    names = list(s.threads)
    assert list(fig.layout.yaxis.tickvals) == list(range(len(names)))
    assert [t.replace("<b>", "").replace("</b>", "") for t in fig.layout.yaxis.ticktext] == names
    lanes = [a for a in fig.layout.annotations if a.name == "lane"]
    assert [a.text.split("</b>")[0].removeprefix("<b>") for a in lanes] == names
    assert all(s.threads[n].label in a.text for n, a in zip(names, lanes, strict=True))
    markers = _markers(fig)
    assert sum(len(t.x) for t in markers) == len(s.history)
    for t in markers:
        for x, y in zip(t.x, t.y, strict=True):
            step = s.history[x - 1]
            assert step.action == t.name
            assert names[y] == s.schedule[x - 1] == step.thread
    # hover carries Step.describe()
    read = _trace(fig, "read")
    assert s.history[read.x[0] - 1].describe()[:40] in read.text[0].replace("<br>", " ")


@pytest.mark.parametrize("kind", ["ptdump", "tlb", "vmalloc"])
def test_failure_marked_on_the_step_that_recorded_it(kind):
    race, shortest = _failing(kind)
    s = replay(race.make, shortest)
    truth = _truth_event_steps(race, shortest)
    assert truth and len(s.machine.events) == len(truth)
    # the scheduler's history is the machine's: each event names the step that recorded it
    assert [e.step + 1 for e in s.machine.events] == truth
    assert [k + 1 for _, k in event_steps(s)] == truth
    fig = timeline_figure(s)
    ev = _trace(fig, "kernel event")
    assert list(ev.x) == truth
    assert list(ev.y) == [list(s.threads).index(s.schedule[x - 1]) for x in truth]
    assert ev.marker.color == "#E41A1C"
    first = s.machine.events[0]
    notes = [a for a in fig.layout.annotations if a.name == "event"]
    assert f"{first.kind} in {first.function}" in notes[0].text
    assert notes[0].x == truth[0]
    assert f"{first.kind} in {first.function}" in fig.layout.title.text


def test_mid_run_before_and_after_the_failing_step():
    race, shortest = _failing("ptdump")
    steps = shortest.split()
    at = _truth_event_steps(race, shortest)[0]
    s = race.scheduler()
    s.follow(steps[: at - 1])
    fig = timeline_figure(s)
    assert list(_trace(fig, "kernel event").x) == []
    assert sum(len(t.x) for t in _markers(fig)) == at - 1
    assert "stepping" in fig.layout.title.text and "no kernel event" in fig.layout.title.text
    # the next step of each unfinished thread is shown past "now"
    (now,) = [sh for sh in fig.layout.shapes if sh.name == "now"]
    assert now.x0 == at - 0.5
    nxt = _trace(fig, "next step")
    assert sorted(nxt.y) == sorted(
        list(s.threads).index(st.name) for st in s.status() if st.state == "runnable"
    )
    s.step(steps[at - 1])
    fig = timeline_figure(s)
    assert list(_trace(fig, "kernel event").x) == [at]


def test_lock_bars_run_from_lock_to_unlock():
    race = ptdump_race("arm64-4k-48", "v5.7")
    s = race.scheduler()
    s.run()
    assert s.finished()
    fig = timeline_figure(s)
    bars = [t for t in fig.data if t.type == "bar"]
    drawn = sorted(
        (t.name.split(" (")[0], b, b + w) for t in bars for b, w in zip(t.base, t.x, strict=True)
    )
    # ground truth from the steps: each lock step to the same thread's unlock of that lock
    truth = []
    for k, step in enumerate(s.history):
        if step.action != "lock":
            continue
        lock = step.note.partition(":")[0]
        end = next(
            j
            for j in range(k + 1, len(s.history))
            if s.history[j].action == "unlock"
            and s.history[j].note == lock
            and s.schedule[j] == s.schedule[k]
        )
        truth.append((lock, k + 1, end + 1))
    assert drawn == sorted(truth)
    assert len(truth) >= 3  # H: device_hotplug_lock, mem_hotplug_lock; P: mem_hotplug_lock
    # ptdump's get_online_mems() is a shared hold, drawn hatched; H's write lock is solid
    shared = _trace(fig, "mem_hotplug_lock (read: shared)")
    excl = _trace(fig, "mem_hotplug_lock (exclusive)")
    assert shared.marker.pattern.shape == "/" and excl.marker.pattern.shape == ""
    assert shared.y[0] > list(s.threads).index("P") and excl.y[0] > list(s.threads).index("H")
    assert "finished" in fig.layout.title.text


def test_open_hold_and_blocked_thread():
    race = ptdump_race("arm64-4k-48", "v5.7")
    s = race.scheduler()
    s.follow(["P", "H"])  # P holds mem_hotplug_lock for read; H takes device_hotplug_lock
    status = {st.name: st for st in s.status()}
    assert status["H"].state == "blocked" and status["H"].waits_for == "mem_hotplug_lock"
    fig = timeline_figure(s)
    blocked = _trace(fig, "blocked")
    assert list(blocked.y) == [list(s.threads).index("H")]
    assert list(blocked.x) == [len(s.history) + 1]
    assert "mem_hotplug_lock" in blocked.text[0] and "held by P" in blocked.customdata[0]
    holds = lock_holds(s)
    assert {(h.thread, h.lock, h.end) for h in holds} == {
        ("P", "mem_hotplug_lock", None),
        ("H", "device_hotplug_lock", None),
    }
    # an open bar runs to "now"
    shared = _trace(fig, "mem_hotplug_lock (read: shared)")
    assert shared.base[0] + shared.x[0] == len(s.history) + 0.5


def test_title_and_determinism():
    race, shortest = _failing("vmalloc")
    s = replay(race.make, shortest)
    fig = timeline_figure(s)
    text = fig.layout.title.text
    assert "teach-4k-39" in text and "teaching layout" in text and "policy naive" in text
    assert s.machine.kernel in text
    assert fig.to_dict() == timeline_figure(s).to_dict()
    assert fig.to_dict() == timeline_figure(replay(race.make, shortest)).to_dict()
    assert timeline_figure(s, title="vmalloc race").layout.title.text.startswith(
        "vmalloc race: teach-4k-39"
    )


def test_event_recorded_outside_the_scheduler_is_placed_on_its_threads_last_step():
    race, shortest = _failing("ptdump")
    s = replay(race.make, shortest)
    s.machine.history = list(s.history)  # no longer the scheduler's own list
    s.machine.record_event("warn", "by_hand", "recorded outside any step", thread="H")
    # the event's step cannot be trusted: the guess is H's last step
    last_h = max(k for k, n in enumerate(s.schedule) if n == "H")
    assert event_steps(s)[-1][1] == last_h
    assert timeline_figure(s).to_dict() == timeline_figure(s).to_dict()

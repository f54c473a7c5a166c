"""The explorer on a toy race with a known answer: a lost update needs one preemption."""

from __future__ import annotations

import pytest

from mmkit.events import KernelEvent, Step
from mmkit.sched import Thread
from mmkit.sched.explore import explore, haystack, replay


class Counter:
    def __init__(self):
        self.x = 0
        self.events: list[KernelEvent] = []
        self.current_thread = ""

    def digest(self):
        return (self.x,)

    def record_event(self, kind, fn, message, **kw):
        self.events.append(KernelEvent(kind, fn, message, **kw))


def incrementer(m, name, locked):
    if locked:
        yield Step("lock", name, "lock(L)", note="L:exclusive")
    step = Step("read", name, "tmp = x")
    yield step
    tmp = m.x
    step.old = tmp
    step = Step("write", name, "x = tmp + 1")
    yield step
    m.x = tmp + 1
    step.new = tmp + 1
    if locked:
        yield Step("unlock", name, "unlock(L)", note="L")


def factory(locked):
    def make():
        m = Counter()
        return m, [
            Thread("A", "a", 0, incrementer(m, "A", locked)),
            Thread("B", "b", 1, incrementer(m, "B", locked)),
        ]

    return make


def lost_update(s):
    return s.finished() and s.machine.x != 2


def test_haystack_is_the_multinomial():
    assert haystack([3, 3]) == 20 and haystack([10, 10]) == 184_756


def test_no_preemption_finds_nothing_one_finds_the_lost_update():
    assert not explore(factory(False), bound=0, failing=lost_update).found
    r = explore(factory(False), bound=1, failing=lost_update)
    assert r.found and r.shortest in ("A B A B", "A B B A")  # read, read, write, write
    assert r.haystack == 6 and r.schedules <= 6
    s = replay(factory(False), r.shortest)
    assert s.machine.x == 1  # the same lost update, reproduced exactly


def test_a_lock_makes_every_schedule_correct():
    r = explore(factory(True), bound=3, failing=lost_update)
    assert not r.found and r.complete and r.schedules >= 2
    assert "no failing schedule" in r.summary()


@pytest.mark.parametrize(
    ("kw", "word"),
    [
        ({"bound": -1}, "bound"),
        ({"bound": "2"}, "bound"),
        ({"bound": True}, "bound"),
        ({"max_schedules": 0}, "max_schedules"),
    ],
)
def test_bad_search_limits_are_refused_before_anything_runs(kw, word):
    from mmkit.errors import InvalidArgument
    from mmkit.scenarios.races import ptdump_race

    race = ptdump_race("arm64-64k-42", "naive")
    with pytest.raises(InvalidArgument, match=word):
        race.explore(**kw)


def publish_then_log(m, name):
    """Writes x = 1, then a step that touches nothing the other thread sees."""
    step = Step("write", name, "x = 1")
    yield step
    m.x = step.new = 1
    yield Step("call", name, "pr_debug()")


def check_x(m, name):
    step = Step("read", name, "if (x) BUG()")
    yield step
    if m.x:
        m.record_event("bug", name, "x was set")


def publish_race():
    m = Counter()
    return m, [
        Thread("A", "a", 0, publish_then_log(m, "A")),
        Thread("B", "b", 1, check_x(m, "B")),
    ]


def test_a_reported_failure_drops_the_local_steps_nothing_after_needs():
    # the explorer never switches before A's local step, so it first fails with "A A B";
    # that step commutes with B's, so the failure needs only "A B"
    r = explore(publish_race, bound=2, local=lambda step: step.action == "call")
    assert r.shortest == "A B" and r.events == [
        replay(publish_race, "A B").machine.events[0].report()
    ]
    plain = explore(publish_race, bound=2)
    assert plain.shortest == "A B"  # what the full search finds without local steps


def test_the_shortest_ptdump_failure_carries_no_local_step_it_could_drop():
    from mmkit.scenarios.races import ptdump_race

    race = ptdump_race("arm64-64k-42", "naive")
    r = race.explore(bound=2)
    s = replay(race.make, r.shortest)
    assert any(e.kind == "use-after-free" for e in s.machine.events)
    before = replay(race.make, " ".join(r.shortest.split()[:-1]))
    assert not any(e.kind == "use-after-free" for e in before.machine.events)
    later: set[str] = set()
    for step, name in reversed(list(zip(s.history, s.schedule, strict=True))[:-1]):
        assert name in later or not race.is_local(step), (name, step)
        later.add(name)


def test_the_edge_cache_may_forget_a_step_but_never_answers_for_another():
    from mmkit.sched._memo import Edges

    edges = Edges()
    slots = edges.SLOTS
    edges.put(5, 123)
    edges.put(-7, -9)  # state keys are signed 64-bit hashes
    assert edges.get(5) == 123 and edges.get(-7) == -9 and edges.get(None) is None
    assert edges.get(5 + slots) is None  # the same slot, another step
    edges.put(5 + slots, 456)  # evicts the first
    assert edges.get(5 + slots) == 456 and edges.get(5) is None
    assert edges.get(6) is None  # a slot never filled

"""The scheduler's bad input: a refused call takes no step. ``follow`` and ``replay`` check
the whole schedule first, so a name that is unknown, finished or blocked at its turn leaves
the schedule, the machine (its digest) and every thread as they were."""

from __future__ import annotations

import pytest

from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.scenarios.races import vmalloc_race
from mmkit.sched import Scheduler, Thread

RACE = vmalloc_race("teach-64k-42", "v5.7")


def state(s: Scheduler) -> tuple[object, ...]:
    return (
        list(s.schedule),
        s.machine.digest(),
        s.locks.snapshot(),
        {n: (t.pending, len(t.steps), t.done) for n, t in s.threads.items()},
    )


BAD_CALLS = [
    ("follow(['V', 'Q'])", lambda s: s.follow(["V", "Q"])),
    ("follow('V Q')", lambda s: s.follow("V Q")),
    ("follow([1])", lambda s: s.follow([1])),
    ("follow(None)", lambda s: s.follow(None)),
    ("follow(42)", lambda s: s.follow(42)),
    ("follow([None])", lambda s: s.follow([None])),
    ("follow(V past its end)", lambda s: s.follow(["V"] * 500)),
    ("follow(['V', 'H', 'X'])", lambda s: s.follow(["V", "H", "X"])),
    ("step('Q')", lambda s: s.step("Q")),
    ("step(None)", lambda s: s.step(None)),
    ("step(['V'])", lambda s: s.step(["V"])),
    ("step('')", lambda s: s.step("")),
    ("replay(['V', 'Q'])", lambda s: s.replay(["V", "Q"])),
    ("replay(V past its end)", lambda s: s.replay(["V"] * 500)),
    ("replay(3)", lambda s: s.replay(3)),
    ("run(until=5)", lambda s: s.run(until=5)),
]


@pytest.mark.parametrize("call", [c[1] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
@pytest.mark.parametrize("prefix", [[], ["V", "V"]], ids=["fresh", "after-2-steps"])
def test_a_refused_scheduler_call_takes_no_step(call, prefix):
    s = RACE.scheduler()
    s.follow(prefix)
    before = state(s)
    with pytest.raises(InvalidArgument):
        call(s)
    assert state(s) == before


def test_follow_names_the_position_that_would_fail():
    alone = RACE.scheduler()
    while not alone.threads["V"].done:
        alone.step("V")
    n = len(alone.schedule)  # V's steps when it runs alone
    s = RACE.scheduler()
    with pytest.raises(InvalidArgument, match=rf"^schedule\[{n}\] \(V\): thread V has finished"):
        s.follow(["V"] * (n + 1))
    assert s.schedule == []


@pytest.mark.parametrize(
    "factory",
    [
        lambda: None,
        lambda: (1, 2, 3),
        lambda: (None, []),
        lambda: (Machine("arm64-64k-42", vmalloc_areas=0), ["V"]),
        lambda: (Machine("arm64-64k-42", vmalloc_areas=0), 5),
    ],
    ids=["none", "triple", "no-machine", "not-a-thread", "threads-not-a-list"],
)
def test_a_factory_that_does_not_build_a_scenario_is_refused(factory):
    with pytest.raises(InvalidArgument):
        Scheduler(factory)


def test_duplicate_thread_names_and_non_callables_are_refused():
    def twins():
        m = Machine("arm64-64k-42", vmalloc_areas=0)
        return m, [Thread("A", "a", 0, iter([Step("call", "f", "x")])) for _ in range(2)]

    with pytest.raises(InvalidArgument, match="unique"):
        Scheduler(twins)
    with pytest.raises(InvalidArgument, match="factory"):
        Scheduler(42)  # type: ignore[arg-type]

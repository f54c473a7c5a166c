"""What the explorer's reductions assume of the engine, checked on every lesson race.

The state key keeps the machine's part across a ``read`` step, and the sleep sets let a
read commute with TLBIs, book-keeping, data accesses and lock acquisitions
(:mod:`mmkit.sched._reduction`): so a read must change nothing but the kernel log, and
those steps must leave the page tables and the frames alone. ``ptdump_race`` vouches
more pairs (a walk step and a hot-remove step on other tables); the search with them must
reach what the search without any reduction reaches.
"""

from __future__ import annotations

import pytest

from mmkit._digest import PARTS, WRITES, digest_part
from mmkit.scenarios.races import LESSON_RACES, ptdump_race
from mmkit.sched import Scheduler
from mmkit.sched.explore import explore


def machine_state(s: Scheduler) -> tuple[object, ...]:
    m = s.machine
    tlbs = tuple((dict(t.leaf), dict(t.walk)) for t in m.tlbs)
    return m.digest(log=False), repr(tlbs), s.locks.snapshot()  # all but the log and history


def parts(s: Scheduler) -> list[object]:
    m = s.machine
    return [digest_part(m, i) for i in range(len(PARTS))]


def tables_and_frames(s: Scheduler) -> tuple[object, ...]:
    return s.machine.pgtables.digest(), s.machine.physmem.digest()


def walk_both_orders(race):
    """Every step of the race, in two schedules: each thread alone in turn, and the two
    threads alternating (so reads also meet freed and half-removed tables)."""
    names = list(race.threads)
    for order in (names, names[::-1]):
        s = race.scheduler()
        for name in order:
            while name in s.runnable():
                yield s, name
        s = race.scheduler()
    s = race.scheduler()
    while ready := s.runnable():
        for name in ready:
            if name in s.runnable():
                yield s, name


@pytest.mark.parametrize(
    ("scenario", "config", "policy"),
    [(fn, config, policy) for _slug, fn, config, policy in LESSON_RACES],
    ids=[slug for slug, *_ in LESSON_RACES],
)
def test_reads_change_nothing_and_commuting_steps_leave_tables_alone(scenario, config, policy):
    race = scenario(config=config, policy=policy)
    kinds = set()
    for s, name in walk_both_orders(race):
        step = s.threads[name].pending
        before, tables = machine_state(s), tables_and_frames(s)
        s.step(name)
        kinds.add(step.action)
        if step.action == "read":
            assert machine_state(s) == before, step
        elif step.action in ("tlbi", "lock", "access", "call", "memblock", "device", "sysfs"):
            assert tables_and_frames(s) == tables, step
    assert "read" in kinds


def test_the_digest_has_one_function_per_named_part():
    m = ptdump_race("arm64-64k-42", "naive").scheduler().machine
    assert list(m.digest()) == [digest_part(m, i) for i in range(len(PARTS))]
    assert set(WRITES) >= {"read", "write", "alloc", "free", "tlbi", "lock", "unlock"}


@pytest.mark.parametrize(
    ("scenario", "config", "policy", "fine"),
    [(fn, config, policy, False) for _slug, fn, config, policy in LESSON_RACES]
    + [(ptdump_race, "arm64-4k-39", "naive", True), (ptdump_race, "arm64-16k-47", "naive", False)],
    ids=[slug for slug, *_ in LESSON_RACES] + ["ptdump_4k_39_naive_fine", "ptdump_16k_47_naive"],
)
def test_every_step_of_a_race_changes_only_what_its_kind_may_write(scenario, config, policy, fine):
    """The contract the state keys rely on (a part of the digest is digested again only
    after a step that may write it), on every step of both orders of every lesson race."""
    race = scenario(config=config, policy=policy, fine=fine)
    checked = set()
    for s, name in walk_both_orders(race):
        step = s.threads[name].pending
        before, events = parts(s), len(s.machine.events)
        s.step(name)
        if len(s.machine.events) != events:
            continue  # an event may change anything (a BUG sets oops): keys digest it all
        changed = {
            PARTS[i] for i, (a, b) in enumerate(zip(before, parts(s), strict=True)) if a != b
        }
        assert changed - {"log", "history"} <= {PARTS[i] for i in WRITES[step.action]}, step
        checked.add(step.action)
    assert {"read", "write", "free"} <= checked or {"read", "tlbi", "access"} <= checked


def never(_s):
    return False


@pytest.mark.parametrize(
    ("config", "fine", "bounds"),
    [
        ("arm64-64k-42", False, (1, 2)),
        pytest.param("arm64-64k-42", True, (1, 2), marks=pytest.mark.soak),
        pytest.param("arm64-4k-39", False, (1, 2), marks=pytest.mark.soak),
        pytest.param("arm64-4k-39", True, (1, 2), marks=pytest.mark.soak),
    ],
)
def test_the_pairs_ptdump_race_vouches_for_lose_no_outcome(config, fine, bounds):
    """With and without the scenario's relation (and its local steps): the same end
    states, the same verdict and the same length of the shortest failure."""
    race = ptdump_race(config, "naive", fine=fine)
    for bound in bounds:
        reduced = race.explore(bound=bound, failing=never)
        plain = explore(race.make, bound=bound, failing=never)
        assert reduced.classes == plain.classes >= 2
        assert reduced.branches < plain.branches
    found = race.explore(bound=1)
    truth = explore(race.make, bound=1, local=race.is_local)
    assert found.found and truth.found
    assert len(found.shortest.split()) == len(truth.shortest.split())


class Memory:
    def __init__(self) -> None:
        self.x = 1
        self.events: list[object] = []
        self.current_thread = ""

    def digest(self) -> tuple[object, ...]:
        return (self.x,)

    def record_event(self, kind: str, fn: str, message: str, **kw: object) -> None:
        self.events.append((kind, fn, message))  # the scheduler logs deadlocks here


def look_then_tell(m: Memory):
    """Its second step is worked out, from memory, when its first is performed."""
    from mmkit.events import Step

    yield Step("read", "look", "look")
    yield Step("read", "tell", f"x was {m.x}")


def write_then_work(m: Memory):
    from mmkit.events import Step

    step = Step("write", "write", "x = 5")
    yield step
    step.old, m.x, step.new = m.x, 5, 5
    yield Step("call", "work", "local work")


def test_the_state_key_tells_apart_threads_about_to_do_different_things():
    """A then B B, and B A B: the same memory, the same values observed, the same thread
    last; but A's next step was worked out before B's write in one, after it in the
    other. Equal keys would let the state cache cut one and lose where it leads."""
    from mmkit.sched import Thread
    from mmkit.sched.explore import _state_key

    def make():
        m = Memory()
        return m, [Thread("A", "a", 0, look_then_tell(m)), Thread("B", "b", 1, write_then_work(m))]

    first, second = Scheduler(make), Scheduler(make)
    first.follow(["A", "B", "B"])
    second.follow(["B", "A", "B"])
    assert first.machine.digest() == second.machine.digest()
    assert first.threads["A"].pending.line != second.threads["A"].pending.line
    assert _state_key(first) != _state_key(second)

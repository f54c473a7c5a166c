"""The explorer against brute force, on random toy programs (hypothesis).

Threads read and write shared variables (writes depend on the value read, so order matters),
take and release locks, and do thread-private work. Brute force enumerates every schedule
(a blocked thread cannot run; a state where nothing can run ends the schedule) and computes
each end state with the explorer's own state function. The explorer must reach exactly the
same end states: with no bound, with the local-step reduction, and within each preemption
bound (counted as the explorer counts: a switch away from a thread that could have gone on).
With a failing condition it must find a failing schedule exactly when brute force does, and
its shortest one must fail when replayed, stay within the bound and be as short as the
shortest brute force finds.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.events import KernelEvent, Step
from mmkit.sched import Scheduler, Thread
from mmkit.sched.explore import _state_key, explore, replay

VARS = ("x", "y")
LOCKS = ("L1", "L2")


class ToyMachine:
    def __init__(self) -> None:
        self.vars = dict.fromkeys(VARS, 1)
        self.private: dict[str, int] = {}
        self.events: list[KernelEvent] = []
        self.current_thread = ""

    def digest(self) -> tuple[object, ...]:
        return tuple(sorted(self.vars.items()))

    def record_event(self, kind, fn, message, **kw):
        self.events.append(KernelEvent(kind, fn, message, **kw))


def run_ops(m: ToyMachine, name: str, ops: list[tuple[str, str]]):
    k = 2 + "ABC".index(name)
    for kind, arg in ops:
        if kind == "read":
            step = Step("read", name, f"read {arg}")
            yield step
            step.old = m.vars[arg]
        elif kind == "write":
            step = Step("write", name, f"{arg} = {arg} * 3 + {k}")
            yield step
            step.old = m.vars[arg]
            m.vars[arg] = step.new = (m.vars[arg] * 3 + k) % 1009
        elif kind == "lock":
            yield Step("lock", name, f"lock({arg})", note=f"{arg}:exclusive")
        elif kind == "unlock":
            yield Step("unlock", name, f"unlock({arg})", note=arg)
        else:  # thread-private work: commutes with everything the others do
            yield Step("call", name, "local work")
            m.private[name] = m.private.get(name, 0) + 1


shared_op = st.tuples(st.sampled_from(["read", "write"]), st.sampled_from(VARS))
local_op = st.just(("local", ""))


@st.composite
def thread_ops(draw):
    ops = draw(st.lists(st.one_of(shared_op, local_op), min_size=1, max_size=3))
    if draw(st.booleans()):  # a critical section around part of it
        lock = draw(st.sampled_from(LOCKS))
        i = draw(st.integers(0, len(ops)))
        j = draw(st.integers(i, len(ops)))
        ops = [*ops[:i], ("lock", lock), *ops[i:j], ("unlock", lock), *ops[j:]]
        if draw(st.booleans()):  # sometimes nested, in either order: deadlocks happen
            other = LOCKS[1 - LOCKS.index(lock)]
            ops = [("lock", other), *ops, ("unlock", other)]
    return ops


programs = st.lists(thread_ops(), min_size=2, max_size=3)


def factory(program):
    def make():
        m = ToyMachine()
        names = "ABC"[: len(program)]
        return m, [
            Thread(n, n, i, run_ops(m, n, ops))
            for i, (n, ops) in enumerate(zip(names, program, strict=True))
        ]

    return make


def brute_force(make):
    """Every complete schedule: its end state and the preemptions it spends."""
    out: dict[int, int] = {}  # end state -> fewest preemptions reaching it
    stack: list[list[str]] = [[]]
    while stack:
        prefix = stack.pop()
        s = Scheduler(make)
        preemptions = 0
        for a, b in itertools.pairwise([None, *prefix]):
            if a is not None and a != b and a in s.runnable():
                preemptions += 1
            s.step(b)
        ready = s.runnable()
        if not ready:  # all done, or deadlocked
            key = _state_key(s)
            out[key] = min(out.get(key, preemptions), preemptions)
            continue
        stack.extend([*prefix, n] for n in ready)
    return out


def preemptions(make, schedule):
    s, spent = Scheduler(make), 0
    for a, b in itertools.pairwise([None, *schedule]):
        if a is not None and a != b and a in s.runnable():
            spent += 1
        s.step(b)
    return spent


def shortest_failures(make, failing):
    """Preemptions spent -> fewest steps of a prefix that spends them and fails."""
    out: dict[int, int] = {}
    stack: list[list[str]] = [[]]
    while stack:
        prefix = stack.pop()
        s = Scheduler(make)
        s.follow(prefix)
        if failing(s):
            spent = preemptions(make, prefix)
            out[spent] = min(out.get(spent, len(prefix)), len(prefix))
            continue
        stack.extend([*prefix, n] for n in s.runnable())
    return out


def within(truth, bound):
    """The fewest steps of a failing prefix with at most ``bound`` preemptions, or None."""
    return min((n for spent, n in truth.items() if spent <= bound), default=None)


def x_is_even(s):
    """A condition of the state (so the state cache may merge prefixes that reach it)."""
    return s.machine.vars["x"] % 2 == 0


def never(_):
    return False


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(program=programs)
def test_the_explorer_reaches_exactly_the_end_states_of_brute_force(program):
    make = factory(program)
    truth = brute_force(make)
    total = sum(len(ops) for ops in program)
    full = explore(make, bound=total, failing=never)
    assert full.classes == len(truth)
    reduced = explore(make, bound=total, failing=never, local=lambda step: step.action == "call")
    assert reduced.classes == len(truth)
    for bound in (0, 1):
        within = explore(make, bound=bound, failing=never)
        assert within.classes == sum(1 for p in truth.values() if p <= bound)


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(program=programs)
def test_the_shortest_failure_is_as_short_as_brute_force_finds(program):
    make = factory(program)
    truth = shortest_failures(make, x_is_even)
    total = sum(len(ops) for ops in program)
    for bound in (0, 1, 2, total):
        result = explore(make, bound=bound, failing=x_is_even)
        expected = within(truth, bound)
        assert result.found is (expected is not None)
        if not result.found:
            continue
        schedule = result.shortest.split()
        assert len(schedule) == expected
        assert x_is_even(replay(make, result.shortest))
        assert preemptions(make, schedule) <= bound


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(program=programs)
def test_with_local_steps_a_failure_is_found_exactly_when_brute_force_finds_one(program):
    """Never switching just before a local step still finds every failure; the schedule
    it reports fails and stays within the bound (it may carry local steps the thread could
    have taken later, so it is no shorter than brute force's)."""
    make = factory(program)
    truth = shortest_failures(make, x_is_even)
    for bound in (0, 1, 2):
        result = explore(
            make, bound=bound, failing=x_is_even, local=lambda step: step.action == "call"
        )
        expected = within(truth, bound)
        assert result.found is (expected is not None)
        if expected is not None:
            assert len(result.shortest.split()) >= expected
            assert x_is_even(replay(make, result.shortest))
            assert preemptions(make, result.shortest.split()) <= bound

"""The interleaving explorer: search the schedules of a scenario for a kernel bug.

Two threads of n steps each interleave in C(2n, n) ways (the *haystack*: 184,756 for
n = 10). Most concurrency bugs need one or two preemptions (CHESS, Musuvathi and Qadeer), so
the explorer enumerates schedules with at most ``bound`` preemptions (a switch away from a
thread that could have gone on), depth first, in a fixed thread order, and caches states: a
state is the machine's digest plus what each thread has observed so far (the values its
steps read and wrote), and two prefixes that reach the same state have the same futures, so
the second is not explored again.

A schedule *fails* when ``failing(scheduler)`` says so; by default when a kernel event of a
failing kind (use-after-free, stale TLB, BUG, lost mapping, deadlock) is recorded. The
shortest failing schedule is reported as a short string (``"H H P H P"``) that
:func:`replay` reproduces exactly.

>>> # see tests/test_explore.py and mmkit.scenarios for real scenarios
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmkit.sched.scheduler import Scheduler, Thread

__all__ = ["FAILING_KINDS", "ExploreResult", "explore", "replay"]

#: kernel event kinds that make a schedule fail
FAILING_KINDS = frozenset({"use-after-free", "stale-tlb", "bug", "lost-mapping"})

Factory = Callable[[], tuple[Any, Sequence[Thread]]]


@dataclass
class ExploreResult:
    """What an exploration found."""

    bound: int  #: preemption bound used
    haystack: int  #: multinomial count of all interleavings of the threads' steps
    thread_steps: dict[str, int]  #: steps each thread took in the first (default) run
    schedules: int = 0  #: complete schedules explored
    states: int = 0  #: distinct states visited
    cache_hits: int = 0  #: prefixes cut because their state was seen before
    failing: int = 0  #: complete schedules that failed
    shortest: str | None = None  #: the shortest failing schedule, as "H H P ..."
    events: list[str] = field(default_factory=list)  #: the shortest failure's kernel log
    seconds: float = 0.0
    complete: bool = True  #: False when max_schedules cut the search short

    @property
    def found(self) -> bool:
        return self.shortest is not None

    def summary(self) -> str:
        verdict = (
            f"FAILS: shortest failing schedule {self.shortest!r}"
            if self.found
            else "no failing schedule"
        )
        return (
            f"{verdict}; bound {self.bound}: {self.schedules} schedules, {self.states} "
            f"states ({self.cache_hits} cut by the state cache) of a haystack of "
            f"{self.haystack} interleavings, {self.seconds:.2f} s"
        )


def _failed(s: Scheduler) -> bool:
    return any(e.kind in FAILING_KINDS for e in s.machine.events)


def _state_key(s: Scheduler) -> tuple[object, ...]:
    seen = tuple(
        (name, tuple((st.action, st.old, st.new, st.pfn, st.line) for st in t.steps))
        for name, t in sorted(s.threads.items())
    )
    return (s.machine.digest(), seen)


def haystack(counts: Sequence[int]) -> int:
    """Interleavings of threads with these step counts: (sum n)! / prod(n!)."""
    total = math.factorial(sum(counts))
    for n in counts:
        total //= math.factorial(n)
    return total


def explore(
    factory: Factory,
    *,
    bound: int = 2,
    failing: Callable[[Scheduler], bool] = _failed,
    max_schedules: int = 100_000,
    progress: Callable[[ExploreResult], None] | None = None,
) -> ExploreResult:
    """Explore the schedules of ``factory``'s threads with at most ``bound`` preemptions."""
    t0 = time.perf_counter()
    base = Scheduler(factory)
    base.run()
    counts = {n: len(t.steps) for n, t in base.threads.items()}
    result = ExploreResult(bound, haystack(list(counts.values())), counts)
    seen: dict[tuple[object, ...], int] = {}
    # Depth first without re-running every node: follow one path to its end, pushing the
    # alternatives met on the way; a pushed alternative is replayed from a fresh copy once.
    work: list[tuple[list[str], str | None, int]] = [([], None, 0)]
    while work:
        if result.schedules >= max_schedules:
            result.complete = False
            break
        prefix, last, preemptions = work.pop()
        s = Scheduler(factory)
        s.follow(prefix)
        while True:
            failed = failing(s)
            if failed or s.finished() or s.deadlock:
                result.schedules += 1
                if failed:
                    result.failing += 1
                    if result.shortest is None or len(s.schedule) < len(result.shortest.split()):
                        result.shortest = s.schedule_string()
                        result.events = [e.report() for e in s.machine.events]
                if progress and result.schedules % 500 == 0:
                    progress(result)
                break
            # the same state reached with the same last thread and no more preemptions
            # spent has the same futures within the bound: explore it once
            key = (_state_key(s), last)
            if seen.get(key, bound + 1) <= preemptions:
                result.cache_hits += 1
                break
            seen[key] = preemptions
            result.states += 1
            ready = s.runnable()
            options = []
            for name in sorted(ready, key=lambda n: (n != last, n)):  # no switch first
                cost = 1 if (last is not None and name != last and last in ready) else 0
                if preemptions + cost <= bound:
                    options.append((name, preemptions + cost))
            for name, spent in reversed(options[1:]):
                work.append(([*s.schedule, name], name, spent))
            last, preemptions = options[0]
            s.step(last)
    result.seconds = time.perf_counter() - t0
    return result


def replay(factory: Factory, schedule: str) -> Scheduler:
    """Run ``schedule`` (e.g. ``"H H P H P"``) on a fresh instance of the scenario."""
    s = Scheduler(factory)
    s.follow(schedule.split())
    return s

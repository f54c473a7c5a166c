"""The interleaving explorer: search the schedules of a scenario for a kernel bug.

Two threads of n steps each interleave in C(2n, n) ways (the *haystack*: 184,756 for
n = 10). Most concurrency bugs need one or two preemptions (CHESS, Musuvathi and Qadeer), so
the explorer enumerates schedules with at most ``bound`` preemptions (a switch away from a
thread that could have gone on), depth first, in a fixed thread order, and caches states: a
state is the machine's digest, the TLBs, the locks held and the kernel log, plus what each
thread has observed so far (the values its steps read and wrote), and two prefixes that reach
the same state with no more preemptions spent have the same futures, so the second is not
explored again. Two cheap partial-order reductions keep the search small: the state cache
merges prefixes that differ only in the order of commuting steps, and the explorer never
switches threads just before a step the scenario calls *local* (one that touches nothing
another thread reads or writes), since switching just after it reaches the same states.
Schedules whose end states are equal form one *equivalence class*; the result counts both.

A schedule *fails* when ``failing(scheduler)`` says so; by default when a kernel event of a
failing kind (use-after-free, stale TLB, WARN, BUG, lost mapping, deadlock) is recorded. The
shortest failing schedule is reported as a short string (``"H H P H P"``) that
:func:`replay` reproduces exactly.

Deterministic: no randomness anywhere, so the same scenario gives the same result.

>>> from mmkit.scenarios.races import ptdump_race
>>> result = ptdump_race("arm64-64k-42", "naive").explore(bound=1)
>>> result.found, result.events[0].splitlines()[0]
(True, 'BUG: KASAN: use-after-free in walk_pte')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmkit.errors import InvalidArgument
from mmkit.sched.scheduler import Scheduler, Thread

__all__ = ["FAILING_KINDS", "PROGRESS_EVERY", "ExploreResult", "explore", "replay"]

#: kernel event kinds that make a schedule fail
FAILING_KINDS = frozenset({"use-after-free", "stale-tlb", "warn", "bug", "lost-mapping"})

#: explored paths (complete schedules plus prefixes cut by the state cache) between two
#: calls of ``explore``'s ``progress`` callback
PROGRESS_EVERY = 10

Factory = Callable[[], tuple[Any, Sequence[Thread]]]


@dataclass
class ExploreResult:
    """What an exploration found."""

    bound: int  #: preemption bound used
    haystack: int  #: multinomial count of all interleavings of the threads' steps
    thread_steps: dict[str, int]  #: steps each thread took in the first (default) run
    schedules: int = 0  #: complete schedules explored
    classes: int = 0  #: equivalence classes among them: distinct final states and observations
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
            f"{verdict}; bound {self.bound}: {self.schedules} schedules in {self.classes} "
            f"equivalence classes, {self.states} "
            f"states ({self.cache_hits} cut by the state cache) of a haystack of "
            f"{self.haystack} interleavings, {self.seconds:.2f} s"
        )


def _failed(s: Scheduler) -> bool:
    return any(e.kind in FAILING_KINDS for e in s.machine.events)


def _state_key(s: Scheduler) -> int:
    """What decides a prefix's futures: the machine (memory, tables, allocator, hotplug
    state), the CPUs' TLBs, who holds which lock, the kernel log so far, and what each
    thread has observed (every value its steps read or wrote, and what they found), since a
    thread's next steps depend only on those."""
    seen = tuple(
        (
            name,
            tuple(
                (st.action, st.old, st.new, st.pfn, st.count, st.line, st.result) for st in t.steps
            ),
        )
        for name, t in sorted(s.threads.items())
    )
    m = s.machine
    tlbs = tuple(
        (tuple(sorted(t.leaf.items())), tuple(sorted(t.walk.items())))
        for t in getattr(m, "tlbs", ())
    )
    # the cache keeps a 64-bit hash, not the state (table pages are kilobytes each): small
    # and cheap to look up; a collision (odds about states**2 / 2**65) could only make the
    # search skip one state
    return hash((m.digest(), tlbs, s.locks.snapshot(), len(m.events), seen))


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
    local: Callable[[Any], bool] | None = None,
) -> ExploreResult:
    """Explore the schedules of ``factory``'s threads with at most ``bound`` preemptions.

    ``local(step)`` names steps that touch only state no other thread of the scenario reads
    or writes: such a step commutes with every step of the others, so a switch just before
    it leads to the same states as a switch just after it, and the explorer only switches
    before *visible* steps (CHESS's rule; the scenario vouches for ``local``).

    ``progress(result)`` sees the running counts (``seconds`` so far) after every
    :data:`PROGRESS_EVERY` explored paths and once more, final, when the search ends.
    """
    for name, value, least in (("bound", bound, 0), ("max_schedules", max_schedules, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidArgument(f"explore: {name}={value!r}; it must be an integer >= {least}")
    t0 = time.perf_counter()
    base = Scheduler(factory)
    base.run()
    counts = {n: len(t.steps) for n, t in base.threads.items()}
    result = ExploreResult(bound, haystack(list(counts.values())), counts)
    seen: dict[tuple[object, ...], int] = {}
    finals: set[int] = set()
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
                finals.add(_state_key(s))
                result.classes = len(finals)
                if failed:
                    result.failing += 1
                    if result.shortest is None or len(s.schedule) < len(result.shortest.split()):
                        result.shortest = s.schedule_string()
                        result.events = [e.report() for e in s.machine.events]
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
            if local is not None and last in ready and local(s.threads[last].pending):
                ready = [last]  # no switch before a local step: it commutes
            options = []
            for name in sorted(ready, key=lambda n: (n != last, n)):  # no switch first
                cost = 1 if (last is not None and name != last and last in ready) else 0
                if preemptions + cost <= bound:
                    options.append((name, preemptions + cost))
            for name, spent in reversed(options[1:]):
                work.append(([*s.schedule, name], name, spent))
            last, preemptions = options[0]
            s.step(last)
        # each path ends as a schedule or a cache hit; a path costs a fresh scenario (a
        # machine copy), so a call every PROGRESS_EVERY paths is noise next to the work
        if progress and (result.schedules + result.cache_hits) % PROGRESS_EVERY == 0:
            result.seconds = time.perf_counter() - t0
            progress(result)
    result.seconds = time.perf_counter() - t0
    if progress:
        progress(result)
    return result


def replay(factory: Factory, schedule: str) -> Scheduler:
    """Run ``schedule`` (e.g. ``"H H P H P"``) on a fresh instance of the scenario."""
    s = Scheduler(factory)
    s.follow(schedule.split())
    return s

"""The interleaving explorer: search the schedules of a scenario for a kernel bug.

Two threads of n steps each interleave in C(2n, n) ways (the *haystack*: 184,756 for
n = 10). Most concurrency bugs need one or two preemptions (CHESS, Musuvathi and Qadeer), so
the explorer enumerates schedules with at most ``bound`` preemptions (a switch away from a
thread that could have gone on), depth first, in a fixed thread order, and caches states: a
state is the machine's digest, the TLBs, the locks held and the kernel log, plus what each
thread has observed so far (the values its steps read and wrote) and is about to do next
(:mod:`mmkit.sched._reduction`), and two prefixes that reach
the same state with no more preemptions spent have the same futures, so the second is not
explored again (nor replayed, when the state the branch leaves was explored before with the
branch's thread going on from it). Three partial-order reductions keep the search small:

* the state cache merges prefixes that differ only in the order of commuting steps;
* the explorer never switches threads just before a step the scenario calls *local* (one
  that touches nothing another thread reads or writes), since switching just after it
  reaches the same states;
* sleep sets (Godefroid) skip a branch that would only take, first, a step that an
  explored sibling took first and that commutes with what ran since. Under a preemption
  bound only the no-switch sibling may put its thread to sleep: moving its step to the
  front of a schedule never costs a preemption more, moving another thread's step can,
  which is how a naive combination misses schedules within the bound (Coons, Musuvathi
  and McKinley, "Bounded partial-order reduction", OOPSLA 2013). A cached state counts as
  explored only by an exploration with no more preemptions spent and no more threads
  asleep. Which steps commute: :mod:`mmkit.sched._reduction`, plus what the scenario
  vouches for.

Every state reachable within the bound is still reached, so the shortest failing prefix
is found (brute force agrees, ``tests/test_explore_property.py``). A schedule found with
local steps may carry some that a thread took before a switch: the report leaves out each
local step that no later step of its thread follows (it commutes with everything after it,
so the failure happens without it; a replay checks that it does). Each alternative the
search pushes costs one replay of its prefix on a fresh copy of the scenario (generators
cannot be copied), which is what the reductions save; along a path, a step already taken
from the same state elsewhere leads to the state it led to then, so its key is looked up,
not computed (no digest of the machine). Schedules whose end states are equal
form one *equivalence class*; the result counts both.

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
from mmkit.sched._memo import Edges, Explored
from mmkit.sched._reduction import StateKeys, independence, state_key
from mmkit.sched.scheduler import Scheduler, Thread

__all__ = ["FAILING_KINDS", "PROGRESS_EVERY", "ExploreResult", "explore", "replay"]

#: kernel event kinds that make a schedule fail
FAILING_KINDS = frozenset({"use-after-free", "stale-tlb", "warn", "bug", "lost-mapping"})

#: explored paths (complete schedules plus prefixes cut as explored before) between two
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
    #: prefixes cut because their state was explored before, or (sleep sets) an
    #: equivalent order of their steps was
    cache_hits: int = 0
    failing: int = 0  #: complete schedules that failed
    shortest: str | None = None  #: the shortest failing schedule, as "H H P ..."
    events: list[str] = field(default_factory=list)  #: the shortest failure's kernel log
    seconds: float = 0.0
    complete: bool = True  #: False when max_schedules cut the search short
    sleep_cuts: int = 0  #: those of them cut because every thread that could run slept
    branches: int = 0  #: alternatives pushed: each costs one replay of its prefix

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
            f"states ({self.cache_hits} paths cut as explored before) of a haystack of "
            f"{self.haystack} interleavings, {self.seconds:.2f} s"
        )


def _failed(s: Scheduler) -> bool:
    return any(e.kind in FAILING_KINDS for e in s.machine.events)


#: the key of the state a scheduler is in (see :mod:`mmkit.sched._reduction`)
_state_key = state_key


def _needed(s: Scheduler, local: Callable[[Any], bool] | None) -> list[str]:
    """The schedule ``s`` took without the local steps its last step does not need: a
    local step that no later step of its thread follows commutes with everything after
    it, so the last step does what it did without it (the explorer switches only after
    local steps, so a schedule it finds may carry some before a switch)."""
    if local is None:
        return list(s.schedule)
    keep: list[str] = []
    later: set[str] = set()
    last = len(s.history) - 1
    for i in range(last, -1, -1):
        name = s.schedule[i]
        if i < last and name not in later and local(s.history[i]):
            continue
        later.add(name)
        keep.append(name)
    keep.reverse()
    return keep


def _fails_only_at_its_end(
    factory: Factory, names: list[str], failing: Callable[[Scheduler], bool], bound: int
) -> Scheduler | None:
    """A fresh scenario that took ``names`` if it fails after the last and not before, and
    with no more than ``bound`` preemptions (a thread that took its last step finishes
    before a switch; without it, it may be preempted there)."""
    s = Scheduler(factory)
    last, spent = None, 0
    for name in names:
        ready = s.runnable()
        if failing(s) or name not in ready:
            return None
        spent += last is not None and name != last and last in ready
        s.step(name)
        last = name
    return s if failing(s) and spent <= bound else None


def _report_if_shorter(
    result: ExploreResult,
    s: Scheduler,
    factory: Factory,
    local: Callable[[Any], bool] | None,
    failing: Callable[[Scheduler], bool],
) -> None:
    """Make the failing schedule ``s`` the result's shortest if it is shorter, without the
    local steps the failure does not need when that is checked to fail within the bound."""
    names = _needed(s, local)
    best = len(result.shortest.split()) if result.shortest is not None else None
    if best is not None and len(names) >= best:
        return
    found = s
    if len(names) < len(s.schedule):  # checked, not taken on trust
        found = _fails_only_at_its_end(factory, names, failing, result.bound) or s
    if best is None or len(found.schedule) < best:
        result.shortest = found.schedule_string()
        result.events = [e.report() for e in found.machine.events]


def haystack(counts: Sequence[int]) -> int:
    """Interleavings of threads with these step counts: (sum n)! / prod(n!)."""
    total = math.factorial(sum(counts))
    for n in counts:
        total //= math.factorial(n)
    return total


@dataclass(frozen=True)
class _Branch:
    """A schedule prefix still to explore: the thread that ran last, the preemptions spent
    and the sleep set (threads whose next step need not run first: see :func:`explore`)."""

    prefix: tuple[str, ...]
    last: str | None
    spent: int
    sleep: int  #: a bit per thread, in the scenario's thread order
    edge: int | None  #: hash((state key, thread)) of the step that ends the prefix


def explore(
    factory: Factory,
    *,
    bound: int = 2,
    failing: Callable[[Scheduler], bool] = _failed,
    max_schedules: int = 100_000,
    progress: Callable[[ExploreResult], None] | None = None,
    local: Callable[[Any], bool] | None = None,
    independent: Callable[[Any, Any], bool] | None = None,
) -> ExploreResult:
    """Explore the schedules of ``factory``'s threads with at most ``bound`` preemptions.

    ``local(step)`` names steps that touch only state no other thread of the scenario reads
    or writes: such a step commutes with every step of the others, so a switch just before
    it leads to the same states as a switch just after it, and the explorer only switches
    before *visible* steps (CHESS's rule; the scenario vouches for ``local``).
    ``independent(a, b)`` names more pairs of two threads' next steps that commute (the
    scenario vouches for them too); with the explorer's own relation
    (:mod:`mmkit.sched._reduction`) they drive the sleep sets.

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
    commute = independence(local, independent)

    bit = {name: 1 << i for i, name in enumerate(base.threads)}
    seen = Explored(len(bit))
    finals: set[int] = set()
    #: hash((state key, thread)) -> the key of the state that thread's step leads to: a
    #: key stands for the whole state, so the step leads there whichever path reached it,
    #: and a path that takes a known step needs no key (no digest of the machine)
    edges = Edges()
    paths = 0
    # Depth first without re-running every node: follow one path to its end, pushing the
    # alternatives met on the way; a pushed alternative is replayed from a fresh copy once.
    work: list[_Branch] = [_Branch((), None, 0, 0, None)]
    while work:
        if result.schedules >= max_schedules:
            result.complete = False
            break
        branch = work.pop()
        edge = branch.edge
        s = Scheduler(factory)
        s._retake(branch.prefix)  # a prefix the search took: no dry run (follow's) needed
        keys = StateKeys()
        here = edges.get(edge)
        last, spent, sleep = branch.last, branch.spent, branch.sleep
        while True:
            failed = failing(s)
            if failed or s.finished() or s.deadlock:
                result.schedules += 1
                if here is None:
                    here = keys.key(s)
                    edges.put(edge, here)
                finals.add(here)
                result.classes = len(finals)
                if failed:
                    result.failing += 1
                    _report_if_shorter(result, s, factory, local, failing)
                break
            # the same state reached with the same last thread, no more preemptions spent
            # and no fewer threads asleep has the same futures within the bound: explore it
            # once
            if here is None:  # a step no path took from the state before
                here = keys.key(s)
                edges.put(edge, here)
            if not seen.remember(hash((here, last)), spent, sleep):
                result.cache_hits += 1
                break
            result.states += 1
            ready = s.runnable()
            awake = [n for n in ready if not sleep & bit[n]]
            if not awake:  # all that could run sleep: an equivalent order was explored
                result.sleep_cuts += 1
                result.cache_hits += 1
                break
            if local is not None and last in awake and local(s.threads[last].pending):
                awake = [last]  # no switch before a local step: it commutes
            options = []
            for name in sorted(awake, key=lambda n: (n != last, n)):  # no switch first
                cost = 1 if (last is not None and name != last and last in ready) else 0
                if spent + cost <= bound:
                    options.append((name, spent + cost))
            pending = {n: step for n in ready if (step := s.threads[n].pending) is not None}
            # Sleep sets (Godefroid) under the bound: once the branch that goes on with
            # ``last`` is explored, a sibling need not run last's step first while it
            # commutes with what ran since; moving it to the front of such a schedule never
            # costs a preemption more. Only the no-switch branch may put its thread to
            # sleep: moving another thread's step first can cost more (Coons et al.,
            # "Bounded partial-order reduction", OOPSLA 2013)
            first = options[0][0]
            asleep = [u for u in ready if sleep & bit[u] or u == last == first]
            for name, cost in reversed(options[1:]):
                nap = sum(bit[u] for u in asleep if commute(pending[u], pending[name]))
                # this state, reached before with ``name`` running last, went on with it
                # as no switch: if that spent no more and slept no more, the branch's
                # first state is explored already, and needs no replay to find it so
                if seen.went_on(
                    hash((here, name)),
                    bit[name],
                    cost,
                    nap,
                    [bit[u] for u in ready if commute(pending[u], pending[name])],
                ):
                    result.cache_hits += 1
                    continue
                work.append(_Branch((*s.schedule, name), name, cost, nap, hash((here, name))))
                result.branches += 1
            last, spent = options[0]
            sleep = sum(bit[u] for u in asleep if u != last and commute(pending[u], pending[last]))
            s.step(last)
            # the state a step leads to is known when a path took it from this state before
            edge = hash((here, last))
            here = edges.get(edge)
        # each path ends as a schedule or a cut; a path costs a fresh scenario (a machine
        # copy), so a call every PROGRESS_EVERY paths is noise next to the work
        paths += 1
        if progress and paths % PROGRESS_EVERY == 0:
            result.seconds = time.perf_counter() - t0
            progress(result)
    result.seconds = time.perf_counter() - t0
    if progress:
        progress(result)
    return result


def replay(factory: Factory, schedule: str) -> Scheduler:
    """Run ``schedule`` (e.g. ``"H H P H P"``) on a fresh instance of the scenario."""
    s = Scheduler(factory)
    s.follow(schedule)
    return s

"""Lesson 04's engine runs: patch 2/3's race (ptdump against hot-remove), cached per parameter.

The race is :func:`mmkit.scenarios.races.ptdump_race`: ``H`` runs ``remove_memory()`` (whose
``free_empty_tables()`` frees table pages, v5.7 ``arch/arm64/mm/mmu.c``) and ``P`` runs
``ptdump_show()`` (``/sys/kernel/debug/kernel_page_tables``, v5.4/v5.7
``arch/arm64/mm/ptdump_debugfs.c``). This module reads a learner's schedule, written as
thread letters (``"P P H H P"``) or folded (``"P*3 H*2 P"``, also ``"P×3"`` as the race
explorer prints it), replays it exactly (:func:`mmkit.sched.explore.replay`'s scheduler) and
says what happened: how many preemptions it spent, whether and when ``P`` read a freed table
page, and whether ``P`` held a pointer into a table when ``H`` freed it (kernel-facts §5:
a stale leaf is harmless, a freed table is not).

Explorations are cached (:func:`functools.lru_cache`), so checking 50 seeds stays fast.

>>> parse_schedule("P*2 H P")
('P', 'P', 'H', 'P')
>>> r = play("arm64-64k-42", shortest_failure("arm64-64k-42").shortest)
>>> r.failed_at is not None, r.preemptions
(True, 2)
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

from mmkit import policies
from mmkit.errors import InvalidArgument
from mmkit.scenarios.races import Race, ptdump_race
from mmkit.sched import Scheduler
from mmkit.sched.explore import ExploreResult

__all__ = [
    "LOCK_CONFIG",
    "RACE_CONFIGS",
    "THREADS",
    "ScheduleReport",
    "fewest_preemptions",
    "hot_remove_locks",
    "naive_race",
    "parse_schedule",
    "play",
    "safe_with_lock",
    "shortest_failure",
    "solo_steps",
]

#: Configurations whose naive race, one step per entry (``fine=True``), explores at bound 2
#: in about a second or less (``mmkit bench``): the variants of the scheduling exercises.
RACE_CONFIGS: tuple[str, ...] = ("arm64-4k-48", "arm64-64k-42", "arm64-4k-39")

#: The configuration of the lock question (any real layout where the race exists will do).
LOCK_CONFIG = "arm64-4k-48"

#: The race's threads: H hot-removes, P dumps the page tables.
THREADS: tuple[str, ...] = ("H", "P")

_TOKEN = re.compile(r"^([A-Za-z])\s*(?:[*×xX]\s*(\d+))?$")


def parse_schedule(text: str) -> tuple[str, ...]:
    """The thread letters of ``text``, unfolded: ``"P P H"``, ``"PPH"``, ``"P*2 H"`` and
    ``"P×2, H"`` all give ``('P', 'P', 'H')``. Raises :class:`~mmkit.errors.InvalidArgument`
    naming the first token it cannot read.

    >>> parse_schedule("P×3 H*2 p")
    ('P', 'P', 'P', 'H', 'H', 'P')
    """
    out: list[str] = []
    for raw in re.split(r"[\s,]+", str(text).strip()):
        if not raw:
            continue
        folded = re.sub(r"\s+", "", raw)
        m = _TOKEN.match(folded)
        if m is None and folded.isalpha():  # "PPH": one letter per step
            letters = tuple(folded.upper())
        elif m is not None:
            letters = (m.group(1).upper(),) * int(m.group(2) or 1)
        else:
            raise InvalidArgument(
                f"cannot read {raw!r} in the schedule: write thread letters (P P H) or "
                "runs (P*3 H*2)"
            )
        unknown = sorted(set(letters) - set(THREADS))
        if unknown:
            raise InvalidArgument(
                f"no thread {unknown[0]!r} in this race: H hot-removes, P dumps",
                choices=THREADS,
            )
        out.extend(letters)
    if not out:
        raise InvalidArgument("the schedule is empty: write thread letters, e.g. P P H")
    return tuple(out)


@functools.cache
def naive_race(config: str) -> Race:
    """``ptdump_race(config, "naive", fine=True)``: no lock around the walk."""
    return ptdump_race(config, "naive", fine=True)


@functools.cache
def shortest_failure(config: str, bound: int = 2) -> ExploreResult:
    """The naive race explored with at most ``bound`` preemptions."""
    return naive_race(config).explore(bound=bound)


def fewest_preemptions(config: str, most: int = 3) -> int | None:
    """The smallest preemption bound at which the explorer finds a failing schedule of the
    naive race (None if none up to ``most``)."""
    for bound in range(most + 1):
        if shortest_failure(config, bound).found:
            return bound
    return None


@functools.cache
def solo_steps(config: str, first: str) -> dict[str, int]:
    """Steps each thread takes when ``first`` runs to its end before the other starts."""
    s = Scheduler(naive_race(config).make)
    for name in (first, *(t for t in THREADS if t != first)):
        while not s.threads[name].done:
            s.step(name)
    return {n: len(t.steps) for n, t in s.threads.items()}


@dataclass(frozen=True)
class ScheduleReport:
    """What a schedule did to the naive race (see :func:`play`)."""

    steps: int  #: steps taken (up to a refused one)
    preemptions: int  #: switches away from a thread that could go on, up to the failure
    failed_at: int | None  #: 1-based step at which P's use-after-free was recorded
    refused: str | None  #: why the scheduler refused a step, if it did
    freed: tuple[int, ...]  #: table pages (pfns) H freed
    pointer_at_free: tuple[int, ...]  #: freed tables P held a pointer into when H freed them
    p_done: bool  #: P finished its walk
    report: str  #: the first kernel report, KASAN style ("" if none)


def play(config: str, schedule: str | tuple[str, ...]) -> ScheduleReport:
    """Replay ``schedule`` on the naive race of ``config`` and report what happened.

    ``P`` *holds a pointer* into a table page when it is on ``P``'s walk path: the table it
    is reading, the ones above it that it will come back to (v5.4's ``walk_p?d()`` loops
    step a pointer through each), and a child it is about to enter (``Step.result`` of
    ``P``'s reads)."""
    names = parse_schedule(schedule) if isinstance(schedule, str) else tuple(schedule)
    return _play(config, names)


@functools.cache
def _play(config: str, names: tuple[str, ...]) -> ScheduleReport:
    s = Scheduler(naive_race(config).make)
    preemptions, last = 0, None
    failed_at = refused = None
    freed: list[int] = []
    held_at_free: list[int] = []
    pending: set[int] = set()
    for i, name in enumerate(names, 1):
        if last is not None and name != last and last in s.runnable():
            preemptions += 1
        t = s.threads[name]
        if t.done:
            refused = f"step {i}: {name} has already finished (after {len(t.steps)} steps)"
            break
        if s.blocked(name):
            refused = f"step {i}: {name} is blocked on a lock"
            break
        seen = len(s.machine.events)
        step = s.step(name)
        last = name
        if name == "P" and step.action == "read" and step.result is not None:
            pending = set(step.result)
        if name == "H" and step.action == "free" and step.note == "table" and step.pfn:
            for pfn in step.tables or (step.pfn,):  # a bulk free: each table page
                freed.append(pfn)
                if pfn in pending:
                    held_at_free.append(pfn)
        if any(e.kind == "use-after-free" and e.thread == "P" for e in s.machine.events[seen:]):
            failed_at = i
            break
    uaf = [e for e in s.machine.events if e.kind == "use-after-free"]
    return ScheduleReport(
        len(s.schedule),
        preemptions,
        failed_at,
        refused,
        tuple(freed),
        tuple(held_at_free),
        s.threads["P"].done,
        uaf[0].report() if uaf else "",
    )


def hot_remove_locks(policy: str, config: str = LOCK_CONFIG) -> dict[str, str]:
    """lock name -> mode, every lock ``H`` takes in ``policy``'s race (run alone).

    >>> hot_remove_locks("v5.7")
    {'device_hotplug_lock': 'exclusive', 'mem_hotplug_lock': 'write'}
    """
    return dict(_hot_remove_locks(policy, config))


@functools.cache
def _hot_remove_locks(policy: str, config: str) -> tuple[tuple[str, str], ...]:
    s = Scheduler(ptdump_race(config, policy).make)
    while not s.threads["H"].done:
        s.step("H")
    out: dict[str, str] = {}
    for st in s.threads["H"].steps:
        if st.action == "lock" and st.note:
            lock, _, mode = st.note.partition(":")
            out[lock] = mode or "exclusive"
    return tuple(out.items())


@functools.cache
def safe_with_lock(
    policy: str, ptdump_lock: bool, config: str = LOCK_CONFIG, bound: int = 2
) -> bool:
    """Whether no schedule with at most ``bound`` preemptions fails when ptdump does (or
    does not) take ``get_online_mems()`` under ``policy``'s hot-remove (the policy's
    ``ptdump_hotplug_lock`` field switched)."""
    pol = dataclasses.replace(policies.get(policy), ptdump_hotplug_lock=ptdump_lock)
    return not ptdump_race(config, pol).explore(bound=bound).found

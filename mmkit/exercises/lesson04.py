"""Lesson 04's exercises: patch 2/3, the memory-hotplug lock around the arm64 ptdump walk.

Hot-remove frees empty page-table pages (``free_empty_tables()``, V6 on; merged as
bbd6ec605c0f for v5.7) while ``cat /sys/kernel/debug/kernel_page_tables`` may be walking
them (``ptdump_show()``). A stale leaf entry only makes the dump stale; a freed *table* page
is read after it is freed (kernel-facts §5). The patch brackets the walk with
``get_online_mems()`` (``percpu_down_read(&mem_hotplug_lock)``), which excludes hot-remove's
``mem_hotplug_begin()`` (``percpu_down_write``). The race is
:func:`mmkit.scenarios.races.ptdump_race`; every answer comes from running it:

* ``04a`` (text): be the scheduler. Write a schedule after which ``P`` has read a table page
  ``H`` freed, with at most 2 preemptions; the checker replays it
  (:func:`mmkit.exercises._lesson04_engine.play`). The solution is the explorer's shortest
  failing schedule.
* ``04b`` (number): the fewest preemptions a failing schedule needs: the smallest bound at
  which :func:`mmkit.sched.explore.explore` finds one.
* ``04c`` (choice): which lock, taken by ptdump, makes the walk safe: a lock protects only
  against a thread that takes it too; the engine lists the locks hot-remove takes under the
  policy (from V6 no ``init_mm.page_table_lock``, kernel-facts §6.6; never ``init_mm``'s
  mmap lock, which v5.7's generic walker already held, kernel-facts §5) and explores the race
  with the policy's ``ptdump_hotplug_lock`` on and off.
* ``04d`` (number): the power of ten of the haystack, all interleavings of the two threads'
  steps, which the explorer never has to search whole.

>>> from mmkit.exercises import get
>>> ex = get("04b")
>>> v = ex.variant(0)
>>> ex.check(v, 0).correct, ex.check(v, ex.answer(v)).correct
(False, True)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from mmkit.errors import InvalidArgument
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.exercises._lesson04_engine import (
    LOCK_CONFIG,
    RACE_CONFIGS,
    fewest_preemptions,
    hot_remove_locks,
    parse_schedule,
    play,
    safe_with_lock,
    shortest_failure,
    solo_steps,
)
from mmkit.sched.explore import haystack

__all__ = [
    "LOCK_OPTIONS",
    "LOCK_POLICIES",
    "BeTheSchedulerExercise",
    "FewestPreemptionsExercise",
    "HaystackExercise",
    "WhichLockExercise",
    "fold",
]

#: Patch versions whose hot-remove the lock question is asked about (all from V6 on).
LOCK_POLICIES: tuple[str, ...] = ("v5.7", "v7", "v6")

#: option text -> (lock name in the engine, mode ptdump would take it in)
LOCK_OPTIONS: dict[str, tuple[str, str]] = {
    "init_mm's mmap lock, read side": ("init_mm.mmap_lock", "read"),
    "init_mm.page_table_lock (ptl)": ("init_mm.page_table_lock", "exclusive"),
    "mem_hotplug_lock, read side": ("mem_hotplug_lock", "read"),
}

_MAX_PREEMPTIONS = 2


def fold(schedule: str) -> str:
    """A schedule with runs folded as the learner may type it: ``"P P H"`` -> ``"P*2 H"``.

    >>> fold("P P P H H P")
    'P*3 H*2 P'
    """
    runs: list[list[Any]] = []
    for name in schedule.split():
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return " ".join(n if k == 1 else f"{n}*{k}" for n, k in runs)


def _race_call(config: str) -> str:
    return f'ptdump_race("{config}", "naive", fine=True)'


# --------------------------------------------------------------------------- 04a
class BeTheSchedulerExercise(Exercise):
    """04a: a schedule after which ptdump has read a freed table page (≤ 2 preemptions)."""

    id = "04a"
    lesson = "04"
    title = "Be the scheduler: make ptdump read a freed table page"
    kind = "text"

    def variant(self, seed: int) -> Variant:
        config = RACE_CONFIGS[seed % len(RACE_CONFIGS)]
        steps = solo_steps(config, "H")
        return Variant(
            self.id,
            seed,
            f"In <code>{_race_call(config)}</code> (<b>{config}</b>, a real kernel layout, "
            f"Linux v5.4; no lock around the walk), <b>H</b> hot-removes a memory block "
            f"({steps['H']} steps alone) and <b>P</b> dumps the kernel page tables. Write a "
            "schedule after which KASAN reports that <b>P</b> read a table page <b>H</b> "
            f"freed, with at most {_MAX_PREEMPTIONS} preemptions. Thread letters in order "
            "(<code>P P H H P</code>) or runs (<code>P*3 H*2 P</code>); find the counts by "
            "stepping a <code>RaceExplorer</code> on this race.",
            self.kind,
            hint="P reads one table page per step and remembers the tables below it. Let P "
            "run until it holds a pointer to a table H will free (a table mapping the "
            "block), switch to H and watch for its free step in free_empty_tables(), then "
            "give P the step that reads that table.",
            params={"config": config},
        )

    def answer(self, variant: Variant) -> str:
        result = shortest_failure(variant.params["config"])
        assert result.shortest is not None, "the naive race must fail"
        return result.shortest

    def check(self, variant: Variant, answer: Any) -> Feedback:
        try:
            names = parse_schedule(str(answer))
        except InvalidArgument as err:
            return Feedback(False, str(err))
        r = play(variant.params["config"], names)
        if r.refused:
            return Feedback(False, f"The scheduler refused {r.refused}.")
        if r.failed_at is not None:
            if r.preemptions <= _MAX_PREEMPTIONS:
                return Feedback(
                    True,
                    f"You win: at step {r.failed_at}, with {r.preemptions} preemption"
                    f"{'' if r.preemptions == 1 else 's'}, P read a table page H had "
                    f"freed. The kernel log: {r.report.splitlines()[0]}.",
                )
            return Feedback(
                False,
                f"P did read a freed table page, but your schedule spends {r.preemptions} "
                f"preemptions; at most {_MAX_PREEMPTIONS} are needed: fewer switches, "
                "longer runs.",
            )
        if not r.freed:
            if r.p_done:
                return Feedback(
                    False,
                    "P ended before H freed any table page: P must hold a pointer before H "
                    "frees. Switch to H while P is still walking.",
                )
            return Feedback(
                False,
                "H has not freed a table page yet: free_empty_tables() runs after the unmap "
                "pass. Let H run further.",
            )
        if not r.pointer_at_free:
            return Feedback(
                False,
                "H freed table pages while P held no pointer into them: P must hold a "
                "pointer before H frees. A walk that starts after the free never sees the "
                "table; one that has finished no longer uses it.",
            )
        return Feedback(
            False,
            "H freed a table page P still points to, but P has not read it since: let P walk "
            "on (its next steps) until it reaches that table.",
        )

    def solution(self, variant: Variant) -> str:
        config = variant.params["config"]
        shortest = self.answer(variant)
        r = play(config, shortest)
        result = shortest_failure(config)
        return (
            f"{fold(shortest)}, that is: {shortest}. P reads tables until it holds a pointer "
            f"to the table page with pfn {(r.pointer_at_free or r.freed)[0]:#x}; H then unmaps "
            "the block and its "
            f"free_empty_tables() frees that page; P's next step reads it: "
            f"{r.report.splitlines()[0]} ({r.preemptions} preemptions, {r.steps} steps). "
            f"The explorer, {result.summary()}."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        config = variant.params["config"]
        h_first = solo_steps(config, "H")
        p_first = solo_steps(config, "P")
        toks = self.answer(variant).split()
        switch = toks.index("H")
        more = [*toks[: switch - 1], "H", "P", *toks[switch + 1 :]]
        return (
            Mistake(f"H*{h_first['H']} P*{h_first['P']}", "P must hold a pointer before H frees"),
            Mistake(f"P*{p_first['P']} H*{p_first['H']}", "P must hold a pointer before H frees"),
            Mistake(" ".join(toks[:-1]), "let P walk on"),
            Mistake(" ".join(more), f"at most {_MAX_PREEMPTIONS} are needed"),
            Mistake("P Q", "no thread 'Q'"),
        )


# --------------------------------------------------------------------------- 04b
class FewestPreemptionsExercise(Exercise):
    """04b: the fewest preemptions any failing schedule of the naive race needs."""

    id = "04b"
    lesson = "04"
    title = "How few preemptions does the race need?"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config = RACE_CONFIGS[seed % len(RACE_CONFIGS)]
        return Variant(
            self.id,
            seed,
            f"In <code>{_race_call(config)}</code> (<b>{config}</b>, a real kernel layout, "
            "Linux v5.4), what is the <b>fewest preemptions</b> a schedule needs for P to "
            "read a freed table page? (A preemption is a switch away from a thread that "
            "could have gone on; switching away from a finished thread is free.)",
            self.kind,
            hint="With no preemption at all, one thread runs to its end before the other "
            "starts. Then count the switches in the schedules that do fail, and ask which "
            "of them a finished thread would make free.",
            params={"config": config},
        )

    def answer(self, variant: Variant) -> int:
        fewest = fewest_preemptions(variant.params["config"])
        assert fewest is not None, "the naive race must fail"
        return fewest

    def check(self, variant: Variant, answer: Any) -> Feedback:
        n = self.parse(variant, answer)
        right = self.answer(variant)
        if n == right:
            return Feedback(
                True,
                f"Right: the explorer finds no failing schedule with {right - 1} and finds "
                f"one with {right}.",
            )
        if n < 0:
            return Feedback(False, "A count of switches cannot be negative.")
        if n == 0:
            return Feedback(
                False,
                "With 0, one thread runs whole before the other: then P ends first or "
                "starts after, and never holds a pointer while H frees.",
            )
        if n > right:
            return Feedback(
                False,
                f"{n} is enough, but fewer suffice: once H has freed the table, let H run "
                "to its end; switching away from a finished thread costs nothing.",
            )
        return Feedback(False, "Too few: the explorer finds no failing schedule with that.")

    def solution(self, variant: Variant) -> str:
        config = variant.params["config"]
        right = self.answer(variant)
        lines = [
            f"bound {b}: {'fails' if shortest_failure(config, b).found else 'no failure'} "
            f"({shortest_failure(config, b).schedules} schedules)"
            for b in range(right + 1)
        ]
        short = shortest_failure(config).shortest or ""
        return (
            f"{right}. Explored: {'; '.join(lines)}. One switch from P to H once P holds "
            "a pointer; H runs to its end and P, resuming, reads the freed table. The "
            f"explorer's shortest failing schedule ({fold(short)}) spends 2, because it "
            "switches back before H is done."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = self.answer(variant)
        return (
            Mistake(0, "then P ends first or starts after"),
            Mistake(right + 1, "fewer suffice"),
        )


# --------------------------------------------------------------------------- 04c
class WhichLockExercise(Exercise):
    """04c: which lock, taken by ptdump around its walk, keeps hot-remove out."""

    id = "04c"
    lesson = "04"
    title = "Which lock makes the walk safe?"
    kind = "choice"

    def variant(self, seed: int) -> Variant:
        policy = LOCK_POLICIES[seed % len(LOCK_POLICIES)]
        options = list(LOCK_OPTIONS)
        random.Random(seed).shuffle(options)
        return Variant(
            self.id,
            seed,
            f"Hot-remove runs as in <b>{policy}</b> (<b>{LOCK_CONFIG}</b>, a real kernel "
            "layout). ptdump may take <b>one</b> lock around its whole walk of the kernel "
            "page tables. Which one guarantees it never reads a table page hot-remove "
            "frees?",
            self.kind,
            tuple(options),
            hint="A lock excludes only threads that take it too. Which locks does "
            "remove_memory() take in this version, and in which mode?",
            params={"policy": policy},
        )

    def _verdicts(self, policy: str) -> dict[str, bool]:
        held = hot_remove_locks(policy)
        out = {}
        for option, (lock, mode) in LOCK_OPTIONS.items():
            # a reader is excluded by a writer (or an exclusive holder) of the same lock
            excluded = held.get(lock) in ("write", "exclusive")
            if excluded and lock == "mem_hotplug_lock" and mode == "read":
                # the engine runs this one: the policy's ptdump_hotplug_lock on and off
                excluded = safe_with_lock(policy, True) and not safe_with_lock(
                    policy, False, bound=1
                )
            out[option] = excluded
        return out

    def answer(self, variant: Variant) -> str:
        safe = [o for o in variant.options if self._verdicts(variant.params["policy"])[o]]
        assert len(safe) == 1, safe
        return safe[0]

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        policy = variant.params["policy"]
        held = hot_remove_locks(policy)
        takes = ", ".join(f"{k} ({m})" for k, m in held.items())
        if picked == self.answer(variant):
            return Feedback(
                True,
                f"Right: {policy}'s remove_memory() takes mem_hotplug_lock for write "
                "(mem_hotplug_begin()), so a reader holding it (get_online_mems()) and a "
                "hot-remove never overlap; the explorer finds no failing schedule.",
            )
        lock, _ = LOCK_OPTIONS[picked]
        if lock == "init_mm.page_table_lock":
            return Feedback(
                False,
                f"From V6, hot-remove takes no ptl: {policy}'s remove_memory() takes only "
                f"{takes}. A lock only ptdump takes excludes nobody (V3 held the ptl over "
                "its whole teardown; V6 dropped it).",
            )
        return Feedback(
            False,
            "Hot-remove never takes init_mm's mmap lock: v5.7's generic ptdump_walk_pgd() "
            f"already holds it for read, and hot-remove still ran ({policy}: {takes}). Any "
            "lock around the walk is not enough; it must be one the freeing side takes.",
        )

    def solution(self, variant: Variant) -> str:
        policy = variant.params["policy"]
        takes = ", ".join(f"{k} ({m})" for k, m in hot_remove_locks(policy).items())
        return (
            f"{self.answer(variant)}. {policy}'s remove_memory() takes {takes}: "
            "mem_hotplug_begin() is percpu_down_write(&mem_hotplug_lock) and "
            "get_online_mems() is percpu_down_read(&mem_hotplug_lock), so they exclude each "
            "other. The explorer agrees: with the policy's ptdump_hotplug_lock it finds no "
            "failing schedule with 2 preemptions, without it it does. The ptl is not taken "
            "by hot-remove from V6 on, and init_mm's mmap lock never."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        by_lock = {lock: o for o, (lock, _) in LOCK_OPTIONS.items()}
        return (
            Mistake(by_lock["init_mm.page_table_lock"], "From V6, hot-remove takes no ptl"),
            Mistake(by_lock["init_mm.mmap_lock"], "never takes init_mm's mmap lock"),
        )


# --------------------------------------------------------------------------- 04d
class HaystackExercise(Exercise):
    """04d: the power of ten of the number of interleavings of the race."""

    id = "04d"
    lesson = "04"
    title = "How big is the haystack?"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config = RACE_CONFIGS[seed % len(RACE_CONFIGS)]
        steps = solo_steps(config, "H")
        return Variant(
            self.id,
            seed,
            f"In <code>{_race_call(config)}</code> (<b>{config}</b>), H takes {steps['H']} "
            f"steps and P {steps['P']} (H first, then P). How many ways can these steps "
            "interleave (each thread keeping its own order)? Give the <b>power of ten</b>: "
            "the number of digits minus one.",
            self.kind,
            hint="Choose which of the H+P positions P's steps take: a binomial coefficient. "
            "Python: len(str(math.comb(h + p, p))) - 1.",
            params={"config": config},
        )

    def answer(self, variant: Variant) -> int:
        steps = solo_steps(variant.params["config"], "H")
        return len(str(haystack([steps["H"], steps["P"]]))) - 1

    def check(self, variant: Variant, answer: Any) -> Feedback:
        n = self.parse(variant, answer)
        right = self.answer(variant)
        steps = solo_steps(variant.params["config"], "H")
        total = sum(steps.values())
        if n == right:
            return Feedback(
                True,
                f"Right: about 10^{right} interleavings, far too many to run one by one; "
                "the explorer bounds preemptions instead.",
            )
        if n == len(str(total)) - 1:
            return Feedback(
                False,
                "That is the number of steps: a haystack counts orderings, not steps.",
            )
        return Feedback(
            False,
            "Not that power of ten: count the ways to pick P's positions among all steps.",
        )

    def solution(self, variant: Variant) -> str:
        result = shortest_failure(variant.params["config"])
        s = result.thread_steps
        return (
            f"{self.answer(variant)}: C({s['H']} + {s['P']}, {s['P']}) = {result.haystack} "
            f"interleavings. Bounded to 2 preemptions, the explorer ran {result.schedules} "
            f"schedules ({result.states} states) and found the failure."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        steps = solo_steps(variant.params["config"], "H")
        return (Mistake(len(str(sum(steps.values()))) - 1, "counts orderings, not steps"),)


register(BeTheSchedulerExercise())
register(FewestPreemptionsExercise())
register(WhichLockExercise())
register(HaystackExercise())

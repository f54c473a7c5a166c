"""Lesson 05, exercise 05c: be the scheduler on patch 3/3's vmalloc race (kernel-facts 7.2).

``V`` runs ``vmalloc()`` (``vmap_page_range()`` keeps a pointer into a table page without a
lock) while ``H`` hot-removes the block whose memmap shares that table, on a ``teach-*``
layout under ``naive`` or ``v3``. The learner's schedule is replayed on the engine
(:func:`mmkit.exercises._lesson05_engine.replay_schedule`); it wins when the kernel log
records a use-after-free or a lost mapping.

>>> parse_schedule("V V H*3 V")
['V', 'V', 'H', 'H', 'H', 'V']
>>> compress_schedule("H H H V")
'H*3 V'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mmkit.errors import InvalidArgument, MmkitError
from mmkit.exercises import Exercise, Feedback, Mistake, Variant
from mmkit.exercises._lesson05_engine import (
    WIN_KINDS,
    _race,
    replay_schedule,
    vmalloc_failure,
)

__all__ = ["VmallocSchedulerExercise", "compress_schedule", "parse_schedule"]

# ------------------------------------------------------------------------------------ 05c
_TOKEN = re.compile(r"^([A-Za-z])(?:[*x×](\d+))?$")


def parse_schedule(text: str) -> list[str]:
    """``"V V V H*20 V"`` -> ``["V", "V", "V", "H", ... , "V"]`` (``H*20``, ``Hx20``)."""
    out: list[str] = []
    for token in text.replace(",", " ").split():
        m = _TOKEN.match(token)
        if not m:
            raise InvalidArgument(
                f"{token!r} is not a thread step: write letters, e.g. 'V V H*20 V'"
            )
        out.extend([m.group(1).upper()] * int(m.group(2) or 1))
    return out


def compress_schedule(schedule: str) -> str:
    """``"H H H V"`` -> ``"H*3 V"``."""
    out: list[str] = []
    names = schedule.split()
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and names[j] == names[i]:
            j += 1
        out.append(names[i] if j - i == 1 else f"{names[i]}*{j - i}")
        i = j
    return " ".join(out)


@lru_cache(maxsize=32)
def _alone(config: str, policy: str, name: str) -> int:
    """How many steps thread ``name`` takes when it runs first, alone, to its end."""
    from mmkit.sched import Scheduler

    s = Scheduler(_race(config, policy).make)
    n = 0
    while not s.threads[name].done:
        s.step(name)
        n += 1
    return n


class VmallocSchedulerExercise(Exercise):
    """05c: be the scheduler: make V's vmalloc() write into a table H frees, or lose its area."""

    id = "05c"
    lesson = "05"
    title = "Be the scheduler: vmalloc() against hot-remove"
    kind = "text"

    CONFIGS = ("teach-4k-39", "teach-16k-47", "teach-64k-42", "teach-4k-48")
    POLICIES = ("naive", "v3")

    def variant(self, seed: int) -> Variant:
        config = self.CONFIGS[seed % len(self.CONFIGS)]
        policy = self.POLICIES[(seed // len(self.CONFIGS)) % 2]
        return Variant(
            self.id,
            seed,
            f"<code>{config}</code> (a <b>teaching</b> layout, not a kernel's), policy "
            f"<b>{policy}</b>: <code>H</code> hot-removes a block while <code>V</code> runs "
            "vmalloc() and uses its area. Write a schedule (thread letters; <code>H*20</code> "
            "means 20 steps of H); after it the threads run on, H first. You win if V writes "
            "into a freed table page, or its new mapping is lost.",
            self.kind,
            (),
            "V takes a pointer into the shared table page early and uses it late. Let V take "
            "it, then let H scan the table and free it, then let V go on.",
            {"config": config, "policy": policy},
        )

    def answer(self, variant: Variant) -> str:
        shortest, _ = vmalloc_failure(variant.params["config"], variant.params["policy"])
        if shortest is None:
            raise MmkitError(f"no failing schedule for {variant.params}")
        return compress_schedule(shortest)

    def _outcome(self, variant: Variant, text: str) -> tuple[bool, str]:
        p = variant.params
        try:
            s = replay_schedule(p["config"], p["policy"], parse_schedule(text))
        except MmkitError as e:
            return False, f"That schedule cannot run: {e}"
        bad = [e for e in s.machine.events if e.kind in WIN_KINDS]
        if bad:
            return True, bad[0].report().splitlines()[0]
        return False, ""

    def check(self, variant: Variant, answer: Any) -> Feedback:
        text = self.parse(variant, answer)
        won, what = self._outcome(variant, text)
        if won:
            return Feedback(True, f"You broke it: {what}")
        if what:
            return Feedback(False, what)
        return Feedback(
            False,
            "Everything stayed consistent. V must hold its pointer into the shared table "
            "before H scans that table (and use it only after H has freed it): too late, and "
            "V's entry keeps the table alive; too early, and V is done before H scans.",
        )

    def solution(self, variant: Variant) -> str:
        p = variant.params
        _, events = vmalloc_failure(p["config"], p["policy"])
        lock = (
            " H's init_mm.page_table_lock does not help: V takes that lock only to install a "
            "new table, never while it walks."
            if p["policy"] == "v3"
            else ""
        )
        return (
            f"{self.answer(variant)} (the shortest failing schedule the explorer finds). "
            f"Kernel log: {events[0].splitlines()[0] if events else ''}.{lock}"
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        p = variant.params
        return tuple(
            Mistake(f"{name}*{_alone(p['config'], p['policy'], name)}", "must hold its pointer")
            for name in ("V", "H")
        )

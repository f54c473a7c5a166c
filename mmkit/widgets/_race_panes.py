"""The text of the race explorer's panes, built from the scheduler's records.

Each function here turns engine records (a :class:`~mmkit.sched.scheduler.ThreadStatus`, the lock
table, kernel events, an :class:`~mmkit.sched.explore.ExploreResult`) into the words or HTML
one pane of :class:`~mmkit.widgets.race.RaceExplorer` shows; the widget only decides when.

>>> from mmkit.scenarios.races import ptdump_race
>>> s = ptdump_race("arm64-4k-48", "v5.7").scheduler()
>>> s.follow(["H", "H"])
>>> [button_text(st, s.locks, {"H": "hot-remove", "P": "ptdump"}) for st in s.status()]
['Step H (hot-remove)', 'P waits for mem_hotplug_lock (held by H: write)']
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from mmkit.events import KernelEvent
from mmkit.sched.explore import FAILING_KINDS, ExploreResult
from mmkit.sched.locks import LockTable
from mmkit.sched.scheduler import Scheduler, ThreadStatus
from mmkit.viz._common import RED
from mmkit.widgets._race_spec import replay_call, short_schedule

__all__ = ["banner_html", "button_text", "goal_html", "result_html", "state_html"]

_BIG = "<div style='font-size:15px'>"


def button_text(st: ThreadStatus, locks: LockTable, what: Mapping[str, str]) -> str:
    """A thread's step button: what it does, or which lock it waits for and who holds it."""
    if st.state == "done":
        return f"{st.name} is done"
    if st.state == "blocked":
        holders = locks.holders.get(st.waits_for or "", {})
        held = ", ".join(f"{t}: {m}" for t, m in sorted(holders.items())) or "nobody"
        return f"{st.name} waits for {st.waits_for} (held by {held})"
    return f"Step {st.name} ({what.get(st.name, st.label)})"


def state_html(st: ThreadStatus) -> str:
    """A thread's next step (``Step.describe()``, addresses in hex), steps and locks held."""
    holds = ", ".join(f"{lock} ({mode})" for lock, mode in st.holds.items()) or "none"
    state = {"runnable": "next", "blocked": "blocked at", "done": "done"}[st.state]
    return (
        f"<div style='font-size:12px'><b>{state}</b>: "
        f"{html.escape(st.next or 'returned')}<br>steps taken: {st.steps}; "
        f"locks held: {html.escape(holds)}</div>"
    )


def goal_html(
    s: Scheduler,
    goal: str,
    events: Sequence[KernelEvent],
    policy: str,
    result: ExploreResult | None,
) -> str:
    """The win/lose line: the goal; won once a failing kernel event is recorded; lost when
    every thread finished cleanly (and, if explore found no failing schedule under
    ``policy``, that the policy closes the race)."""
    failing = [e for e in events if e.kind in FAILING_KINDS]
    if failing:
        head = failing[0].report().splitlines()[0]
        return f"{_BIG}<b>✔ You win</b> in {len(s.schedule)} steps: {html.escape(head)}</div>"
    if s.deadlock:
        return f"{_BIG}<b>Deadlock</b>: every thread is stuck.</div>"
    if s.finished():
        why = ""
        if result is not None and not result.found:
            why = (
                f" Explore found no failing schedule under {policy} with up to "
                f"{result.bound} preemptions: this policy closes the race."
            )
        return (
            f"{_BIG}<b>✘ Every thread finished and nothing broke.</b>{html.escape(why)} "
            "Undo or reset and try another order.</div>"
        )
    return f"{_BIG}<b>Goal:</b> {html.escape(goal)}.</div>"


def banner_html(events: Sequence[KernelEvent]) -> str:
    """The red banner with the kernel log (KASAN-style reports) once something failed;
    empty while nothing has."""
    if not any(e.kind in FAILING_KINDS for e in events):
        return ""
    reports = "\n\n".join((f"[{e.thread}] " if e.thread else "") + e.report() for e in events)
    return (
        f"<div class='mmkit-banner' style='border:2px solid {RED};background:#fdecea;"
        "padding:4px 8px;border-radius:4px'><b>The kernel reported a bug</b>"
        "<pre style='margin:4px 0;white-space:pre-wrap'>"
        f"{html.escape(reports)}</pre></div>"
    )


def result_html(result: ExploreResult, race: Any, policy: str) -> str:
    """What explore found: the verdict and counts, the shortest failing schedule folded,
    and the Python that replays it."""
    lines = [
        f"<b>{'FAILS' if result.found else 'never fails'}</b> under "
        f"{html.escape(policy)} with up to {result.bound} preemptions: "
        f"{result.schedules} schedules in {result.classes} equivalence classes, "
        f"{result.states} states, {result.failing} failing ({result.seconds:.2f} s)"
        + ("" if result.complete else "; cut short by max_schedules")
    ]
    if result.shortest:
        lines.append(
            f"shortest failing schedule ({len(result.shortest.split())} steps): "
            f"<code>{html.escape(short_schedule(result.shortest))}</code>"
        )
        lines.append(
            "<pre style='white-space:pre-wrap;font-size:11px;margin:2px 0'>"
            f"{html.escape(replay_call(race, result.shortest))}</pre>"
        )
    return "<div>" + "<br>".join(lines) + "</div>"

"""The records a swimlane is drawn from: lock holds and the step of each kernel event.

Both are read from a :class:`mmkit.sched.Scheduler` (see :mod:`mmkit.viz.timeline`, which
re-exports them). ``KernelEvent.step`` indexes the machine's history, and a scheduler makes
its machine's history its own, so each event names the step whose performing recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmkit import _validate
from mmkit.events import KernelEvent

__all__ = ["LockHold", "event_steps", "lock_holds"]


@dataclass(frozen=True)
class LockHold:
    """One lock held by one thread: from step ``start`` to ``end`` (1-based step numbers;
    ``end`` is None while it is still held)."""

    thread: str
    lock: str
    mode: str  #: "read", "write" or "exclusive"
    start: int
    end: int | None
    slot: int  #: 0 for the outermost lock the thread held then, 1 for one taken inside it...

    @property
    def shared(self) -> bool:
        return self.mode == "read"


def lock_holds(scheduler: Any) -> list[LockHold]:
    """Every lock hold in ``scheduler.history``, in the order they were taken."""
    _validate.shaped(scheduler, "scheduler", "a Scheduler", "threads", "history", "machine")
    open_: dict[str, dict[str, tuple[int, str, int]]] = {}
    done: list[LockHold] = []
    for k, (name, step) in enumerate(zip(scheduler.schedule, scheduler.history, strict=True)):
        mine = open_.setdefault(name, {})
        if step.action == "lock":
            lock, _, mode = (step.note or "").partition(":")
            used = {slot for _, _, slot in mine.values()}
            slot = next(i for i in range(len(used) + 1) if i not in used)
            mine[lock] = (k + 1, mode or "exclusive", slot)
        elif step.action == "unlock" and step.note:
            lock = step.note.partition(":")[0]
            if lock in mine:
                start, mode, slot = mine.pop(lock)
                done.append(LockHold(name, lock, mode, start, k + 1, slot))
    for name, mine in open_.items():
        for lock, (start, mode, slot) in mine.items():
            done.append(LockHold(name, lock, mode, start, None, slot))
    return sorted(done, key=lambda h: (h.start, h.thread, h.lock))


# ------------------------------------------------------------------ events -> steps
def event_steps(scheduler: Any) -> list[tuple[KernelEvent, int | None]]:
    """Each kernel event of ``scheduler.machine`` with the index in ``scheduler.history``
    of the step whose performing recorded it (None: recorded before any step was taken).
    See the module docstring for why this is not simply ``KernelEvent.step``."""
    _validate.shaped(scheduler, "scheduler", "a Scheduler", "threads", "history", "machine")
    events = list(scheduler.machine.events)
    if not events:
        return []
    if scheduler.machine.history is scheduler.history:
        return [(e, e.step) for e in events]
    # a machine whose history is not the scheduler's: the last step of the event's thread
    # (or the last step) is the best guess
    last = len(scheduler.history) - 1
    guess = []
    for e in events:
        ks = [k for k, n in enumerate(scheduler.schedule) if n == e.thread]
        guess.append((e, ks[-1] if ks else (last if last >= 0 else None)))
    return guess

"""The records a swimlane is drawn from: lock holds and the step of each kernel event.

Both are read from a :class:`mmkit.sched.Scheduler` (see :mod:`mmkit.viz.timeline`, which
re-exports them). ``KernelEvent.step`` indexes the *machine's* history, which only
:meth:`Machine.run <mmkit.machine.Machine.run>` fills; the scheduler keeps its own
``history`` and the race machines do not record, so under a scheduler ``KernelEvent.step``
is ``None``. :func:`event_steps` therefore uses it only when the machine's history *is* the
scheduler's, and otherwise replays the schedule on a fresh copy of the scenario (the
scheduler is deterministic), noting after which step each event appeared. The copy is kept
(for a few scenarios) and moved on as the scheduler moves on, so a stepping view pays one
step per step, not a replay per redraw.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mmkit.errors import InvalidArgument
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
@dataclass
class _Replay:
    factory: Any
    schedule: list[str]
    scheduler: Any
    after: list[int]  #: len(machine.events) after each step (-1: before any step)
    before: int  #: events recorded before the first step


_REPLAYS: OrderedDict[int, _Replay] = OrderedDict()
_MAX_REPLAYS = 4


def _replayed(scheduler: Any) -> _Replay | None:
    """A fresh copy of the scenario that followed ``scheduler.schedule``, noting the
    number of events after each step (extended in place when the scheduler moved on)."""
    from mmkit.sched.scheduler import Scheduler

    factory = getattr(scheduler, "factory", None)
    if factory is None:
        return None
    schedule = list(scheduler.schedule)
    r = _REPLAYS.get(id(factory))
    if r is None or r.factory is not factory or r.schedule != schedule[: len(r.schedule)]:
        fresh = Scheduler(factory)
        r = _Replay(factory, [], fresh, [], len(fresh.machine.events))
    try:
        for name in schedule[len(r.schedule) :]:
            r.scheduler.step(name)
            r.schedule.append(name)
            r.after.append(len(r.scheduler.machine.events))
    except InvalidArgument:  # the copy refused a step: this scheduler is not its factory's
        _REPLAYS.pop(id(factory), None)
        return None
    _REPLAYS[id(factory)] = r
    _REPLAYS.move_to_end(id(factory))
    while len(_REPLAYS) > _MAX_REPLAYS:
        _REPLAYS.popitem(last=False)
    return r


def event_steps(scheduler: Any) -> list[tuple[KernelEvent, int | None]]:
    """Each kernel event of ``scheduler.machine`` with the index in ``scheduler.history``
    of the step whose performing recorded it (None: recorded before any step was taken).
    See the module docstring for why this is not simply ``KernelEvent.step``."""
    events = list(scheduler.machine.events)
    if not events:
        return []
    mhist = scheduler.machine.history
    if len(mhist) == len(scheduler.history) and all(
        a is b for a, b in zip(mhist, scheduler.history, strict=True)
    ):
        return [(e, e.step) for e in events]
    r = _replayed(scheduler)
    if r is not None:
        fresh = [e.report() for e in r.scheduler.machine.events]
        if fresh == [e.report() for e in events]:
            out: list[tuple[KernelEvent, int | None]] = []
            for i, e in enumerate(events):
                if i < r.before:
                    out.append((e, None))
                else:
                    out.append((e, next(k for k, n in enumerate(r.after) if n > i)))
            return out
    # no factory, or the machine was changed outside the scheduler: the last step of the
    # event's thread (or the last step) is the best guess
    last = len(scheduler.history) - 1
    guess = []
    for e in events:
        ks = [k for k, n in enumerate(scheduler.schedule) if n == e.thread]
        guess.append((e, ks[-1] if ks else (last if last >= 0 else None)))
    return guess

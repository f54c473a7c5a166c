"""What the Stepper does, without a widget: a scheduler, a path through it, and moves.

A :class:`StepSession` drives one scenario (a factory of ``(machine, threads)``, as
:class:`~mmkit.sched.Scheduler` takes it) along a *plan*: the schedule loaded at the start
(a race's failing schedule) extended by every step taken since. ``position`` is how many
steps of the plan have been taken; ``reached`` the furthest position reached so far, which
any position up to can be gone back (or forward) to.

Every move is the scheduler's own: a step is :meth:`Scheduler.step`; going back, or to any
earlier position, starts the scenario again from its factory and follows the plan (what
:meth:`Scheduler.replay` does), so it is exact. Going forward along the plan just steps.

**Which thread steps.** While the plan has a next entry, that thread (the loaded schedule
is followed); then the thread the learner picked (``preferred``), else the first runnable
one in thread order. Picking a thread the plan does not name leaves the plan there: the
rest of it is dropped, and the new step extends it.

**Step over** runs until the kernel function of the next step has returned to its caller.
Steps carry no call stack, but the engine's operations are generators that ``yield from``
the generators of the functions they call, so a suspended thread's chain of generators
(``gi_yieldfrom``) is its call stack. The session remembers, for each generator, the kernel
function of the first step it produced; the function's frame is the outermost generator of
the chain from which every inner one began in that function. Step over stops when that
generator has finished, when the thread is back in the function it was called from (for a
frame that models two kernel functions, e.g. ``remove_memory`` and ``try_remove_memory``),
when a kernel event is recorded (a bug is never stepped over), or when nothing can run.

**Step into** (see :mod:`mmkit.widgets._stepper_fine`) switches the session to the fine
version of the scenario (``machine.fine = True``: one step per entry) at the same point.

>>> from mmkit.scenarios.races import ptdump_race
>>> s = StepSession(ptdump_race("arm64-4k-48", "naive").make)
>>> while s.next_step().function != "vmemmap_free":
...     _ = s.step()
>>> s.position, s.step_over(), s.next_step().function  # vmemmap_free() ran to its return
(9, 36, '__remove_pgd_mapping')
>>> s.back(); s.position, s.next_step().action  # its last step: freeing an empty table
(44, 'free')
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mmkit.errors import InvalidArgument
from mmkit.events import KernelEvent, Step
from mmkit.sched import Scheduler, Thread
from mmkit.widgets._stepper_fine import Refinement, refine

__all__ = ["AUTO", "Factory", "StepSession", "fine_factory", "parse_schedule"]

Factory = Callable[[], tuple[Any, Sequence[Thread]]]

#: ``preferred`` value for "follow the plan, then the first runnable thread"
AUTO = "auto"


def parse_schedule(schedule: str | Iterable[str] | None) -> list[str]:
    """``"H H P"`` or ``["H", "H", "P"]`` as a list of thread names."""
    if schedule is None:
        return []
    if isinstance(schedule, str):
        return schedule.split()
    return [str(name) for name in schedule]


def fine_factory(factory: Factory) -> Factory:
    """``factory`` with ``machine.fine = True`` set before any thread takes a step.

    The engine reads ``fine`` as it walks, and generators run nothing before their first
    step, so this is the scenario built with ``fine=True`` (the races' own option does the
    same on the prepared machine)."""

    def make() -> tuple[Any, Sequence[Thread]]:
        machine, threads = factory()
        machine.fine = True
        return machine, threads

    return make


#: why a step that stands for many entries cannot be stepped into
_WHOLE = (
    "the engine takes this step whole even with one step per entry (a walk or scan that "
    "reads a table's entries at once, with no point between them another CPU could act "
    "on in this model): nothing to step into: {step}"
)


def _sig(step: Step) -> tuple[object, ...]:
    return (step.action, step.function, step.line, step.table, step.index, step.va)


def _chain(ops: Any) -> list[Any]:
    """A thread's suspended generators, outermost first (its call stack)."""
    out = []
    g = ops
    while g is not None and hasattr(g, "gi_yieldfrom"):
        out.append(g)
        g = g.gi_yieldfrom
    return out


class StepSession:
    """One scenario stepped along a plan (see the module docstring)."""

    def __init__(
        self,
        factory: Factory,
        *,
        schedule: str | Iterable[str] | None = None,
        fine: Factory | None = None,
    ) -> None:
        self.coarse_factory = factory
        self.fine_factory = fine or fine_factory(factory)
        self.loaded = parse_schedule(schedule)
        #: the thread the learner picked for the next steps, or :data:`AUTO`
        self.preferred = AUTO
        #: the coarse step the learner stepped into (None before any step into)
        self.stepped_into: Step | None = None
        #: steps found to stay whole in the fine run (their signature): no step into
        self._whole: set[tuple[object, ...]] = set()
        self._first_fn: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._start(fine=False)
        for name in self.loaded:
            if name not in self.sched.threads:
                raise InvalidArgument(
                    f"schedule names thread {name!r}", choices=list(self.sched.threads)
                )

    def _start(self, *, fine: bool) -> None:
        self.fine = fine
        self.sched = Scheduler(self.fine_factory if fine else self.coarse_factory)
        self.plan: list[str] = list(self.loaded) if not fine else []
        self.reached = 0
        self._first_fn = weakref.WeakKeyDictionary()
        for name in self.sched.threads:
            self._note_frames(name)

    # ---------------------------------------------------------------- state
    @property
    def machine(self) -> Any:
        return self.sched.machine

    @property
    def events(self) -> list[KernelEvent]:
        return self.sched.machine.events

    @property
    def position(self) -> int:
        return len(self.sched.schedule)

    @property
    def history(self) -> list[Step]:
        return self.sched.history

    def next_thread(self) -> str | None:
        """The thread :meth:`step` would run now, or None when none can."""
        s = self.sched
        if self.preferred != AUTO:
            name = self.preferred
            return name if name in s.threads and name in s.runnable() else None
        pos = self.position
        if pos < len(self.plan):
            name = self.plan[pos]
            return name if name in s.runnable() else None
        ready = s.runnable()
        return ready[0] if ready else None

    def next_step(self) -> Step | None:
        """The step :meth:`step` would take (not performed yet), or None."""
        name = self.next_thread()
        return None if name is None else self.sched.threads[name].pending

    def why_not(self) -> str:
        """Why no step can be taken now ("" when one can)."""
        s = self.sched
        if self.next_thread() is not None:
            return ""
        if s.finished():
            return "every thread has finished"
        if s.deadlock:
            return "deadlock: every unfinished thread waits for a lock"
        name = self.preferred if self.preferred != AUTO else None
        if name is None and self.position < len(self.plan):
            name = self.plan[self.position]
        if name is not None:
            st = next(x for x in s.status() if x.name == name)
            if st.state == "done":
                return f"thread {name} has finished"
            if st.state == "blocked":
                return f"thread {name} waits for {st.waits_for}"
        return "no thread can run"

    def kept_whole(self, step: Step) -> bool:
        """Whether ``step`` was found to stay one step in the fine run too."""
        return _sig(step) in self._whole

    # ---------------------------------------------------------------- moves
    def _note_frames(self, name: str) -> None:
        t = self.sched.threads[name]
        if t.pending is not None:
            for g in _chain(t.ops):
                self._first_fn.setdefault(g, t.pending.function)

    def _take(self, name: str) -> Step:
        step = self.sched.step(name)
        self._note_frames(name)
        return step

    def step(self, thread: str | None = None) -> Step:
        """Take one step: of ``thread`` if given, else of :meth:`next_thread`."""
        name = thread if thread is not None else self.next_thread()
        if name is None:
            raise InvalidArgument(f"no step to take: {self.why_not()}")
        pos = self.position
        step = self._take(name)
        if pos < len(self.plan) and self.plan[pos] == name:
            self.reached = max(self.reached, pos + 1)
        else:  # a new path from here: what the plan said beyond this point is gone
            del self.plan[pos:]
            self.plan.append(name)
            self.reached = pos + 1
        return step

    def goto(self, n: int) -> None:
        """Be at position ``n`` of the plan (0 .. ``reached``): forward by stepping,
        back by replaying the plan's first ``n`` steps from a fresh scenario."""
        if not 0 <= n <= self.reached:
            raise InvalidArgument(f"step {n} has not been reached (0 .. {self.reached})")
        if n < self.position or self.sched.schedule != self.plan[: self.position]:
            self.sched.replay([])  # the factory again: a fresh machine and threads
            self._first_fn = weakref.WeakKeyDictionary()
            for name in self.sched.threads:
                self._note_frames(name)
        for name in self.plan[self.position : n]:
            self._take(name)

    def back(self) -> None:
        """One step back (exact: the scenario replayed to the step before)."""
        if self.position == 0:
            raise InvalidArgument("already at the start")
        self.goto(self.position - 1)

    def reset(self) -> None:
        """The scenario as it started: coarse steps, the loaded schedule, nothing taken."""
        self.stepped_into = None
        self.preferred = AUTO
        self._start(fine=False)

    def run_to_end(self) -> int:
        """Step until no thread can; returns the number of steps taken."""
        n = 0
        while self.next_thread() is not None:
            self.step()
            n += 1
        return n

    def run_to_event(self) -> int:
        """Step until a step records a kernel event (it stays the last step taken) or no
        thread can run; returns the number of steps taken."""
        seen = len(self.events)
        n = 0
        while self.next_thread() is not None:
            self.step()
            n += 1
            if len(self.events) > seen:
                break
        return n

    def frame(self) -> tuple[str, Any, str | None] | None:
        """(thread, generator, caller's function) of the kernel function the next step is in."""
        name = self.next_thread()
        if name is None:
            return None
        t = self.sched.threads[name]
        assert t.pending is not None
        fn = t.pending.function
        chain = _chain(t.ops)
        frame = None
        for g in reversed(chain):
            if self._first_fn.get(g) != fn:
                break
            frame = g
        if frame is None:  # a frame that models two kernel functions (or no generator)
            frame = chain[-1] if chain else None
        caller = self._first_fn.get(frame) if frame is not None else None
        return name, frame, caller if caller != fn else None

    def step_over(self) -> int:
        """Run until the kernel function of the next step returns to its caller (see the
        module docstring); returns the number of steps taken."""
        where = self.frame()
        if where is None:
            raise InvalidArgument(f"no step to take: {self.why_not()}")
        name, frame, caller = where
        t = self.sched.threads[name]
        fn = t.pending.function if t.pending else ""
        seen = len(self.events)
        self.step()
        n = 1
        while self.next_thread() is not None and len(self.events) == seen and not t.done:
            assert t.pending is not None
            if frame is None:
                if t.pending.function != fn:
                    break
            elif not any(g is frame for g in _chain(t.ops)):
                break
            if caller is not None and t.pending.function == caller:
                break
            self.step()
            n += 1
        return n

    def step_into(self) -> Refinement:
        """Take the next (coarse) step entry by entry: switch to the fine scenario at the
        same point (see :mod:`mmkit.widgets._stepper_fine`). The plan beyond this point is
        kept as far as a loaded schedule goes, translated; a path reached beyond it by
        stepping is dropped (it was coarse)."""
        nxt = self.next_step()
        if nxt is None:
            raise InvalidArgument(f"no step to step into: {self.why_not()}")
        if self.fine:
            raise InvalidArgument(
                f"already one step per entry; this step is one step even so: {nxt.describe()}"
            )
        if not nxt.coarse:
            raise InvalidArgument(f"not a coarse step (it covers one entry): {nxt.describe()}")
        if self.kept_whole(nxt):
            raise InvalidArgument(_WHOLE.format(step=nxt.describe()))
        pos = self.position
        keep = max(pos, len(self.loaded))
        coarse = list(self.history)
        if keep > pos:  # the loaded schedule's remaining steps, as the coarse run takes them
            probe = Scheduler(self.coarse_factory)
            probe.follow(self.plan[:keep])
            coarse = list(probe.history)
        saved = (self.sched, self.plan, self.reached, self._first_fn, self.preferred)
        self._start(fine=True)
        refinement = refine(self.sched, coarse, self._take)
        self.plan = list(refinement.schedule)
        self.reached = refinement.boundaries[pos]
        self.goto(self.reached)  # back from the end of the loaded schedule, if past it
        self.preferred = saved[-1]
        same = self.next_step()
        if same is not None and same.count == nxt.count and _sig(same) == _sig(nxt):
            # the engine takes this step whole even entry by entry: nothing to step into
            self._whole.add(_sig(nxt))
            self.fine = False
            self.sched, self.plan, self.reached, self._first_fn, self.preferred = saved
            raise InvalidArgument(_WHOLE.format(step=nxt.describe()))
        self.stepped_into = nxt
        return refinement

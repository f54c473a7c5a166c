"""The scheduler: be the CPU scheduler for simulated kernel threads, one step at a time.

A :class:`Thread` is one of the engine's step generators running on a named CPU. Each
generator *yields the step it is about to take*; resuming it performs that step. So the
scheduler always knows every thread's next step (:meth:`Scheduler.peek`), can refuse to run a
thread whose next step takes a lock that is held (it is *blocked*), and records the order it
ran them in (:attr:`Scheduler.history`, a schedule such as ``"H H P H P"``).

The machine's ``history`` is the scheduler's history while it drives the machine, so each
:class:`~mmkit.events.KernelEvent` names (``step``) the step that recorded it.

Determinism: a scenario is rebuilt from its factory for :meth:`undo` and :meth:`replay`, so
the same schedule always gives the same steps and events.

Thread states: *runnable* (has a next step it may take), *blocked* (its next step takes a
lock it cannot have), *done* (its generator returned). A state where nothing is runnable but
some thread is blocked is a *deadlock*, recorded as a kernel event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmkit._validate import show
from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.sched.locks import LockTable

__all__ = ["Scheduler", "Thread", "ThreadStatus", "TraceRow"]


@dataclass
class Thread:
    """One simulated kernel thread."""

    name: str  #: a short letter used in schedules ("H" hot-remove, "P" ptdump, ...)
    label: str  #: what it is ("hot-remove: remove_memory()")
    cpu: int
    ops: Iterator[Step]
    pending: Step | None = None  #: the step it will take next; None when done
    done: bool = False
    result: Any = None
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class ThreadStatus:
    """One thread as a stepping view shows it (see :meth:`Scheduler.status`)."""

    name: str
    label: str
    cpu: int
    state: str  #: "runnable", "blocked" or "done"
    next: str | None  #: what its next step will do (``Step.describe()``), None when done
    waits_for: str | None  #: the lock it is blocked on
    holds: dict[str, str]  #: lock -> mode, the locks it holds
    steps: int  #: steps taken so far


@dataclass(frozen=True)
class TraceRow:
    """One step taken by :meth:`Scheduler.take`, with the kernel events it recorded."""

    n: int  #: 1 for the first step taken by this call
    thread: str
    cpu: int
    step: Step
    events: tuple[Any, ...]  #: the :class:`~mmkit.events.KernelEvent` records it added


def lock_request(step: Step | None) -> tuple[str, str] | None:
    """(lock name, mode) if ``step`` takes a lock, else None."""
    if step is None or step.action != "lock":
        return None
    name, _, mode = (step.note or "").partition(":")
    return name, mode or "exclusive"


class Scheduler:
    """Drive threads over one machine (see the module docstring).

    ``factory`` builds a fresh ``(machine, threads)`` pair; it is called again by
    :meth:`undo` and :meth:`replay`, which is what makes both exact.
    """

    def __init__(self, factory: Callable[[], tuple[Any, Sequence[Thread]]]) -> None:
        if not callable(factory):
            raise InvalidArgument(
                f"factory={show(factory)}: expected a function that builds (machine, threads), "
                "such as a race's make"
            )
        self.factory = factory
        self._start()

    def _start(self) -> None:
        built = self.factory()
        if not isinstance(built, tuple) or len(built) != 2:
            raise InvalidArgument(
                f"the factory returned {show(built)}: expected a (machine, threads) pair"
            )
        machine, threads = built
        if not hasattr(machine, "record_event") or not isinstance(threads, Sequence):
            raise InvalidArgument(
                f"the factory returned ({show(machine)}, {show(threads)}): expected a Machine "
                "and a list of Thread"
            )
        for t in threads:
            if not isinstance(t, Thread):
                raise InvalidArgument(f"the factory's thread {show(t)} is not a Thread")
        if len({t.name for t in threads}) != len(threads):
            raise InvalidArgument(
                f"thread names must be unique: {', '.join(t.name for t in threads)}"
            )
        self.machine = machine
        self.threads = {t.name: t for t in threads}
        self.locks = LockTable()
        self.machine.lock_table = self.locks
        self.schedule: list[str] = []
        self.history: list[Step] = []
        # the machine's history is the scheduler's, so a kernel event's ``step`` is the
        # index (in this history) of the step whose performing recorded it
        self.machine.history = self.history
        self.deadlock = False
        for t in threads:
            self._advance(t)

    # ---------------------------------------------------------------- state
    def _advance(self, t: Thread) -> None:
        self.machine.current_thread = t.name
        try:
            t.pending = next(t.ops)
            t.pending.thread = t.name
        except StopIteration as stop:
            t.pending, t.done, t.result = None, True, stop.value
            return
        req = lock_request(t.pending)
        if req is not None and self.locks.self_deadlock(req[0], t.name):
            # asking for a lock it holds: none of these locks is recursive, so the thread
            # waits for itself (a mutex or writer blocks for good; a second read_lock
            # deadlocks as soon as a writer queues between the two)
            self.machine.record_event(
                "bug",
                t.pending.function,
                f"{t.name} takes {req[0]} again while holding it: self-deadlock",
            )

    def blocked(self, name: str) -> bool:
        t = self.threads[name]
        req = lock_request(t.pending)
        return req is not None and not self.locks.available(req[0], req[1], name)

    def runnable(self) -> list[str]:
        """Names of the threads that may take a step now, in a stable order."""
        return [n for n, t in self.threads.items() if not t.done and not self.blocked(n)]

    def finished(self) -> bool:
        return all(t.done for t in self.threads.values())

    def peek(self) -> dict[str, Step | None]:
        """Every thread's next step (None when done)."""
        return {n: t.pending for n, t in self.threads.items()}

    def status(self) -> list[ThreadStatus]:
        """Every thread's state, next step and locks, in thread order (for a stepping view:
        a blocked thread's button is disabled and says which lock it waits for)."""
        out = []
        for n, t in self.threads.items():
            blocked = not t.done and self.blocked(n)
            req = lock_request(t.pending) if blocked else None
            out.append(
                ThreadStatus(
                    n,
                    t.label,
                    t.cpu,
                    "done" if t.done else "blocked" if blocked else "runnable",
                    None if t.pending is None else t.pending.describe(),
                    req[0] if req else None,
                    self.locks.held_by(n),
                    len(t.steps),
                )
            )
        return out

    # ----------------------------------------------------------------- step
    def step(self, name: str) -> Step:
        """Let thread ``name`` take its next step; returns it (now performed). A name that
        is unknown, finished or blocked raises :class:`~mmkit.errors.InvalidArgument` before
        anything changes."""
        self._check_name(name)
        t = self.threads[name]
        if t.done:
            raise InvalidArgument(
                f"thread {name} has finished (after {len(t.steps)} steps); runnable now: "
                f"{', '.join(self.runnable()) or 'none'}"
            )
        if self.blocked(name):
            req = lock_request(t.pending)
            raise InvalidArgument(
                f"thread {name} is blocked on {req[0] if req else '?'}; let the holder run "
                f"first (runnable now: {', '.join(self.runnable()) or 'none'})"
            )
        step = t.pending
        assert step is not None
        req = lock_request(step)
        if req is not None:
            self.locks.acquire(req[0], req[1], name)
        if step.action == "unlock" and step.note:
            self.locks.release(step.note.partition(":")[0], name)
        self.schedule.append(name)
        self.history.append(step)
        t.steps.append(step)
        self._advance(t)  # performs `step`, then yields the next one
        # who may run changes only through locks or a thread finishing: check only then
        changed = req is not None or step.action == "unlock" or t.done
        if (changed or lock_request(t.pending)) and not self.finished() and not self.runnable():
            self.deadlock = True
            self.machine.record_event(
                "bug",
                "scheduler",
                "deadlock: every unfinished thread is blocked on a lock ("
                + ", ".join(
                    f"{n} waits for {lock_request(t.pending)[0]}"  # type: ignore[index]
                    for n, t in self.threads.items()
                    if not t.done
                )
                + ")",
            )
        return step

    def _retake(self, names: Sequence[str]) -> None:
        """Take again steps that an identical instance of the scenario took before, in the
        same order (a prefix the explorer took): the checks :meth:`step` makes held then,
        and the scenario is deterministic, so only the last step is checked (as it may
        block every thread, when the prefix is a new alternative). Unchecked, so not public:
        :meth:`follow` takes a schedule from outside."""
        threads, locks = self.threads, self.locks
        for name in names[:-1]:
            t = threads[name]
            step = t.pending
            assert step is not None, f"{name} has no step to take again"
            action = step.action
            if action == "lock":
                lock, _, mode = (step.note or "").partition(":")
                locks.acquire(lock, mode or "exclusive", name)
            elif action == "unlock" and step.note:
                locks.release(step.note.partition(":")[0], name)
            self.schedule.append(name)
            self.history.append(step)
            t.steps.append(step)
            self._advance(t)
        if names:
            self.step(names[-1])

    def _check_name(self, name: object, where: str = "") -> None:
        if not isinstance(name, str) or name not in self.threads:
            raise InvalidArgument(
                f"no thread {show(name)}{where}: name a thread by its letter",
                choices=list(self.threads),
            )

    def _names(self, schedule: Iterable[str] | str) -> list[str]:
        """``schedule`` as a list of known thread names (a string is split on spaces)."""
        if isinstance(schedule, str):
            schedule = schedule.split()
        if not isinstance(schedule, Iterable):
            raise InvalidArgument(
                f"schedule={show(schedule)}: expected thread names, e.g. ['H', 'H', 'P'] or 'H H P'"
            )
        names = list(schedule)
        for i, name in enumerate(names):
            self._check_name(name, f" at schedule[{i}]")
        return names

    def _dry_run(self, prefix: list[str], names: list[str]) -> None:
        """Follow ``prefix`` then ``names`` on a fresh instance of the scenario (the factory
        makes it exact): raises, naming the position in ``names``, what would fail."""
        probe = Scheduler(self.factory)
        for name in prefix:
            probe.step(name)
        for i, name in enumerate(names):
            try:
                probe.step(name)
            except InvalidArgument as err:
                raise InvalidArgument(
                    f"schedule[{i}] ({name}): {err}; nothing was taken", choices=err.choices
                ) from None

    def follow(self, schedule: Iterable[str] | str) -> None:
        """Take the steps ``schedule`` names, in order (``"H H P"`` or ``["H", "H", "P"]``).

        All or nothing: the whole schedule is checked first (on a fresh instance of the
        scenario when it takes more than one step), so a name that is unknown, finished or
        blocked at its turn raises :class:`~mmkit.errors.InvalidArgument` with no step
        taken."""
        names = self._names(schedule)
        if len(names) > 1:
            self._dry_run(list(self.schedule), names)
        for name in names:
            self.step(name)

    def take(self, schedule: Iterable[str] | str, *, run_on: bool = False) -> Iterator[TraceRow]:
        """Take the steps ``schedule`` names, one row per step (for a log or a table); with
        ``run_on``, then let the first runnable thread go on until nothing can run. A name
        the scheduler refuses raises :class:`~mmkit.errors.InvalidArgument` after the rows
        before it, with nothing taken for it."""
        if isinstance(schedule, str):
            schedule = schedule.split()
        if not isinstance(schedule, Iterable):
            raise InvalidArgument(f"schedule={show(schedule)}: expected thread names")
        names = iter(schedule)
        n = 0
        while True:
            name = next(names, None)
            if name is None:
                ready = self.runnable() if run_on else []
                if not ready:
                    return
                name = ready[0]
            seen = len(self.machine.events)
            step = self.step(name)
            n += 1
            yield TraceRow(n, name, self.threads[name].cpu, step, tuple(self.machine.events[seen:]))

    def run(self, until: Callable[[Scheduler], bool] | None = None) -> None:
        """Run the first runnable thread, repeatedly, until ``until`` holds or nothing can
        run (all done, or a deadlock)."""
        if until is not None and not callable(until):
            raise InvalidArgument(
                f"until={show(until)}: expected a function of the scheduler, e.g. "
                "lambda s: s.finished()"
            )
        while not (until and until(self)):
            ready = self.runnable()
            if not ready:
                return
            self.step(ready[0])

    def undo(self) -> None:
        """Take back the last step (rebuild and replay all but it)."""
        self.replay(self.schedule[:-1])

    def replay(self, schedule: Iterable[str]) -> None:
        """Start over and follow ``schedule`` exactly (checked first: a schedule that cannot
        be followed raises and leaves the scheduler as it was)."""
        steps = self._names(schedule)
        self._dry_run([], steps)
        self._start()
        for name in steps:
            self.step(name)

    def schedule_string(self) -> str:
        return " ".join(self.schedule)

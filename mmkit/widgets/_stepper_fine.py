"""Step into a coarse step: the same interleaving again, one step per page-table entry.

A *coarse* step (:attr:`mmkit.events.Step.coarse`) stands for a run of alike entries of one
table page, and the engine performs the whole run when the step is resumed: there is no
point *inside* it at which a learner could stop. So "step into" does not pretend to split
it. It rebuilds the scenario with ``machine.fine = True`` (every entry its own step, as the
kernel's loops take them; see :mod:`mmkit.pgtable.unmap`) and replays, in that fine run, the
steps already taken in the coarse one, in the same order per thread and the same order
between threads. Each entry of the coarse step then really is a step of its own.

The two runs are not step-for-step alike, and the translation says so rather than hiding it:

* a coarse step of ``count`` entries matches ``count`` fine steps, one per entry of
  :meth:`~mmkit.events.Step.expand` (same action, kernel function, table page, index,
  virtual address and pfn); a bulk step (a run of table pages) is replayed as the per-table
  coarse steps its ``expand()`` gives;
* a coarse TLB step (``count`` TLBI instructions) matches fine TLB steps of the same function
  and kind whose counts add up to it;
* a whole-table scan (``pmd_none()`` of all entries before freeing a table) is one step in
  both runs;
* the fine run has steps the coarse one skips (a ``READ_ONCE`` before each clear), and it
  takes a run's entries one at a time through clear, TLBI and free, where the coarse run
  clears them all, then invalidates all, then frees all. To replay a coarse step the fine
  run takes the thread's steps up to the last entry it needs; steps taken on the way that
  belong to a later coarse step are credited to it when it comes.

So the fine run reaches every coarse step's effects in the coarse order; only inside a run
of one thread can it be a few entries ahead (they are the kernel's own order). If the two
runs ever disagree (a thread the fine run cannot advance), :class:`RefineError` says where.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.sched import Scheduler

__all__ = ["RefineError", "Refinement", "refine"]


class RefineError(InvalidArgument):
    """The fine run could not reproduce a coarse step (the runs disagree)."""


@dataclass(frozen=True)
class Refinement:
    """A coarse schedule translated into a fine one."""

    schedule: tuple[str, ...]  #: the fine schedule, thread names one per fine step
    #: ``boundaries[k]``: fine steps taken once the first ``k`` coarse steps are replayed
    boundaries: tuple[int, ...]


def _key(s: Step) -> tuple[object, ...]:
    return (s.action, s.function, s.table, s.index, s.va, s.pfn)


def _sig(s: Step) -> tuple[object, ...]:
    return (s.action, s.function, s.note)


class _Matcher:
    """Takes fine steps of one thread until one fits, keeping the others for later.

    Steps taken but not yet credited wait in a pool indexed two ways, by entry (action,
    function, table, index, VA, pfn, count) and by TLB kind (action, function, note), so
    that a long run of uncredited reads costs nothing to search."""

    def __init__(self, sched: Scheduler, take: Callable[[str], Step]) -> None:
        self.sched = sched
        self.take = take
        self.by_entry: dict[tuple[object, ...], deque[Step]] = {}
        self.by_kind: dict[tuple[object, ...], deque[Step]] = {}
        self.used: set[int] = set()

    def _pooled(
        self, index: dict[tuple[object, ...], deque[Step]], key: tuple[object, ...]
    ) -> Step | None:
        queue = index.get(key)
        while queue:
            s = queue.popleft()
            if id(s) not in self.used:
                self.used.add(id(s))
                return s
        return None

    def find(
        self, thread: str, keys: Sequence[tuple[object, ...]], what: Step, *, kind: bool = False
    ) -> Step:
        """The first pooled or next fine step of ``thread`` whose entry key (or, with
        ``kind``, TLB kind) is one of ``keys``."""
        index = self.by_kind if kind else self.by_entry
        for key in keys:
            got = self._pooled(index, (thread, *key))
            if got is not None:
                return got
        while True:
            t = self.sched.threads[thread]
            if t.done or self.sched.blocked(thread):
                state = "has finished" if t.done else "is blocked"
                raise RefineError(
                    f"step into: the one-step-per-entry run cannot reproduce "
                    f"{what.describe()!r}: thread {thread} {state} there"
                )
            s = self.take(thread)
            entry, sig = (*_key(s), s.count), _sig(s)
            if (sig if kind else entry) in keys:
                self.used.add(id(s))
                return s
            self.by_entry.setdefault((thread, *entry), deque()).append(s)
            self.by_kind.setdefault((thread, *sig), deque()).append(s)

    def cover(self, c: Step) -> None:
        """Take (or credit) the fine steps that do what coarse step ``c`` did."""
        t = c.thread
        if c.bulk:  # a run of table pages: each table's coarse step in turn
            for part in c.expand():
                self.cover(part)
            return
        if c.count == 1:
            self.find(t, [(*_key(c), 1)], c)
        elif c.coarse:
            entries = list(c.expand())
            got = self.find(t, [(*_key(c), c.count), (*_key(entries[0]), 1)], c)
            if got.count == c.count:
                return  # a step the fine run keeps whole (a whole-table scan)
            for e in entries[1:]:
                self.find(t, [(*_key(e), 1)], c)
        else:  # TLBI instructions: fine steps of the same kind adding up to the count
            left = c.count
            while left > 0:
                left -= self.find(t, [_sig(c)], c, kind=True).count


def refine(
    sched: Scheduler, coarse: Sequence[Step], take: Callable[[str], Step] | None = None
) -> Refinement:
    """Drive ``sched`` (fresh, over the fine version of the scenario) through the fine steps
    that replay the performed ``coarse`` steps (each with its ``thread``), in order.

    ``take(name)`` takes one step of thread ``name`` (default ``sched.step``; a stepping view
    passes its own, to watch every step). Returns the fine schedule and where each coarse
    step's replay ended.
    """
    take = take or sched.step
    matcher = _Matcher(sched, take)
    bounds = [0]
    for c in coarse:
        matcher.cover(c)
        bounds.append(len(sched.schedule))
    return Refinement(tuple(sched.schedule), tuple(bounds))

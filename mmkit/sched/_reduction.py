"""What the explorer needs to cut its search: state keys and which steps commute.

**State keys.** Two schedule prefixes that reach the same *state* have the same futures, so
the explorer explores the state once. The state is the machine (memory, tables, allocator,
hotplug records), the CPUs' TLBs, who holds which lock, the length of the kernel log, what
each thread has observed so far (every value its steps read or wrote and what they found)
and what its next step says it will do: that step was worked out when the one before it
was performed, from memory as it was then, so two threads with the same observations can
be about to do different things. The key is a 64-bit hash of all
that; :class:`StateKeys` keeps it cheap along one path: each thread's observations are
hashed step by step as they come (not all over again at every state), and the machine's
part is kept by part of its digest, and a part digested again only after a step of a kind
that may write it (:data:`mmkit._digest.WRITES`: a ``read`` changes nothing but the log,
a ``write`` only table pages, a ``tlbi`` only TLBs and their counts; the step convention's
tests check that contract on every step of the hotplug flows and of every lesson race).

**Commuting steps.** Sleep sets (Godefroid, *Partial-Order Methods for the Verification of
Concurrent Systems*, 1996) skip a schedule when an equivalent one, the same steps with two
neighbouring independent steps swapped, is explored anyway. Two steps of different threads
are *independent* when taking them in either order gives the same state and neither
enables or disables the other. A step's generator runs on past it to its next yield, and
that part may read anything the step's kind reads, so the relation is coarse and safe:

* a ``read`` (``READ_ONCE`` of table entries) writes nothing but the kernel log and its own
  observation; it and its generator's run to the next step read table pages and frame
  states only;
* a ``write`` writes table entries, a ``free`` or ``alloc`` frames, tables and the
  allocator; a ``tlbi`` writes the TLBs, book-keeping (``call``, ``memblock``, ``device``,
  ``sysfs``) the hotplug records, an ``access`` the TLBs, a ``lock`` the lock table; an
  ``unlock`` counts as writing everything, and so does anything else (a warning, a bug);
* so a ``read`` commutes with a ``read``, a ``tlbi``, book-keeping, an ``access`` and a
  ``lock``, never with a ``write``, ``free``, ``alloc`` or ``unlock``; two other steps are
  independent only if the scenario vouches that one of them is *local* (touches nothing
  another thread reads or writes, and takes no lock).

Why a ``lock`` may commute with a read but an ``unlock`` may not: the preemption bound
counts a switch away from a thread that could have gone on, so moving a step earlier must
never let a thread run that was blocked at that point of the original schedule, or the
reordered schedule may spend a preemption more than the one it stands for. Taking a lock
earlier only blocks threads sooner; releasing it earlier can wake one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mmkit._digest import PARTS, STATE_PARTS, WRITES, digest_part
from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.sched.scheduler import Scheduler

__all__ = ["StateKeys", "independence", "state_key"]

#: what a read step and its generator's run to the next step may read
_READ_DOMAINS = frozenset({"tables", "frames"})

#: what each kind of step writes (None: anything)
_WRITES: dict[str, frozenset[str] | None] = {
    "read": frozenset(),
    "write": frozenset({"tables"}),
    "free": frozenset({"frames", "tables", "allocator"}),
    "alloc": frozenset({"frames", "tables", "allocator"}),
    "tlbi": frozenset({"tlb"}),
    "access": frozenset({"tlb"}),
    "lock": frozenset({"locks"}),
    "call": frozenset({"bookkeeping"}),
    "memblock": frozenset({"bookkeeping"}),
    "device": frozenset({"bookkeeping"}),
    "sysfs": frozenset({"bookkeeping"}),
}


def _writes(step: Step) -> frozenset[str] | None:
    return _WRITES.get(step.action)


def _read_commutes_with(other: Step) -> bool:
    writes = _writes(other)
    return writes is not None and not (writes & _READ_DOMAINS)


def independence(
    local: Callable[[Step], bool] | None,
    also: Callable[[Step, Step], bool] | None = None,
) -> Callable[[Step, Step], bool]:
    """The relation described in the module docstring, for two threads' next steps;
    ``local`` names the steps the scenario vouches for, ``also`` more pairs it vouches
    commute."""

    def independent(a: Step, b: Step) -> bool:
        if local is not None and (local(a) or local(b)):
            return True
        if also is not None and also(a, b):
            return True
        if a.action == "read":
            return _read_commutes_with(b)
        return b.action == "read" and _read_commutes_with(a)

    return independent


def _observation(step: Step) -> tuple[object, ...]:
    return (step.action, step.old, step.new, step.pfn, step.count, step.line, step.result)


def _intent(step: Step) -> tuple[object, ...]:
    """What a step not yet performed says it will do."""
    return (
        step.action,
        step.line,
        step.table,
        step.index,
        step.count,
        step.va,
        step.pfn,
        step.size,
        step.new,
        step.note,
        step.result,
    )


class StateKeys:
    """State keys along one path (see the module docstring): call :meth:`key` at each state
    of the path, in order (states may be skipped). The machine's part of the key is kept
    by part of its digest: a step changes only the parts its kind may write
    (:data:`mmkit._digest.WRITES`, the step convention's contract), so only those are
    digested again; a kernel event, or a step of another kind, makes every part stale."""

    def __init__(self) -> None:
        #: per thread, in name order: [steps hashed, hash of them]
        self._observed: list[tuple[list[int], list[Any]]] | None = None
        self._parts: list[int] = []  #: hash of each part of the machine's digest
        self._machine = 0  #: hash of them all
        self._taken = -1  #: steps of the history the parts account for (-1: none yet)
        self._events = 0  #: events in the log then

    def _threads(self, s: Scheduler) -> tuple[object, ...]:
        if self._observed is None:
            self._observed = [([0, 0], t) for _n, t in sorted(s.threads.items())]
        out: list[object] = []
        for seen, t in self._observed:
            done, h = seen
            steps = t.steps
            if done < len(steps):
                for step in steps[done:]:
                    h = hash((h, _observation(step)))
                seen[0], seen[1] = len(steps), h
            out.append(len(steps))
            out.append(h)
            # the next step was worked out when the last one was performed, from the
            # memory as it was then: a thread that reached the same observations at
            # another moment may be about to do something else
            out.append(None if t.pending is None else _intent(t.pending))
        return tuple(out)

    def _stale(self, s: Scheduler) -> frozenset[int] | set[int]:
        """The digest parts the steps taken since the last key may have changed."""
        history, m = s.history, s.machine
        if self._taken < 0 or len(m.events) != self._events:
            return STATE_PARTS
        stale: set[int] = set()
        for step in history[self._taken :]:
            writes = WRITES.get(step.action)
            if writes is None:
                return STATE_PARTS
            stale |= writes
        return stale

    def _machine_hash(self, s: Scheduler) -> int:
        m = s.machine
        stale = self._stale(s)
        if stale:
            if not hasattr(m, "pgtables"):  # a machine-like object: its whole digest
                tlbs = tuple(
                    (tuple(sorted(t.leaf.items())), tuple(sorted(t.walk.items())))
                    for t in getattr(m, "tlbs", ())
                )
                self._machine = hash((_state_digest(m), tlbs))
            else:
                parts = self._parts or [0] * len(PARTS)
                for i in stale:
                    parts[i] = hash(digest_part(m, i))
                self._parts = parts
                self._machine = hash(tuple(parts))
        self._taken, self._events = len(s.history), len(m.events)
        return self._machine

    def key(self, s: Scheduler) -> int:
        """The key of the state ``s`` is in."""
        # the cache keeps a 64-bit hash, not the state (table pages are kilobytes each):
        # small and cheap to look up; a collision (odds about states**2 / 2**65) could
        # only make the search skip one state
        return hash(
            (self._machine_hash(s), s.locks.snapshot(), len(s.machine.events), self._threads(s))
        )


def _state_digest(m: Any) -> object:
    """A machine-like object's digest without its log and history (the key counts the log
    itself); one whose ``digest()`` takes no ``log`` gives its whole digest."""
    try:
        return m.digest(log=False)
    except TypeError:
        return m.digest()


def state_key(s: Scheduler) -> int:
    """The key of the state ``s`` is in (see the module docstring)."""
    return StateKeys().key(s)

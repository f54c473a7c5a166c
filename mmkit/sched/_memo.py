"""What the explorer remembers of the states it met (:mod:`mmkit.sched.explore`): how each
was explored, and where the steps it took from them led. Both are kept small (a search at
bound 2 meets thousands of states, and runs in a learner's notebook kernel): packed ints,
and a table of fixed size."""

from __future__ import annotations

import numpy as np

__all__ = ["Edges", "Explored"]


class Edges:
    """Steps the search took: hash((state key, thread)) -> the key of the state that the
    thread's step led to, in a direct-mapped table (as a CPU cache keeps lines) of
    :data:`SLOTS` slots: a step evicts the one in its slot, so a lookup may miss, and never
    answers for another step (the whole hash is kept as the tag). Its size is the same
    whatever the search's: a dict would grow with every step taken."""

    SLOTS = 1 << 14  #: 256 KiB of tags and keys

    def __init__(self) -> None:
        self._tag = np.zeros(self.SLOTS, dtype=np.int64)
        self._to = np.zeros(self.SLOTS, dtype=np.int64)
        self._used = np.zeros(self.SLOTS, dtype=bool)

    def get(self, edge: int | None) -> int | None:
        if edge is None:
            return None
        slot = edge & (self.SLOTS - 1)
        if self._used[slot] and self._tag[slot] == edge:
            return int(self._to[slot])
        return None

    def put(self, edge: int | None, to: int) -> None:
        if edge is not None:
            slot = edge & (self.SLOTS - 1)
            self._tag[slot], self._to[slot], self._used[slot] = edge, to, True


class Explored:
    """How each (state, last thread) was explored: the preemptions spent and the sleep set,
    packed in one int (``spent << width | sleep``, ``width`` a bit per thread: small values,
    which Python keeps once for all), or a list of them when it was explored more than
    once in ways neither of which covers the other. Ints keep the cache small."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._sleep = (1 << width) - 1
        self._explored: dict[int, int | list[int]] = {}

    def remember(self, key: int, spent: int, sleep: int) -> bool:
        """Record that ``key`` is explored with ``spent`` preemptions and ``sleep`` asleep;
        False if an earlier exploration covers it (no more spent, no fewer asleep)."""
        explored = self._explored
        entry = explored.get(key)
        w, bits = self.width, self._sleep
        mine = spent << w | sleep
        if entry is None:
            explored[key] = mine
            return True
        entries = entry if isinstance(entry, list) else [entry]
        if any(e >> w <= spent and not e & bits & ~sleep for e in entries):
            return False
        # keep the ones this exploration does not cover
        kept = [e for e in entries if not (spent <= e >> w and not sleep & ~(e & bits))]
        explored[key] = [*kept, mine] if kept else mine
        return True

    def went_on(self, key: int, me: int, spent: int, sleep: int, sleep_on: list[int]) -> bool:
        """Whether the state of ``key``, explored with the thread of bit ``me`` last, went
        on with that thread's step as its no-switch branch, with no more preemptions spent
        than ``spent`` and, after that step, no thread asleep that ``sleep`` lacks
        (``sleep_on``: the bits of the threads that would sleep on)."""
        entry = self._explored.get(key)
        if entry is None:
            return False
        on, w, bits = sum(sleep_on), self.width, self._sleep
        for e in entry if isinstance(entry, list) else [entry]:
            mask = e & bits
            if e >> w <= spent and not mask & me and not mask & on & ~sleep:
                return True
        return False

"""The frames used as table pages, stored by column: rows of one few 2-D arrays.

Every frame that has ever been a table page owns one row of ``ptrs`` descriptors for good
(a freed frame keeps its content: a stale pointer into it reads, and writes, whatever the
frame holds now, and a frame reused as another table is read through an old pointer as its
new content). Rows live in a few large 2-D arrays (*chunks*) instead of one small array per
frame: frames allocated together get consecutive rows, so a run of tables is one slice
of a chunk, and a whole run is zeroed, filled, cleared or scanned in one numpy operation.
Chunks never move or grow once made (a row handed out stays valid across any later
allocation), and a copy of the store copies a handful of arrays, not thousands.

>>> s = TableStore(4)
>>> s.claim([7, 8, 9])
>>> s[8][:] = 5
>>> s.rows([7, 8, 9]).sum(axis=1).tolist(), 8 in s, 10 in s
([0, 20, 0], True, False)
"""

from __future__ import annotations

import numpy as np

__all__ = ["TableStore", "forward"]

_U64 = np.uint64
_MIN_ROWS = 2  #: the smallest chunk (a small machine keeps little slack)


class TableStore(dict[int, np.ndarray]):
    """pfn → the frame's entries (a view of its row), for every frame ever used as a table.

    A dict, so that looking a table page up costs what a dict lookup costs; only
    :meth:`claim` adds to it."""

    def __init__(self, ptrs: int) -> None:
        super().__init__()
        self.ptrs = ptrs
        self._chunks: list[np.ndarray] = []
        self._bases: list[int] = []  #: the row number of each chunk's first row
        #: pfn → row number (rows are numbered across the chunks, in order)
        self._row: dict[int, int] = {}
        #: row number → pfn (-1: a row no frame has): a run's rows are checked in one compare
        self._pfn: list[int] = []
        self._used = 0  #: rows handed out in the last chunk
        #: the last :meth:`view` asked for (its pfns list, the answer): a run's steps ask
        #: for the same rows several times, and rows never move
        self._last: tuple[list[int], np.ndarray | None] | None = None

    def __deepcopy__(self, memo: dict[int, object]) -> TableStore:
        """An exact copy: every chunk copied (the last one only as far as it is used)."""
        new = TableStore(self.ptrs)
        memo[id(self)] = new
        chunks = [c.copy() for c in self._chunks[:-1]]
        if self._chunks:
            chunks.append(self._chunks[-1][: self._used].copy())
        new._chunks = chunks
        new._bases = list(self._bases)
        new._row = dict(self._row)
        new._pfn = list(self._pfn)
        new._used = self._used
        # rows were numbered in the order they were claimed, as the dict keeps its keys
        bases, ci, put = new._bases, 0, dict.__setitem__
        for pfn, row in self._row.items():
            while ci + 1 < len(bases) and bases[ci + 1] <= row:
                ci += 1
            put(new, pfn, chunks[ci][row - bases[ci]])
        return new

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.ptrs, [(p, self[p].copy()) for p in self._row]))

    def _at(self, row: int) -> tuple[np.ndarray, int]:
        """The chunk holding row number ``row`` and the row's index in it."""
        bases = self._bases
        ci = len(bases) - 1
        while bases[ci] > row:
            ci -= 1
        return self._chunks[ci], row - bases[ci]

    # ---------------------------------------------------------------- rows
    def claim(self, pfns: list[int]) -> None:
        """Give each frame of ``pfns`` that has none a zeroed row; those are consecutive
        rows of one chunk, in the order given."""
        row = self._row
        if row.keys() >= set(pfns):  # the common case: frames that were tables before
            return
        fresh = [p for p in pfns if p not in row]
        n = len(fresh)
        chunks = self._chunks
        if not chunks or len(chunks[-1]) - self._used < n:
            size = max(n, _MIN_ROWS, len(row) // 2)
            self._bases.append(self._bases[-1] + len(chunks[-1]) if chunks else 0)
            chunks.append(np.zeros((size, self.ptrs), dtype=_U64))
            self._used = 0
        first = self._bases[-1] + self._used
        row.update(zip(fresh, range(first, first + n), strict=True))
        self._pfn += [-1] * (first - len(self._pfn))  # the slack left in the last chunk
        self._pfn += fresh
        chunk = chunks[-1]
        at = self._used
        for i, pfn in enumerate(fresh):
            dict.__setitem__(self, pfn, chunk[at + i])
        self._used += n

    def rows(self, pfns: list[int]) -> np.ndarray:
        """The rows of ``pfns`` as one 2-D array: a view when they are consecutive rows
        of one chunk (either way round), else a copy (see :meth:`view`)."""
        view = self.view(pfns)
        if view is not None:
            return view
        return np.stack([self[p] for p in pfns])

    def view(self, pfns: list[int]) -> np.ndarray | None:
        """The rows of ``pfns`` as a 2-D view that reads and writes the store, or None
        when they are not consecutive rows of one chunk. (The answer for the last list
        asked about is kept: do not change a list after asking.)"""
        last_asked = self._last
        if last_asked is not None and last_asked[0] is pfns:
            return last_asked[1]
        found = self._view(pfns)
        self._last = (pfns, found)
        return found

    def _view(self, pfns: list[int]) -> np.ndarray | None:
        row = self._row
        n = len(pfns)
        first, last = row[pfns[0]], row[pfns[-1]]
        step = 1 if last >= first else -1
        if last - first != (n - 1) * step:
            return None
        lo = min(first, last)
        chunk, i = self._at(lo)
        if i + n > len(chunk):
            return None  # the rows run into the next chunk
        if n > 2 and pfns != (
            self._pfn[first : last + 1] if step == 1 else self._pfn[last : first + 1][::-1]
        ):
            return None
        block = chunk[i : i + n]
        return block if step == 1 else block[::-1]

    def set_rows(self, pfns: list[int], values: np.ndarray | int) -> None:
        """Store ``values`` (one row per pfn, or one value for all) in the rows of ``pfns``."""
        view = self.view(pfns)
        if view is not None:
            if not isinstance(values, np.ndarray):
                view = forward(view)  # one value: the rows' order does not matter
            view[:] = values
            return
        if isinstance(values, np.ndarray):
            for p, row in zip(pfns, values, strict=True):
                self[p][:] = row
        else:
            for p in pfns:
                self[p][:] = values


def forward(rows: np.ndarray) -> np.ndarray:
    """``rows`` (a :meth:`TableStore.view`) in the order they lie in their chunk: the same
    entries, for a test or a write in which the rows' order does not matter (numpy goes
    over a block of rows in one stretch, but over rows taken backwards one row at a time).
    """
    return rows[::-1] if rows.strides[0] < 0 else rows


def _rebuild(ptrs: int, rows: list[tuple[int, np.ndarray]]) -> TableStore:
    """Unpickle a :class:`TableStore` (its rows, in the order they were claimed)."""
    store = TableStore(ptrs)
    store.claim([p for p, _ in rows])
    for p, row in rows:
        store[p][:] = row
    return store

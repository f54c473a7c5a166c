"""Bulk steps: a run of leaf tables under one table page taken in a handful of steps.

At the level whose entries point to leaf (PTE) tables, hot-add and hot-remove of a large
range do the same few things to every table of a run: the kernel's loops (v5.7
``arch/arm64/mm/mmu.c``) read the entry, allocate a table, populate the entry and fill the
table (``alloc_init_cont_pte`` → ``init_pte``); or read the entry, clear the table's entries
and invalidate them (``unmap_hotplug_pmd_range`` → ``unmap_hotplug_pte_range``); or read the
entry, check and scan the table, clear the entry, invalidate and free the table
(``free_empty_pmd_table`` → ``free_empty_pte_table``). A *bulk* step does one of these for a
run of ``k`` consecutive tables at once, so a run is a handful of steps whatever ``k``:

* add: read the ``k`` entries, allocate ``k`` tables, populate the entries, fill the tables;
* unmap: read the entries, clear the ``k`` tables' entries, invalidate them (and free what
  they mapped, for the vmemmap);
* free: read the entries, the sanity check and the emptiness scan of the ``k`` tables, clear
  the entries, invalidate, free the ``k`` tables.

Each is still yielded before it is performed (see :mod:`mmkit.events`), and
:meth:`~mmkit.events.Step.expand` of a bulk step gives the per-table coarse steps it stands
for (and those their entry steps), so a bulk run and the per-table run make the same writes,
allocations, frees and TLB maintenance; what differs is only the order *between* tables
(every table read, then every table allocated...), as coarse runs already order a run's
entries. ``machine.fine`` runs never take bulk steps. Entry reads and writes of a run whose
values are not linear (table pages that are not consecutive frames) are split into linear
sub-runs: one step each.

The add and unmap runs live here, with the helpers every bulk step shares; the free pass's
run, and the one function through which table pages are freed, in :mod:`mmkit.pgtable.bulk_free`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mmkit.events import Step
from mmkit.pgtable.store import forward

if TYPE_CHECKING:
    from mmkit.arch.base import Level
    from mmkit.machine import Machine

__all__ = ["linear_runs", "map_table_run", "unmap_table_run"]

_U64 = np.uint64
_I64 = np.int64
_MIN_RUN = 2  #: fewer tables than this go the per-table way


def linear_runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """Split ``values`` into maximal runs ``(start, end, stride)`` in which each value is the
    previous one plus ``stride`` (a run of one has stride 0).

    >>> linear_runs(np.array([8, 16, 24, 7, 6, 100], dtype=np.uint64))
    [(0, 3, 8), (3, 5, -1), (5, 6, 0)]
    """
    n = len(values)
    if n < 2:
        return [(0, n, 0)] if n else []
    signed = values.view(_I64)
    diffs = np.diff(signed)
    if (diffs == diffs[0]).all():
        return [(0, n, int(diffs[0]))]
    out = []
    start = 0
    while start < n:
        if start == n - 1:
            out.append((start, n, 0))
            break
        d = int(diffs[start])
        rest = np.flatnonzero(diffs[start:] != d)
        end = start + int(rest[0]) + 1 if len(rest) else n
        out.append((start, end, d))
        start = end
    return out


def _table_pfns(m: Machine, vals: np.ndarray) -> list[int]:
    """The pfns table descriptors ``vals`` point at (``__pte_to_phys`` of each)."""
    pt = m.pgtables
    field = vals & _U64(pt.addr_mask)
    if pt.pa_bits == 52:
        lo = field & ~_U64(0xF << 12) & _U64((1 << 48) - 1)
        field = lo | ((field & _U64(0xF << 12)) << _U64(36))
    return (field >> _U64(pt.page_shift)).tolist()


def _entry_steps(
    m: Machine,
    action: str,
    fn: str,
    line: str,
    level: Any,
    table: int,
    idx: int,
    va: int,
    values: np.ndarray,
    new: bool,
) -> Iterator[Step]:
    """One read or write step per linear sub-run of ``values`` (entries ``idx`` on of
    ``table``): a write stores ``values`` (``new``) or clears (``not new``: ``values`` is
    what the entries hold); ``old`` is filled in when performed."""
    arr = m.pgtables.content[table]
    size = level.entry_size
    for a, b, stride in linear_runs(values):
        step = Step(
            action,  # type: ignore[arg-type]
            fn,
            line,
            level.name,
            va + a * size,
            table,
            idx + a,
            count=b - a,
            new=int(values[a]) if new else (0 if action == "write" else None),
            stride=stride,
            va_step=size,
        )
        yield step
        step.old = int(arr[idx + a])
        if action == "write":
            arr[idx + a : idx + b] = values[a:b] if new else 0


def _rows(m: Machine, pfns: list[int]) -> np.ndarray:
    """The entries of table pages ``pfns``, one row each (a view of the store when the
    rows are consecutive: read it before writing them)."""
    return m.pgtables.content.rows(pfns)


#: the last ramps made, by (entries, stride, backwards)
_ramps: dict[tuple[int, int, bool], np.ndarray] = {}


def _ramp(k: int, ptrs: int, stride: int, *, backwards: bool = False) -> np.ndarray:
    """``k`` rows of ``ptrs`` values from 0, each ``stride`` after the previous; with
    ``backwards``, the same rows last row first (as one contiguous array)."""
    key = (k * ptrs, stride, backwards)
    ramp = _ramps.get(key)
    if ramp is None:  # kept until a run of another size asks: runs repeat their size
        if not any(key[:2] == known[:2] for known in _ramps):
            _ramps.clear()
        ramp = np.arange(k * ptrs, dtype=_U64) * _U64(stride)
        if backwards:
            ramp = np.ascontiguousarray(ramp.reshape(k, ptrs)[::-1]).reshape(-1)
        _ramps[key] = ramp
    return ramp.reshape(k, ptrs)


def _linear(
    first: int, k: int, ptrs: int, stride: int, out: np.ndarray | None = None
) -> np.ndarray:
    """``k`` rows of ``ptrs`` values from ``first``, each ``stride`` after the previous
    (the last of a row followed by the first of the next), into ``out`` if given."""
    return np.add(_ramp(k, ptrs, stride), _U64(first), out=out)


_CHUNK_ENTRIES = 1 << 15  #: entries compared at a time: the scratch stays in the CPU's cache
_scratch: dict[int, tuple[np.ndarray, np.ndarray]] = {}  #: by row width


def _linear_prefix(rows: np.ndarray, first: int, stride: int) -> int:
    """How many leading rows of ``rows`` hold exactly what :func:`_linear` ``(first, k,
    ptrs, stride)`` would: compared a chunk of rows at a time, so that no full-size array
    of expected values is written (one pass over the rows and the ramp).

    >>> rows = _linear(7, 4, 3, 2)
    >>> rows[2, 1] = 0
    >>> _linear_prefix(rows, 7, 2), _linear_prefix(rows[:2], 7, 2)
    (2, 2)
    """
    k, ptrs = rows.shape
    backwards = rows.strides[0] < 0  # compare the rows in the order they lie in memory
    ramp = _ramp(k, ptrs, stride, backwards=backwards)
    block = forward(rows)
    chunk = max(1, _CHUNK_ENTRIES // ptrs)  # rows at a time
    scratch = _scratch.get(ptrs)
    if scratch is None:
        scratch = _scratch[ptrs] = (
            np.empty((chunk, ptrs), dtype=_U64),
            np.empty((chunk, ptrs), dtype=bool),
        )
    diff, differs = scratch
    base = _U64(first)
    for lo in range(0, k, chunk):  # rows [lo, hi) of ``rows``
        hi = min(lo + chunk, k)
        at = slice(k - hi, k - lo) if backwards else slice(lo, hi)
        d, b = diff[: hi - lo], differs[: hi - lo]
        np.subtract(block[at], ramp[at], out=d)  # modulo 2**64, as the values wrap
        np.not_equal(d, base, out=b)
        if b.any():
            bad = np.flatnonzero(b.any(axis=1))
            return k - 1 - (k - hi + int(bad[-1])) if backwards else lo + int(bad[0])
    return k


def _in_use(rows: np.ndarray) -> bool:
    """Whether any entry of ``rows`` is set (one pass: a maximum is the cheapest test)."""
    return bool(rows.size) and bool(forward(rows).max())


def _counts(rows: np.ndarray) -> list[int] | None:
    """Entries in use in each row, or None when every row is empty (one pass)."""
    if not _in_use(rows):
        return None
    return np.count_nonzero(rows, axis=1).tolist()


# ------------------------------------------------------------------ hot-add
def map_table_run(
    m: Machine,
    depth: int,
    table: int,
    addr: int,
    end: int,
    phys: int,
    prot: int,
    flags: int,
    fn_alloc: str,
) -> Iterator[Step]:
    """``alloc_init_cont_pte`` for a run of none entries of ``table`` (at ``depth``, whose
    entries point to leaf tables), each wholly inside [addr, end): read them, allocate a
    leaf table each, populate them, fill the tables (``init_pte``). Returns the bytes
    mapped (0: no run of at least two such entries here, nothing done)."""
    from mmkit.pgtable.mapping import NO_CONT_MAPPINGS

    pt = m.pgtables
    level = pt.levels[depth]
    size = level.entry_size
    if addr % size or phys % size:
        return 0
    idx = level.index(addr)
    k = min((end - addr) // size, level.ptrs - idx)
    if k < _MIN_RUN:
        return 0
    arr = pt.content[table]
    used = np.flatnonzero(arr[idx : idx + k])
    if len(used):
        k = int(used[0])
    pm = m.physmem
    if k < _MIN_RUN or not pm.can_alloc_tables(k):
        return 0
    if m.desc.region_of(addr).kind != m.desc.region_of(addr + k * size - 1).kind:
        return 0
    leaf = pt.levels[depth + 1]
    ptrs = leaf.ptrs
    lsize = leaf.entry_size
    first = pt.pa_to_desc(phys)
    if pt.pa_to_desc(phys + k * size - lsize) - first != k * size - lsize:
        return 0  # the output-address field is not linear over the run (52-bit PAs)
    cont_size = pt.geo.cont_pte_size
    contiguous = cont_size and not flags & NO_CONT_MAPPINGS and not phys % cont_size
    cont = pt.fmt.cont_bit if contiguous else 0
    name = level.name
    read = Step(
        "read",
        fn_alloc,
        f"{name} = READ_ONCE(*{name}p)",
        name,
        addr,
        table,
        idx,
        count=k,
        va_step=size,
    )
    yield read
    read.old = int(arr[idx])
    lname = leaf.name
    alloc = Step(
        "alloc",
        fn_alloc,
        f"__pgd_pgtable_alloc({lname.upper()}_SHIFT)",
        lname,
        addr,
        count=k,
        size=m.page_size,
        va_step=size,
        note="table",
    )
    yield alloc
    pfns = pm.alloc_tables(k, f"{lname} table")
    pt.new_tables(pfns, depth + 1, addr)
    alloc.pfn = pfns[0]
    alloc.tables = tuple(pfns)
    kind = pt.table_desc(0)  # the format's table-type bits, with a zero address
    descs = (np.array(pfns, dtype=_U64) << _U64(pt.page_shift)) | _U64(kind)
    if any(int(descs[i]) != pt.table_desc(pfns[i]) for i in (0, -1)):  # a non-linear field
        descs = np.array([pt.table_desc(p) for p in pfns], dtype=_U64)  # (52-bit PAs)
    line = f"__{name}_populate({name}p, {lname}_phys, {name.upper()}_TYPE_TABLE)"
    yield from _entry_steps(m, "write", fn_alloc, line, level, table, idx, addr, descs, True)
    first |= prot | cont
    fill = Step(
        "write",
        "init_pte",
        "set_pte(ptep, pfn_pte(__phys_to_pfn(phys), __prot))",
        lname,
        addr,
        pfns[0],
        0,
        count=ptrs,
        new=first,
        stride=lsize,
        va_step=lsize,
        tables=tuple(pfns),
    )
    yield fill
    content = pt.content
    view = content.view(pfns)
    old = view if view is not None else content.rows(pfns)
    fill.old = int(old[0, 0])
    if not _in_use(old):  # the common case: freshly zeroed tables
        if view is not None and view.strides[0] < 0:  # frames handed out last-freed first
            np.add(_ramp(k, ptrs, lsize, backwards=True), _U64(first), out=view[::-1])
        elif view is not None:  # (a leaf table is a whole page of entries)
            _linear(first, k, ptrs, lsize, out=view)
        else:
            content.set_rows(pfns, _linear(first, k, ptrs, lsize))
        return k * size
    new = _linear(first, k, ptrs, lsize)
    for i, pfn in enumerate(pfns):
        row = content[pfn][:ptrs]
        if row.any() and not np.array_equal(row, new[i]):
            m.bug(
                "init_pte",
                "BUG_ON(!pgattr_change_is_safe(old, new)) for va "
                f"{addr + i * size:#x}: remapping a live entry to another address",
                va=addr + i * size,
            )
            continue
        row[:] = new[i]
    return k * size


# ------------------------------------------------------------------ unmap


class _LeafRun(NamedTuple):
    """A run of ``k`` entries of a table pointing to live leaf tables (:func:`_leaf_table_run`)."""

    index: int  #: of the first entry
    k: int
    entries: np.ndarray  #: the ``k`` entries (a view of the table)
    pfns: list[int]  #: the leaf tables they point to
    level: Level  #: the level of the entries
    leaf: Level  #: the level of the leaf tables


def _leaf_table_run(m: Machine, depth: int, table: int, addr: int, end: int) -> _LeafRun | None:
    """The run of live leaf tables whose entries start at ``addr`` in ``table`` (a level-
    ``depth`` table), wholly inside [addr, end), or None when there is no run of two. Table
    entries are told apart by the format's ``table_match``."""
    pt = m.pgtables
    level = pt.levels[depth]
    size = level.entry_size
    if addr % size:
        return None
    idx = level.index(addr)
    k = min((end - addr) // size, level.ptrs - idx)
    if k < _MIN_RUN:
        return None
    vals = pt.content[table][idx : idx + k]
    mask, value = pt.fmt.table_match
    not_table = np.flatnonzero((vals & _U64(mask)) != _U64(value))
    if len(not_table):
        k = int(not_table[0])
        if k < _MIN_RUN:
            return None
        vals = vals[:k]
    pfns = _table_pfns(m, vals)
    if not pt.info.keys() >= set(pfns):
        return None
    return _LeafRun(idx, k, vals, pfns, level, pt.levels[depth + 1])


def unmap_table_run(
    m: Machine, depth: int, table: int, addr: int, end: int, free_mapped: bool
) -> Iterator[Step]:
    """``unmap_hotplug_pmd_range`` over a run of entries of ``table`` pointing to leaf
    tables whose every entry maps the next page of one linear run, each wholly inside
    [addr, end): read the entries, clear the tables' entries, invalidate them, free what
    they mapped (``free_mapped``). Returns the bytes done (0: no run of two here)."""
    from mmkit.pgtable.tlb import flush_tlb_pages

    pt = m.pgtables
    run = _leaf_table_run(m, depth, table, addr, end)
    if run is None:
        return 0
    idx, k, vals, pfns, level, leaf = run
    size, ptrs, lsize = level.entry_size, leaf.ptrs, leaf.entry_size
    rows = _rows(m, pfns)[:, :ptrs]
    first = int(rows[0, 0])
    if not first & 1:
        return 0
    linear = _linear_prefix(rows, first, lsize)
    if linear < k:
        k = linear
        if k < _MIN_RUN:
            return 0
        pfns, vals = pfns[:k], vals[:k]
    fn = f"unmap_hotplug_{level.name}_range"
    line = f"{level.name} = READ_ONCE(*{level.name}p)"
    yield from _entry_steps(m, "read", fn, line, level, table, idx, addr, vals.copy(), False)
    lfn = f"unmap_hotplug_{leaf.name}_range"
    clear = Step(
        "write",
        lfn,
        f"{leaf.name}_clear(&init_mm, addr, {leaf.name}p)",
        leaf.name,
        addr,
        pfns[0],
        0,
        count=ptrs,
        new=0,
        stride=lsize,
        va_step=lsize,
        tables=tuple(pfns),
    )
    yield clear
    content = pt.content
    clear.old = int(content[pfns[0]][0])
    content.set_rows(pfns, 0)  # a leaf table is a whole page of entries
    yield from flush_tlb_pages(m, lfn, addr, k * ptrs, lsize, tuple(pfns))
    if free_mapped:
        pfn0 = pt.desc_to_pa(first) >> pt.page_shift
        yield from m.free_backing(
            pfn0, 0, "free_hotplug_page_range", addr, count=k * ptrs, va_step=lsize
        )
    return k * size


# ------------------------------------------------------------------ free

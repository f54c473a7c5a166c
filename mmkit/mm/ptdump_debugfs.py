"""``cat /sys/kernel/debug/kernel_page_tables`` as a thread: the walk patch 2/3 protects.

Models arm64 ``ptdump_show()`` and the v5.4 walker (``arch/arm64/mm/dump.c``
``walk_pgd`` / ``walk_pud`` / ``walk_pmd`` / ``walk_pte``). Which kernels take the lock:

* **v5.3, v5.4 as released**: ``ptdump_show()`` calls ``ptdump_walk_pgd()`` and takes no
  lock at all (v5.4 ``arch/arm64/mm/ptdump_debugfs.c``).
* **patch 2/3** (V3 to V13; merged as V14 1/2 for v5.7): ``ptdump_show()`` brackets the walk
  with ``get_online_mems()`` / ``put_online_mems()`` (``mem_hotplug_lock`` for read), so
  hot-remove (which takes it for write) cannot free a table page under the walk. **v5.7**
  has it in ``arch/arm64/mm/ptdump_debugfs.c`` around ``ptdump_walk()``.
* **v6.1** as Debian ships it (6.1.192, with the 2025 backport of 59305202c67f): the lock
  moved into the generic ``ptdump_walk_pgd()`` (``mm/ptdump.c``), taken before
  ``mmap_write_lock(mm)``; arm64's ``ptdump_show()`` no longer takes it (kernel-facts 5).

Here the policy decides (``ptdump_hotplug_lock``, :mod:`mmkit.policies.base`), whatever the
era. Without the lock, the walker can read a table page that ``free_empty_tables()`` has
just freed: a use-after-free, and in v5.4 a garbage "table" entry could even trip
``BUG_ON(pmd_bad())``.

Granularity. The walk goes entry by entry as v5.4's does: a ``READ_ONCE`` of each table
entry is its own step, then ``p?d_offset()`` / ``pte_offset_kernel()`` reads that entry
again to find the child, the child is walked, and the walk comes back to the parent's next
entry, read from the parent page as it is *then*: a parent freed while the walker was in a
child is read after its free. A run of none entries (or of leaves: blocks above the PTE
level, pages in a PTE table) is one step, as ``note_page()`` folds it into one line; it
leads nowhere, so splitting it would show nothing more (and a 64K-page table holds 8192
entries): ``machine.fine`` walks the same steps. The text itself comes from
:mod:`mmkit.mm.ptdump`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["ptdump_show"]

_WALK_FN = {"pgd": "walk_pgd", "pud": "walk_pud", "pmd": "walk_pmd", "pte": "walk_pte"}


def ptdump_show(m: Machine, *, take_lock: bool | None = None) -> Iterator[Step]:
    """``ptdump_show()``: walk every kernel table page from ``swapper_pg_dir`` down.

    ``take_lock`` defaults to the policy's ``ptdump_hotplug_lock`` (patch 2/3). Returns the
    number of table pages read. A table page that is no longer live when the walker reads
    it is reported as a use-after-free (naming who freed it).
    """
    if take_lock is None:
        take_lock = m.policy.ptdump_hotplug_lock
    if take_lock:
        yield from m.lock("ptdump_show", "mem_hotplug_lock", mode="read")
    top = m.pgtables.levels[0]
    walk = _Walk(m)
    top_va = -(top.ptrs << top.shift) & ((1 << 64) - 1)
    yield from walk.table(0, m.pgtables.pgd_pfn, top_va, ())
    if take_lock and not walk.died:
        yield from m.unlock("ptdump_show", "mem_hotplug_lock")
    return len(walk.seen)


class _Walk:
    """The v5.4 walk, entry by entry (module docstring)."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.seen: set[int] = set()  #: table pages read
        self.reported: set[int] = set()  #: freed table pages already reported
        self.died = False  #: BUG_ON(p?d_bad) killed the walker

    def _check_live(self, table: int, depth: int, va: int) -> None:
        m = self.m
        self.seen.add(table)
        if table in m.pgtables.info or table in self.reported:
            return
        self.reported.add(table)
        level = m.pgtables.levels[depth]
        frame = m.physmem.frame(table)
        m.record_event(
            "use-after-free",
            _WALK_FN[level.name],
            f"ptdump read {level.name} table pfn {table:#x} (VA {va:#x}) after it was freed",
            va=va,
            pfn=table,
            freed_by=frame.freed_by if frame else None,
            thread=getattr(m, "current_thread", ""),
        )

    def table(self, depth: int, table: int, va: int, above: tuple[int, ...]) -> Iterator[Step]:
        """``walk_p?d()`` over every entry of ``table`` (at ``depth``, mapping from ``va``).

        Each step's ``result`` is the walker's path: the table pages it holds a pointer
        into (the ones ``above`` it comes back to, this one, and a child it is entering)."""
        path = (*above, table)
        m = self.m
        pt = m.pgtables
        level = pt.levels[depth]
        name, fn, size = level.name, _WALK_FN[level.name], level.entry_size
        leaf_level = depth == len(pt.levels) - 1
        arr = pt.content[table]  # a freed frame keeps its content: a stale read sees it
        i = 0
        while i < level.ptrs and not self.died:
            at = va + i * size
            raw = int(arr[i])
            if leaf_level or not raw or pt.is_sect(raw):  # a run the walker only notes
                n = _run(arr, i, level.ptrs, leaf_level, pt.fmt.table_match)
                step = Step(
                    "read",
                    fn,
                    f"note_page(st, addr, {depth + 1}, READ_ONCE(*{name}p))",
                    name,
                    at,
                    table,
                    i,
                    count=n,
                    va_step=size,
                )
                step.result = path
                yield step
                self._check_live(table, depth, at)
                step.old = int(arr[i])
                i += n
                continue
            step = Step("read", fn, f"{name} = READ_ONCE(*{name}p)", name, at, table, i)
            step.result = path
            yield step
            self._check_live(table, depth, at)
            raw = step.old = int(arr[i])
            if not raw or pt.is_sect(raw):  # none or a block now: noted, next entry
                i += 1
                continue
            if not pt.is_table(raw, False):  # neither none nor a section nor a table
                m.bug(fn, f"BUG_ON({name}_bad({name})): {raw:#x} at VA {at:#x}", va=at)
                self.died = True
                return
            child_level = pt.levels[depth + 1]
            offset = (
                "pte_offset_kernel" if child_level.name == "pte" else (f"{child_level.name}_offset")
            )
            again = Step(
                "read",
                _WALK_FN[child_level.name],
                f"{child_level.name}p = {offset}({name}p, addr)",
                name,
                at,
                table,
                i,
            )
            again.result = path
            yield again  # walk_p?d() reads the parent entry again to find its table
            self._check_live(table, depth, at)
            raw = again.old = int(arr[i])
            if pt.is_table(raw, False) and pt.next_table(raw) in pt.content:
                again.result = (*path, pt.next_table(raw))
                yield from self.table(depth + 1, pt.next_table(raw), at, path)
            i += 1


def _run(arr: np.ndarray, i: int, n: int, leaf_level: bool, table_match: tuple[int, int]) -> int:
    """How many entries from ``i`` the walker only notes in one go: a run of none entries,
    or (in a leaf table) of set entries, or above it of blocks (valid, bit 0, and not a
    table as the entry format's ``table_match`` says)."""
    vals = arr[i:n]
    if not int(vals[0]):
        stop = np.flatnonzero(vals)
    elif leaf_level:
        stop = np.flatnonzero(vals == 0)
    else:
        mask, value = np.uint64(table_match[0]), np.uint64(table_match[1])
        block = ((vals & np.uint64(1)) == 1) & ((vals & mask) != value)
        stop = np.flatnonzero(~block)
    return int(stop[0]) if len(stop) else len(vals)

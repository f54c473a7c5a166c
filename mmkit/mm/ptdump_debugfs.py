"""``cat /sys/kernel/debug/kernel_page_tables`` as a thread: the walk patch 2/3 protects.

Models v5.4 ``arch/arm64/mm/ptdump_debugfs.c`` ``ptdump_show()``: with patch 2/3 it brackets
``ptdump_walk_pgd()`` with ``get_online_mems()`` / ``put_online_mems()`` (``mem_hotplug_lock``
for read), so hot-remove (which takes it for write) cannot free a table page under the walk.
Without it, the walker can read a table page that ``free_empty_tables()`` has just freed: a
use-after-free, and in v5.4 a garbage "table" entry could even trip ``BUG_ON(pmd_bad())``.

Granularity: one step per table page read (the walker reads a whole table page while it is
at it), so a dump is tens of steps; the text itself comes from :mod:`mmkit.mm.ptdump`.
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
    pt = m.pgtables
    last = len(pt.levels) - 1
    top = pt.levels[0]
    # (table pfn, depth, first VA the table maps)
    stack: list[tuple[int, int, int]] = [
        (pt.pgd_pfn, 0, -(top.ptrs << top.shift) & ((1 << 64) - 1))
    ]
    read = 0
    while stack:
        table, depth, va = stack.pop()
        level = pt.levels[depth]
        step = Step(
            "read",
            _WALK_FN[level.name],
            f"{level.name} = READ_ONCE(*{level.name}p) for each of {level.ptrs} entries",
            level.name,
            va,
            table,
            0,
            count=level.ptrs,
            va_step=level.entry_size,
        )
        yield step
        read += 1
        if table not in pt.info:  # the walker holds a pointer into a freed page
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
        entries = pt.content[table][: level.ptrs]
        step.note = f"{int(np.count_nonzero(entries))} entries set"
        if depth == last:
            step.result = ()
            continue
        tables = np.flatnonzero((entries & np.uint64(3)) == np.uint64(3)).tolist()
        children = [pt.next_table(int(entries[idx])) for idx in tables]
        step.result = tuple(children)
        for idx, child in zip(reversed(tables), reversed(children), strict=True):
            stack.append((child, depth + 1, va + idx * level.entry_size))  # depth first
    if take_lock:
        yield from m.unlock("ptdump_show", "mem_hotplug_lock")
    return read

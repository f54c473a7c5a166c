"""Race scenarios: a ready machine and the threads to interleave, for the scheduler.

Each scenario is a :class:`Race`: ``factory()`` builds a fresh ``(machine, threads)`` pair
(the machine is prepared once and copied, so exploring thousands of schedules stays cheap),
``scheduler()`` starts a :class:`~mmkit.sched.Scheduler` on it for stepping by hand, and
``explore(bound)`` searches its schedules.

* :func:`ptdump_race`: patch 2/3. ``H`` hot-removes a block (``remove_memory()``, whose
  ``free_empty_tables()`` frees table pages) while ``P`` dumps the kernel page tables
  (``ptdump_show()``). Without ``get_online_mems()`` one preemption lets ``P`` read a table
  page ``H`` has freed; with it (every policy from V3 on) ``H``'s ``mem_hotplug_begin()`` and
  ``P``'s read lock exclude each other.
* :func:`tlb_order`: why teardown goes clear → TLBI → free. ``R`` on CPU 1 has the struct
  pages of the block in its TLB and reads them again; ``H`` removes the block. V3 freed a
  vmemmap block before clearing its entry and never invalidated: ``R`` then reads a freed
  page through its stale TLB entry. From V6 the entry is cleared and invalidated before the
  page is freed, so ``R`` faults instead (the kernel's own code never reads removed memory).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mmkit.machine import Machine
from mmkit.sched import Scheduler, Thread
from mmkit.sched.explore import ExploreResult, explore

__all__ = ["Race", "ptdump_race", "tlb_order"]


@dataclass
class Race:
    """A race scenario (see the module docstring)."""

    name: str
    description: str
    threads: dict[str, str]  #: letter -> what the thread does
    make: Callable[[], tuple[Machine, Sequence[Thread]]]

    def factory(self) -> tuple[Machine, Sequence[Thread]]:
        return self.make()

    def scheduler(self) -> Scheduler:
        return Scheduler(self.make)

    def explore(self, bound: int = 2, **kw: Any) -> ExploreResult:
        return explore(self.make, bound=bound, **kw)

    def call(self) -> str:
        """How to rebuild this scenario, for a replayable report."""
        return self.name


def _far_block(m: Machine) -> int:
    lm = (m.macros["PAGE_END"] or 1 << 64) - m.macros["PAGE_OFFSET"]
    reach = min(lm, 1 << m.macros["MAX_PHYSMEM_BITS"]) // 2
    return m.memstart + (reach & ~(m.desc.memory_block_size - 1))


def ptdump_race(config: str = "arm64-4k-48", policy: str = "v5.7") -> Race:
    """Patch 2/3's race: ptdump (``P``) against hot-remove (``H``) under ``policy``."""
    from mmkit.mm.hotplug import remove_memory
    from mmkit.mm.ptdump_debugfs import ptdump_show

    base = Machine(config, policy=policy, online_type="offline", vmalloc_areas=1, record=False)
    start = _far_block(base)
    size = base.desc.memory_block_size
    base.add_memory(0, start, size)
    base.history.clear()
    take_lock = base.policy.ptdump_hotplug_lock

    def make() -> tuple[Machine, Sequence[Thread]]:
        m = copy.deepcopy(base)
        return m, [
            Thread(
                "H",
                f"hot-remove: remove_memory({start:#x}, {size:#x})",
                0,
                remove_memory(m, start, size),
            ),
            Thread(
                "P",
                "cat /sys/kernel/debug/kernel_page_tables"
                + (" (get_online_mems)" if take_lock else ""),
                1,
                ptdump_show(m, take_lock=take_lock),
            ),
        ]

    return Race(
        f"ptdump_race({config!r}, {policy!r})",
        "ptdump walks the kernel page tables while hot-remove frees table pages",
        {"H": "hot-remove", "P": "ptdump"},
        make,
    )


def tlb_order(policy: str = "v5.7", config: str = "arm64-4k-48") -> Race:
    """clear → TLBI → free against a CPU holding a TLB entry for the memmap (``R``)."""
    from mmkit.mm.hotplug import remove_memory
    from mmkit.pgtable.tlb import access

    base = Machine(config, policy=policy, online_type="offline", vmalloc_areas=1, record=False)
    start = _far_block(base)
    size = base.desc.memory_block_size
    base.add_memory(0, start, size)
    va = base.vmemmap_va(start >> base.desc.page_shift)
    base.access(va, cpu=1)  # CPU 1 caches the translation of the block's struct pages
    base.history.clear()

    def make() -> tuple[Machine, Sequence[Thread]]:
        m = copy.deepcopy(base)
        return m, [
            Thread(
                "H",
                f"hot-remove: remove_memory({start:#x}, {size:#x})",
                0,
                remove_memory(m, start, size),
            ),
            Thread("R", f"CPU1 reads struct page at {va:#x}", 1, access(m, va, 1)),
        ]

    return Race(
        f"tlb_order({policy!r}, {config!r})",
        "a CPU with a cached translation reads the memmap while hot-remove frees it",
        {"H": "hot-remove", "R": "reader"},
        make,
    )

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
* :func:`tlb_order`: why teardown goes clear → TLBI → free. ``R`` on CPU 1 has the first
  struct page of the block in its TLB and reads it again; ``H`` removes the block. V3 (V3 4/4,
  V5 3/3 ``remove_pagetable``) freed the memmap before clearing its entries: a 2 MiB block
  (4K) with no TLBI for the block at all, or base pages (16K, 64K) with one
  ``flush_tlb_kernel_range()`` only after the PTE loop. ``R`` running in that window reads a
  freed page through its stale TLB entry. The window closes at the next TLBI that covers
  ``R``'s address: the PTE loop's flush, or on 4K the ``__flush_tlb_kernel_pgtable(addr)``
  with which V3 freed the emptied vmemmap table (it names the range's first address, the
  one ``R`` reads), so ``H`` run to the end leaves nothing stale here: it takes one
  preemption. From V6 each entry is cleared and invalidated before its page is freed, so
  ``R`` faults instead (the kernel's own code never reads removed memory).
* :func:`vmalloc_race`: patch 3/3's race (kernel-facts 7.2). ``V`` runs ``vmalloc()`` on
  CPU 1: ``vmap_page_range()`` takes a pointer into a table page without a lock and uses it
  later; ``H`` hot-removes the block whose memmap shares that table page. Where nothing else
  pins the table (the teaching layouts, :mod:`mmkit.arch.teaching`), a policy that frees
  empty tables (naive, and V3 despite its ``init_mm`` lock) frees it under ``V``: ``V``
  writes a table entry into the freed page and its area is not mapped. V6 never frees
  vmemmap tables, V7 skips when the gap edges share a PGD entry, v5.7 frees only tables
  inside [floor, ceiling). On the real layouts the race is latent under every policy:
  :func:`mmkit.pgtable.shared.shared_tables` shows the fixmap pinning the shared table.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.sched import Scheduler, Thread
from mmkit.sched.explore import ExploreResult, explore

__all__ = ["BOOKKEEPING", "LESSON_RACES", "Race", "ptdump_race", "tlb_order", "vmalloc_race"]


@dataclass
class Race:
    """A race scenario (see the module docstring)."""

    name: str
    description: str
    threads: dict[str, str]  #: letter -> what the thread does
    make: Callable[[], tuple[Machine, Sequence[Thread]]]
    notes: tuple[str, ...] = ()  #: what to know before stepping (pins, addresses)
    #: step actions that touch only state the other threads never read or write: the
    #: explorer need not switch threads before them (see :func:`~mmkit.sched.explore.explore`).
    #: None by default: a scenario vouches for its own (usually :data:`BOOKKEEPING`)
    local_actions: frozenset[str] = frozenset()
    #: more local steps the scenario can vouch for (see :func:`ptdump_race`)
    also_local: Callable[[Step], bool] | None = None
    #: pairs of two threads' next steps the scenario vouches commute, beyond what the
    #: explorer knows itself (see :func:`ptdump_race`)
    also_independent: Callable[[Step, Step], bool] | None = None

    def factory(self) -> tuple[Machine, Sequence[Thread]]:
        return self.make()

    def scheduler(self) -> Scheduler:
        return Scheduler(self.make)

    def explore(self, bound: int = 2, **kw: Any) -> ExploreResult:
        kw.setdefault("local", self.is_local)
        kw.setdefault("independent", self.also_independent)
        return explore(self.make, bound=bound, **kw)

    def is_local(self, step: Step) -> bool:
        """Whether ``step`` touches only state the other threads never read or write."""
        return step.action in self.local_actions or bool(self.also_local and self.also_local(step))

    def call(self) -> str:
        """How to rebuild this scenario, for a replayable report."""
        return self.name


#: The generic hotplug book-keeping (memblock, sysfs, devices, calls into the next layer):
#: local in a scenario whose other threads only walk or map page tables or read memory.
BOOKKEEPING = frozenset({"call", "memblock", "sysfs", "device"})


def _hot_remove(m: Machine, start: int, size: int) -> Thread:
    """Thread ``H`` on CPU 0: ``remove_memory(start, size)`` (then the arch teardown)."""
    from mmkit.mm.hotplug import remove_memory

    return Thread(
        "H", f"hot-remove: remove_memory({start:#x}, {size:#x})", 0, remove_memory(m, start, size)
    )


def _far_block(m: Machine) -> int:
    lm = (m.macros["PAGE_END"] or 1 << 64) - m.macros["PAGE_OFFSET"]
    reach = min(lm, 1 << m.macros["MAX_PHYSMEM_BITS"]) // 2
    return m.memstart + (reach & ~(m.desc.memory_block_size - 1))


def ptdump_race(config: str = "arm64-4k-48", policy: str = "v5.7", *, fine: bool = False) -> Race:
    """Patch 2/3's race: ptdump (``P``) against hot-remove (``H``) under ``policy``.

    ``fine=True`` makes every page-table entry its own step (for stepping by hand)."""
    from mmkit.mm.hotplug import remove_memory
    from mmkit.mm.ptdump_debugfs import ptdump_show

    base = Machine(config, policy=policy, online_type="offline", vmalloc_areas=1, record=False)
    start = _far_block(base)
    size = base.desc.memory_block_size
    base.add_memory(0, start, size)
    base.history.clear()
    base.fine = fine
    take_lock = base.policy.ptdump_hotplug_lock
    # P only reads, so H runs the same steps in every interleaving: the tables H touches are
    # known from one run, and P's read of any other table commutes with all of H's steps
    touched = _tables_touched(copy.deepcopy(base), remove_memory, start, size)
    commutes = _walk_commutes(base)
    # P only reads table pages, never the TLBs, and takes a lock only when the policy has
    # it take get_online_mems(): so H's reads and TLB invalidations, and (without that lock)
    # its locking, touch nothing P writes or reads, and wake or block nothing of P's
    h_local = frozenset({"read", "tlbi"} | (set() if take_lock else {"lock", "unlock"}))

    def make() -> tuple[Machine, Sequence[Thread]]:
        m = copy.deepcopy(base)
        return m, [
            _hot_remove(m, start, size),
            Thread(
                "P",
                "cat /sys/kernel/debug/kernel_page_tables"
                + (" (get_online_mems)" if take_lock else ""),
                1,
                ptdump_show(m),
            ),
        ]

    return Race(
        f"ptdump_race({config!r}, {policy!r}" + (", fine=True)" if fine else ")"),
        "ptdump walks the kernel page tables while hot-remove frees table pages",
        {"H": "hot-remove", "P": "ptdump"},
        make,
        local_actions=BOOKKEEPING,
        also_local=lambda step: (
            step.action in h_local
            if step.thread == "H"
            else step.action == "read" and step.table not in touched
        ),
        also_independent=commutes,
    )


def _walk_commutes(m: Machine) -> Callable[[Step, Step], bool]:
    """When a step of ``P`` (the ptdump walk, which only reads) commutes with one of ``H``
    (hot-remove, which only clears entries and frees pages, never allocates).

    ``P``'s read of entries ``[index, index + count)`` of table page T, and its walk on to
    its next step, look only at the table pages of its path (``result``: the ones it holds
    pointers into, which it comes back to), T, and a child table those entries point to
    (the walk enters it: :func:`~mmkit.mm.ptdump_debugfs.ptdump_show` moves forward only).
    An ``H`` write to another table page, or a free of other frames, changes nothing of
    that, and the read changes nothing ``H`` sees. The children are taken from the
    prepared machine: ``H`` only ever removes tables."""
    pt = m.pgtables
    leaf = len(pt.levels) - 1
    children: dict[int, dict[int, int]] = {}  #: table -> entry index -> child table
    for pfn, info in pt.info.items():
        if info.depth < leaf:
            arr = pt.content[pfn]
            kids = {int(i): pt.next_table(int(arr[i])) for i in np.flatnonzero(arr & 0b10)}
            children[pfn] = {i: c for i, c in kids.items() if c in pt.content}
    shift = m.desc.page_shift

    def commutes(a: Step, b: Step) -> bool:
        walk, remove = (a, b) if a.thread == "P" else (b, a)
        if (walk.thread, remove.thread, walk.action) != ("P", "H", "read") or not walk.result:
            return False
        if walk.table is None or walk.index is None:
            return False
        first, end = walk.index, walk.index + max(walk.count, 1)
        kids = children.get(walk.table, {})
        near = {walk.table, *walk.result, *(c for i, c in kids.items() if first <= i < end)}
        if remove.action == "write":
            return remove.table is not None and remove.table not in near
        if remove.action == "free" and remove.pfn is not None:
            return not any(remove.covers(t, shift) for t in near)
        return False

    return commutes


def _tables_touched(m: Machine, op: Callable[..., Any], *args: Any) -> frozenset[int]:
    """The frames ``op(m, *args)``, run alone to the end, reads or writes as table pages,
    allocates or frees."""
    touched: set[int] = set()
    for step in list(op(m, *args)):  # complete steps: an allocation knows its pfn now
        if step.table is not None:
            touched.add(step.table)
        if step.tables is not None:  # a bulk step: a run of table pages
            touched.update(step.tables)
        if step.action in ("alloc", "free"):
            touched.update(step.frames(m.desc.page_shift))
    return frozenset(touched)


def tlb_order(policy: str = "v5.7", config: str = "arm64-4k-48", *, fine: bool = False) -> Race:
    """clear → TLBI → free against a CPU holding a TLB entry for the memmap (``R``).

    ``fine=True`` makes every page-table entry its own step (for stepping by hand)."""
    from mmkit.pgtable.tlb import access

    base = Machine(config, policy=policy, online_type="offline", vmalloc_areas=1, record=False)
    start = _far_block(base)
    size = base.desc.memory_block_size
    base.add_memory(0, start, size)
    va = base.vmemmap_va(start >> base.desc.page_shift)
    base.access(va, cpu=1)  # CPU 1 caches the translation of the block's struct pages
    base.history.clear()
    base.fine = fine

    def make() -> tuple[Machine, Sequence[Thread]]:
        m = copy.deepcopy(base)
        return m, [
            _hot_remove(m, start, size),
            Thread("R", f"CPU1 reads struct page at {va:#x}", 1, access(m, va, 1)),
        ]

    return Race(
        f"tlb_order({policy!r}, {config!r}" + (", fine=True)" if fine else ")"),
        "a CPU with a cached translation reads the memmap while hot-remove frees it",
        {"H": "hot-remove", "R": "reader"},
        make,
        local_actions=BOOKKEEPING,
    )


def vmalloc_race(config: str = "teach-4k-39", policy: str = "v5.7", *, fine: bool = False) -> Race:
    """Patch 3/3's race: ``vmalloc()`` (``V``) against hot-remove (``H``) under ``policy``.

    ``H`` removes the hot-added block whose memmap lies closest to the vmalloc area and ``V``
    maps the vmalloc page closest to the vmemmap: the first area of the teaching layouts
    (vmemmap right below vmalloc), or the last page below ``VMALLOC_END`` on the real ones
    (``__vmalloc_node_range``, as a nearly full vmalloc area would hand out). ``notes``
    explains, from the machine's own tables, which table page the two share and what pins it.
    ``fine=True`` makes every page-table entry its own step (for stepping by hand).
    """
    from mmkit.pgtable.shared import shared_tables

    base = Machine(config, policy=policy, online_type="offline", vmalloc_areas=0, record=False)
    mac = base.macros
    size = base.desc.memory_block_size
    page = base.page_size
    below = mac["VMEMMAP_START"] < mac["VMALLOC_START"]  # the teaching order
    if below:  # the topmost block of the linear map: its memmap ends at VMEMMAP_END
        linear = min(
            (mac["PAGE_END"] - mac["PAGE_OFFSET"]) & ((1 << 64) - 1),
            (1 << mac["MAX_PHYSMEM_BITS"]) - base.memstart,
        )
        start = base.memstart + linear - size
        area: dict[str, int] = {}
    else:  # the lowest block above boot memory: its memmap is nearest VMEMMAP_START
        top = max(s + n for s, n in base.boot_memory)
        start = (top + size - 1) & ~(size - 1)
        area = {"start": mac["VMALLOC_END"] - 2 * page}
    base.add_memory(0, start, size)
    base.history.clear()
    base.fine = fine
    memmap = (
        base.vmemmap_va(start >> base.desc.page_shift),
        base.vmemmap_va((start + size) >> base.desc.page_shift),
    )
    notes = tuple(t.explain() for t in shared_tables(base, removing=memmap)) or (
        "No table page maps both vmalloc and vmemmap addresses in this layout (V7's test "
        "finds no overlap): the race cannot happen.",
    )

    def make() -> tuple[Machine, Sequence[Thread]]:
        m = copy.deepcopy(base)
        return m, [
            _hot_remove(m, start, size),
            Thread("V", "vmalloc(PAGE_SIZE), then use it", 1, _vmalloc_and_use(m, page, area)),
        ]

    return Race(
        f"vmalloc_race({config!r}, {policy!r}" + (", fine=True)" if fine else ")"),
        "vmalloc() walks a table page without a lock while hot-remove frees empty tables",
        {"H": "hot-remove", "V": "vmalloc"},
        make,
        notes,
        local_actions=BOOKKEEPING,
    )


def _vmalloc_and_use(m: Machine, nbytes: int, where: dict[str, int]) -> Iterator[Step]:
    """``p = vmalloc(nbytes)`` (in ``where``'s range, if given), then touch ``p`` from CPU 1."""
    from mmkit.mm.vmalloc import use_vmalloc_area, vmalloc

    va = yield from vmalloc(m, nbytes, **where)
    if va is not None:
        yield from use_vmalloc_area(m, va, 1)
    return va


#: The race scenarios the lessons explore, as (slug, scenario function, config, policy):
#: ``mmkit bench`` times each at bound 2 (target: under a second each).
LESSON_RACES: tuple[tuple[str, Callable[..., Race], str, str], ...] = (
    ("ptdump_4k_48_naive", ptdump_race, "arm64-4k-48", "naive"),
    ("ptdump_4k_48_v57", ptdump_race, "arm64-4k-48", "v5.7"),
    ("tlb_order_4k_48_v3", tlb_order, "arm64-4k-48", "v3"),
    ("tlb_order_4k_48_v57", tlb_order, "arm64-4k-48", "v5.7"),
    *(
        (f"vmalloc_teach_4k_39_{p.replace('.', '')}", vmalloc_race, "teach-4k-39", p)
        for p in ("naive", "v3", "v6", "v7", "v5.7")
    ),
    ("vmalloc_4k_48_naive", vmalloc_race, "arm64-4k-48", "naive"),
)

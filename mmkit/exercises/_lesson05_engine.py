"""What lesson 05's checkers read from the engine, each run cached (one run per parameter).

* :func:`teardown_order`: the order in which a policy's hot-remove clears, invalidates and
  frees one vmemmap page, one vmemmap block or one table page (kernel-facts 6.1-6.3: v5.7
  ``unmap_hotplug_*_range`` and ``free_empty_*_table`` go clear → TLBI → free).
* :func:`removal_tlbi`: the TLB invalidations one memory block's hot-remove issues, by kind
  (:func:`mmkit.mm.compare.compare_policies`).
* :func:`vmalloc_failure` and :func:`replay_schedule`: patch 3/3's race
  (:func:`mmkit.scenarios.races.vmalloc_race`, kernel-facts 7.2), searched once per layout and
  policy, and a learner's schedule replayed on it.
* :func:`aligned_verdict`: which of ``pgtable_range_aligned()``'s tests decides (kernel-facts
  6.4), next to the engine's own :func:`mmkit.pgtable.unmap.pgtable_range_aligned`.

>>> teardown_order("arm64-4k-48", "block")
('clear', 'tlbi', 'free')
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from mmkit.events import Step
from mmkit.machine import Machine

__all__ = [
    "BLOCK_START",
    "WIN_KINDS",
    "aligned_verdict",
    "removal_history",
    "removal_tlbi",
    "replay_schedule",
    "teardown_order",
    "teardown_steps",
    "vmalloc_failure",
]

#: the block every removal here hot-adds and removes: 4 GiB, above the 2 GiB of boot memory
#: at 0x4000_0000 (QEMU virt style)
BLOCK_START = 0x1_0000_0000

#: kernel event kinds that mean V lost: it wrote into a freed table, or its mapping is gone
WIN_KINDS = frozenset({"use-after-free", "lost-mapping"})

_M64 = (1 << 64) - 1


@lru_cache(maxsize=64)
def removal_history(
    config: str, policy: str, rodata_full: bool
) -> tuple[tuple[Step, ...], tuple[str, ...], int]:
    """The steps of hot-removing one memory block at :data:`BLOCK_START` (after hot-adding
    it), the level names of the configuration's page tables (top first) and its page size."""
    m = Machine(config, policy=policy, rodata_full=rodata_full, record=True)
    size = m.desc.memory_block_size
    m.hot_add(BLOCK_START, size)
    mark = len(m.history)
    m.hot_remove(BLOCK_START, size)
    # a bulk step (a run of table pages) as the per-table steps it stands for
    steps = tuple(p for s in m.history[mark:] for p in (s.expand() if s.bulk else [s]))
    return steps, tuple(lv.name for lv in m.pgtables.levels), m.page_size


def teardown_steps(
    config: str, which: str, policy: str = "v5.7", rodata_full: bool = False
) -> dict[str, Step]:
    """The steps that tear down the first thing of kind ``which`` the removal takes apart.

    ``which``: ``"pte"`` (a vmemmap page: its leaf entry, the TLBI, the page of struct pages
    freed), ``"block"`` (a vmemmap block entry, likewise) or ``"table"`` (the first table page
    freed: the scan of its entries, its parent entry cleared, the TLBI, the free). Keys:
    ``scan``, ``clear``, ``tlbi``, ``free``; a key is missing when the policy does not do
    that step (V3 frees a block's pages without a TLBI, for instance)."""
    history, levels, page = removal_history(config, policy, rodata_full)
    found: dict[str, tuple[int, Step]] = {}
    if which in ("pte", "block"):
        backing = [
            (i, s) for i, s in enumerate(history) if s.action == "free" and s.note == "backing"
        ]
        leaf = levels[-1]
        for i, free in backing:
            clear = next(
                (
                    (j, s)
                    for j, s in enumerate(history)
                    if s.action == "write"
                    and s.level is not None
                    and (s.level == leaf) == (which == "pte")
                    and s.va is not None
                    and s.va <= free.va < s.va + max(s.count, 1) * max(s.va_step, 1)
                ),
                None,
            )
            if clear is None:
                continue
            found = {"clear": clear, "free": (i, free)}
            tlbi = [
                (j, s)
                for j, s in enumerate(history)
                if s.action == "tlbi" and _invalidates(s, free.va, page)
            ]
            if tlbi:
                found["tlbi"] = min(tlbi, key=lambda js: abs(js[0] - clear[0]))
            break
    elif which == "table":
        free = next(
            ((i, s) for i, s in enumerate(history) if s.action == "free" and s.note == "table"),
            None,
        )
        if free is not None:
            i, f = free
            found["free"] = free
            for j, s in enumerate(history):
                if s.action == "read" and s.table == f.pfn and s.line.startswith("scan all"):
                    found.setdefault("scan", (j, s))
                elif s.action == "write" and s.va == f.va and s.function == f.function:
                    found.setdefault("clear", (j, s))
                elif (
                    s.action == "tlbi"
                    and s.note == "vaae1is"
                    and s.function == f.function
                    and j < i
                ):
                    # __flush_tlb_kernel_pgtable(start): the address of the sub-range the
                    # walk came from, inside the table's span: the last one before the free
                    found["tlbi"] = (j, s)
    else:
        raise ValueError(f"which={which!r}: pte, block or table")
    return {k: s for k, (_, s) in sorted(found.items(), key=lambda kv: kv[1][0])}


def _invalidates(step: Step, va: int, page: int) -> bool:
    """Whether the ``tlbi`` step drops the last-level entry for ``va``."""
    if step.note == "vmalle1is":
        return True
    if step.note != "vaale1is" or step.va is None:
        return False
    span = step.count * (step.va_step if step.va_step else page)
    return step.va <= va < step.va + max(span, page)


def teardown_order(
    config: str, which: str, policy: str = "v5.7", rodata_full: bool = False
) -> tuple[str, ...]:
    """The keys of :func:`teardown_steps` in the order the removal took those steps."""
    return tuple(teardown_steps(config, which, policy, rodata_full))


@lru_cache(maxsize=64)
def removal_tlbi(config: str, policy: str) -> dict[str, int]:
    """TLBI instructions by kind (``vaale1is``, ``vaae1is``, ``vmalle1is``) for hot-removing
    one memory block at :data:`BLOCK_START` (:func:`~mmkit.mm.compare.compare_policies`)."""
    from mmkit.mm.compare import compare_policies

    (row,) = compare_policies(config, blocks=[BLOCK_START], policies=[policy])
    return dict(row.tlbi)


@lru_cache(maxsize=64)
def vmalloc_failure(config: str, policy: str) -> tuple[str | None, tuple[str, ...]]:
    """The shortest failing schedule of ``vmalloc_race(config, policy)`` (bound 1, else 2)
    and its kernel log; (None, ()) if there is none."""
    from mmkit.scenarios.races import vmalloc_race

    race = vmalloc_race(config, policy)
    for bound in (1, 2):
        result = race.explore(bound=bound)
        if result.found:
            return result.shortest, tuple(result.events)
    return None, ()


@lru_cache(maxsize=16)
def _race(config: str, policy: str) -> Any:
    from mmkit.scenarios.races import vmalloc_race

    return vmalloc_race(config, policy)


def replay_schedule(config: str, policy: str, schedule: list[str]) -> Any:
    """Follow ``schedule`` on a fresh ``vmalloc_race(config, policy)``, then let the threads
    run on in their default order; returns the scheduler (errors as the scheduler raises)."""
    from mmkit.sched import Scheduler

    s = Scheduler(_race(config, policy).make)
    s.follow(schedule)
    s.run()
    return s


def aligned_verdict(start: int, end: int, floor: int, ceiling: int, mask: int) -> str:
    """Which test of ``pgtable_range_aligned()`` decides, following kernel-facts 6.4 step by
    step: ``"true"``, ``"floor"`` (start & mask < floor), ``"ceiling0"`` (the ceiling rounds
    down to 0) or ``"ceiling"`` (end - 1 > ceiling - 1, unsigned)."""
    start &= mask
    if start < floor:
        return "floor"
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return "ceiling0"
    if ((end - 1) & _M64) > ((ceiling - 1) & _M64):
        return "ceiling"
    return "true"

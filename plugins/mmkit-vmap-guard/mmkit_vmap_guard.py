"""``vmap-guard``: a hotplug policy that closes the vmalloc race by asking vmalloc.

The race (kernel-facts 7.2; :func:`mmkit.scenarios.races.vmalloc_race`): ``vmalloc()`` takes
a pointer into a table page with no lock and writes through it later, while hot-remove finds
the same page empty, unhooks it and frees it. The series closed it twice, both times by not
freeing a table that vmalloc could be walking: V6/V7 never free vmemmap tables when the two
regions may share one (the overlap test), v5.7 frees only tables wholly inside the region
being removed (floor/ceiling).

This policy closes it a third way, using what vmalloc already does: every walker of the
vmalloc area first reserves its range, under ``vmap_area_lock``, in the busy tree
(``alloc_vmap_area()``, v5.4 ``mm/vmalloc.c``), and walks only the tables of that range.
So hot-remove, holding ``vmap_area_lock`` from its look at the busy tree until it has cleared
the parent entry, unhooks an empty table only when no reserved area lies in the table's span
(its ``keep_table`` hook, through :mod:`mmkit.pgtable.keep`):

* an area reserved before that moment keeps the table, whether its walk has reached the
  table yet or not: no pointer into a freed page, and no entry written into a table no
  longer reachable from ``swapper_pg_dir`` (the lost mapping a deferred free alone would
  leave: delaying the free until walkers are done still lets a walker write into the
  unhooked table);
* an area reserved after it finds the parent entry none and installs a table of its own,
  under ``init_mm.page_table_lock`` as usual.

Everything else is v5.7's (two passes, one TLBI per block, ptdump under
``get_online_mems()``, the boot-memory notifier) but without floor/ceiling: empty tables
that only vmemmap or the linear map use are freed, edges included. The price is a lookup in
the busy tree per empty table and a table kept while an area shares its span (it is freed by
a later hot-remove that finds it empty and unshared); ``mmkit compare`` shows both.

Not a posted version: a design exercise. The kernel has no such check; taking
``vmap_area_lock`` (a hot spinlock) inside arch teardown is what the list would question.

``deferred-free`` (:data:`DEFERRED`) is the strawman beside it: free the unhooked table only
after concurrent walkers are done (RCU-style; its ``defer_table_free`` hook), and nothing
else. The explorer shows why that is not enough: no use-after-free any more, but a walker
that took its pointer before the clear still writes its entry into the unhooked table, and
its vmalloc area is not mapped (``lost-mapping``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFERRED", "POLICY", "DeferredFreePolicy", "VmapGuardPolicy"]


@dataclass(frozen=True)
class VmapGuardPolicy:
    """The policy object the ``mmkit.policy`` entry point names (module docstring).

    It is not a :class:`mmkit.policies.HotplugPolicy`: it carries exactly the contract
    (:class:`mmkit.policies.base.PolicyLike`) plus the optional ``keep_table`` hook.
    """

    api_version: str = "1.0"
    name: str = "vmap-guard"
    description: str = (
        "two passes; free empty tables unless a reserved vmalloc area lies in their span"
    )
    kernel_versions: tuple[str, ...] = ("proposal",)
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: str = "always"
    linear_floor_ceiling: bool = False
    block_tlbi: str = "single"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: bool | None = None
    boot_memory_notifier: bool = True

    def keep_table(self, machine: Any, level: str, start: int, end: int) -> str | None:
        """Keep the empty ``level`` table spanning [start, end) if a reserved vmalloc area
        (``machine.vmalloc_ranges``: the busy tree) overlaps it. Called atomically with the
        parent entry's clear: hot-remove holds ``vmap_area_lock`` across both."""
        for va, size in sorted(machine.vmalloc_ranges):
            if va < end and start < va + size:
                return f"vmap area [{va:#x}, {va + size:#x}) is reserved in its span"
        return None


#: The plugin object (``pyproject.toml``: ``vmap-guard = "mmkit_vmap_guard:POLICY"``).
POLICY = VmapGuardPolicy()


@dataclass(frozen=True)
class DeferredFreePolicy:
    """``deferred-free``: v5.7 without floor/ceiling, and every unhooked table page's free
    deferred until walkers are done (module docstring): the model leaves the page allocated,
    as a grace period that has not ended yet within the operation."""

    api_version: str = "1.0"
    name: str = "deferred-free"
    description: str = "two passes; free empty tables only after walkers are done (RCU-style)"
    kernel_versions: tuple[str, ...] = ("proposal",)
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: str = "always"
    linear_floor_ceiling: bool = False
    block_tlbi: str = "single"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: bool | None = None
    boot_memory_notifier: bool = True

    def defer_table_free(self, machine: Any, level: str, va: int, pfn: int) -> bool:
        """Always defer: the page outlives every walker that may hold a pointer into it."""
        return True


#: The strawman (``deferred-free = "mmkit_vmap_guard:DEFERRED"``).
DEFERRED = DeferredFreePolicy()

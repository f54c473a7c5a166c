"""x86's hot-remove teardown as an mmkit policy: v5.4 ``remove_pagetable()``.

What v5.4 ``arch/x86/mm/init_64.c`` does (``arch_remove_memory()`` ->
``kernel_physical_mapping_remove()`` -> ``remove_pagetable(start, end, direct=true)``;
``vmemmap_free()`` -> ``remove_pagetable(start, end, direct=false)``):

* **one pass**: ``remove_p4d_table()`` -> ``remove_pud_table()`` -> ``remove_pmd_table()`` ->
  ``remove_pte_table()``; straight after each lower level returns, ``free_pte_table()`` /
  ``free_pmd_table()`` (and ``free_pud_table()`` only when ``pgtable_l5_enabled()``) scan the
  table and, if every entry is none, **free the page first and then clear the parent entry**
  under ``init_mm.page_table_lock``;
* leaves are cleared under ``init_mm.page_table_lock``; a vmemmap page or huge page is freed
  (``free_pagetable()``) **before** its entry is cleared; direct-map pages are not freed
  (they went back to the allocator when offlined);
* no per-entry TLB invalidation: one ``flush_tlb_all()`` after each PTE-level loop and one at
  the end of ``remove_pagetable()``;
* a partially covered vmemmap page or huge page has the struct pages being removed filled
  with ``PAGE_INUSE`` (0xFD); it is freed only when the whole page reads back as 0xFD
  (``memchr_inv()``);
* ``remove_pte_table()`` returns at once when it meets a PTE whose address is below 1 GiB:
  the ``head_64.S`` identity map of ``[0, 1G)`` is never torn down.

:data:`POLICY` answers the engine's decisions (:data:`mmkit.policies.base.DECISIONS`) the way
this code does (one pass, the lock, vmemmap tables always freed, no floor/ceiling, no
block TLBI, no hotplug lock in ptdump, the era's ``try_remove_memory()`` order), and its
``arch_remove_memory`` hook (``OPTIONAL_HOOKS`` in :mod:`mmkit.policies.base`) makes the
engine run this teardown, rules and order included, instead of arm64's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmkit.policies.base import HotplugPolicy
from mmkit_x86_64 import teardown

if TYPE_CHECKING:
    from mmkit.events import Step
    from mmkit.kernel_source import Listing
    from mmkit.machine import Machine

__all__ = ["POLICY", "X86RemovePolicy"]


@dataclass(frozen=True)
class X86RemovePolicy(HotplugPolicy):
    """:class:`~mmkit.policies.HotplugPolicy` plus the ``arch_remove_memory`` hook: the
    engine runs x86's teardown (:mod:`mmkit_x86_64.teardown`) instead of arm64's."""

    @property
    def listings(self) -> tuple[Listing, ...]:
        """x86's code for the source pane (:mod:`mmkit_x86_64.source`), an optional hook."""
        from mmkit_x86_64.source import LISTINGS

        return LISTINGS

    def arch_remove_memory(self, m: Machine, start: int, size: int) -> Iterator[Step]:
        """v5.4 x86 ``arch_remove_memory()`` (:func:`mmkit_x86_64.teardown.arch_remove_memory`)."""
        return teardown.arch_remove_memory(m, start, size)


#: What the ``mmkit.policy`` entry point names.
POLICY = X86RemovePolicy(
    name="x86-remove-pagetable",
    description="x86_64 v5.4 remove_pagetable(): one pass, free before clear, flush_tlb_all",
    kernel_versions=("v5.4",),
    passes=1,
    pgtable_lock=True,
    vmemmap_tables="always",
    linear_floor_ceiling=False,
    block_tlbi="none",
    ptdump_hotplug_lock=False,
    memblock_after_arch_remove=None,
    boot_memory_notifier=False,
    history="v5.4 arch/x86/mm/init_64.c remove_pagetable(); Mark Rutland on the arm64 V1 "
    "thread called it 'not entirely correct (e.g. due to missing TLB maintenance)'.",
)

"""What a hotplug policy decides: the choices the patch series changed between versions.

A policy is a frozen record; the engine reads its fields where the kernel code of that
version made the choice. Built-in policies register through the ``mmkit.policy`` entry-point
group exactly as a third-party policy would (see :mod:`mmkit.plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["HotplugPolicy"]

VmemmapTables = Literal["always", "never", "no-overlap", "floor-ceiling"]


@dataclass(frozen=True)
class HotplugPolicy:
    """One version's answers to the questions hot-remove must answer.

    * ``passes``: 1 = V3's ``remove_pagetable`` (free tables during the walk), 2 = V6 on
      (``unmap_hotplug_range`` then ``free_empty_tables``).
    * ``pgtable_lock``: hold ``init_mm.page_table_lock`` around the whole walk (V3-V5).
    * ``vmemmap_tables``: when ``vmemmap_free()`` frees empty table pages: ``always``
      (naive), ``never`` (V6), ``no-overlap`` (V7: unless vmalloc and vmemmap share a PGD
      entry), ``floor-ceiling`` (V8 on: only tables wholly inside the vmemmap region).
    * ``linear_floor_ceiling``: the linear map's free pass is bounded by
      [PAGE_OFFSET, PAGE_END) (V8 on).
    * ``block_tlbi``: a block entry is invalidated with ``flush_tlb_kernel_range(addr,
      next)`` (``range``, up to V9) or with one TLBI (``single``, V10 on).
    * ``ptdump_hotplug_lock``: ptdump takes ``get_online_mems()`` (patch 2/3, V3 on).
    * ``memblock_after_arch_remove``: patch 1/3's reorder of ``memblock_free/remove``.
    * ``boot_memory_notifier``: boot memory refuses to go offline (V12 on, v5.7).
    """

    name: str
    description: str
    kernel_versions: tuple[str, ...]
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: VmemmapTables = "always"
    linear_floor_ceiling: bool = False
    block_tlbi: Literal["range", "single"] = "range"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: bool = True
    boot_memory_notifier: bool = False
    history: str = ""
    api_version: str = "1.0"

    def frees_vmemmap_tables(self, overlap: bool) -> bool:
        """Whether ``vmemmap_free()`` runs the free pass in a layout with this V7 overlap."""
        if self.vmemmap_tables == "never":
            return False
        if self.vmemmap_tables == "no-overlap":
            return not overlap
        return True

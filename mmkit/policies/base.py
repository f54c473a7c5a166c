"""What a hotplug policy decides, and the rule that says what it decides over.

**Policy versus kernel era.** A :class:`~mmkit.machine.Machine` runs two pieces of code:

* the **kernel era** (``Machine(kernel="v5.3" | "v5.4" | "v5.5" | "v5.7" | "v6.1")``) is the
  generic kernel the series was applied to: the VA layout (``asm/memory.h``), the generic
  hotplug flow (``try_remove_memory()``'s call order and locks, ``mm/memory_hotplug.c``),
  ``drivers/base/node.c``'s unlinking, ``pfn_valid()`` and the ptdump walker and its format;
* the **policy** is the arm64 hot-remove series as one of its versions wrote it: every field
  below is a choice some version of the series made, and **a policy field always wins over
  the era**. Each field is read in exactly one place, named beside it.

One field may leave the choice to the era: ``memblock_after_arch_remove=None`` means "no
patch 1/3 in this series; ``try_remove_memory()`` runs in the era's own order" (v5.3 and
v5.4 free and remove the memblock ranges before the memory block devices, v5.5 on after
``arch_remove_memory()``, commit 32d1fe8fcb32). The merged ``v5.7`` policy says None: V8
dropped patch 1/3 from the series because it was merged on its own for v5.5. ``True`` (the
series up to V7 carried patch 1/3) and ``False`` (the pre-patch order, the ``naive``
strawman) apply on every era. Where an era's code already has what a field adds (v5.7's
``ptdump_show()`` takes ``get_online_mems()``, v5.7's ``prevent_bootmem_remove_notifier``),
the policy still decides: a policy that says no lock runs the era's code without it.

The fields (:data:`DECISIONS` lists them with their allowed values; the plugin loader checks
a policy plugin against exactly that list):

* ``passes`` (:mod:`mmkit.pgtable.arch_hotplug`): 1 = V3's ``remove_pagetable`` (one walk:
  free tables as the walk returns from them; a mapped page or block freed *before* its entry
  is cleared), 2 = V6 on (``unmap_hotplug_range`` then ``free_empty_tables``).
* ``pgtable_lock`` (:mod:`mmkit.pgtable.arch_hotplug`): hold ``init_mm.page_table_lock``
  around each teardown walk (V3-V5; V6 dropped it).
* ``vmemmap_tables`` (:mod:`mmkit.pgtable.arch_hotplug`): when ``vmemmap_free()`` frees empty
  table pages: ``always`` (naive, V3), ``never`` (V6), ``no-overlap`` (V7: unless vmalloc and
  vmemmap share a PGD entry), ``floor-ceiling`` (V8 on: only tables wholly inside
  [VMEMMAP_START, VMEMMAP_END)).
* ``linear_floor_ceiling`` (:mod:`mmkit.pgtable.arch_hotplug`): the linear map's tables are
  freed only if wholly inside [PAGE_OFFSET, PAGE_END) (V8 on).
* ``block_tlbi`` (:mod:`mmkit.pgtable.unmap`, :mod:`mmkit.pgtable.remove_pagetable`): what
  invalidates a cleared block entry: ``none`` (V3-V5), ``flush_tlb_kernel_range(addr, next)``
  (``range``, V6-V9) or one TLBI (``single``, V10 on).
* ``ptdump_hotplug_lock`` (:mod:`mmkit.mm.ptdump_debugfs`): ptdump takes
  ``get_online_mems()`` (patch 2/3, V3 on; merged for v5.7).
* ``memblock_after_arch_remove`` (:mod:`mmkit.mm.hotplug`): patch 1/3's order, or None (above).
* ``boot_memory_notifier`` (:mod:`mmkit.mm.hotplug`): ``prevent_bootmem_remove_notifier``
  refuses to offline an early section (V12 on, v5.7). Without it, a boot block that holds no
  boot allocation can be offlined and removed, and the teardown meets boot-allocated pages.

>>> sorted(DECISIONS)[:3]
['block_tlbi', 'boot_memory_notifier', 'linear_floor_ceiling']
>>> HotplugPolicy("x", "x", ("V6",), block_tlbi="both")
Traceback (most recent call last):
...
mmkit.errors.InvalidArgument: policy 'x': block_tlbi is 'both'; expected one of 'none', \
'range', 'single'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from mmkit.errors import InvalidArgument

__all__ = ["DECISIONS", "OPTIONAL_HOOKS", "HotplugPolicy", "check_decisions"]

VmemmapTables = Literal["always", "never", "no-overlap", "floor-ceiling"]
BlockTlbi = Literal["none", "range", "single"]

#: Every decision field the engine reads, with the values it accepts.
DECISIONS: Final[dict[str, tuple[Any, ...]]] = {
    "passes": (1, 2),
    "pgtable_lock": (False, True),
    "vmemmap_tables": ("always", "never", "no-overlap", "floor-ceiling"),
    "linear_floor_ceiling": (False, True),
    "block_tlbi": ("none", "range", "single"),
    "ptdump_hotplug_lock": (False, True),
    "memblock_after_arch_remove": (None, False, True),
    "boot_memory_notifier": (False, True),
}


#: Hooks a policy may define, each ``name -> signature: meaning (default when absent)``.
OPTIONAL_HOOKS: Final[dict[str, str]] = {
    "arch_remove_memory": (
        "arch_remove_memory(machine, start: int, size: int) -> Iterator[Step]: the whole "
        "page-table side of hot-remove for [start, start + size), run by "
        "mmkit.pgtable.arch_hotplug.arch_remove_memory, which still does the bookkeeping "
        "(another architecture's teardown, e.g. x86's single-pass remove_pagetable(); "
        "default: arm64's vmemmap_free() per section, then __remove_pgd_mapping(), as the "
        "decisions above choose)"
    ),
    "listings": (
        "listings: Sequence[mmkit.kernel_source.Listing]: pseudo-source of the functions "
        "the policy's own code steps through, built with mmkit.kernel_source.source; read by "
        "mmkit.kernel_source.listing, before mmkit's own (default: mmkit's listings)"
    ),
}


def check_decisions(obj: object) -> list[str]:
    """What is wrong with ``obj``'s decision fields (empty if nothing): each of
    :data:`DECISIONS` must be present and one of its values (``True``/``False`` as bools)."""
    problems = []
    for field, allowed in DECISIONS.items():
        if not hasattr(obj, field):
            problems.append(f"{field} is missing")
            continue
        value = getattr(obj, field)
        if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
            choices = ", ".join(repr(a) for a in allowed)
            problems.append(f"{field} is {value!r}; expected one of {choices}")
    return problems


@dataclass(frozen=True)
class HotplugPolicy:
    """One version's answers to the questions hot-remove must answer (module docstring)."""

    name: str
    description: str
    kernel_versions: tuple[str, ...]
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: VmemmapTables = "always"
    linear_floor_ceiling: bool = False
    block_tlbi: BlockTlbi = "range"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: bool | None = True
    boot_memory_notifier: bool = False
    history: str = ""
    api_version: str = "1.0"

    def __post_init__(self) -> None:
        problems = check_decisions(self)
        if problems:
            raise InvalidArgument(f"policy {self.name!r}: " + "; ".join(problems))

    def frees_vmemmap_tables(self, overlap: bool) -> bool:
        """Whether ``vmemmap_free()`` frees empty tables in a layout with this V7 overlap."""
        if self.vmemmap_tables == "never":
            return False
        if self.vmemmap_tables == "no-overlap":
            return not overlap
        return True

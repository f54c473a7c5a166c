"""``v5.7``: what was merged (V14, commit bbd6ec605c0f, Linux v5.7).

Two passes with floor and ceiling: a table page is freed only if its whole span lies inside
the region being torn down ([PAGE_OFFSET, PAGE_END) or [VMEMMAP_START, VMEMMAP_END)), so no
table shared with vmalloc can ever be freed, whatever the layout. A block entry takes a
single TLBI (V10), and boot memory cannot be offlined, hence never removed (V12 notifier).
Patch 1/3 left the series at V8 (merged on its own for v5.5), so ``try_remove_memory()``
runs in the kernel era's order (:mod:`mmkit.policies.base`).
"""

from mmkit.policies.base import HotplugPolicy

POLICY = HotplugPolicy(
    name="v5.7",
    description="two passes with floor/ceiling (pgtable_range_aligned); one TLBI per block",
    kernel_versions=("V8", "V9", "V10", "V11", "V12", "V13", "V14", "v5.7"),
    vmemmap_tables="floor-ceiling",
    linear_floor_ceiling=True,
    block_tlbi="single",
    memblock_after_arch_remove=None,
    boot_memory_notifier=True,
    history="bbd6ec605c0fc286c3f8ce60b4ed44635361d58b; Catalin Marinas, 13 Sep 2019 "
    "<20190913100955.GB55043@arrakis.emea.arm.com>.",
)

"""``v3``: "[PATCH V3] arm64/mm: Enable memory hot remove" (14 May 2019).

One pass (``remove_pagetable``) modelled on x86: tables are freed as the walk returns from
them (parent entry cleared, ``__flush_tlb_kernel_pgtable()``, page freed), all under
``init_mm.page_table_lock``. Mark Rutland showed on V5 that the lock does not make a
concurrent ``vmalloc()`` safe (it walks without it). A vmemmap block's pages were freed
before its entry was cleared, with no TLB flush for it; at the PTE level each page was freed
before its ``pte_clear()`` and one ``flush_tlb_kernel_range(start, end)`` followed the loop
(V6 made both clear → TLBI → free). See :mod:`mmkit.pgtable.remove_pagetable`.
"""

from mmkit.policies.base import HotplugPolicy

POLICY = HotplugPolicy(
    name="v3",
    description="one pass under init_mm.page_table_lock; frees tables while walking",
    kernel_versions=("V3", "V4", "V5"),
    passes=1,
    pgtable_lock=True,
    vmemmap_tables="always",
    block_tlbi="none",
    history="V3 changelog: 'Taken overall init_mm.page_table_lock instead of just while "
    "changing an entry'; V5 3/3 <1559121387-674-4-git-send-email-anshuman.khandual@arm.com>; "
    "V5 review <20190530151227.GD56046@lakrids.cambridge.arm.com>.",
)

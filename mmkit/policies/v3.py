"""``v3``: "[PATCH V3] arm64/mm: Enable memory hot remove" (14 May 2019).

One pass (``remove_pagetable``) modelled on x86: tables are freed as the walk returns from
them, all under ``init_mm.page_table_lock``. Mark Rutland showed on V5 that the lock does not
make a concurrent ``vmalloc()`` safe (it walks without it). Section entries were cleared after
their pages were freed, with no TLB flush (fixed in V6).
"""

from mmkit.policies.base import HotplugPolicy

POLICY = HotplugPolicy(
    name="v3",
    description="one pass under init_mm.page_table_lock; frees tables while walking",
    kernel_versions=("V3", "V4", "V5"),
    passes=1,
    pgtable_lock=True,
    vmemmap_tables="always",
    history="V3 changelog: 'Taken overall init_mm.page_table_lock instead of just while "
    "changing an entry'; V5 review <20190530151227.GD56046@lakrids.cambridge.arm.com>.",
)

"""``v7``: "[PATCH V7 0/3] arm64/mm: Enable memory hot remove" (3 Sep 2019): the series
this kit is about.

As V6, but ``vmemmap_free()`` frees empty table pages unless ``vmalloc_vmemmap_overlap``
(computed once at boot: do the edges of the vmalloc/vmemmap gap share a PGD entry?) says the
two regions may share a table. On v5.4 layouts that is 4K/48 and 16K/48.
"""

from mmkit.policies.base import HotplugPolicy

POLICY = HotplugPolicy(
    name="v7",
    description="two passes; free vmemmap tables only without the vmalloc/vmemmap overlap",
    kernel_versions=("V7",),
    vmemmap_tables="no-overlap",
    history="V7 3/3 <1567503958-25831-4-git-send-email-anshuman.khandual@arm.com>.",
)

"""``naive``: free every empty table page, anywhere, with no care for who else walks it.

Not a posted version: the obvious first attempt the series argued its way out of. Two passes
as V6 has them, but ``vmemmap_free()`` always runs the free pass, ptdump takes no lock, and
the memblock ranges are removed before the memory block devices (the pre-patch-1/3 order).
"""

from mmkit.policies.base import HotplugPolicy

POLICY = HotplugPolicy(
    name="naive",
    description="two passes; free any empty table page (linear map and vmemmap); no locks",
    kernel_versions=("none",),
    vmemmap_tables="always",
    ptdump_hotplug_lock=False,
    memblock_after_arch_remove=False,
    history="The strawman: the race with vmalloc() (kernel-facts 7.2) and with ptdump "
    "(patch 2/3) are both open, and patch 1/3's memblock order bug is present.",
)

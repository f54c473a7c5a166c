"""``v6``: "[PATCH V6] arm64/mm: Enable memory hot remove" (19 Jun / 15 Jul 2019).

Two passes, no kernel page-table lock at all, and ``vmemmap_free()`` never frees table pages
("unlike linear mapping, skip freeing page table pages while tearing down vmemmap mapping"),
so a concurrent ``vmalloc()`` can never lose a table it is walking. The price: empty vmemmap
tables stay until the next hot-add of the same range.
"""

from mmkit.policies.base import HotplugPolicy

POLICY = HotplugPolicy(
    name="v6",
    description="two passes; never free vmemmap tables; linear-map tables freed when empty",
    kernel_versions=("V6",),
    vmemmap_tables="never",
    history="V6 cover letter: two distinct passes, kernel page table lock dropped, "
    "vmemmap_free() does not call free_empty_tables().",
)

"""Listings of V3's single-pass teardown (``arch/arm64/mm/mmu.c``, patch V3, 14 May 2019).

From kernel-facts 6.5 (the V3 4/4 and V5 3/3 postings): ``remove_pagetable()`` walks under
``init_mm.page_table_lock``, freeing a block's pages before clearing its entry, with no
TLBI for blocks, one ``flush_tlb_kernel_range(start, end)`` after each PTE loop, and each
empty table freed (with ``__flush_tlb_kernel_pgtable``) as the walk returns from it.
"""

from __future__ import annotations

from mmkit.kernel_source._listing import Listing, source
from mmkit.kernel_source._teardown import _CLEAR, _FOLDED, _FREE_PT, _LEVELS, _MMU

__all__ = ["ALIASES", "LISTINGS"]

_V3 = (("passes", (1,)),)

ALIASES = {"remove_pgd_table": "remove_pagetable"}  # V3's pgd loop is remove_pagetable's

_REMOVE_PAGETABLE = source(
    "remove_pagetable",
    "patch V3",
    _MMU,
    "V3-V5: one pass, tables freed as the walk returns from them, all under the "
    "kernel page-table lock, which does not stop vmalloc() (Mark Rutland, V5).",
    """
    static void remove_pagetable(start, end, sparse_vmap)
    @@ remove_pagetable({x}, {x}, sparse_vmap={})
    {
        spin_lock(&init_mm.page_table_lock);  @@ lock(init_mm.page_table_lock)
        for each pgdp in [start, end), next = pgd_addr_end(addr, end) {
            pgd = READ_ONCE(*pgdp);
            if (pgd_none(pgd))
                continue;
            WARN_ON(!pgd_present(pgd));
            remove_pud_table(pgdp, addr, next, sparse_vmap);
            free_pud_table(pgdp, addr);
        }
        spin_unlock(&init_mm.page_table_lock);  @@ unlock(init_mm.page_table_lock)
    }
    """
    + _FOLDED.replace("then TLBI", "no TLBI"),
    policy=_V3,
)


def _remove_level_v3(name: str) -> Listing:
    up, down, size, _mask, _lv = _LEVELS[name]
    if up == "p4d":
        up = "pgd"
    text = f"""
static void remove_{name}_table({up}p, addr, end, sparse_vmap)
{{
    for each {name}p in [addr, end), next = {name}_addr_end(addr, end) {{
        {name} = READ_ONCE(*{name}p);
        if ({name}_none({name}))
            continue;
        WARN_ON(!{name}_present({name}));
        if ({name}_sect({name})) {{                 /* a block */
            if (sparse_vmap)
                free_hotplug_page_range({name}_page({name}), {size});
            {name}_clear({name}p);                  /* no TLBI */
            continue;
        }}
        remove_{down}_table({name}p, addr, next, sparse_vmap);
        free_{down}_table({name}p, addr);
    }}
}}
"""
    return source(
        f"remove_{name}_table",
        "patch V3",
        _MMU,
        "V3 freed a block's pages before clearing its entry and never invalidated it "
        "(fixed in V6: clear, TLBI, free).",
        text,
        policy=_V3,
    )


_REMOVE_PTE_V3 = source(
    "remove_pte_table",
    "patch V3",
    _MMU,
    "V3 freed each page before pte_clear() and flushed the whole sub-range once after "
    "the loop: a stale TLB entry can reach a freed page until then (fixed in V6).",
    """
    static void remove_pte_table(pmdp, addr, end, sparse_vmap)
    {
        start = addr;
        for each ptep in [addr, end), addr += PAGE_SIZE {
            pte = READ_ONCE(*ptep);
            if (pte_none(pte))
                continue;
            WARN_ON(!pte_present(pte));
            if (sparse_vmap)
                free_hotplug_page_range(pte_page(pte), PAGE_SIZE);
            pte_clear(&init_mm, addr, ptep);
        }
        flush_tlb_kernel_range(start, end);  @@ flush_tlb_kernel_range({x}, {x})
    }
    """,
    policy=_V3,
)


def _free_table_v3(name: str) -> Listing:
    up, _down, _size, _mask, levels = _LEVELS[name]
    if up == "p4d":
        up = "pgd"
    upper = name.upper()
    check = f"    if (CONFIG_PGTABLE_LEVELS <= {levels})\n        return;\n" if levels else ""
    text = f"""
static void free_{name}_table({up}p, addr)
{{
{check}    {name}p = {name}_offset({up}p, 0UL);
    for (i = 0; i < PTRS_PER_{upper}; i++)
    @@ scan all {{}} entries: {name}_none(READ_ONCE({name}p[i]))
        if (!{name}_none(READ_ONCE({name}p[i])))
            return;               /* still in use */
    page = {up}_page(READ_ONCE(*{up}p));
    {up}_clear({up}p);  @@ {_CLEAR}
    __flush_tlb_kernel_pgtable(addr);  @@ __flush_tlb_kernel_pgtable({{x}})
    free_hotplug_pgtable_page(page);  @@ {_FREE_PT}
}}
"""
    return source(
        f"free_{name}_table",
        "patch V3",
        _MMU,
        "Called as remove_pagetable() returns from the table, under the page-table "
        "lock: unhook, TLBI (all levels, for addr), free.",
        text,
        policy=_V3,
    )


LISTINGS = [
    _REMOVE_PAGETABLE,
    _remove_level_v3("pud"),
    _remove_level_v3("pmd"),
    _REMOVE_PTE_V3,
    *(_free_table_v3(n) for n in ("pud", "pmd", "pte")),
]

"""Listings of x86's teardown for mmkit's source pane (v5.4 ``arch/x86/mm/init_64.c``).

Short C-like pseudo-code written for the kit (never the kernel's text) of the functions the
``x86-remove-pagetable`` policy steps through, in the form of
:class:`mmkit.kernel_source.Listing`; the policy hands them to mmkit as its ``listings``
(an optional policy hook), so a stepping view highlights x86's code, and mmkit's check that
every step line is listed covers them. Patterns after ``@@`` match the step lines the
engine prints with values. The table-freeing and clearing lines also match the parent
level the engine has on a layout with folded levels (an arm64 machine under this policy).
"""

from __future__ import annotations

from mmkit.kernel_source import Listing, source

__all__ = ["LISTINGS"]

_FILE = "arch/x86/mm/init_64.c"
_ANY = r"(pgd|p4d|pud|pmd)"
_LOCK = "spin_lock(&init_mm.page_table_lock);  @@ lock(init_mm.page_table_lock)"
_UNLOCK = "spin_unlock(&init_mm.page_table_lock);  @@ unlock(init_mm.page_table_lock)"
_FREE = (
    "@@ free_pages(page_address(page), get_order({x}))  "
    "@@ __ClearPageReserved(page); free_reserved_page(page)"
)


def _free_table(name: str, parent: str) -> Listing:
    note = (
        "The page is freed before the parent entry is cleared, and nothing invalidates "
        "the walk caches (flush_tlb_all() comes at the end of remove_pagetable())."
    )
    if name == "pud":
        note += " Called only when pgtable_l5_enabled(): with 4 levels a PUD table stays."
    return source(
        f"free_{name}_table",
        "v5.4",
        _FILE,
        note,
        f"""
        static void free_{name}_table({name}_t *{name}_start, {parent}_t *{parent})
        {{
            for each {name}: if (!{name}_none(*{name})) return
            free_pagetable({parent}_page(*{parent}), 0);
            @@ re:free_pagetable\\({_ANY}_page\\(\\*{_ANY}\\), 0\\)
            {_LOCK}
            {parent}_clear({parent});  @@ re:{_ANY}_clear\\({_ANY}\\)
            {_UNLOCK}
        }}
        """,
    )


def _remove_large(name: str, down: str, size: str, free: str) -> Listing:
    return source(
        f"remove_{name}_table",
        "v5.4",
        _FILE,
        "A mapped page is freed before its entry is cleared; no TLB invalidation per "
        "entry. Partly covered vmemmap pages are filled with PAGE_INUSE (0xFD) and freed "
        "when all of the page reads 0xFD.",
        f"""
        static void remove_{name}_table({name}_start, addr, end, altmap, direct)
        {{
            for each {name} in [addr, end), next = {name}_addr_end(addr, end) {{
                if (!{name}_present(*{name}))  @@ {name}_present(*{name})
                    continue;
                if ({name}_large(*{name})) {{
                    if (IS_ALIGNED(addr | next, {size})) {{  /* both ends */
                        if (!direct)
                            {free};
                        {_LOCK}
                        {name}_clear({name});
                        {_UNLOCK}
                    }} else {{
                        memset((void *)addr, PAGE_INUSE, next - addr);
                        if (!memchr_inv(page_addr, PAGE_INUSE, {size}))
                            /* free, then clear under the lock */
                    }}
                    continue;
                }}
                remove_{down}_table({down}_base, addr, next, direct);
                free_{down}_table({down}_base, {name});
            }}
        }}
        """,
    )


LISTINGS: tuple[Listing, ...] = (
    source(
        "arch_remove_memory",
        "v5.4",
        _FILE,
        "__remove_pages() frees each section's memmap through vmemmap_free(); then the "
        "direct map is torn down.",
        """
        void arch_remove_memory(nid, start, size, altmap)
        @@ arch_remove_memory(nid, {x}, {x}, NULL)
        {
            __remove_pages(zone, start_pfn, nr_pages, altmap);
            kernel_physical_mapping_remove(start, start + size);
        }  @@ return
        """,
    ),
    source(
        "vmemmap_free",
        "v5.4",
        _FILE,
        "The memmap of one section.",
        """
        void vmemmap_free(start, end, altmap)  @@ vmemmap_free({x}, {x}, NULL)
        {
            remove_pagetable(start, end, false, altmap);
        }
        """,
    ),
    source(
        "kernel_physical_mapping_remove",
        "v5.4",
        _FILE,
        "The direct map of the range.",
        """
        kernel_physical_mapping_remove(start, end)  @@ kernel_physical_mapping_remove({x}, {x})
        {
            remove_pagetable(__va(start), __va(end), true, NULL);
        }
        """,
    ),
    source(
        "remove_pagetable",
        "v5.4",
        _FILE,
        "One pass; the only TLB maintenance is flush_tlb_all(), here and after each PTE "
        "loop. (The pgd clear lines are a block entry at the top of a folded layout.)",
        f"""
        static void remove_pagetable(start, end, direct, altmap)
        @@ remove_pagetable({{x}}, {{x}}, direct={{}})
        {{
            for each pgd in [start, end), next = pgd_addr_end(addr, end) {{
                if (!pgd_present(*pgd))  @@ pgd_present(*pgd)
                    continue;
                remove_p4d_table(p4d, addr, next, altmap, direct);
                /* a block here (folded layouts only): */
                {_LOCK}
                pgd_clear(pgd);
                {_UNLOCK}
            }}
            flush_tlb_all();
        }}
        """,
    ),
    source(
        "remove_p4d_table",
        "v5.4",
        _FILE,
        "p4d_large() cannot be: BUILD_BUG_ON.",
        """
        static void remove_p4d_table(p4d_start, addr, end, altmap, direct)
        {
            for each p4d in [addr, end), next = p4d_addr_end(addr, end) {
                if (!p4d_present(*p4d))  @@ p4d_present(*p4d)
                    continue;
                remove_pud_table(pud_base, addr, next, altmap, direct);
                if (pgtable_l5_enabled())
                    free_pud_table(pud_base, p4d);
            }
        }
        """,
    ),
    _remove_large("pud", "pmd", "PUD_SIZE", "free_pagetable(pud_page(*pud), get_order(PUD_SIZE))"),
    _remove_large("pmd", "pte", "PMD_SIZE", "free_hugepage_table(pmd_page(*pmd), altmap)"),
    source(
        "remove_pte_table",
        "v5.4",
        _FILE,
        "The identity-map test adds the entry's value to the virtual address: for kernel "
        "addresses it only fires when that sum wraps below 1 GiB.",
        f"""
        static void remove_pte_table(pte_start, addr, end, direct)
        {{
            for each pte in [addr, end), next = (addr + PAGE_SIZE) & PAGE_MASK {{
                if (!pte_present(*pte))  @@ pte_present(*pte)
                    continue;
                if (pte_val(*pte) + (addr & PAGE_MASK) < 0x40000000)
                    return;  @@ return: below 1 GiB, the head_64.S identity map
                if (PAGE_ALIGNED(addr) && PAGE_ALIGNED(next)) {{
                    if (!direct)
                        free_pagetable(pte_page(*pte), 0);
                    {_LOCK}
                    pte_clear(&init_mm, addr, pte);
                    {_UNLOCK}
                }} else {{
                    memset((void *)addr, PAGE_INUSE, next - addr);
                    if (!memchr_inv(page_addr, PAGE_INUSE, PAGE_SIZE))
                        /* free, then clear under the lock */
                }}
            }}
            flush_tlb_all();
        }}
        """,
    ),
    _free_table("pte", "pmd"),
    _free_table("pmd", "pud"),
    _free_table("pud", "p4d"),
    source(
        "free_pagetable",
        "v5.4",
        _FILE,
        "A boot page (PageReserved) goes back with free_reserved_page(), no warning.",
        f"""
        static void free_pagetable(struct page *page, int order)
        {{
            if (PageReserved(page))
                __ClearPageReserved(page); free_reserved_page(page)
            else
                free_pages(page_address(page), order);  {_FREE}
        }}
        """,
    ),
    source(
        "free_hugepage_table",
        "v5.4",
        _FILE,
        "Without an altmap: free_pagetable(page, get_order(PMD_SIZE)).",
        f"""
        static void free_hugepage_table(struct page *page, altmap)
        {{
            free_pagetable(page, get_order(PMD_SIZE));  {_FREE}
        }}
        """,
    ),
    source(
        "kernel_physical_mapping_init",
        "v5.4",
        _FILE,
        "1 GiB leaves where aligned (X86_FEATURE_GBPAGES), else 2 MiB, else 4K pages.",
        """
        kernel_physical_mapping_init(paddr_start, paddr_end, page_size_mask)
        @@ kernel_physical_mapping_init({x}, {x}, page_size_mask)
        {
            for each pgd: phys_p4d_init() -> phys_pud_init() -> phys_pmd_init()
        }
        """,
    ),
    source(
        "add_pages",
        "v5.4",
        _FILE,
        "__add_pages() populates each section's memmap (vmemmap_populate, 2 MiB pages).",
        """
        int add_pages(nid, start_pfn, nr_pages, restrictions)  @@ add_pages(nid, {x}, ...)
        {
            __add_pages(nid, start_pfn, nr_pages, restrictions);
        }
        """,
    ),
)

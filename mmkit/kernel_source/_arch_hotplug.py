"""Listings of patch 3/3's hotplug entry points in ``arch/arm64/mm/mmu.c``, per version.

``arch_add_memory`` / ``arch_remove_memory`` (v5.7, read in the 5.7.14 tree; V7 alike),
``__remove_pages`` (v5.7 ``mm/memory_hotplug.c``), and ``__remove_pgd_mapping`` and
``vmemmap_free`` once per patch version: v5.7 (floor/ceiling), V7 (the overlap flag), V6
(vmemmap tables never freed), the naive strawman and V3 (one pass), after kernel-facts 6.
"""

from __future__ import annotations

from mmkit.kernel_source._listing import source

__all__ = ["ALIASES", "LISTINGS"]

ALIASES: dict[str, str] = {}

_MMU = "arch/arm64/mm/mmu.c"

LISTINGS = [
    source(
        "arch_add_memory",
        "v5.7",
        _MMU,
        "Patch 3/3 added the unwind on failure; V7 has the same body. The model "
        "populates each section's memmap here (__add_pages in the kernel).",
        """
        int arch_add_memory(nid, start, size, params)  @@ arch_add_memory(nid, {x}, {x}, params)
        {
            if (rodata_full || debug_pagealloc_enabled())
                flags = NO_BLOCK_MAPPINGS | NO_CONT_MAPPINGS;
            __create_pgd_mapping(swapper_pg_dir, start, __phys_to_virt(start),
                                 size, prot, __pgd_pgtable_alloc, flags);
            memblock_clear_nomap(start, size);
            ret = __add_pages(nid, start >> PAGE_SHIFT,
                              size >> PAGE_SHIFT, params);
            if (ret)    /* -ENOMEM: unmap the linear map again */
                __remove_pgd_mapping(swapper_pg_dir,
                                     __phys_to_virt(start), size);
            return ret;  @@ return {}
        }
        """,
    ),
    source(
        "arch_remove_memory",
        "v5.7",
        _MMU,
        "Patch 3/3 (V7 alike). v5.4 only called __remove_pages(), leaving the page "
        "tables (a FIXME said so).",
        """
        void arch_remove_memory(nid, start, size, altmap)
        @@ arch_remove_memory(nid, {x}, {x}, NULL)
        {
            /* each section: vmemmap_free() of its memmap */
            __remove_pages(start >> PAGE_SHIFT, size >> PAGE_SHIFT, altmap);
            __remove_pgd_mapping(swapper_pg_dir, __phys_to_virt(start), size);
        }  @@ return
        """,
    ),
    source(
        "__remove_pages",
        "v5.7",
        "mm/memory_hotplug.c",
        "The model frees every section's memmap first (vmemmap_free steps, from "
        "arch_remove_memory) and drops the sections in one step.",
        """
        void __remove_pages(pfn, nr_pages, altmap)
        {
            for (; pfn < end_pfn; pfn += cur_nr_pages) {  /* per section */
                /* __remove_section(): */
                sparse_remove_section(ms, pfn, cur_nr_pages, 0, altmap);
                @@ sparse_remove_section() x {} (sections {}..{})
                /* section_deactivate(): vmemmap_free() its memmap */
            }
        }
        """,
    ),
    source(
        "__remove_pgd_mapping",
        "v5.7",
        _MMU,
        "Both passes over the linear map, bounded by the whole region.",
        """
        static void __remove_pgd_mapping(pgdir, start, size)
        @@ __remove_pgd_mapping(swapper_pg_dir, {x}, {x})
        {
            end = start + size;
            WARN_ON(pgdir != init_mm.pgd);
            WARN_ON(start < PAGE_OFFSET || end > PAGE_END);
            unmap_hotplug_range(start, end, false);
            free_empty_tables(start, end, PAGE_OFFSET, PAGE_END);
        }
        """,
        policy=(("linear_floor_ceiling", (True,)),),
    ),
    source(
        "__remove_pgd_mapping",
        "patch V7",
        _MMU,
        "V6/V7 run both passes through remove_pagetable() (V8 dropped it); "
        "free_empty_tables() has no floor or ceiling yet.",
        """
        static void __remove_pgd_mapping(pgdir, start, size)
        @@ __remove_pgd_mapping(swapper_pg_dir, {x}, {x})
        {
            WARN_ON(pgdir != init_mm.pgd);
            remove_pagetable(start, start + size, false);
        }
        /* V7's remove_pagetable(start, end, sparse_vmap): */
            unmap_hotplug_range(start, end, sparse_vmap);
            free_empty_tables(start, end);
        """,
        policy=(("linear_floor_ceiling", (False,)), ("passes", (2,))),
    ),
    source(
        "__remove_pgd_mapping",
        "patch V3",
        _MMU,
        "V3-V5: one pass under init_mm.page_table_lock.",
        """
        static void __remove_pgd_mapping(pgdir, start, size)
        @@ __remove_pgd_mapping(swapper_pg_dir, {x}, {x})
        {
            WARN_ON(pgdir != init_mm.pgd);
            remove_pagetable(start, start + size, false);
        }
        """,
        policy=(("passes", (1,)),),
    ),
    source(
        "vmemmap_free",
        "v5.7",
        _MMU,
        "V8 on: free only tables wholly inside [VMEMMAP_START, VMEMMAP_END), so "
        "none that vmalloc() could be walking.",
        """
        void vmemmap_free(start, end, altmap)  @@ vmemmap_free({x}, {x}, NULL)
        {
            WARN_ON(start < VMEMMAP_START || end > VMEMMAP_END);
            unmap_hotplug_range(start, end, true);
            free_empty_tables(start, end, VMEMMAP_START, VMEMMAP_END);
        }
        """,
        policy=(("vmemmap_tables", ("floor-ceiling",)), ("passes", (2,))),
    ),
    source(
        "vmemmap_free",
        "patch V7",
        _MMU,
        "V7: vmalloc_vmemmap_overlap is computed once at boot: do the edges of the "
        "vmalloc/vmemmap gap share a PGD entry? (4K/48 and 16K/48 on v5.4)",
        """
        void vmemmap_free(start, end, altmap)  @@ vmemmap_free({x}, {x}, NULL)
        {
            unmap_hotplug_range(start, end, true);
            if (!vmalloc_vmemmap_overlap)
                free_empty_tables(start, end);
        }
        """,
        policy=(("vmemmap_tables", ("no-overlap",)), ("passes", (2,))),
    ),
    source(
        "vmemmap_free",
        "patch V6",
        _MMU,
        "V6: 'unlike linear mapping, skip freeing page table pages while tearing "
        "down vmemmap mapping'. Empty tables stay until the next hot-add.",
        """
        void vmemmap_free(start, end, altmap)  @@ vmemmap_free({x}, {x}, NULL)
        {
            unmap_hotplug_range(start, end, true);
            /* no free_empty_tables(): vmalloc may share them */
        }
        """,
        policy=(("vmemmap_tables", ("never",)), ("passes", (2,))),
    ),
    source(
        "vmemmap_free",
        "naive (no posting)",
        _MMU,
        "The strawman the series argued its way out of: V6/V7's passes with every "
        "empty vmemmap table freed, shared or not.",
        """
        void vmemmap_free(start, end, altmap)  @@ vmemmap_free({x}, {x}, NULL)
        {
            unmap_hotplug_range(start, end, true);
            free_empty_tables(start, end);      /* even if shared */
        }
        """,
        policy=(("vmemmap_tables", ("always",)), ("passes", (2,))),
    ),
    source(
        "vmemmap_free",
        "patch V3",
        _MMU,
        "V3-V5: one pass under init_mm.page_table_lock, tables freed as it goes.",
        """
        void vmemmap_free(start, end, altmap)  @@ vmemmap_free({x}, {x}, NULL)
        {
            remove_pagetable(start, end, true);
        }
        """,
        policy=(("passes", (1,)),),
    ),
]

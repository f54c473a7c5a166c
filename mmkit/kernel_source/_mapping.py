"""Listings of building kernel mappings (``arch/arm64/mm/mmu.c`` and friends).

``__create_pgd_mapping()`` and its per-level helpers as in v5.4 (read in the tree), the
vmemmap helpers of v5.4 ``mm/sparse-vmemmap.c``, and boot's ``early_fixmap_init()`` and
``setup_machine_fdt()``. With 2 or 3 levels the engine names a folded entry after the top
level (``pgd``); the lines carry patterns for that.
"""

from __future__ import annotations

from mmkit.kernel_source._listing import source

__all__ = ["ALIASES", "LISTINGS"]

ALIASES: dict[str, str] = {}

_MMU = "arch/arm64/mm/mmu.c"
_ALLOC_RE = r"re:(early_pgtable_alloc|__pgd_pgtable_alloc)\(P(TE|MD|UD)_SHIFT\)"


def _vmemmap_level(name: str) -> object:
    upper = name.upper()
    return source(
        f"vmemmap_{name}_populate",
        "v5.4",
        "mm/sparse-vmemmap.c",
        "The model allocates the table as arm64's pgtable_alloc helpers do and "
        "installs it with __p?d_populate(), as __create_pgd_mapping() does.",
        f"""
        {name}_t *vmemmap_{name}_populate(..., addr, node)
        {{
            {name} = {name}_offset(..., addr);
            if ({name}_none(*{name})) {{  @@ {name} = READ_ONCE(*{name}p)
                p = vmemmap_alloc_block_zero(PAGE_SIZE, node);  @@ {_ALLOC_RE}
                if (!p)
                    return NULL;          /* -ENOMEM */
                {name}_populate(&init_mm, {name}, p);
                @@ re:__{name}_populate\\({name}p, p(te|md|ud)_phys, {upper}_TYPE_TABLE\\)
            }}
            return {name};
        }}
        """,
    )


LISTINGS = [
    source(
        "__create_pgd_mapping",
        "v5.4",
        _MMU,
        "v5.7 alike. The model writes a run of entries of one table as one coarse "
        "step, checking pgattr_change_is_safe() on the whole run.",
        """
        static void __create_pgd_mapping(pgdir, phys, virt, size, prot,
        @@ __create_pgd_mapping(swapper_pg_dir, {x}, {x}, {x}, prot, flags={})
                                         pgtable_alloc, flags)
        {
            if (WARN_ON((phys ^ virt) & ~PAGE_MASK))
                return;             /* offsets within a page differ */
            phys &= PAGE_MASK;
            addr = virt & PAGE_MASK;
            end = PAGE_ALIGN(virt + size);
            for each pgdp in [addr, end), next = pgd_addr_end(addr, end) {
                alloc_init_pud(pgdp, addr, next, phys, prot, alloc, flags);
                phys += next - addr;
            }
        }
        """,
    ),
    source(
        "alloc_init_pud",
        "v5.4",
        _MMU,
        "pgtable_alloc is early_pgtable_alloc (memblock) at boot and "
        "__pgd_pgtable_alloc (the page allocator) for hot-add.",
        """
        static void alloc_init_pud(pgdp, addr, end, phys, prot, alloc, flags)
        {
            pgd = READ_ONCE(*pgdp);
            if (pgd_none(pgd)) {
                pud_phys = pgtable_alloc(PUD_SHIFT);
                @@ early_pgtable_alloc(PUD_SHIFT)  @@ __pgd_pgtable_alloc(PUD_SHIFT)
                __pgd_populate(pgdp, pud_phys, PUD_TYPE_TABLE);
                @@ __pgd_populate(pgdp, pud_phys, PGD_TYPE_TABLE)
            }
            BUG_ON(pgd_bad(pgd));
            for each pudp in [addr, end), next = pud_addr_end(addr, end) {
                if (use_1G_block(addr, next, phys) &&
                    !(flags & NO_BLOCK_MAPPINGS))
                    pud_set_huge(pudp, phys, prot);  @@ pud_set_huge(...p, phys, prot)
                else
                    alloc_init_cont_pmd(pudp, addr, next, phys, ...);
                phys += next - addr;
            }
        }
        """,
    ),
    source(
        "alloc_init_cont_pmd",
        "v5.4",
        _MMU,
        "With 3 levels the PUD is folded: its entry is the PGD entry the model reads.",
        """
        static void alloc_init_cont_pmd(pudp, addr, end, phys, prot, ...)
        {
            pud = READ_ONCE(*pudp);  @@ pgd = READ_ONCE(*pgdp)
            BUG_ON(pud_sect(pud));
            if (pud_none(pud)) {
                pmd_phys = pgtable_alloc(PMD_SHIFT);
                @@ early_pgtable_alloc(PMD_SHIFT)  @@ __pgd_pgtable_alloc(PMD_SHIFT)
                __pud_populate(pudp, pmd_phys, PUD_TYPE_TABLE);
                @@ __pgd_populate(pgdp, pmd_phys, PGD_TYPE_TABLE)
            }
            for each CONT_PMD run in [addr, end) {
                if (aligned && !(flags & NO_CONT_MAPPINGS))
                    __prot = prot | PTE_CONT;   /* contiguous hint */
                init_pmd(pudp, addr, next, phys, __prot, ...);
            }
        }
        """,
    ),
    source(
        "init_pmd",
        "v5.4",
        _MMU,
        "A section (block) entry maps PMD_SIZE: 2 MiB, 32 MiB or 512 MiB.",
        """
        static void init_pmd(pudp, addr, end, phys, prot, alloc, flags)
        {
            for each pmdp in [addr, end), next = pmd_addr_end(addr, end) {
                old_pmd = READ_ONCE(*pmdp);
                if (section aligned && !(flags & NO_BLOCK_MAPPINGS)) {
                    pmd_set_huge(pmdp, phys, prot);  @@ pmd_set_huge(...p, phys, prot)
                    BUG_ON(!pgattr_change_is_safe(old_pmd, *pmdp));
                } else {
                    alloc_init_cont_pte(pmdp, addr, next, phys, ...);
                }
                phys += next - addr;
            }
        }
        """,
    ),
    source(
        "alloc_init_cont_pte",
        "v5.4",
        _MMU,
        "With 2 levels (64K/42) the PMD is folded: its entry is the PGD entry.",
        """
        static void alloc_init_cont_pte(pmdp, addr, end, phys, prot, ...)
        {
            pmd = READ_ONCE(*pmdp);  @@ pgd = READ_ONCE(*pgdp)
            BUG_ON(pmd_sect(pmd));
            if (pmd_none(pmd)) {
                pte_phys = pgtable_alloc(PAGE_SHIFT);
                @@ early_pgtable_alloc(PTE_SHIFT)  @@ __pgd_pgtable_alloc(PTE_SHIFT)
                __pmd_populate(pmdp, pte_phys, PMD_TYPE_TABLE);
                @@ __pgd_populate(pgdp, pte_phys, PGD_TYPE_TABLE)
            }
            for each CONT_PTE run in [addr, end) {
                if (aligned && !(flags & NO_CONT_MAPPINGS))
                    __prot = prot | PTE_CONT;   /* contiguous hint */
                init_pte(pmdp, addr, next, phys, __prot);
            }
        }
        """,
    ),
    source(
        "init_pte",
        "v5.4",
        _MMU,
        "A run of PTEs is one coarse step in the model (Machine(fine=True): one each).",
        """
        static void init_pte(pmdp, addr, end, phys, prot)
        {
            for each ptep in [addr, end), addr += PAGE_SIZE {
                old_pte = READ_ONCE(*ptep);
                set_pte(ptep, pfn_pte(__phys_to_pfn(phys), prot));
                @@ set_pte(ptep, pfn_pte(__phys_to_pfn(phys), __prot))
                BUG_ON(!pgattr_change_is_safe(old_pte, *ptep));
                phys += PAGE_SIZE;
            }
        }
        """,
    ),
    source(
        "vmemmap_populate",
        "v5.4",
        _MMU,
        "4K maps the memmap with 2 MiB blocks; 16K/64K with pages through "
        "vmemmap_populate_basepages() (mm/sparse-vmemmap.c).",
        """
        int vmemmap_populate(start, end, node, altmap)  @@ vmemmap_populate({x}, {x}, node, NULL)
        {
        #if ARM64_SWAPPER_USES_SECTION_MAPS           /* 4K */
            for each PMD_SIZE step of [start, end) {
                pgdp = vmemmap_pgd_populate(addr, node);
                pudp = vmemmap_pud_populate(pgdp, addr, node);
                if (pmd_none(READ_ONCE(*pmdp))) {
                    p = vmemmap_alloc_block_buf(PMD_SIZE, node);
                    @@ alloc 0x200000 bytes for vmemmap
                    pmd_set_huge(pmdp, __pa(p), __pgprot(PROT_SECT_NORMAL));
                }
            }
        #else                                         /* 16K, 64K */
            vmemmap_populate_basepages(start, end, node);
            /* each page, in vmemmap_pte_populate(): */
                if (pte_none(READ_ONCE(*ptep))) {
                    p = vmemmap_alloc_block_buf(PAGE_SIZE, node);  @@ alloc {x} bytes for vmemmap
                    set_pte_at(&init_mm, addr, pte, entry);
                }
        #endif
            return 0;
        }
        """,
    ),
    _vmemmap_level("pgd"),
    _vmemmap_level("pud"),
    _vmemmap_level("pmd"),
    source(
        "early_fixmap_init",
        "v5.4",
        _MMU,
        "bm_pud, bm_pmd and bm_pte are static tables in the kernel image; the fixmap "
        "keeps them for good (which pins tables vmalloc shares, kernel-facts 7.2).",
        """
        void early_fixmap_init(void)
        {
            addr = FIXADDR_START;
            pgdp = pgd_offset_k(addr);
            if (pgd_none(READ_ONCE(*pgdp)))
                __pgd_populate(pgdp, __pa_symbol(bm_pud), PUD_TYPE_TABLE);
                @@ __pgd_populate(pgdp, __pa_symbol(bm_pud), TABLE)
            pudp = fixmap_pud(addr);
            if (pud_none(READ_ONCE(*pudp)))
                __pud_populate(pudp, __pa_symbol(bm_pmd), PMD_TYPE_TABLE);
                @@ __pud_populate(pudp, __pa_symbol(bm_pmd), TABLE)
                @@ __pgd_populate(pgdp, __pa_symbol(bm_pmd), TABLE)
            pmdp = fixmap_pmd(addr);
            __pmd_populate(pmdp, __pa_symbol(bm_pte), PMD_TYPE_TABLE);
            @@ __pmd_populate(pmdp, __pa_symbol(bm_pte), TABLE)
            @@ __pgd_populate(pgdp, __pa_symbol(bm_pte), TABLE)
        }
        """,
    ),
    source(
        "setup_machine_fdt",
        "v5.4",
        "arch/arm64/kernel/setup.c",
        "The model reserves QEMU virt's 1 MiB device tree; fixmap_remap_fdt() maps it "
        "with create_mapping_noalloc() in SWAPPER_BLOCK_SIZE units (a 2 MiB block on 4K).",
        """
        static void setup_machine_fdt(dt_phys)
        {
            dt_virt = fixmap_remap_fdt(dt_phys, &size, PAGE_KERNEL);
            if (dt_virt)
                memblock_reserve(dt_phys, size);
            if (!dt_virt || !early_init_dt_scan(dt_virt))
                while (true) cpu_relax();    /* no usable DT */
            fixmap_remap_fdt(dt_phys, &size, PAGE_KERNEL_RO);
        }
        """,
    ),
]

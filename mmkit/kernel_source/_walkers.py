"""Listings of the other walkers of the kernel page tables: vmalloc, ptdump, a CPU's load.

vmalloc as v5.4 ``mm/vmalloc.c`` maps pages, with the ``p?d_alloc`` wrappers of
``include/linux/mm.h`` and ``__p?d_alloc`` of ``mm/memory.c`` (read in the tree): the
unlocked none-test, then the locked re-check and install (kernel-facts 7.1). ptdump as v5.4
``arch/arm64/mm/dump.c`` walks, and ``ptdump_show()`` with and without patch 2/3's
``get_online_mems()``.
"""

from __future__ import annotations

from mmkit.kernel_source._listing import Listing, source

__all__ = ["ALIASES", "LISTINGS"]

ALIASES = {
    "__pte_alloc": "__pte_alloc_kernel",  # the model's name for the kernel-page-table form
    "vmalloc caller": "reader",  # the caller of vmalloc() touching its area
}

_LEVEL_NO = {"pgd": 1, "pud": 2, "pmd": 3, "pte": 4}
_DOWN = {"pgd": "pud", "pud": "pmd", "pmd": "pte"}
_UP = {"pud": "p4d", "pmd": "pud", "pte": "pmd"}
_NOLOCK = r"re:unlikely\(p[gmu4]d_none\(\*p[gmu4]d\)\)  /\* no lock \*/"
_RECHECK = r"re:if \(likely\(p[gmu4]d_none\(\*p[gmu4]d\)\)\)  /\* under the lock \*/"
_POPULATE = r"re:p[gmu4]d_populate\(&init_mm, p[gmu4]d, new\)"


def _alloc_wrapper(child: str) -> Listing:
    up = _UP[child]
    name = "pte_alloc_kernel" if child == "pte" else f"{child}_alloc"
    slow = "__pte_alloc_kernel(pmd)" if child == "pte" else f"__{child}_alloc(mm, {up}, addr)"
    args = "pmd, addr" if child == "pte" else f"mm, {up}, addr"
    return source(
        name,
        "v5.4",
        "include/linux/mm.h",
        "The test and the pointer it returns take no lock: a table freed after it is "
        "still used (kernel-facts 7.2). With folded levels the entry is a PGD entry.",
        f"""
        {child}_t *{name}({args})
        {{
            if (unlikely({up}_none(*{up})))  /* no lock */  @@ {_NOLOCK}
                if ({slow})
                    return NULL;              /* -ENOMEM */
            return {child}_offset({up}, addr);     /* kept, unlocked */
        }}
        """,
    )


def _slow_alloc(child: str) -> Listing:
    up = _UP[child]
    shift = f"{child.upper()}_SHIFT"
    note = (
        "The lock covers only installing a new table: the re-check reads through the "
        "caller's pointer, which may point into a table freed meanwhile."
    )
    if child == "pte":
        return source(
            "__pte_alloc_kernel",
            "v5.4",
            "mm/memory.c",
            note,
            f"""
            int __pte_alloc_kernel(pmd)
            {{
                new = pte_alloc_one_kernel(&init_mm);  @@ __pgd_pgtable_alloc({shift})
                if (!new)
                    return -ENOMEM;
                smp_wmb();                  /* zeroed table visible first */
                spin_lock(&init_mm.page_table_lock);  @@ lock(init_mm.page_table_lock)
                if (likely(pmd_none(*pmd))) {{  /* under the lock */  @@ {_RECHECK}
                    pmd_populate_kernel(&init_mm, pmd, new);  @@ {_POPULATE}
                    new = NULL;
                }}
                spin_unlock(&init_mm.page_table_lock);  @@ unlock(init_mm.page_table_lock)
                if (new)                    /* another CPU populated it */
                    pte_free_kernel(&init_mm, new);
                return 0;
            }}
            """,
        )
    lock = "spin_lock(&mm->page_table_lock);" if child == "pud" else "ptl = pud_lock(mm, pud);"
    unlock = "spin_unlock(&mm->page_table_lock);" if child == "pud" else "spin_unlock(ptl);"
    return source(
        f"__{child}_alloc",
        "v5.4",
        "mm/memory.c",
        note + " The lock is init_mm.page_table_lock; the model frees a losing table after "
        "unlocking.",
        f"""
        int __{child}_alloc(mm, {up}, addr)
        {{
            new = {child}_alloc_one(mm, addr);  @@ __pgd_pgtable_alloc({shift})
            if (!new)
                return -ENOMEM;
            smp_wmb();                  /* zeroed table visible first */
            {lock}  @@ lock(init_mm.page_table_lock)
            if (!{up}_present(*{up}))  @@ {_RECHECK}
                {up}_populate(mm, {up}, new);  @@ {_POPULATE}
            else                        /* another CPU populated it */
                {child}_free(mm, new);  @@ {child}_free_kernel(&init_mm, new)
            {unlock}  @@ unlock(init_mm.page_table_lock)
            return 0;
        }}
        """,
    )


def _walk(level: str) -> Listing:
    n = _LEVEL_NO[level]
    read = f"{level} = READ_ONCE(*{level}p) for each of {{}} entries"
    noted = f"note_page(st, addr, {n}, READ_ONCE(*{level}p))"
    if level == "pte":
        body = f"""
            note_page(st, addr, 4, READ_ONCE(*ptep));  @@ {read}
        """
        loop = "for each ptep in [start, end), addr += PAGE_SIZE {"
    else:
        down = _DOWN[level]
        sect = "" if level == "pgd" else f" || {level}_sect({level})"
        body = f"""
            {level} = READ_ONCE(*{level}p);  @@ {read}
            if ({level}_none({level}){sect})
                note_page(st, addr, {n}, {level}_val({level}));  @@ {noted}
            else {{
                BUG_ON({level}_bad({level}));        /* garbage: oops */
                walk_{down}(st, {level}p, addr, next);
            }}
        """
        loop = f"for each {level}p in [start, end), next = {level}_addr_end() {{"
    args = "st, mm, start" if level == "pgd" else f"st, {_UP[level]}p, start, end"
    args = args.replace("p4dp", "pgdp")
    up = _UP.get(level, "pgd").replace("p4d", "pgd")
    offset = "pte_offset_kernel" if level == "pte" else f"{level}_offset"
    head = (
        []
        if level == "pgd"
        else [f"    {level}p = {offset}({up}p, start);  @@ {level}p = {offset}({up}p, addr)"]
    )
    text = "\n".join(
        [f"static void walk_{level}({args})", "{", *head, f"    {loop}"]
        + [
            "    " + ln[8:] if ln.startswith("        ") else ln
            for ln in body.rstrip().lstrip("\n").splitlines()
        ]
        + ["    }", "}"]
    )
    return source(
        f"walk_{level}",
        "v5.4",
        "arch/arm64/mm/dump.c",
        "The model walks entry by entry as here (a run of gaps or leaves is one step), "
        "reading the parent again after each child, so a table freed meanwhile (the "
        "parent too) is read after free.",
        text,
    )


LISTINGS = [
    source(
        "vmalloc",
        "v5.4",
        "mm/vmalloc.c",
        "vmalloc() is __vmalloc_node_range() over the whole vmalloc area. The model "
        "hands out areas bottom up with one guard page each.",
        """
        void *vmalloc(size)  @@ vmalloc({x}){*}
        /* = __vmalloc_node_range(size, 1, VMALLOC_START, VMALLOC_END,  @@ __vmalloc_node_range({*}
                                  GFP_KERNEL, PAGE_KERNEL, ...): */
        {
            size = PAGE_ALIGN(size);
            if (!size || (size >> PAGE_SHIFT) > totalram_pages())
                goto fail;        /* warn_alloc(): allocation failure */
            area = __get_vm_area_node(size, align, VM_ALLOC, start, end, ...);
            if (!area)
                goto fail;        /* vmap allocation failed */
            return __vmalloc_area_node(area, gfp_mask, prot, node);
        }
        """,
    ),
    source(
        "__vmalloc_area_node",
        "v5.4",
        "mm/vmalloc.c",
        "One page per step from the page allocator; no highmem, no NUMA policy.",
        """
        static void *__vmalloc_area_node(area, gfp_mask, prot, node)
        {
            nr_pages = get_vm_area_size(area) >> PAGE_SHIFT;
            for (i = 0; i < nr_pages; i++) {
                page = alloc_page(gfp_mask);  @@ alloc {x} bytes for vmalloc
                if (!page)
                    goto fail;
                area->pages[i] = page;
            }
            if (map_vm_area(area, prot, pages))   /* vmap_page_range() */
                goto fail;
            return area->addr;
        }
        """,
    ),
    _alloc_wrapper("pud"),
    _alloc_wrapper("pmd"),
    _alloc_wrapper("pte"),
    _slow_alloc("pud"),
    _slow_alloc("pmd"),
    _slow_alloc("pte"),
    source(
        "vmap_pte_range",
        "v5.4",
        "mm/vmalloc.c",
        "The PTE is written through the pointer pte_alloc_kernel() returned, with "
        "no lock; into a freed table if hot-remove freed it meanwhile.",
        """
        static int vmap_pte_range(pmd, addr, end, prot, pages, nr)
        {
            pte = pte_alloc_kernel(pmd, addr);
            if (!pte)
                return -ENOMEM;
            for each pte in [addr, end), addr += PAGE_SIZE {
                if (WARN_ON(!pte_none(*pte)))
                    return -EBUSY;
                set_pte_at(&init_mm, addr, pte, mk_pte(page, prot));
                (*nr)++;
            }
            return 0;
        }
        """,
    ),
    source(
        "ptdump_show",
        "v5.7",
        "arch/arm64/mm/ptdump_debugfs.c",
        "Patch 2/3 (V3 on; merged for v5.7; v5.3/v5.4 as released take no lock). v6.1 "
        "takes the lock inside ptdump_walk_pgd() instead (59305202c67f). The model walks "
        "as v5.4 does; the policy's ptdump_hotplug_lock decides.",
        """
        static int ptdump_show(m, v)   /* cat .../kernel_page_tables */
        {
            info = m->private;
            get_online_mems();  @@ read_lock(mem_hotplug_lock)
            ptdump_walk(m, info);      /* v5.4 + patch: ptdump_walk_pgd() */
            put_online_mems();  @@ unlock(mem_hotplug_lock)
            return 0;
        }
        """,
        policy=(("ptdump_hotplug_lock", (True,)),),
    ),
    source(
        "ptdump_show",
        "v5.4",
        "arch/arm64/mm/ptdump_debugfs.c",
        "Before patch 2/3: nothing stops hot-remove freeing a table under the walk.",
        """
        static int ptdump_show(m, v)   /* cat .../kernel_page_tables */
        {
            info = m->private;
            ptdump_walk_pgd(m, info);  /* no lock against hot-remove */
            return 0;
        }
        """,
        policy=(("ptdump_hotplug_lock", (False,)),),
    ),
    *(_walk(level) for level in ("pgd", "pud", "pmd", "pte")),
    source(
        "reader",
        "ARMv8-A",
        "a CPU's load (VMSAv8-64 translation)",
        "Not kernel code: what the MMU does for a load. A stale TLB entry is used "
        "without looking at the tables; the kernel's TLBIs remove them.",
        """
        load(va)  @@ load {x}
        {
            if (the TLB holds va)
                return the cached translation;  @@ load {x} (TLB hit)
            table = walk cache hit ? its table : swapper_pg_dir;
            for each level {
                desc = table[index of va];     /* a read of the table */
                if (!(desc & PTE_VALID))
                    translation fault;  @@ load {x}: translation fault at level {}
                if (a table descriptor)
                    table = next level; continue;
                fill the TLB and the walk cache;
                return pa;  @@ load {x} (walk)
            }
        }
        """,
    ),
]

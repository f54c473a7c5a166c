"""Listings of patch 3/3's teardown in ``arch/arm64/mm/mmu.c``, per version.

* v5.7 (V14, bbd6ec605c0f), read in the 5.7.14 tree: ``unmap_hotplug_*_range`` with one
  TLBI per block, and ``free_empty_*_table`` with floor/ceiling, each freeing its own table.
* patch V7 (3 Sep 2019; V6 alike), from kernel-facts 6.2: ``flush_tlb_kernel_range(addr,
  next)`` per block and a free pass without floor/ceiling whose ``free_*_table()`` helpers
  scan, unhook and free each table (folded into ``free_empty_*_table`` by V9).
* patch V3 (14 May 2019): see :mod:`mmkit.kernel_source._teardown_v3`.

Each level's listing is built from one template, as the kernel's own functions repeat one
shape per level. The engine names the entries it reads and clears after the level of the
table they are in (``pgd_clear`` for a top-level entry even where the kernel's folded
``pud_clear``/``pmd_clear`` does it); the clear lines carry patterns for that.
"""

from __future__ import annotations

from mmkit.kernel_source._listing import Listing, source

__all__ = ["ALIASES", "LISTINGS"]

_MMU = "arch/arm64/mm/mmu.c"
_V57 = (("linear_floor_ceiling", (True,)),)
_V7 = (("linear_floor_ceiling", (False,)), ("passes", (2,)))
_SINGLE = (("block_tlbi", ("single",)), ("passes", (2,)))
_RANGE = (("block_tlbi", ("range",)), ("passes", (2,)))
_CLEAR = r"re:p[gmu4]d_clear\(p[gmu4]dp\)"
_FREE_PT = "free_hotplug_pgtable_page(virt_to_page(p?dp))"

ALIASES = {
    # the top-level table's entries: read by the function holding the pgd loop
    "unmap_hotplug_pgd_range": "unmap_hotplug_range",
    "free_empty_pgd_table": "free_empty_tables",
    # V3's backing-page free of a block (the model's name; V3 used this helper)
    "free_pagetable": "free_hotplug_page_range",
}

#: level -> (the level above, the level below, its block size, mask of its table's span,
#: the CONFIG_PGTABLE_LEVELS at or below which its table is folded away)
_LEVELS = {
    "pte": ("pmd", "", "PAGE_SIZE", "PMD_MASK", 0),
    "pmd": ("pud", "pte", "PMD_SIZE", "PUD_MASK", 2),
    "pud": ("p4d", "pmd", "PUD_SIZE", "PGDIR_MASK", 3),
}

_FOLDED = """
    /* 2 or 3 levels: a block in the top table is cleared by the
       folded pud/pmd loop (as pud_clear/pmd_clear), then TLBI */
    p?d_clear(p?dp);  @@ pgd_clear(pgdp)
"""


def _tlbi(single: bool, indent: str) -> str:
    if single:
        return (
            f"{indent}flush_tlb_kernel_range(addr, addr + PAGE_SIZE);\n"
            f"{indent}@@ flush_tlb_kernel_range({{x}}, {{x}})\n"
        )
    return (
        f"{indent}flush_tlb_kernel_range(addr, next);  @@ flush_tlb_kernel_range({{x}}, {{x}})\n"
        f"{indent}/* more than MAX_TLBI_OPS pages: */ flush_tlb_all();  @@ flush_tlb_all()\n"
    )


def _unmap_range(single: bool) -> Listing:
    down = "unmap_hotplug_p4d_range" if single else "unmap_hotplug_pud_range"
    text = f"""
static void unmap_hotplug_range(addr, end, free_mapped)
@@ unmap_hotplug_range({{x}}, {{x}}, free_mapped={{}})
{{
    for each pgdp in [addr, end), next = pgd_addr_end(addr, end) {{
        pgd = READ_ONCE(*pgdp);
        if (pgd_none(pgd))
            continue;
        WARN_ON(!pgd_present(pgd));
        {down}(pgdp, addr, next, free_mapped);
    }}
}}
"""
    text += _FOLDED + _tlbi(single, "    ")
    return source(
        "unmap_hotplug_range",
        "v5.7" if single else "patch V7",
        _MMU,
        "Pass 1: clear, TLBI, then free what was mapped (vmemmap only). "
        + (
            "V14 added the folded P4D loop."
            if single
            else "V6-V8 called the flag sparse_vmap (free_mapped from V9)."
        ),
        text,
        policy=_SINGLE if single else _RANGE,
    )


def _unmap_level(name: str, single: bool) -> Listing:
    up, down, size, _mask, _lv = _LEVELS[name]
    if not single and up == "p4d":
        up = "pgd"
    text = f"""
static void unmap_hotplug_{name}_range({up}p, addr, end, free_mapped)
{{
    for each {name}p in [addr, end), next = {name}_addr_end(addr, end) {{
        {name} = READ_ONCE(*{name}p);
        if ({name}_none({name}))
            continue;
        WARN_ON(!{name}_present({name}));
        if ({name}_sect({name})) {{                 /* a block */
            {name}_clear({name}p);
{_tlbi(single, "            ")}            if (free_mapped)
                free_hotplug_page_range({name}_page({name}), {size});
            continue;
        }}
        WARN_ON(!{name}_table({name}));
        unmap_hotplug_{down}_range({name}p, addr, next, free_mapped);
    }}
}}
"""
    note = (
        "V10 on: one TLBI per block entry. The model takes a run of alike blocks as "
        "one coarse step (Machine(fine=True) for one per entry)."
        if single
        else "V6-V9: flush_tlb_kernel_range(addr, next), one TLBI per page of the "
        "block, or a full flush past MAX_TLBI_OPS pages."
    )
    return source(
        f"unmap_hotplug_{name}_range",
        "v5.7" if single else "patch V7",
        _MMU,
        note,
        text,
        policy=_SINGLE if single else _RANGE,
    )


_UNMAP_PTE = source(
    "unmap_hotplug_pte_range",
    "v5.7",
    _MMU,
    "The same from V6 to v5.7. A run of entries is one coarse step: its clears, its "
    "TLBIs, its frees (Machine(fine=True) steps each entry).",
    """
    static void unmap_hotplug_pte_range(pmdp, addr, end, free_mapped)
    {
        for each ptep in [addr, end), addr += PAGE_SIZE {
            pte = READ_ONCE(*ptep);
            if (pte_none(pte))
                continue;
            WARN_ON(!pte_present(pte));
            pte_clear(&init_mm, addr, ptep);
            flush_tlb_kernel_range(addr, addr + PAGE_SIZE);
            if (free_mapped)
                free_hotplug_page_range(pte_page(pte), PAGE_SIZE);
        }
    }
    """,
)

_FREE_PAGE = source(
    "free_hotplug_page_range",
    "v5.7",
    _MMU,
    "V3 freed a block's (and a page's) backing the same way, before clearing its entry. "
    "V9 dropped the WARN_ON(!page). A PageReserved (boot) page is warned about and freed "
    "anyway: the page allocator's bad_page() then keeps it.",
    """
    static void free_hotplug_page_range(page, size)
    {
        WARN_ON(PageReserved(page));     /* boot memory: never */
        free_pages(page_address(page), get_order(size));
        @@ free_pages(page_address(page), get_order({x}))
    }
    """,
)


def _free_tables(v57: bool) -> Listing:
    if v57:
        head = (
            "static void free_empty_tables(addr, end, floor, ceiling)"
            "  @@ free_empty_tables({x}, {x}, {x}, {x})"
        )
        call = ["free_empty_p4d_table(pgdp, addr, next, floor, ceiling);"]
    else:
        head = "static void free_empty_tables(addr, end)  @@ free_empty_tables({x}, {x})"
        call = ["free_empty_pud_table(pgdp, addr, next);", "free_pud_table(pgdp, addr);"]
    lines = [
        head,
        "{",
        "    for each pgdp in [addr, end), next = pgd_addr_end(addr, end) {",
        "        pgd = READ_ONCE(*pgdp);",
        "        if (pgd_none(pgd))",
        "            continue;",
        "        WARN_ON(!pgd_present(pgd));",
        *("        " + c for c in call),
        "    }",
        "}",
    ]
    return source(
        "free_empty_tables",
        "v5.7" if v57 else "patch V7",
        _MMU,
        "Pass 2. Floor and ceiling bound which tables may be freed: the whole region, "
        "[PAGE_OFFSET, PAGE_END) or [VMEMMAP_START, VMEMMAP_END)."
        if v57
        else "Pass 2 of V6/V7: a table is freed when all its entries are none, "
        "wherever it is (V7 skips vmemmap when the regions may share a table).",
        "\n".join(lines),
        policy=_V57 if v57 else _V7,
    )


def _free_level_v57(name: str) -> Listing:
    up, down, _size, mask, levels = _LEVELS[name]
    upper = name.upper()
    if name == "pte":
        walk = """    for each ptep in [addr, end), addr += PAGE_SIZE {
        pte = READ_ONCE(*ptep);
        WARN_ON(!pte_none(pte))  /* sanity */
    }
"""
        check = ""
    else:
        walk = f"""    for each {name}p in [addr, end), next = {name}_addr_end(addr, end) {{
        {name} = READ_ONCE(*{name}p);
        if ({name}_none({name}))
            continue;
        WARN_ON(!{name}_present({name}) || !{name}_table({name}) || {name}_sect({name}));
        free_empty_{down}_table({name}p, addr, next, floor, ceiling);
    }}
"""
        check = f"    if (CONFIG_PGTABLE_LEVELS <= {levels})\n        return;\n"
    text = f"""
static void free_empty_{name}_table({up}p, addr, end, floor, ceiling)
{{
    start = addr;
{walk}{check}    if (!pgtable_range_aligned(start, end, floor, ceiling, {mask}))
        return;                   /* may be shared: never freed */
    for (i = 0; i < PTRS_PER_{upper}; i++)
    @@ scan all {{}} entries: {name}_none(READ_ONCE({name}p[i]))
        if (!{name}_none(READ_ONCE({name}p[i])))
            return;               /* still in use */
    {up}_clear({up}p);  @@ {_CLEAR}
    __flush_tlb_kernel_pgtable(start);  @@ __flush_tlb_kernel_pgtable({{x}})
    free_hotplug_pgtable_page(virt_to_page({name}p));  @@ {_FREE_PT}
}}
"""
    return source(
        f"free_empty_{name}_table",
        "v5.7",
        _MMU,
        "The emptiness scan is one step over all entries. A run of none entries above "
        "the leaves is one read step.",
        text,
        policy=_V57,
    )


def _free_level_v7(name: str) -> Listing:
    up, down, _size, _mask, levels = _LEVELS[name]
    if up == "p4d":
        up = "pgd"
    upper = name.upper()
    if name == "pte":
        walk = """    for each ptep in [addr, end), addr += PAGE_SIZE {
        pte = READ_ONCE(*ptep);
        WARN_ON(!pte_none(pte))  /* sanity */
    }
"""
    else:
        walk = f"""    for each {name}p in [addr, end), next = {name}_addr_end(addr, end) {{
        {name} = READ_ONCE(*{name}p);
        if ({name}_none({name}))
            continue;
        WARN_ON(!{name}_present({name}) || !{name}_table({name}) || {name}_sect({name}));
        free_empty_{down}_table({name}p, addr, next);
        free_{down}_table({name}p, addr);
    }}
"""
    check = f"    if (CONFIG_PGTABLE_LEVELS <= {levels})\n        return;\n" if levels else ""
    text = f"""
static void free_empty_{name}_table({up}p, addr, end)
{{
{walk}}}
/* the caller then frees this table: */
static void free_{name}_table({up}p, addr)
{{
{check}    for (i = 0; i < PTRS_PER_{upper}; i++)
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
        f"free_empty_{name}_table",
        "patch V7",
        _MMU,
        f"V6/V7 scan, unhook and free in free_{name}_table() (folded into this "
        "function by V9); the model gives those steps this function's name.",
        text,
        policy=_V7,
    )


LISTINGS = [
    _unmap_range(True),
    _unmap_range(False),
    *(_unmap_level(n, single) for n in ("pud", "pmd") for single in (True, False)),
    _UNMAP_PTE,
    _FREE_PAGE,
    _free_tables(True),
    _free_tables(False),
    *(f(n) for n in ("pud", "pmd", "pte") for f in (_free_level_v57, _free_level_v7)),
]

"""x86's hot-remove teardown: v5.4 ``remove_pagetable()`` as engine steps.

Reimplements ``arch/x86/mm/init_64.c`` (v5.4) for mmkit's machine:

* ``arch_remove_memory()`` = ``__remove_pages()`` (each section's ``vmemmap_free()``, i.e.
  ``remove_pagetable(start, end, direct=false)``) then ``kernel_physical_mapping_remove()``
  (``remove_pagetable(__va(start), __va(end), direct=true)``);
* ``remove_pagetable()`` walks the PGD entries, ``remove_p4d_table()``,
  ``remove_pud_table()``, ``remove_pmd_table()``, ``remove_pte_table()``; after each lower
  level returns, ``free_pte_table()`` / ``free_pmd_table()`` (``free_pud_table()`` only with
  5-level paging) scan the table and, if all its entries are none, **free the page first**
  and then clear the parent entry under ``init_mm.page_table_lock``;
* a leaf (4K PTE, 2M PMD, 1G PUD) wholly inside the range: for the vmemmap
  (``direct=false``) its page is freed (``free_pagetable()`` / ``free_hugepage_table()``)
  **before** the entry is cleared under the lock; the direct map's pages are not freed;
* a leaf only partly inside (the vmemmap of a sub-page range): the struct pages being
  removed are filled with ``PAGE_INUSE`` (0xFD) and the page is freed and cleared only once
  all of it reads back as 0xFD (``memchr_inv()``); the machine remembers the filled bytes
  per page in ``machine.x86_page_inuse``;
* no per-entry TLB invalidation: ``flush_tlb_all()`` after each ``remove_pte_table()`` loop
  and once at the end of ``remove_pagetable()``;
* ``remove_pte_table()`` returns at the first present PTE whose ``pte_val(*pte) + (addr &
  PAGE_MASK)`` is below 1 GiB (``0x40000000``): the ``head_64.S`` identity map. The kernel
  adds the entry's value (address and flags) to the *virtual* address; mmkit evaluates that
  expression as the kernel does (mod 2**64), so for kernel addresses it does not fire;
* ``free_pagetable()`` of a boot-time (``PageReserved``) page clears the flag and gives it
  back with ``free_reserved_page()``: no warning, unlike arm64. mmkit's allocator does not
  manage boot memory, so such a page is only dropped as a table.

A table freed while a concurrent ``vmalloc()`` writes into it is the engine's
``lost-mapping`` / use-after-free, as on arm64 (kernel-facts 9: x86 has the same exposure).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["PAGE_INUSE", "arch_remove_memory", "remove_pagetable"]

#: ``#define PAGE_INUSE 0xFD`` (v5.4 ``arch/x86/mm/init_64.c``)
PAGE_INUSE = 0xFD
PTL = "init_mm.page_table_lock"
_M64 = (1 << 64) - 1
_IDENTITY_END = 0x40000000


def arch_remove_memory(m: Machine, start: int, size: int) -> Iterator[Step]:
    """v5.4 x86 ``arch_remove_memory(nid, start, size, altmap)`` (module docstring)."""
    fn = "arch_remove_memory"
    yield Step("call", fn, f"arch_remove_memory(nid, {start:#x}, {size:#x}, NULL)")
    sec = 1 << m.macros["SECTION_SIZE_BITS"]
    shift = m.desc.page_shift
    for s in range(start, start + size, sec):  # __remove_pages -> sparse_remove_section
        lo, hi = m.vmemmap_va(s >> shift), m.vmemmap_va((s + sec) >> shift)
        yield Step("call", "vmemmap_free", f"vmemmap_free({lo:#x}, {hi:#x}, NULL)", va=lo)
        yield from remove_pagetable(m, lo, hi, direct=False)
    lo, hi = m.lm_va(start), m.lm_va(start + size)
    yield Step(
        "call",
        "kernel_physical_mapping_remove",
        f"kernel_physical_mapping_remove({start:#x}, {start + size:#x})",
        va=lo,
    )
    yield from remove_pagetable(m, lo, hi, direct=True)
    yield Step("call", fn, "return", va=lo)


def remove_pagetable(m: Machine, start: int, end: int, *, direct: bool) -> Iterator[Step]:
    """``remove_pagetable(start, end, direct, altmap)``: the walk, then ``flush_tlb_all()``."""
    fn = "remove_pagetable"
    yield Step("call", fn, f"remove_pagetable({start:#x}, {end:#x}, direct={direct})", va=start)
    yield from _remove_level(m, 0, m.pgtables.pgd_pfn, start, end, direct)
    yield from _flush_tlb_all(m, fn, start)


def _flush_tlb_all(m: Machine, fn: str, va: int) -> Iterator[Step]:
    """``flush_tlb_all()``: every CPU's TLB emptied (counted as the engine counts a whole
    TLB flush)."""
    yield Step("tlbi", fn, "flush_tlb_all()", va=va, count=1, note="vmalle1is")
    m.stats["vmalle1is"] += 1
    for tlb in m.tlbs:
        tlb.flush_all()


def _write(
    m: Machine, fn: str, line: str, level: str, va: int, table: int, idx: int
) -> Iterator[Step]:
    """Clear one entry under ``init_mm.page_table_lock`` (spin_lock, clear, spin_unlock)."""
    yield from m.lock(fn, PTL)
    step = Step("write", fn, line, level, va, table, idx, new=0)
    yield step
    step.old = int(m.pgtables.content[table][idx])
    m.pgtables.content[table][idx] = 0
    yield from m.unlock(fn, PTL)


def _free_pagetable(m: Machine, pfn: int, order: int, fn: str, va: int) -> Iterator[Step]:
    """``free_pagetable(page, order)``: a boot page via ``free_reserved_page()``, else
    ``free_pages()``."""
    frame = m.physmem.frame(pfn)
    if frame is not None and frame.state == "reserved":
        yield Step(
            "free",
            fn,
            "__ClearPageReserved(page); free_reserved_page(page)",
            va=va,
            pfn=pfn,
            size=m.page_size << order,
            note="boot page",
        )
        return
    yield from m.free_backing(pfn, order, fn, va)


def _free_table_page(m: Machine, pfn: int, fn: str, va: int, parent: str) -> Iterator[Step]:
    """A table page given back by ``free_pagetable(<parent>_page(*<parent>), 0)``."""
    frame = m.physmem.frame(pfn)
    yield Step(
        "free",
        fn,
        f"free_pagetable({parent}_page(*{parent}), 0)",
        m.pgtables.levels[m.pgtables.info[pfn].depth].name,
        va,
        pfn=pfn,
        size=m.page_size,
        note="table",
    )
    m.pgtables.drop_table(pfn)
    if frame is None or frame.state != "reserved":
        m.physmem.free_pages(pfn, 0, fn)


def _remove_level(
    m: Machine, depth: int, table: int, addr: int, end: int, direct: bool
) -> Iterator[Step]:
    pt = m.pgtables
    level = pt.levels[depth]
    if depth == len(pt.levels) - 1:
        yield from _remove_pte_table(m, table, addr, end, direct)
        return
    fn = "remove_pagetable" if depth == 0 else f"remove_{level.name}_table"
    size = level.entry_size
    arr = pt.content[table]
    while addr < end:
        nxt = min((addr | (size - 1)) + 1, end)
        idx = level.index(addr)
        read = Step(
            "read", fn, f"{level.name}_present(*{level.name})", level.name, addr, table, idx
        )
        yield read
        raw = read.old = int(arr[idx])
        if not raw & 1:
            addr = nxt
            continue
        if pt.is_sect(raw):
            yield from _remove_large(m, level, table, idx, addr, nxt, raw, direct, fn)
        else:
            child = pt.next_table(raw)
            yield from _remove_level(m, depth + 1, child, addr, nxt, direct)
            child_level = pt.levels[depth + 1]
            # free_pte_table() in remove_pmd_table(), free_pmd_table() in remove_pud_table(),
            # free_pud_table() in remove_p4d_table() only when pgtable_l5_enabled(); a P4D
            # table is never freed (remove_pagetable() has no free_p4d_table())
            if child_level.name in ("pte", "pmd") or (
                child_level.name == "pud" and m.desc.levels == 5
            ):
                yield from _free_if_empty(m, depth + 1, child, table, idx, addr)
        addr = nxt


def _free_if_empty(
    m: Machine, depth: int, child: int, parent: int, idx: int, va: int
) -> Iterator[Step]:
    """``free_pte_table()`` / ``free_pmd_table()`` / ``free_pud_table()``: scan, and if every
    entry is none free the page, then clear the parent entry under the lock."""
    pt = m.pgtables
    name = pt.levels[depth].name
    parent_name = pt.levels[depth - 1].name
    fn = f"free_{name}_table"
    scan = Step("read", fn, f"for each {name}: if (!{name}_none(*{name})) return", name, va, child)
    yield scan
    if pt.content[child][: pt.levels[depth].ptrs].any():
        return
    yield from _free_table_page(m, child, fn, va, parent_name)
    yield from _write(m, fn, f"{parent_name}_clear({parent_name})", parent_name, va, parent, idx)


def _remove_large(
    m: Machine, level, table: int, idx: int, addr: int, nxt: int, raw: int, direct: bool, fn: str
) -> Iterator[Step]:
    """A PSE leaf at the PMD or PUD level (``pmd_large()``/``pud_large()``)."""
    pt = m.pgtables
    size = level.entry_size
    base = addr & ~(size - 1)
    pfn = (pt.desc_to_pa(raw) & ~(size - 1)) >> pt.page_shift
    order = level.shift - pt.page_shift
    name = level.name
    if addr % size == 0 and nxt % size == 0:
        if not direct:
            free_fn = "free_hugepage_table" if name == "pmd" else "free_pagetable"
            yield from _free_pagetable(m, pfn, order, free_fn, base)
        yield from _write(m, fn, f"{name}_clear({name})", name, base, table, idx)
        return
    if _page_inuse(m, pfn, size, addr - base, nxt - base):
        yield from _free_pagetable(m, pfn, order, "free_hugepage_table", base)
        yield from _write(m, fn, f"{name}_clear({name})", name, base, table, idx)


def _page_inuse(m: Machine, pfn: int, size: int, lo: int, hi: int) -> bool:
    """``memset(addr, PAGE_INUSE, next - addr)``, then whether ``memchr_inv(page_addr,
    PAGE_INUSE, size)`` finds nothing else: the whole page is 0xFD."""
    filled: dict[int, list[tuple[int, int]]] = m.__dict__.setdefault("x86_page_inuse", {})
    spans = sorted([*filled.get(pfn, []), (lo, hi)])
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    filled[pfn] = merged
    if merged == [(0, size)]:
        del filled[pfn]
        return True
    return False


def _remove_pte_table(m: Machine, table: int, addr: int, end: int, direct: bool) -> Iterator[Step]:
    """``remove_pte_table(pte_start, addr, end, direct)``, then ``flush_tlb_all()``."""
    pt = m.pgtables
    level = pt.levels[-1]
    fn = "remove_pte_table"
    page = pt.page_size
    arr = pt.content[table]
    start = addr
    while addr < end:
        nxt = min((addr + page) & ~(page - 1), end)
        idx = level.index(addr)
        raw = int(arr[idx])
        if not raw & 1:
            addr = nxt
            continue
        read = Step("read", fn, "pte_present(*pte)", "pte", addr, table, idx)
        yield read
        read.old = raw
        if (raw + (addr & ~(page - 1))) & _M64 < _IDENTITY_END:
            yield Step("call", fn, "return: below 1 GiB, the head_64.S identity map", va=addr)
            return
        pfn = pt.desc_to_pa(raw) >> pt.page_shift
        if addr % page == 0 and nxt % page == 0:
            if not direct:
                yield from _free_pagetable(m, pfn, 0, "free_pagetable", addr)
            yield from _write(m, fn, "pte_clear(&init_mm, addr, pte)", "pte", addr, table, idx)
        elif _page_inuse(m, pfn, page, addr % page, nxt - (addr & ~(page - 1))):
            yield from _free_pagetable(m, pfn, 0, "free_pagetable", addr)
            yield from _write(m, fn, "pte_clear(&init_mm, addr, pte)", "pte", addr, table, idx)
        addr = nxt
    yield from _flush_tlb_all(m, fn, start)

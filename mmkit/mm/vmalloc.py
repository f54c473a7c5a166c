"""vmalloc: how the kernel maps pages into the vmalloc area, and why it races hot-remove.

Models v5.4 ``mm/vmalloc.c`` ``vmap_page_range_noflush()`` → ``vmap_pud_range`` →
``vmap_pmd_range`` → ``vmap_pte_range`` with the ``pud_alloc`` / ``pmd_alloc`` /
``pte_alloc_kernel`` wrappers of ``include/linux/mm.h``: each tests the upper entry for none
*without any lock*, and only to install a new table page takes
``init_mm.page_table_lock``, re-checks and populates. The walk itself, and the pointers it
keeps into intermediate tables, are unprotected (kernel-facts 7.1): the root of the race with
hot-remove's table freeing.

Each step is yielded before it is performed (yield, then perform; see :mod:`mmkit.events`):
the unlocked test reads its entry when its step is resumed, the re-check under the lock reads
it again (a table page that lost the race is freed, as ``__pte_alloc_kernel`` does), and the
walk follows what was read last.

Simplification: the vmalloc area allocator hands out addresses bottom up with one guard page
after each area (``VM_NO_GUARD`` unset), as ``__get_vm_area_node`` does on an empty area.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit.arch import pte as hw
from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["vmalloc", "vmap_page_range"]


def vmap_page_range(m: Machine, start: int, pfns: list[int], prot: int) -> Iterator[Step]:
    """``vmap_page_range(start, end, prot, pages)``: map ``pfns`` one page each from
    ``start``, allocating missing tables the way vmalloc does (unlocked test, locked
    re-check and install)."""
    pt = m.pgtables
    leaf = len(pt.levels) - 1
    for i, pfn in enumerate(pfns):
        addr = start + i * m.page_size
        table = pt.pgd_pfn
        for depth in range(leaf):
            lvl = pt.levels[depth]
            child = pt.levels[depth + 1].name
            fn = "pte_alloc_kernel" if child == "pte" else f"{child}_alloc"
            idx = lvl.index(addr)
            step = Step(
                "read",
                fn,
                f"unlikely({lvl.name}_none(*{lvl.name}))  /* no lock */",
                lvl.name,
                addr,
                table,
                idx,
            )
            yield step
            raw = step.old = int(pt.content[table][idx])
            if raw == 0:
                alloc = f"__{child}_alloc"
                new_pfn = yield from m.alloc_table(depth + 1, addr, alloc)
                yield from m.lock(alloc, "init_mm.page_table_lock")
                step = Step(
                    "read",
                    alloc,
                    f"if (likely({lvl.name}_none(*{lvl.name})))  /* under the lock */",
                    lvl.name,
                    addr,
                    table,
                    idx,
                )
                yield step
                raw = step.old = int(pt.content[table][idx])
                lost = raw != 0  # another CPU populated it meanwhile
                if not lost:
                    raw = pt.table_desc(new_pfn)
                    step = Step(
                        "write",
                        alloc,
                        f"{lvl.name}_populate(&init_mm, {lvl.name}, new)",
                        lvl.name,
                        addr,
                        table,
                        idx,
                        new=raw,
                    )
                    yield step
                    step.old = int(pt.content[table][idx])
                    pt.content[table][idx] = raw
                yield from m.unlock(alloc, "init_mm.page_table_lock")
                if lost:
                    yield from _free_unused_table(m, new_pfn, alloc, child)
            table = pt.next_table(raw)
        lvl = pt.levels[leaf]
        idx = lvl.index(addr)
        new = pt.pa_to_desc(pfn << pt.page_shift) | prot
        step = Step(
            "write",
            "vmap_pte_range",
            "set_pte_at(&init_mm, addr, pte, mk_pte(page, prot))",
            lvl.name,
            addr,
            table,
            idx,
            new=new,
        )
        yield step
        # performing it: if (WARN_ON(!pte_none(*pte))) return -EBUSY; then the write
        old = step.old = int(pt.content[table][idx])
        if old:
            m.warn("vmap_pte_range", f"WARN_ON(!pte_none(*pte)) at {addr:#x}: -EBUSY", va=addr)
            return
        pt.content[table][idx] = new


def _free_unused_table(m: Machine, pfn: int, fn: str, name: str) -> Iterator[Step]:
    """``{name}_free_kernel(&init_mm, new)``: the table page that lost the race goes back."""
    info = m.pgtables.info[pfn]
    yield Step(
        "free",
        fn,
        f"{name}_free_kernel(&init_mm, new)",
        m.pgtables.levels[info.depth].name,
        info.va_start,
        pfn=pfn,
        size=m.page_size,
        note="table",
    )
    m.pgtables.drop_table(pfn)
    m.physmem.free_pages(pfn, 0, fn)


def vmalloc(m: Machine, size: int) -> Iterator[Step]:
    """``vmalloc(size)``: reserve VA, allocate the pages, map them. Returns the VA.

    The ``call`` step reserves the area (``__get_vm_area_node``) when performed: its line
    and ``va`` then say where."""
    pages = -(-size // m.page_size)
    step = Step("call", "vmalloc", f"vmalloc({size:#x})")
    yield step
    va = m._vmalloc_next
    m._vmalloc_next = va + (pages + 1) * m.page_size  # one guard page
    m.vmalloc_ranges.append((va, pages * m.page_size))
    step.line, step.va = f"vmalloc({size:#x}) = {va:#x}", va
    pfns = []
    for _ in range(pages):
        pfn = yield from m.alloc_backing(0, "vmalloc", "__vmalloc_area_node")
        pfns.append(pfn)
    yield from vmap_page_range(m, va, pfns, hw.kernel_prot("PAGE_KERNEL", ng=m.ng))
    return va

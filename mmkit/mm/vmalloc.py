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

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["use_vmalloc_area", "vmalloc", "vmap_page_range"]


def vmap_page_range(
    m: Machine, start: int, pfns: list[int], prot: int
) -> Generator[Step, None, bool]:
    """``vmap_page_range(start, end, prot, pages)``: map ``pfns`` one page each from
    ``start``, allocating missing tables the way vmalloc does (unlocked test, locked
    re-check and install).

    As v5.4's ``vmap_p?d_range()`` nest: each level's wrapper (``pud_alloc``,
    ``pmd_alloc``, ``pte_alloc_kernel``) reads its upper entry once per span of that entry
    and returns a pointer into the next table, which the loop below it then steps through
    (``pte++``, ``pmd++``) for every entry of the span, without a lock. So one PTE-table
    pointer serves all the pages of a PMD span. If that table page has been freed since
    (hot-remove's ``free_empty_tables()``), every later read or write through the pointer
    is a use-after-free, recorded KASAN-style with who freed the page and what it is now.
    Returns True, or False when ``vmap_pte_range()`` found a PTE already set (``-EBUSY``).
    """
    pt = m.pgtables
    end = start + len(pfns) * m.page_size
    top = pt.pgd_pfn  # pgd_offset_k(): swapper_pg_dir is never freed
    ok = yield from _vmap_range(m, 0, top, pt.info.get(top), start, end, start, pfns, prot)
    return ok


def _vmap_range(
    m: Machine,
    depth: int,
    table: int,
    held: object,
    addr: int,
    end: int,
    start: int,
    pfns: list[int],
    prot: int,
) -> Generator[Step, None, bool]:
    """The loop of one ``vmap_p?d_range()`` over [addr, end) through the pointer into
    ``table`` (``held``: the table page the pointer was taken into). False: ``-EBUSY``."""
    pt = m.pgtables
    leaf = len(pt.levels) - 1
    lvl = pt.levels[depth]
    if depth == leaf:
        while addr < end:
            idx = lvl.index(addr)
            pfn = pfns[(addr - start) // m.page_size]
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
            _check_pointer(m, "vmap_pte_range", lvl.name, table, held, addr, "Write")
            old = step.old = int(pt.content[table][idx])
            if old:
                m.warn("vmap_pte_range", f"WARN_ON(!pte_none(*pte)) at {addr:#x}: -EBUSY", va=addr)
                return False
            pt.content[table][idx] = new
            addr += m.page_size
        return True
    size = lvl.entry_size
    child = pt.levels[depth + 1].name
    fn = "pte_alloc_kernel" if child == "pte" else f"{child}_alloc"
    while addr < end:
        nxt = min((addr | (size - 1)) + 1, end)
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
        _check_pointer(m, fn, lvl.name, table, held, addr, "Read")
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
            _check_pointer(m, alloc, lvl.name, table, held, addr, "Read")
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
                _check_pointer(m, alloc, lvl.name, table, held, addr, "Write")
                step.old = int(pt.content[table][idx])
                pt.content[table][idx] = raw
            yield from m.unlock(alloc, "init_mm.page_table_lock")
            if lost:
                yield from _free_unused_table(m, new_pfn, alloc, child)
        below = pt.next_table(raw)
        ok = yield from _vmap_range(
            m, depth + 1, below, pt.info.get(below), addr, nxt, start, pfns, prot
        )
        if not ok:
            return False
        addr = nxt
    return True


def _check_pointer(
    m: Machine, fn: str, level: str, table: int, held: object, va: int, access: str
) -> None:
    """Record a use-after-free if the table page ``table`` is no longer the live table the
    walk took its pointer into (``held``): freed, or freed and reused for something else."""
    pt = m.pgtables
    now = pt.info.get(table)
    if now is held and held is not None:
        return
    frame = m.physmem.frame(table)
    if now is not None:
        what = f"reused as a {pt.levels[now.depth].name} table for {now.region} now"
    elif frame is not None and frame.state != "free":
        what = f"reused as {frame.state}" + (f" ({frame.owner})" if frame.owner else "") + " now"
    else:
        what = "still free"
    m.record_event(
        "use-after-free",
        fn,
        f"{access} of size 8 through a stale {level} table pointer: pfn {table:#x} "
        f"(VA {va:#x}) was freed; it is {what}",
        va=va,
        pfn=table,
        freed_by=frame.freed_by if frame else None,
        thread=getattr(m, "current_thread", ""),
    )


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
    m.pgtables.free_table_pages([pfn], fn)


def vmalloc(
    m: Machine, size: int, *, start: int | None = None, end: int | None = None
) -> Iterator[Step]:
    """``vmalloc(size)``: reserve VA, allocate the pages, map them. Returns the VA.

    With ``start``/``end`` it is ``__vmalloc_node_range(size, 1, start, end, ...)`` (as
    ``module_alloc()`` and the BPF JIT call it): the area is the first free one at or above
    ``start`` that ends below ``end``. The ``call`` step reserves the area
    (``__get_vm_area_node``) when performed: its line and ``va`` then say where."""
    pages = -(-size // m.page_size)
    span = (pages + 1) * m.page_size  # one guard page after the area
    if start is None:
        call = f"vmalloc({size:#x})"
    else:
        limit = m.macros["VMALLOC_END"] if end is None else end
        call = f"__vmalloc_node_range({size:#x}, 1, {start:#x}, {limit:#x}, ...)"
    step = Step("call", "vmalloc", call)
    yield step
    if pages <= 0:  # __vmalloc_node_range(): if (!size ...) goto fail
        m.warn("__vmalloc_node_range", f"vmalloc: allocation failure: {size} bytes")
        return None
    if start is None:
        va = m._vmalloc_next
        m._vmalloc_next = va + span
    else:
        va = start
        for lo, n in sorted(m.vmalloc_ranges):
            if va < lo + n + m.page_size and lo < va + span:
                va = lo + n + m.page_size
        if va + span > limit:
            m.warn("vmalloc", f"vmap allocation for size {size:#x} failed: use vmalloc=<size>")
            return None
    m.vmalloc_ranges.append((va, pages * m.page_size))
    step.line, step.va = f"{call} = {va:#x}", va
    pfns = []
    for _ in range(pages):
        pfn = yield from m.alloc_backing(0, "vmalloc", "__vmalloc_area_node")
        pfns.append(pfn)
    m.vmalloc_backing[va] = pfns
    yield from vmap_page_range(m, va, pfns, m.pgtables.fmt.kernel_prot("PAGE_KERNEL", ng=m.ng))
    return va


def use_vmalloc_area(m: Machine, va: int, cpu: int, fn: str = "vmalloc caller") -> Iterator[Step]:
    """The caller touches the area ``vmalloc()`` returned (say ``memset(p, 0, size)``).

    One ``access`` step from ``cpu``; if the page does not translate to the frame
    ``vmap_page_range()`` mapped there, the mapping was lost (its entries were written into
    a table page no longer reachable from ``swapper_pg_dir``): the kernel would oops with
    "Unable to handle kernel paging request", recorded as a ``lost-mapping`` event."""
    from mmkit.pgtable.tlb import access

    pa = yield from access(m, va, cpu, fn=fn)
    want = m.vmalloc_backing.get(va, [None])[0]
    if pa is None or (want is not None and pa >> m.desc.page_shift != want):
        got = (
            "the walk ends in a translation fault"
            if pa is None
            else f"it reaches pfn {pa >> m.desc.page_shift:#x}"
        )
        m.record_event(
            "lost-mapping",
            fn,
            f"Unable to handle kernel paging request at virtual address {va:#x}: {got}, "
            "not the page vmap_page_range() mapped there",
            va=va,
            thread=getattr(m, "current_thread", ""),
        )
    return pa

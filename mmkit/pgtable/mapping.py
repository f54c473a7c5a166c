"""Building kernel mappings: ``__create_pgd_mapping`` and ``vmemmap_populate``.

Models v5.4/v5.7 ``arch/arm64/mm/mmu.c``: ``alloc_init_pud`` → ``alloc_init_cont_pmd`` →
``init_pmd`` → ``alloc_init_cont_pte`` → ``init_pte``, generalised over the configuration's
levels (a folded level is its parent's entry, as the kernel folds it). Blocks go where Linux
puts them (PMD sections for every granule, 1 GiB PUD blocks with 4K), the contiguous hint on
aligned runs, both unless the flags forbid them (``NO_BLOCK_MAPPINGS`` / ``NO_CONT_MAPPINGS``,
which ``arch_add_memory()`` passes when ``rodata_full`` or debug_pagealloc is on).

Each step is yielded before it is performed (yield, then perform; see :mod:`mmkit.events`):
an entry is read when its ``read`` step is resumed, and what follows (allocate a table, or
follow the one found; BUG on a block) is decided from the value read then; a write takes
place when its step is resumed, its ``old`` filled with what it overwrote.

Simplification: a run of entries written in one table page is one coarse step (see
:class:`~mmkit.events.Step`); the kernel's per-entry ``pgattr_change_is_safe()`` BUG check is
made on the whole run, when the run's first entry is written.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import numpy as np

from mmkit.events import Step
from mmkit.pgtable.bulk import map_table_run

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "NO_BLOCK_MAPPINGS",
    "NO_CONT_MAPPINGS",
    "create_pgd_mapping",
    "vmemmap_populate",
]

NO_BLOCK_MAPPINGS = 1 << 0  #: ``NO_BLOCK_MAPPINGS`` (mmu.c)
NO_CONT_MAPPINGS = 1 << 1  #: ``NO_CONT_MAPPINGS`` (mmu.c)

_U64 = np.uint64
_FN_WRITE = {
    "pgd": "__create_pgd_mapping",
    "pud": "alloc_init_pud",
    "pmd": "init_pmd",
    "pte": "init_pte",
}
_FN_ALLOC = {
    "p4d": "alloc_init_p4d",  # 5-level paging (x86 la57); arm64 v5.4 folds the P4D
    "pud": "alloc_init_pud",
    "pmd": "alloc_init_cont_pmd",
    "pte": "alloc_init_cont_pte",
}


def _child_table(
    m: Machine, depth: int, table: int, idx: int, va_base: int, fn: str, boot: bool
) -> Generator[Step, None, int]:
    """Make sure entry ``idx`` of ``table`` points at a table; allocate one if it is none.

    Yields the steps and returns the child table's pfn.
    """
    pt = m.pgtables
    arr = pt.content[table]
    level = pt.levels[depth]
    child_level = pt.levels[depth + 1]
    step = Step(
        "read",
        fn,
        f"{level.name} = READ_ONCE(*{level.name}p)",
        level.name,
        va_base,
        table,
        idx,
    )
    yield step
    raw = step.old = int(arr[idx])
    if raw == 0:
        pfn = yield from m.alloc_table(depth + 1, va_base, fn, boot=boot)
        new = pt.table_desc(pfn)
        step = Step(
            "write",
            fn,
            f"__{level.name}_populate({level.name}p, "
            f"{child_level.name}_phys, {level.name.upper()}_TYPE_TABLE)",
            level.name,
            va_base,
            table,
            idx,
            new=new,
        )
        yield step
        step.old = int(arr[idx])
        arr[idx] = new
        return pfn
    if pt.is_sect(raw):
        m.bug(
            fn,
            f"BUG_ON({level.name}_sect({level.name})): va {va_base:#x} is already "
            "mapped by a block",
            va=va_base,
        )
    elif not pt.is_table(raw, False):
        m.bug(fn, f"BUG_ON({level.name}_bad({level.name})) at va {va_base:#x}", va=va_base)
    return pt.next_table(raw)


def _write_run(
    m: Machine,
    depth: int,
    table: int,
    idx: int,
    count: int,
    va: int,
    first: int,
    stride: int,
    fn: str,
    line: str,
) -> Iterator[Step]:
    """Write ``count`` linear entries ``first + i * stride`` from ``idx`` (one coarse step,
    or one step per entry when ``m.fine``). The first write checks the whole run: a live
    entry remapped elsewhere is a BUG, and nothing of the run is written."""
    pt = m.pgtables
    arr = pt.content[table]
    level = pt.levels[depth]
    new = np.arange(first, first + count * stride, stride, dtype=_U64)
    if m.fine:  # one step per entry, each write done when its step is resumed
        for i in range(count):
            step = Step(
                "write",
                fn,
                line,
                level.name,
                va + i * level.entry_size,
                table,
                idx + i,
                new=first + i * stride,
            )
            yield step
            if i == 0 and not _change_is_safe(m, arr[idx : idx + count], new, va, fn):
                return
            step.old = int(arr[idx + i])
            arr[idx + i] = new[i]
        return
    step = Step(
        "write",
        fn,
        line,
        level.name,
        va,
        table,
        idx,
        count=count,
        new=first,
        stride=stride,
        va_step=level.entry_size,
    )
    yield step
    old = arr[idx : idx + count]
    if not _change_is_safe(m, old, new, va, fn):
        return
    step.old = int(old[0])
    arr[idx : idx + count] = new


def _change_is_safe(m: Machine, old: np.ndarray, new: np.ndarray, va: int, fn: str) -> bool:
    """``pgattr_change_is_safe()`` over a run: once populated only permission changes are
    allowed; BUG (recorded) and False otherwise."""
    if np.count_nonzero(old) and not np.array_equal(old, new):
        m.bug(
            fn,
            f"BUG_ON(!pgattr_change_is_safe(old, new)) for va {va:#x}: remapping a "
            "live entry to another address",
            va=va,
        )
        return False
    return True


def _map_level(
    m: Machine,
    depth: int,
    table: int,
    addr: int,
    end: int,
    phys: int,
    prot: int,
    flags: int,
    boot: bool,
) -> Iterator[Step]:
    pt = m.pgtables
    level = pt.levels[depth]
    size = level.entry_size
    leaf = depth == len(pt.levels) - 1
    hwl = level.hw_level
    cont_size = (pt.geo.cont_pte_size if leaf else pt.geo.cont_pmd_size) if hwl >= 2 else 0
    block_ok = level.linux_block and not flags & NO_BLOCK_MAPPINGS
    while addr < end:
        idx = level.index(addr)
        # entries of this table covered by [addr, end)
        table_end = min(end, (addr | (pt.span(depth) - 1)) + 1) if depth else end
        if leaf or (block_ok and (addr | phys) % size == 0 and table_end - addr >= size):
            # a run of leaves: pages, or blocks while aligned and whole
            run_end = table_end if leaf else addr + ((table_end - addr) // size) * size
            yield from _leaf_runs(
                m, depth, table, addr, run_end, phys, prot, flags, cont_size, leaf
            )
            phys += run_end - addr
            addr = run_end
            continue
        if not m.fine and not boot and depth == len(pt.levels) - 2:
            done = yield from map_table_run(
                m, depth, table, addr, end, phys, prot, flags, _FN_ALLOC[pt.levels[-1].name]
            )
            if done:
                phys += done
                addr += done
                continue
        nxt = min((addr | (size - 1)) + 1, end)
        child = yield from _child_table(
            m,
            depth,
            table,
            idx,
            addr & ~(size - 1) & ((1 << 64) - 1),
            _FN_ALLOC[pt.levels[depth + 1].name],
            boot,
        )
        yield from _map_level(m, depth + 1, child, addr, nxt, phys, prot, flags, boot)
        phys += nxt - addr
        addr = nxt


def _leaf_runs(
    m: Machine,
    depth: int,
    table: int,
    addr: int,
    end: int,
    phys: int,
    prot: int,
    flags: int,
    cont_size: int,
    leaf: bool,
) -> Iterator[Step]:
    pt = m.pgtables
    level = pt.levels[depth]
    size = level.entry_size
    attrs = prot if leaf else pt.fmt.block_prot(prot)  # mk_pmd_sect_prot
    name = level.name
    fn = _FN_WRITE[name] if leaf else ("init_pmd" if name == "pmd" else "alloc_init_pud")
    line = (
        "set_pte(ptep, pfn_pte(__phys_to_pfn(phys), __prot))"
        if leaf
        else f"{'pmd' if name == 'pmd' else 'pud'}_set_huge(...p, phys, prot)"
    )
    use_cont = cont_size and not flags & NO_CONT_MAPPINGS
    # split into [head without CONT][cont-aligned middle][tail without CONT]
    cuts = [addr, end]
    if use_cont:
        lo = -(-addr // cont_size) * cont_size
        hi = end // cont_size * cont_size
        if lo < hi and (phys + (lo - addr)) % cont_size == 0:
            cuts = [addr, lo, hi, end]
    for i in range(len(cuts) - 1):
        a, b = cuts[i], cuts[i + 1]
        if a >= b:
            continue
        cont = pt.fmt.cont_bit if (len(cuts) == 4 and i == 1) else 0
        first = pt.pa_to_desc(phys + (a - addr)) | attrs | cont
        yield from _write_run(
            m, depth, table, level.index(a), (b - a) // size, a, first, size, fn, line
        )


def create_pgd_mapping(
    m: Machine,
    phys: int,
    virt: int,
    size: int,
    prot: int,
    flags: int = 0,
    *,
    boot: bool = False,
) -> Iterator[Step]:
    """``__create_pgd_mapping(swapper_pg_dir, phys, virt, size, prot, alloc, flags)``.

    Maps ``[virt, virt + size)`` to ``phys`` with ``prot`` (leaf attributes as for a page;
    blocks get ``mk_pmd_sect_prot``). ``boot=True`` allocates tables from memblock.
    """
    yield Step(  # performing it: the alignment check
        "call",
        "__create_pgd_mapping",
        f"__create_pgd_mapping(swapper_pg_dir, "
        f"{phys:#x}, {virt:#x}, {size:#x}, prot, flags={flags})",
        va=virt,
    )
    if (phys ^ virt) & (m.pgtables.page_size - 1):
        m.warn("__create_pgd_mapping", "WARN_ON((phys ^ virt) & ~PAGE_MASK)", va=virt)
        return
    yield from _map_level(m, 0, m.pgtables.pgd_pfn, virt, virt + size, phys, prot, flags, boot)


def vmemmap_populate(m: Machine, start: int, end: int, *, boot: bool = False) -> Iterator[Step]:
    """``vmemmap_populate(start, end, node, altmap)`` for the struct pages in [start, end).

    4K (``ARM64_SWAPPER_USES_SECTION_MAPS``): each empty PMD gets a 2 MiB block from
    ``vmemmap_alloc_block_buf(PMD_SIZE)``, mapped ``PROT_SECT_NORMAL``. 16K/64K:
    ``vmemmap_populate_basepages()`` maps one freshly allocated page per PTE (``PAGE_KERNEL``).
    Returns normally or raises :class:`~mmkit.errors.NoMemory` (the kernel's ``-ENOMEM``)
    with what it populated so far left in place, as the kernel leaves it.
    """
    pt = m.pgtables
    fn = "vmemmap_populate"
    yield Step("call", fn, f"vmemmap_populate({start:#x}, {end:#x}, node, NULL)", va=start)
    leaf_depth = len(pt.levels) - 1
    block = m.desc.vmemmap_population == "pmd_blocks"
    target = leaf_depth - 1 if block else leaf_depth  # depth whose entries map the memmap
    step = pt.levels[target].entry_size
    addr = start
    while addr < end:
        table = pt.pgd_pfn
        for depth in range(target):
            lvl = pt.levels[depth]
            table = yield from _child_table(
                m,
                depth,
                table,
                lvl.index(addr),
                addr & ~(lvl.entry_size - 1),
                f"vmemmap_{lvl.name}_populate",
                boot,
            )
        lvl = pt.levels[target]
        idx = lvl.index(addr)
        arr = pt.content[table]
        read = Step(
            "read",
            fn,
            f"{lvl.name}_none(READ_ONCE(*{lvl.name}p))",
            lvl.name,
            addr,
            table,
            idx,
        )
        yield read
        raw = read.old = int(arr[idx])
        if raw == 0:
            order = lvl.shift - pt.page_shift
            pfn = yield from m.alloc_backing(order, "vmemmap", fn, boot=boot)
            # PROT_SECT_DEFAULT includes PMD_MAYBE_NG, as PROT_DEFAULT has PTE_MAYBE_NG
            prot = pt.fmt.kernel_prot("PROT_SECT_NORMAL" if block else "PAGE_KERNEL", ng=m.ng)
            new = pt.pa_to_desc(pfn << pt.page_shift) | prot
            write = Step(
                "write",
                fn,
                "pmd_set_huge(pmdp, __pa(p), __pgprot(PROT_SECT_NORMAL))"
                if block
                else "set_pte_at(&init_mm, addr, pte, entry)",
                lvl.name,
                addr,
                table,
                idx,
                new=new,
            )
            yield write
            write.old = int(arr[idx])
            arr[idx] = new
        addr = (addr | (step - 1)) + 1

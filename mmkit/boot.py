"""Boot: what the kernel has built by the time user space could hot-add memory.

``boot(machine, vmalloc_areas)`` fills a fresh :class:`~mmkit.machine.Machine` the way v5.4
``paging_init()`` and friends leave the system: ``early_fixmap_init()`` (bm_pud / bm_pmd /
bm_pte and the FDT window), ``map_kernel()`` (the image segments with their permissions),
``map_mem()`` (the linear map, the kernel's own text and rodata split out read-only),
``sparse_init()`` (the memmap of boot memory through ``vmemmap_populate``) and a few
``vmalloc()`` areas; then memblock, the early sections, the memory block devices and their
node links as ``drivers/base`` registers them. Boot allocations come from memblock (top down,
reserved for good); later ones from the page allocator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mmkit.arch import pte as hw
from mmkit.events import KernelEvent, Step
from mmkit.pgtable.tables import PageTables
from mmkit.physmem import PhysMem

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["boot", "boot_hotplug_state", "machine_hooks_of", "memblock_alloc", "memstart_shift"]

_M64 = (1 << 64) - 1
_SZ_2M = 2 << 20
#: kernel image segments as v5.4 ``map_kernel()`` maps them: (name, size, final prot, flags
#: as NO_CONT_MAPPINGS or 0, still mapped after boot). Sizes: a ~24 MiB defconfig image.
#: rodata is mapped PAGE_KERNEL without contiguous hints, then made read-only by
#: ``mark_rodata_ro()``; the init segments are unmapped again by ``free_initmem()``.
_IMAGE = (
    ("text", 12 << 20, "PAGE_KERNEL_ROX", 0, True),
    ("rodata", 6 << 20, "PAGE_KERNEL_RO", 2, True),
    ("inittext", 1 << 20, "PAGE_KERNEL_ROX", 0, False),
    ("initdata", 1 << 20, "PAGE_KERNEL", 0, False),
    ("data", 4 << 20, "PAGE_KERNEL", 0, True),
)
_TEXT_OFFSET = 0x80000  # v5.4/v5.7 TEXT_OFFSET; removed in v5.8, so 0 for v6.1
_STEXT_OFFSET = 0x10000  # v6.1: _stext = _text + SEGMENT_ALIGN (64 KiB, after .head.text)
#: the device tree QEMU virt hands over: a 1 MiB blob (the real 6.1 captures map 1 MiB of it
#: on 16K and 64K pages)
_FDT_SIZE = 1 << 20


def machine_hooks_of(desc: Any) -> Any | None:
    """The descriptor's optional ``machine_hooks`` (``OPTIONAL_ARCH_PARTS`` in
    :mod:`mmkit.plugins._contracts`): None means arm64's boot and ``arch_add_memory``."""
    return getattr(desc, "machine_hooks", None)


def boot(m: Machine, vmalloc_areas: int) -> None:
    """Build what the kernel has after boot (see :mod:`mmkit.boot`); an architecture with
    its own ``machine_hooks`` builds its page tables itself, then the hotplug state below
    (memblock, sections, memory blocks) is the generic one."""
    hooks = machine_hooks_of(m.desc)
    if hooks is not None:
        hooks.boot(m, vmalloc_areas)
        m.boot_table_count = len(m.pgtables.info)
        boot_hotplug_state(m)
        return
    d, mac = m.desc, m.macros
    first, size0 = m._boot_ranges[0]
    kernel = d.kernel
    align = 1 << max(memstart_shift(m), mac["SECTION_SIZE_BITS"])  # MEMSTART_ALIGN
    m.memstart = first & ~(align - 1)
    page_offset = mac["PAGE_OFFSET"]
    fix52 = 0
    if d.va_bits == 52 and d.vabits_actual != 52 and kernel != "v5.3":
        fix52 = (-(1 << 48)) - (-(1 << 52))
        page_offset = (-(1 << 48)) & _M64
    m.physvirt_offset = (m.memstart - page_offset) & _M64
    m.vmemmap_base = (
        mac["VMEMMAP_START"] - ((m.memstart >> d.page_shift) << 6) + ((fix52 >> d.page_shift) << 6)
    ) & _M64
    image_pa = first + _SZ_2M + (0 if kernel == "v6.1" else _TEXT_OFFSET)
    image_size = sum(seg[1] for seg in _IMAGE)
    image_end = (image_pa + image_size + _SZ_2M) & ~(_SZ_2M - 1)
    # memblock allocations come from the top of the first bank; the page allocator
    # gets what lies between the kernel image and them
    m._memblock_top = first + size0
    pool_end = first + size0 - max(size0 // 4, 32 << 20)
    m.physmem = PhysMem(
        pool_start=image_end, pool_end=pool_end & ~(_SZ_2M - 1), page_shift=d.page_shift
    )
    m.physmem.reserve(first >> d.page_shift, (image_end - first) >> d.page_shift, "kernel image")
    m.pgtables = PageTables(d, m.physmem)
    # swapper_pg_dir and the bm_* fixmap tables live in the image's .bss
    bss = image_pa + image_size - (8 * d.page_size)
    m._static_tables = [(bss >> d.page_shift) + i for i in range(4)]
    m.pgtables.pgd_pfn = m._static_tables[0]
    m.pgtables.new_table(m.pgtables.pgd_pfn, 0, d.kernel_va_start(), boot=True)
    m.kimage_va = mac["KIMAGE_VADDR"] + (0 if kernel == "v6.1" else _TEXT_OFFSET)
    m.kimage_pa = image_pa
    #: _stext - _text: where map_kernel() starts (v6.1; v5.x maps from _text)
    m.stext_offset = _STEXT_OFFSET if kernel == "v6.1" else 0
    m.run(boot_steps(m, vmalloc_areas), record=False)
    m.boot_table_count = len(m.pgtables.info)
    boot_hotplug_state(m)


def boot_hotplug_state(m: Machine) -> None:
    """memblock, sections, memory blocks and sysfs as they are after boot (node 0)."""
    from mmkit.mm.memblock import Memblock
    from mmkit.mm.memory_block import MemoryBlock, MemSection, Sysfs
    from mmkit.mm.zones import boot_zone_of

    m.boot_memory_at_boot = list(m._boot_ranges)  # what zone_sizes_init() saw

    m.memblock = Memblock()
    m.sections: dict[int, MemSection] = {}
    m.blocks: dict[int, MemoryBlock] = {}
    m.sysfs = Sysfs()
    m.sysfs.register_node(0)
    m.nodes_online = {0}
    m.resources: list[tuple[int, int]] = []
    m.oops: KernelEvent | None = None
    bits = m.macros["SECTION_SIZE_BITS"]
    per = m.desc.memory_block_size >> bits
    for start, size in m._boot_ranges:
        m.memblock.add_node(start, size, 0)
        m.resources.append((start, start + size))
        for s in range(start >> bits, (start + size - 1 >> bits) + 1):
            m.sections[s] = MemSection(s, early=True, online=True, nid=0)
    shift = m.desc.page_shift
    pinned = [(first << shift, end << shift) for first, end, _ in m.physmem.reserved]
    pinned.append((m.physmem.pool_start_pfn << shift, m.physmem._end << shift))
    bsize = m.desc.memory_block_size
    for s in sorted(m.sections):
        b = s // per
        if b not in m.blocks:
            # a boot block holding memblock allocations or the page allocator's pool (page
            # tables, vmalloc backing) has unmovable pages: it can never be offlined
            lo, hi = b * bsize, (b + 1) * bsize
            unmovable = any(p0 < hi and lo < p1 for p0, p1 in pinned)
            m.blocks[b] = MemoryBlock(
                b,
                b * per,
                b * per + per - 1,
                "online",
                0,
                "online",
                unmovable=unmovable,
                zone=boot_zone_of(m, lo),
            )
            m.sysfs.register_memory(b)
            m.sysfs.create_link(("node", 0), ("memory", b))
            m.sysfs.create_link(("memory", b), ("node", 0))
    for first, end, _owner in m.physmem.reserved:
        m.memblock.reserve(first << m.desc.page_shift, (end - first) * m.page_size)


def memstart_shift(m: Machine) -> int:
    g = m.desc.geometry
    if g.page_shift == 12:
        return g.pud_shift
    return g.pmd_shift + 5 if g.page_shift == 14 else g.pmd_shift


def boot_steps(m: Machine, vmalloc_areas: int) -> Iterator[Step]:
    from mmkit.mm.vmalloc import vmalloc
    from mmkit.pgtable.mapping import (
        NO_BLOCK_MAPPINGS,
        NO_CONT_MAPPINGS,
        create_pgd_mapping,
        vmemmap_populate,
    )

    yield from early_fixmap_init(m)
    # map_kernel() maps from _text in v5.4/v5.7 and from _stext in v6.1, where .text is
    # aligned to SEGMENT_ALIGN (64 KiB) after .head.text (v6.1 vmlinux.lds.S, mmu.c)
    head = m.stext_offset
    va, pa = m.kimage_va + head, m.kimage_pa + head
    for i, (_name, size, prot, seg_flags, kept) in enumerate(_IMAGE):  # map_kernel()
        size -= head if i == 0 else 0  # _etext stays where it is
        if kept:
            yield from create_pgd_mapping(
                m, pa, va, size, m.pgtables.fmt.kernel_prot(prot, ng=m.ng), seg_flags, boot=True
            )
        va += size
        pa += size
    m.kimage_end = va
    # map_mem(): the kernel's text and rodata [_text, __init_begin) ([_stext, ...) in v6.1)
    # are NOMAP while the memory is mapped, then mapped on their own without contiguous
    # hints and made read-only by mark_linear_text_alias_ro()
    k_start = m.kimage_pa + head
    k_end = m.kimage_pa + _IMAGE[0][1] + _IMAGE[1][1]
    flags = NO_BLOCK_MAPPINGS | NO_CONT_MAPPINGS if m.rodata_full or m.debug_pagealloc else 0
    kernel_prot = linear_map_prot(m)
    for start, size in m._boot_ranges:
        end = start + size
        pieces = [(start, end)]
        if start <= k_start < end:
            pieces = [(start, k_start), (k_end, end)]
        for lo, hi in pieces:
            if lo < hi:
                yield from create_pgd_mapping(
                    m, lo, m.lm_va(lo), hi - lo, kernel_prot, flags, boot=True
                )
    yield from create_pgd_mapping(
        m,
        k_start,
        m.lm_va(k_start),
        k_end - k_start,
        m.pgtables.fmt.kernel_prot("PAGE_KERNEL_RO", ng=m.ng),
        NO_CONT_MAPPINGS,
        boot=True,
    )
    sec = 1 << m.macros["SECTION_SIZE_BITS"]
    for start, size in m._boot_ranges:  # sparse_init(): memmap of early sections
        lo = start & ~(sec - 1)
        hi = (start + size + sec - 1) & ~(sec - 1)
        yield from vmemmap_populate(
            m,
            m.vmemmap_va(lo >> m.desc.page_shift),
            m.vmemmap_va(hi >> m.desc.page_shift),
            boot=True,
        )
    # vmalloc hands out the first free area: above the image when the image sits at the
    # bottom of the vmalloc area (v5.4 without KASLR), else from VMALLOC_START
    m._vmalloc_next = (m.kimage_end + 2 * m.page_size + _SZ_2M - 1) & ~(_SZ_2M - 1)
    if m.kimage_va - m.macros["VMALLOC_START"] > _SZ_2M:
        m._vmalloc_next = m.macros["VMALLOC_START"]
    for i in range(vmalloc_areas):  # vmap stacks and friends, from the page allocator
        yield from vmalloc(m, (4 + 4 * i) * m.page_size)
    if m.desc.kpti:
        yield from map_entry_trampoline(m)


def map_entry_trampoline(m: Machine) -> Iterator[Step]:
    """``map_entry_trampoline()`` (core_initcall, v5.4 and v6.1 ``mmu.c``): with
    ``CONFIG_UNMAP_KERNEL_AT_EL0`` built, the entry trampoline's text is mapped into its
    fixmap slots whether or not KPTI is in use at run time, ``PAGE_KERNEL_ROX`` made global
    (``~PTE_NG``), and its data page ``PAGE_KERNEL_RO``. v5.4/v5.7: one text page at
    ``FIX_ENTRY_TRAMP_TEXT`` and, with ``RANDOMIZE_BASE`` (mmkit's ``relocatable``), the data
    at ``FIX_ENTRY_TRAMP_DATA``; v6.1: ``DIV_ROUND_UP(entry_tramp_text_size(), PAGE_SIZE)``
    text pages from ``FIX_ENTRY_TRAMP_TEXT1`` down (a 12 KiB trampoline: 3 pages on 4K, one
    on 16K/64K), then the data page with ``RELOCATABLE``. The text lies at the end of the
    image's text segment, the data page at the start of rodata."""
    from mmkit.pgtable.mapping import create_pgd_mapping

    d, page = m.desc, m.page_size
    slot0 = _fixmap_slot_base(m)  # index of the first trampoline slot
    text_pa = m.kimage_pa + _IMAGE[0][1] - max(page, 12 << 10) // page * page
    data_pa = m.kimage_pa + _IMAGE[0][1]
    rox = hw.kernel_prot("PAGE_KERNEL_ROX") & ~hw.PTE_NG  # global, KPTI or not
    ro = m.pgtables.fmt.kernel_prot("PAGE_KERNEL_RO", ng=m.ng)
    if d.kernel == "v6.1":
        n = -(-(12 << 10) // page)
        text1 = slot0 + (1 if d.relocatable else 0) + 2  # FIX_ENTRY_TRAMP_TEXT1
        pages = [(text1 - i, text_pa + i * page, rox) for i in range(n)]
        if d.relocatable:
            pages.append((text1 - n, text_pa + n * page, ro))
    else:
        pages = [(slot0 + 1, text_pa, rox)]  # FIX_ENTRY_TRAMP_TEXT
        if d.relocatable:
            pages.append((slot0, data_pa, ro))  # FIX_ENTRY_TRAMP_DATA
    for idx, pa, prot in pages:  # __set_fixmap(idx, pa, prot)
        va = m.macros["FIXADDR_TOP"] - idx * page  # __fix_to_virt(idx)
        yield from create_pgd_mapping(m, pa, va, page, prot, NO_PAGE_FLAGS, boot=True)


#: create_pgd_mapping() flags for a single page: no block, no contiguous hint
NO_PAGE_FLAGS = 3


def _fixmap_slot_base(m: Machine) -> int:
    """The first fixmap index after FIX_HOLE, the FDT window, EARLYCON, TEXT_POKE0 and the
    GHES slots (``enum fixed_addresses``, v5.4 and v6.1 ``asm/fixmap.h``)."""
    fix_fdt = 1 + (4 << 20) // m.page_size - 1  # FIX_FDT_END + FIX_FDT_SIZE / PAGE_SIZE - 1
    idx = fix_fdt + 3  # FIX_EARLYCON_MEM_BASE, FIX_TEXT_POKE0, then the next one
    if m.desc.ghes:
        idx += 2 + (2 if m.desc.sdei else 0)
    return idx


def linear_map_prot(m: Machine) -> int:
    """The linear map's protection: ``PAGE_KERNEL``, or in v6.1 ``pgprot_tagged(PAGE_KERNEL)``
    (``map_mem()`` for the memory banks, ``pgprot_mhp()`` for ``add_memory_resource()``),
    which ptdump prints as ``MEM/NORMAL-TAGGED``."""
    prot = m.pgtables.fmt.kernel_prot("PAGE_KERNEL", ng=m.ng)
    return hw.pgprot_tagged(prot) if m.desc.kernel == "v6.1" else prot


def early_fixmap_init(m: Machine) -> Iterator[Step]:
    """``early_fixmap_init()``: hook bm_pud / bm_pmd / bm_pte for FIXADDR_START, then
    map the FDT window read-only (``fixmap_remap_fdt``)."""
    pt = m.pgtables
    addr = m.macros["FIXADDR_START"]
    table = pt.pgd_pfn
    statics = iter(m._static_tables[1:])
    for depth in range(len(pt.levels) - 1):
        lvl = pt.levels[depth]
        idx = lvl.index(addr)
        if not pt.content[table][idx]:  # boot runs alone: no read step needed
            pfn = next(statics)
            new = pt.table_desc(pfn)
            step = Step(
                "write",
                "early_fixmap_init",
                f"__{lvl.name}_populate({lvl.name}p, "
                f"__pa_symbol(bm_{pt.levels[depth + 1].name}), TABLE)",
                lvl.name,
                addr,
                table,
                idx,
                new=new,
            )
            yield step
            pt.new_table(pfn, depth + 1, addr & ~(lvl.entry_size - 1), boot=True, for_va=addr)
            step.old = int(pt.content[table][idx])
            pt.content[table][idx] = new
        table = pt.next_table(int(pt.content[table][idx]))
    # fixmap_remap_fdt() (v5.4, v5.7, v6.1 alike): dt_virt_base = __fix_to_virt(FIX_FDT),
    # FIX_FDT_SIZE (MAX_FDT_SIZE + 2 MiB) below FIXADDR_TOP; create_mapping_noalloc() maps
    # round_down(dt_phys, SWAPPER_BLOCK_SIZE) for SWAPPER_BLOCK_SIZE, and up to
    # round_up(offset + size, SWAPPER_BLOCK_SIZE) if the blob crosses it: one 2 MiB block
    # with 4K pages (ARM64_SWAPPER_USES_SECTION_MAPS), pages otherwise (no NO_BLOCK flag)
    from mmkit.pgtable.mapping import NO_CONT_MAPPINGS, create_pgd_mapping

    dt_virt_base = m.macros["FIXADDR_TOP"] - (4 << 20)
    step = Step(
        "alloc",
        "setup_machine_fdt",
        "memblock_reserve(dt_phys, size)",
        size=_FDT_SIZE,
        note="fdt",
    )
    yield step
    fdt_pa = memblock_alloc(m, _FDT_SIZE, "fdt")
    step.pfn = fdt_pa >> m.desc.page_shift
    block = _SZ_2M if m.desc.page_shift == 12 else m.page_size  # SWAPPER_BLOCK_SIZE
    offset = fdt_pa % block
    size = max(block, -(-(offset + _FDT_SIZE) // block) * block)
    yield from create_pgd_mapping(
        m,
        fdt_pa - offset,
        dt_virt_base,
        size,
        m.pgtables.fmt.kernel_prot("PAGE_KERNEL_RO", ng=m.ng),
        NO_CONT_MAPPINGS,
        boot=True,
    )


def memblock_alloc(m: Machine, size: int, owner: str) -> int:
    """memblock_phys_alloc(): top-down from the first bank, reserved for good."""
    align = max(size, m.page_size) if size <= _SZ_2M else _SZ_2M
    top = (m._memblock_top - size) & ~(align - 1)
    m._memblock_top = top
    m.physmem.reserve(top >> m.desc.page_shift, max(1, size >> m.desc.page_shift), owner)
    return top


# ------------------------------------------------------------ primitives

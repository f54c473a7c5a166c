"""x86_64 boot and hot-add for mmkit's :class:`~mmkit.machine.Machine` (machine hooks).

What a v5.4 x86_64 kernel has built when user space could hot-add memory, in the engine's
primitives (``create_pgd_mapping`` walks and fills tables level by level, as
``phys_p4d_init()``/``phys_pud_init()``/``phys_pmd_init()`` do, and puts a leaf at the
highest level the alignment allows):

* ``init_top_pgt`` is static, in the image (``head_64.S``); the kernel text mapping maps
  ``__START_KERNEL_map + x`` to ``phys_base + x`` with 2 MiB pages. The image sits
  ``CONFIG_PHYSICAL_START`` (16 MiB) into the first bank, ``phys_base`` being the bank's
  start; ``cleanup_highmap()`` leaves only ``[_text, _brk_end)`` mapped and
  ``mark_rodata_ro()`` gives text, rodata and data their final protections (``ro x``,
  ``ro NX``, ``RW NX``: no W+X mapping for the boot-time check to report). The kernel
  text's page-table pages (``level2_kernel_pgt``...) are modelled as boot allocations;
* the direct map: ``init_mem_mapping()`` -> ``kernel_physical_mapping_init()`` maps every
  boot range at ``__va(pa) = pa + PAGE_OFFSET`` with 1 GiB pages where the range is
  aligned (``X86_FEATURE_GBPAGES``), 2 MiB pages otherwise (``PAGE_KERNEL_LARGE``), 4K pages
  only at unaligned edges;
* ``sparse_init()`` -> ``vmemmap_populate()``: with ``X86_FEATURE_PSE`` the memmap of each
  section is mapped with 2 MiB pages (``vmemmap_populate_hugepages()``, ``PAGE_KERNEL_LARGE``)
  at ``vmemmap_base + pfn * 64``;
* a few ``vmalloc()`` areas (vmap stacks and friends) from ``VMALLOC_START``.

``arch_add_memory()`` (v5.4 ``arch/x86/mm/init_64.c``) is ``init_memory_mapping(start,
start + size)`` (which calls ``kernel_physical_mapping_init()``) then ``add_pages()`` ->
``__add_pages()``, ``vmemmap_populate()`` per section; when a section's memmap cannot be
allocated, that section's memmap is freed again (``section_activate()``) and the error
returned, the direct map left in place (x86 does not unwind it). Not modelled: the fixmap,
cpu_entry_area, espfix and EFI page tables (none lies in a range hotplug touches).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit.errors import InvalidArgument, NoMemory
from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine
    from mmkit.mm.ptdump_records import PtdumpRecord

__all__ = ["X86MachineHooks"]

_M64 = (1 << 64) - 1
_SZ_2M = 2 << 20
#: ``CONFIG_PHYSICAL_START`` (x86 default, 16 MiB): where the image is loaded
_PHYSICAL_START = 0x1000000
#: a ~24 MiB defconfig image from _text to _brk_end, 2 MiB-aligned segments with their
#: final protections: text read-only executable, rodata read-only, data and bss writable
_IMAGE = ((12 << 20, "PAGE_KERNEL_RX"), (6 << 20, "PAGE_KERNEL_RO"), (6 << 20, "PAGE_KERNEL"))
_IMAGE_SIZE = sum(size for size, _ in _IMAGE)


class X86MachineHooks:
    """The x86_64 boot and ``arch_add_memory()`` (module docstring)."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def boot(self, m: Machine, vmalloc_areas: int) -> None:
        """Set the bases, the allocators and the static tables, then run the boot steps."""
        from mmkit.pgtable.tables import PageTables
        from mmkit.physmem import PhysMem

        d, mac = m.desc, m.macros
        first, size0 = m._boot_ranges[0]
        if size0 < _PHYSICAL_START + _IMAGE_SIZE + (32 << 20):
            raise InvalidArgument(
                f"{d.name}: the first boot memory range must hold at least "
                f"{(_PHYSICAL_START + _IMAGE_SIZE + (32 << 20)) >> 20} MiB (the image loads "
                "16 MiB into it, CONFIG_PHYSICAL_START)"
            )
        m.memstart = 0  # __va(pa) = pa + PAGE_OFFSET: no memstart_addr on x86
        m.physvirt_offset = -mac["PAGE_OFFSET"] & _M64
        m.vmemmap_base = mac["VMEMMAP_START"]  # pfn_to_page(pfn) = vmemmap_base + pfn
        phys_base = first
        image_pa = phys_base + _PHYSICAL_START
        image_end = (image_pa + _IMAGE_SIZE + _SZ_2M - 1) & ~(_SZ_2M - 1)
        m._memblock_top = first + size0
        pool_end = (first + size0 - max(size0 // 4, 32 << 20)) & ~(_SZ_2M - 1)
        m.physmem = PhysMem(pool_start=image_end, pool_end=pool_end, page_shift=d.page_shift)
        m.physmem.reserve(
            phys_base >> d.page_shift, (image_end - phys_base) >> d.page_shift, "kernel image"
        )
        m.pgtables = PageTables(d, m.physmem)
        # init_top_pgt: a page of the image's .data
        m._static_tables = [(image_end - d.page_size) >> d.page_shift]
        m.pgtables.pgd_pfn = m._static_tables[0]
        m.pgtables.new_table(m.pgtables.pgd_pfn, 0, d.kernel_va_start(), boot=True)
        m.kimage_va = mac["__START_KERNEL_map"] + _PHYSICAL_START
        m.kimage_pa = image_pa
        m.kimage_end = m.kimage_va + _IMAGE_SIZE
        m.stext_offset = 0
        m.run(self._boot_steps(m, vmalloc_areas), record=False)

    def _boot_steps(self, m: Machine, vmalloc_areas: int) -> Iterator[Step]:
        from mmkit.mm.vmalloc import vmalloc
        from mmkit.pgtable.mapping import create_pgd_mapping, vmemmap_populate

        fmt, mac = m.pgtables.fmt, m.macros
        va, pa = m.kimage_va, m.kimage_pa
        for size, prot in _IMAGE:  # the kernel text mapping, as mark_rodata_ro() leaves it
            yield from create_pgd_mapping(m, pa, va, size, fmt.kernel_prot(prot), boot=True)
            va, pa = va + size, pa + size
        for start, size in m._boot_ranges:  # init_mem_mapping()
            yield from kernel_physical_mapping_init(m, start, start + size, boot=True)
        sec = 1 << mac["SECTION_SIZE_BITS"]
        for start, size in m._boot_ranges:  # sparse_init()
            lo, hi = start & ~(sec - 1), (start + size + sec - 1) & ~(sec - 1)
            yield from vmemmap_populate(
                m,
                m.vmemmap_va(lo >> m.desc.page_shift),
                m.vmemmap_va(hi >> m.desc.page_shift),
                boot=True,
            )
        m._vmalloc_next = mac["VMALLOC_START"]
        for i in range(vmalloc_areas):
            yield from vmalloc(m, (4 + 4 * i) * m.page_size)

    def ptdump_walk(
        self, m: Machine, *, start: int | None = None, end: int | None = None
    ) -> Iterator[PtdumpRecord]:
        """x86's dump as records (:func:`mmkit_x86_64.ptdump.ptdump_walk`)."""
        from mmkit_x86_64.ptdump import ptdump_walk

        return ptdump_walk(m, start=start, end=end)

    def ptdump(self, m: Machine) -> str:
        """x86's debugfs text (:func:`mmkit_x86_64.ptdump.ptdump`)."""
        from mmkit_x86_64.ptdump import ptdump

        return ptdump(m)

    def arch_add_memory(self, m: Machine, start: int, size: int) -> Iterator[Step]:
        """v5.4 x86 ``arch_add_memory()``: ``init_memory_mapping()``, then ``add_pages()``
        (``vmemmap_populate()`` per section). The caller records the range when done."""
        from mmkit.pgtable.mapping import vmemmap_populate

        fn = "arch_add_memory"
        yield Step("call", fn, f"arch_add_memory(nid, {start:#x}, {size:#x}, restrictions)")
        yield from kernel_physical_mapping_init(m, start, start + size)
        sec = 1 << m.macros["SECTION_SIZE_BITS"]
        shift = m.desc.page_shift
        yield Step("call", "add_pages", f"add_pages(nid, {start >> shift:#x}, ...)")
        for s in range(start, start + size, sec):  # __add_pages -> sparse_add_section
            lo, hi = m.vmemmap_va(s >> shift), m.vmemmap_va((s + sec) >> shift)
            try:
                yield from vmemmap_populate(m, lo, hi)
            except NoMemory:
                # section_activate(): the failed section's memmap goes again (vmemmap_free,
                # x86's remove_pagetable); earlier sections and the direct map stay, as
                # v5.4 x86 arch_add_memory() does not unwind init_memory_mapping()
                from mmkit_x86_64.teardown import remove_pagetable

                yield Step("call", "vmemmap_free", f"vmemmap_free({lo:#x}, {hi:#x}, NULL)", va=lo)
                yield from remove_pagetable(m, lo, hi, direct=False)
                raise
        yield Step("call", fn, "return 0", va=m.lm_va(start))


def kernel_physical_mapping_init(
    m: Machine, start: int, end: int, *, boot: bool = False
) -> Iterator[Step]:
    """``kernel_physical_mapping_init(paddr_start, paddr_end, page_size_mask)`` (v5.4
    ``init_64.c``): ``[__va(start), __va(end))`` mapped ``PAGE_KERNEL``, 1 GiB and 2 MiB
    leaves where aligned (``phys_pud_init()`` / ``phys_pmd_init()`` with
    ``PG_LEVEL_1G``/``PG_LEVEL_2M`` in ``page_size_mask``)."""
    from mmkit.pgtable.mapping import create_pgd_mapping

    yield Step(
        "call",
        "kernel_physical_mapping_init",
        f"kernel_physical_mapping_init({start:#x}, {end:#x}, page_size_mask)",
        va=m.lm_va(start),
    )
    prot = m.pgtables.fmt.kernel_prot("PAGE_KERNEL", ng=m.ng)
    yield from create_pgd_mapping(m, start, m.lm_va(start), end - start, prot, boot=boot)

"""x86_64 geometry and kernel VA layout (v5.4), derived from the kernel's own formulas.

Sources (Linux v5.4):

* ``arch/x86/include/asm/pgtable_64_types.h``: ``PGDIR_SHIFT`` (39, or ``pgdir_shift`` = 48
  with 5-level paging), ``P4D_SHIFT`` 39, ``PUD_SHIFT`` 30, ``PMD_SHIFT`` 21, 512 entries per
  table, ``PTRS_PER_P4D`` (``ptrs_per_p4d``: 1 with 4 levels, 512 with 5), the guard hole
  (``GUARD_HOLE_PGD_ENTRY`` -256), the LDT remap (``LDT_PGD_ENTRY`` -240),
  ``__VMALLOC_BASE_L4/L5`` with ``VMALLOC_SIZE_TB_L4/L5`` (``VMALLOC_END`` is *inclusive*:
  ``VMALLOC_START + (VMALLOC_SIZE_TB << 40) - 1``), ``__VMEMMAP_BASE_L4/L5``,
  ``CPU_ENTRY_AREA_BASE`` (-4 << P4D_SHIFT), ``ESPFIX_BASE_ADDR`` (-2 << P4D_SHIFT),
  ``EFI_VA_START``/``EFI_VA_END`` and ``MODULES_VADDR``/``MODULES_END``;
* ``arch/x86/include/asm/page_64_types.h``: ``__PAGE_OFFSET_BASE_L4/L5``,
  ``__START_KERNEL_map``, ``__PHYSICAL_MASK_SHIFT`` 52, ``__VIRTUAL_MASK_SHIFT`` (47 or 56)
  and ``KERNEL_IMAGE_SIZE`` (512 MiB without ``CONFIG_RANDOMIZE_BASE``: KASLR is off here, so
  every base is the fixed one ``Documentation/x86/x86_64/mm.rst`` tables);
* ``arch/x86/include/asm/sparsemem.h``: ``SECTION_SIZE_BITS`` 27, ``MAX_PHYSMEM_BITS``
  (46, or 52 with 5 levels);
* ``arch/x86/include/asm/fixmap.h``: ``FIXADDR_TOP`` = ``round_up(VSYSCALL_ADDR + PAGE_SIZE,
  PMD_SIZE) - PAGE_SIZE`` and ``FIXADDR_SIZE`` = ``__end_of_permanent_fixed_addresses <<
  PAGE_SHIFT``, the enum counted for an x86_64 defconfig (see :func:`fixmap_slots`);
* ``arch/x86/include/asm/kasan.h``: ``KASAN_SHADOW_START/END`` from
  ``CONFIG_KASAN_SHADOW_OFFSET`` (0xdffffc0000000000) and ``__VIRTUAL_MASK_SHIFT``.

Two sizes mm.rst draws as windows are given here by the formula the kernel uses to fill them
(``arch/x86/mm/kaslr.c``, ``kernel_randomize_memory()``): the direct map holds
``1 << MAX_PHYSMEM_BITS`` bytes (64 TB with 4 levels, as mm.rst; 4 PB with 5 levels, where
mm.rst draws a 32 PB window) and the vmemmap one 64-byte ``struct page`` per page of it (1 TB
with 4 levels, as mm.rst; 64 TB with 5 levels, in a 0.5 PB window). The rest of each window is
an unused hole. ``VMEMMAP_END``, ``VMEMMAP_SIZE`` and ``PAGE_END`` are mmkit's names for
those ends, and ``VA_BITS`` (``__VIRTUAL_MASK_SHIFT + 1``) the name mmkit's tables read
(:attr:`~mmkit_x86_64.X86Descriptor.derived_macros`); v5.4 x86 defines none of them.

>>> m = layout_macros(levels=4)
>>> hex(m["PAGE_OFFSET"]), hex(m["VMALLOC_END"]), hex(m["FIXADDR_START"])
('0xffff888000000000', '0xffffe8ffffffffff', '0xffffffffff57b000')
>>> m5 = layout_macros(levels=5)
>>> m5["PGDIR_SHIFT"], m5["PTRS_PER_P4D"], hex(m5["VMEMMAP_START"])
(48, 512, '0xffd4000000000000')
"""

from __future__ import annotations

from mmkit.arch.base import Level, Region

__all__ = ["STRUCT_PAGE_SHIFT", "fixmap_slots", "layout_levels", "layout_macros", "layout_regions"]

_M64 = (1 << 64) - 1
_TB = 1 << 40
PAGE_SHIFT = 12
#: log2(sizeof(struct page)): 64 bytes, as kaslr.c's vmemmap sizing assumes
STRUCT_PAGE_SHIFT = 6
#: ``MAX_IO_APICS`` on x86_64 (``arch/x86/include/asm/apicdef.h``)
_MAX_IO_APICS = 128
_KASAN_SHADOW_OFFSET = 0xDFFFFC0000000000  # arch/x86/Kconfig, KASAN_SHADOW_OFFSET default
_KASAN_SHADOW_SCALE_SHIFT = 3


def _neg(n: int) -> int:
    """``-n`` as an unsigned 64-bit value, the way ``-4UL << P4D_SHIFT`` wraps in C."""
    return -n & _M64


def fixmap_slots(*, ghes: bool = False) -> int:
    """``__end_of_permanent_fixed_addresses`` (v5.4 ``fixmap.h``) for an x86_64 defconfig.

    The enum starts at ``VSYSCALL_PAGE = (FIXADDR_TOP - VSYSCALL_ADDR) >> PAGE_SHIFT`` (511
    with 4K pages), then ``FIX_DBGP_BASE``, ``FIX_EARLYCON_MEM_BASE``, ``FIX_APIC_BASE``
    (``CONFIG_X86_LOCAL_APIC``), ``MAX_IO_APICS`` slots from ``FIX_IO_APIC_BASE_0``
    (``CONFIG_X86_IO_APIC``), ``FIX_PARAVIRT_BOOTMAP`` (``CONFIG_PARAVIRT``) and, with
    ``CONFIG_ACPI_APEI_GHES``, ``FIX_APEI_GHES_IRQ`` and ``FIX_APEI_GHES_NMI``.

    >>> fixmap_slots(), fixmap_slots(ghes=True)
    (644, 646)
    """
    vsyscall_addr = _neg(10 << 20)
    pmd_size = 1 << 21
    fixaddr_top = -(-(vsyscall_addr + (1 << PAGE_SHIFT)) // pmd_size) * pmd_size - (1 << PAGE_SHIFT)
    vsyscall_page = (fixaddr_top - vsyscall_addr) >> PAGE_SHIFT
    n = vsyscall_page + 1  # the enum value after VSYSCALL_PAGE
    n += 3  # FIX_DBGP_BASE, FIX_EARLYCON_MEM_BASE, FIX_APIC_BASE
    n += _MAX_IO_APICS  # FIX_IO_APIC_BASE_0 .. FIX_IO_APIC_BASE_END
    n += 1  # FIX_PARAVIRT_BOOTMAP
    n += 2 if ghes else 0  # FIX_APEI_GHES_IRQ, FIX_APEI_GHES_NMI
    return n  # __end_of_permanent_fixed_addresses


def layout_levels(levels: int) -> tuple[Level, ...]:
    """The five Linux levels (``pgd``, ``p4d``, ``pud``, ``pmd``, ``pte``), top first.

    With 4 levels the P4D is folded into the PGD (``PTRS_PER_P4D`` 1, ``p4d_offset()``
    returns the PGD entry: ``include/asm-generic/5level-fixup.h`` is not used on x86, which
    folds at run time through ``ptrs_per_p4d``). ``hw_level`` counts table levels from the
    top (0 = the page CR3 points to). 2 MiB (PMD) and 1 GiB (PUD) leaves exist in hardware
    (the PS bit) and Linux uses both for the direct map (``phys_pmd_init()``,
    ``phys_pud_init()`` with ``X86_FEATURE_GBPAGES``).
    """
    if levels not in (4, 5):
        raise ValueError(f"x86_64 has 4- or 5-level paging, not {levels}")
    pgdir_shift = 48 if levels == 5 else 39
    out = [Level("pgd", 0, pgdir_shift, 512, False, False, False)]
    if levels == 5:
        out.append(Level("p4d", 1, 39, 512, False, False, False))
    else:
        out.append(Level("p4d", 0, 39, 1, True, False, False))
    top = levels - 4  # hw level of the PUD table
    out.append(Level("pud", top + 1, 30, 512, False, True, True))
    out.append(Level("pmd", top + 2, 21, 512, False, True, True))
    out.append(Level("pte", top + 3, PAGE_SHIFT, 512, False, False, False))
    return tuple(out)


def layout_macros(*, levels: int, kasan: bool = False, ghes: bool = False) -> dict[str, int]:
    """The v5.4 x86_64 macros with KASLR off (module docstring lists the sources)."""
    l5 = levels == 5
    pgdir_shift = 48 if l5 else 39
    p4d_shift = 39
    page_size = 1 << PAGE_SHIFT
    virtual_mask_shift = 56 if l5 else 47
    max_physmem_bits = 52 if l5 else 46
    section_size_bits = 27
    m: dict[str, int] = {
        "PAGE_SHIFT": PAGE_SHIFT,
        "PAGE_SIZE": page_size,
        "PGTABLE_LEVELS": levels,  # CONFIG_PGTABLE_LEVELS
        "VA_BITS": virtual_mask_shift + 1,  # mmkit's name (DERIVED_MACROS)
        "PGDIR_SHIFT": pgdir_shift,
        "PGDIR_SIZE": 1 << pgdir_shift,
        "PTRS_PER_PGD": 512,
        "P4D_SHIFT": p4d_shift,
        "P4D_SIZE": 1 << p4d_shift,
        "PTRS_PER_P4D": 512 if l5 else 1,
        "PUD_SHIFT": 30,
        "PUD_SIZE": 1 << 30,
        "PTRS_PER_PUD": 512,
        "PMD_SHIFT": 21,
        "PMD_SIZE": 1 << 21,
        "PTRS_PER_PMD": 512,
        "PTRS_PER_PTE": 512,
        "__VIRTUAL_MASK_SHIFT": virtual_mask_shift,
        "__PHYSICAL_MASK_SHIFT": 52,
        "MAX_PHYSMEM_BITS": max_physmem_bits,
        "MAXMEM": 1 << max_physmem_bits,
        "SECTION_SIZE_BITS": section_size_bits,
        "PAGES_PER_SECTION": 1 << (section_size_bits - PAGE_SHIFT),
        "MIN_MEMORY_BLOCK_SIZE": 1 << section_size_bits,
        "STRUCT_PAGE_MAX_SHIFT": STRUCT_PAGE_SHIFT,
        "TASK_SIZE_MAX": (1 << virtual_mask_shift) - page_size,
        # a variable of v5.4 arch/x86/mm/tlb.c (debugfs-tunable): past this many pages
        # flush_tlb_kernel_range() flushes the whole TLB
        "tlb_single_page_flush_ceiling": 33,
    }
    guard = _neg(256) << pgdir_shift & _M64
    m["GUARD_HOLE_BASE_ADDR"] = guard
    m["GUARD_HOLE_SIZE"] = 16 << pgdir_shift
    m["GUARD_HOLE_END_ADDR"] = guard + (16 << pgdir_shift)
    m["LDT_BASE_ADDR"] = _neg(240) << pgdir_shift & _M64
    m["LDT_END_ADDR"] = m["LDT_BASE_ADDR"] + (1 << pgdir_shift)
    m["PAGE_OFFSET"] = 0xFF11000000000000 if l5 else 0xFFFF888000000000
    m["VMALLOC_SIZE_TB"] = 12800 if l5 else 32
    m["VMALLOC_START"] = 0xFFA0000000000000 if l5 else 0xFFFFC90000000000
    m["VMALLOC_END"] = m["VMALLOC_START"] + (m["VMALLOC_SIZE_TB"] << 40) - 1
    m["VMEMMAP_START"] = 0xFFD4000000000000 if l5 else 0xFFFFEA0000000000
    if kasan:
        start = _KASAN_SHADOW_OFFSET + ((_neg(1) << virtual_mask_shift & _M64) >> 3)
        m["KASAN_SHADOW_OFFSET"] = _KASAN_SHADOW_OFFSET
        m["KASAN_SHADOW_START"] = start
        m["KASAN_SHADOW_END"] = start + (1 << (virtual_mask_shift - _KASAN_SHADOW_SCALE_SHIFT))
    m["CPU_ENTRY_AREA_BASE"] = _neg(4) << p4d_shift & _M64
    m["ESPFIX_BASE_ADDR"] = _neg(2) << p4d_shift & _M64
    m["EFI_VA_START"] = _neg(4 << 30)
    m["EFI_VA_END"] = _neg(68 << 30)
    m["__START_KERNEL_map"] = 0xFFFFFFFF80000000
    m["KERNEL_IMAGE_SIZE"] = 512 << 20
    m["MODULES_VADDR"] = m["__START_KERNEL_map"] + m["KERNEL_IMAGE_SIZE"]
    m["MODULES_END"] = 0xFFFFFFFFFF000000
    m["MODULES_LEN"] = m["MODULES_END"] - m["MODULES_VADDR"]
    m["VSYSCALL_ADDR"] = _neg(10 << 20)
    pmd = 1 << 21
    m["FIXADDR_TOP"] = -(-(m["VSYSCALL_ADDR"] + page_size) // pmd) * pmd - page_size
    m["FIXADDR_SIZE"] = fixmap_slots(ghes=ghes) << PAGE_SHIFT
    m["FIXADDR_START"] = m["FIXADDR_TOP"] - m["FIXADDR_SIZE"]
    # mmkit's names for the ends kaslr.c sizes (module docstring); not v5.4 x86 macros
    m["PAGE_END"] = m["PAGE_OFFSET"] + m["MAXMEM"]
    m["VMEMMAP_SIZE"] = (m["MAXMEM"] >> PAGE_SHIFT) << STRUCT_PAGE_SHIFT
    m["VMEMMAP_END"] = m["VMEMMAP_START"] + m["VMEMMAP_SIZE"]
    return m


#: macros() keys mmkit computes that v5.4 x86 does not define itself
DERIVED_MACROS = frozenset({"PAGE_END", "VMEMMAP_SIZE", "VMEMMAP_END", "VA_BITS"})


def layout_regions(m: dict[str, int]) -> tuple[Region, ...]:
    """The VA layout as mm.rst tables it, in address order, holes named as it names them.

    Every address comes from ``m`` (:func:`layout_macros`); a hole between two regions is a
    ``gap`` region so the list covers ``[0, 2**64)``.
    """
    vshift = m["__VIRTUAL_MASK_SHIFT"]
    canonical_top = 1 << vshift
    named: list[tuple[str, str, int, int]] = [
        ("user-space virtual memory", "user", 0, canonical_top),
        ("non-canonical hole", "gap", canonical_top, _neg(canonical_top)),
        (
            "guard hole, also reserved for hypervisor",
            "guard",
            m["GUARD_HOLE_BASE_ADDR"],
            m["GUARD_HOLE_END_ADDR"],
        ),
        ("LDT remap for PTI", "ldt", m["LDT_BASE_ADDR"], m["LDT_END_ADDR"]),
        (
            "direct mapping of all physical memory (page_offset_base)",
            "linear",
            m["PAGE_OFFSET"],
            m["PAGE_END"],
        ),
        (
            "vmalloc/ioremap space (vmalloc_base)",
            "vmalloc",
            m["VMALLOC_START"],
            m["VMALLOC_END"] + 1,
        ),
        ("virtual memory map (vmemmap_base)", "vmemmap", m["VMEMMAP_START"], m["VMEMMAP_END"]),
    ]
    if "KASAN_SHADOW_START" in m:
        named.append(
            ("KASAN shadow memory", "kasan", m["KASAN_SHADOW_START"], m["KASAN_SHADOW_END"])
        )
    p4d_size = m["P4D_SIZE"]
    named += [
        (
            "cpu_entry_area mapping",
            "cpu_entry_area",
            m["CPU_ENTRY_AREA_BASE"],
            m["CPU_ENTRY_AREA_BASE"] + p4d_size,
        ),
        ("%esp fixup stacks", "espfix", m["ESPFIX_BASE_ADDR"], m["ESPFIX_BASE_ADDR"] + p4d_size),
        ("EFI region mapping space", "efi", m["EFI_VA_END"], m["EFI_VA_START"]),
        (
            "kernel text mapping, mapped to physical address 0",
            "kernel",
            m["__START_KERNEL_map"],
            m["MODULES_VADDR"],
        ),
        ("module mapping space", "modules", m["MODULES_VADDR"], m["MODULES_END"]),
        ("kernel-internal fixmap range", "fixmap", m["FIXADDR_START"], m["VSYSCALL_ADDR"]),
        (
            "legacy vsyscall ABI",
            "vsyscall",
            m["VSYSCALL_ADDR"],
            m["VSYSCALL_ADDR"] + m["PAGE_SIZE"],
        ),
        ("unused hole", "guard", _neg(2 << 20), 1 << 64),
    ]
    out: list[Region] = []
    at = 0
    for name, kind, start, end in named:
        if start > at:
            out.append(Region("unused hole", "gap", at, start))
        out.append(Region(name, kind, start, end))  # type: ignore[arg-type]  # x86 kinds
        at = end
    return tuple(out)

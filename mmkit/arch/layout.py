"""The arm64 kernel virtual memory layout of each kernel era, from the kernel's formulas.

Three shapes of layout exist across the eras mmkit models:

* **v5.3** (``arch/arm64/include/asm/memory.h`` before the 52-bit kernel VA series): the
  kernel half starts at ``VA_START``; KASAN shadow, BPF JIT, modules, vmalloc, fixmap, PCI I/O
  and vmemmap sit in its lower half and the linear map takes the upper half from
  ``PAGE_OFFSET``.
* **v5.4 / v5.7** (after Steve Capper's "flip kernel VA space"): the linear map takes the
  lower half from ``PAGE_OFFSET``, everything else sits above ``PAGE_END``; the vmemmap ends
  2 MiB below the top. v5.7 only adds the name ``VMEMMAP_END`` (from the hot-remove patch)
  and sizes ``PTRS_PER_PGD`` by ``VA_BITS`` instead of ``MAX_USER_VA_BITS`` (same values).
* **v6.1** (Debian 12's kernel): no BPF JIT region, modules straight above the linear map
  (or the KASAN shadow), a 256 MiB gap below a power-of-two aligned vmemmap.

All arithmetic is modulo 2**64, as the kernel's unsigned longs are.
"""

from __future__ import annotations

from mmkit.arch.base import Region
from mmkit.arch.geometry import Geometry

__all__ = [
    "KASAN_SCALE_SHIFT",
    "MAX_FDT_SIZE",
    "STRUCT_PAGE_MAX_SHIFT",
    "fixmap_slots",
    "kasan_shadow_offset",
    "layout_macros",
    "regions_from_macros",
]

_M64 = (1 << 64) - 1
SZ_64K = 64 << 10
SZ_2M = 2 << 20
SZ_8M = 8 << 20
SZ_16M = 16 << 20
SZ_32M = 32 << 20
SZ_128M = 128 << 20
SZ_256M = 256 << 20

#: ``STRUCT_PAGE_MAX_SHIFT`` = order_base_2(sizeof(struct page)), with a 64-byte struct page.
STRUCT_PAGE_MAX_SHIFT = 6
#: ``MAX_FDT_SIZE`` (``asm/boot.h``): the fixmap reserves this plus 2 MiB for the FDT.
MAX_FDT_SIZE = SZ_2M
#: ``KASAN_SHADOW_SCALE_SHIFT`` per KASAN mode (``arch/arm64/Makefile``).
KASAN_SCALE_SHIFT = {"generic": 3, "sw_tags": 4}


def _neg(x: int) -> int:
    return (-x) & _M64


def _page_offset(va: int) -> int:
    """``_PAGE_OFFSET(va)`` = -(1 << va)."""
    return _neg(1 << va)


def _page_end(va: int) -> int:
    """``_PAGE_END(va)`` = -(1 << (va - 1))."""
    return _neg(1 << (va - 1))


def fixmap_slots(
    page_shift: int, *, kernel: str, ghes: bool, sdei: bool, kpti: bool, relocatable: bool
) -> int:
    """``__end_of_permanent_fixed_addresses``: permanent fixmap slots (``asm/fixmap.h``).

    FIX_HOLE, the FDT window (MAX_FDT_SIZE + 2 MiB), EARLYCON and TEXT_POKE0, two GHES slots
    (two more with SDEI), and the KPTI trampoline: DATA + TEXT up to v5.7, TEXT1..3 (+ TEXT4
    when relocatable) in v6.1.

    >>> fixmap_slots(12, kernel="v5.4", ghes=True, sdei=False, kpti=True, relocatable=True)
    1031
    """
    slots = 1 + (MAX_FDT_SIZE + SZ_2M) // (1 << page_shift) + 2
    if ghes:
        slots += 2 + (2 if sdei else 0)
    if kpti:
        slots += (3 + (1 if relocatable else 0)) if kernel == "v6.1" else 2
    return slots


def kasan_shadow_offset(va_bits: int, mode: str, kernel: str) -> int:
    """``CONFIG_KASAN_SHADOW_OFFSET``'s default, derived from where the shadow must sit.

    v5.4/v5.7: the shadow of the whole 2**VA_BITS_MIN kernel space starts at
    ``_PAGE_END(VA_BITS_MIN)``; v6.1: it ends there. The offset is then
    ``KASAN_SHADOW_END - (1 << (64 - scale))`` (``asm/kasan.h``). The Kconfig lists the
    results; tests check this derivation against them.

    >>> hex(kasan_shadow_offset(48, "generic", "v5.4"))
    '0xdfffa00000000000'
    """
    scale = KASAN_SCALE_SHIFT[mode]
    va_min = min(va_bits, 48)
    end = _page_end(va_min)
    if kernel != "v6.1":
        end = (end + (1 << (va_min - scale))) & _M64
    return (end - (1 << (64 - scale))) & _M64


def layout_macros(
    geo: Geometry,
    *,
    kernel: str,
    kasan: str | None,
    vabits_actual: int,
    fixmap_size: int,
) -> dict[str, int]:
    """The layout macros of ``memory.h`` / ``pgtable.h`` / ``fixmap.h`` for one era."""
    m: dict[str, int] = {}
    va = geo.va_bits
    pud_size = 1 << geo.pud_shift  # folded PUD_SIZE is PGDIR_SIZE, as the kernel folds it
    scale = KASAN_SCALE_SHIFT[kasan] if kasan else 0
    if kernel == "v5.3":
        m["VA_START"] = _page_offset(va)
        m["PAGE_OFFSET"] = _page_end(va)
        m["PAGE_END"] = 0  # the linear map runs to the top: end of the address space
        shadow = (1 << (va - scale)) if kasan else 0
        if kasan:
            m["KASAN_SHADOW_START"] = m["VA_START"]
            m["KASAN_SHADOW_END"] = m["VA_START"] + shadow
        m["KASAN_SHADOW_SIZE"] = shadow
        m["BPF_JIT_REGION_START"] = m["VA_START"] + shadow
        m["VMEMMAP_SIZE"] = 1 << (va - geo.page_shift - 1 + STRUCT_PAGE_MAX_SHIFT)
        m["VMEMMAP_START"] = m["PAGE_OFFSET"] - m["VMEMMAP_SIZE"]
        m["VMALLOC_END"] = m["PAGE_OFFSET"] - pud_size - m["VMEMMAP_SIZE"] - SZ_64K
    else:
        va_min = min(va, 48)
        m["VA_BITS_MIN"] = va_min
        m["PAGE_OFFSET"] = _page_offset(va)
        vmemmap_shift = geo.page_shift - STRUCT_PAGE_MAX_SHIFT
        m["VMEMMAP_SIZE"] = ((_page_end(va_min) - m["PAGE_OFFSET"]) & _M64) >> vmemmap_shift
        if kasan:
            m["KASAN_SHADOW_OFFSET"] = kasan_shadow_offset(va, kasan, kernel)
            m["KASAN_SHADOW_SCALE_SHIFT"] = scale
            m["KASAN_SHADOW_END"] = ((1 << (64 - scale)) + m["KASAN_SHADOW_OFFSET"]) & _M64
            m["KASAN_SHADOW_START"] = m["KASAN_SHADOW_END"] - (1 << (vabits_actual - scale))
        if kernel == "v6.1":
            m["PAGE_END"] = m["KASAN_SHADOW_START"] if kasan else _page_end(va_min)
            m["VMEMMAP_SHIFT"] = vmemmap_shift
            m["VMEMMAP_START"] = _neg(1 << (va - vmemmap_shift))
            m["MODULES_VADDR"] = _page_end(va_min)
            m["VMALLOC_END"] = m["VMEMMAP_START"] - SZ_256M
        else:
            m["PAGE_END"] = _page_end(vabits_actual)
            if not kasan:
                m["KASAN_SHADOW_END"] = _page_end(va_min)  # the kernel defines it even so
            m["BPF_JIT_REGION_START"] = m["KASAN_SHADOW_END"]
            m["VMEMMAP_START"] = _neg(m["VMEMMAP_SIZE"] + SZ_2M)
            m["VMALLOC_END"] = _neg(pud_size + m["VMEMMAP_SIZE"] + SZ_64K)
    if "BPF_JIT_REGION_START" in m:
        m["BPF_JIT_REGION_SIZE"] = SZ_128M
        m["BPF_JIT_REGION_END"] = m["BPF_JIT_REGION_START"] + SZ_128M
        m["MODULES_VADDR"] = m["BPF_JIT_REGION_END"]
    m["MODULES_VSIZE"] = SZ_128M
    m["MODULES_END"] = m["MODULES_VADDR"] + SZ_128M
    m["KIMAGE_VADDR"] = m["MODULES_END"]
    m["VMALLOC_START"] = m["MODULES_END"]
    m["VMEMMAP_END"] = m["VMEMMAP_START"] + m["VMEMMAP_SIZE"]
    if kernel == "v6.1":
        m["PCI_IO_END"] = m["VMEMMAP_START"] - SZ_8M
        m["FIXADDR_TOP"] = m["VMEMMAP_START"] - SZ_32M
    else:
        m["PCI_IO_END"] = m["VMEMMAP_START"] - SZ_2M
    m["PCI_IO_SIZE"] = SZ_16M
    m["PCI_IO_START"] = m["PCI_IO_END"] - SZ_16M
    if kernel != "v6.1":
        m["FIXADDR_TOP"] = m["PCI_IO_START"] - SZ_2M
    m["FIXADDR_SIZE"] = fixmap_size
    m["FIXADDR_START"] = m["FIXADDR_TOP"] - fixmap_size
    return m


# (kind, memory.rst label, start macro, end macro); PAGE_END 0 means "top of the space".
_REGION_SOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("linear", "kernel logical memory map", "PAGE_OFFSET", "PAGE_END"),
    ("kasan", "kasan shadow region", "KASAN_SHADOW_START", "KASAN_SHADOW_END"),
    ("bpf_jit", "bpf jit region", "BPF_JIT_REGION_START", "BPF_JIT_REGION_END"),
    ("modules", "modules", "MODULES_VADDR", "MODULES_END"),
    ("vmalloc", "vmalloc", "VMALLOC_START", "VMALLOC_END"),
    ("fixmap", "fixed mappings", "FIXADDR_START", "FIXADDR_TOP"),
    ("pci_io", "PCI I/O space", "PCI_IO_START", "PCI_IO_END"),
    ("vmemmap", "vmemmap", "VMEMMAP_START", "VMEMMAP_END"),
)


def regions_from_macros(
    macros: dict[str, int], *, user_va_bits: int, kernel_va_start: int
) -> tuple[Region, ...]:
    """The layout as memory.rst tables it: user space, then every kernel region in address
    order, with each hole named ``[guard region]`` (or ``[gap]`` right after the linear map,
    as the 52-bit table names it)."""
    found: list[Region] = [Region("user", "user", 0, 1 << user_va_bits)]
    kernel: list[Region] = []
    for kind, label, lo, hi in _REGION_SOURCES:
        if lo not in macros or hi not in macros:
            continue
        end = macros[hi] or (1 << 64)
        if kind == "kasan" and "KASAN_SHADOW_SIZE" in macros and not macros["KASAN_SHADOW_SIZE"]:
            continue
        kernel.append(Region(label, kind, macros[lo], end))  # type: ignore[arg-type]
    kernel.sort(key=lambda r: r.start)
    cursor = kernel_va_start
    previous = "user"
    for region in kernel:
        if region.start > cursor:
            kind, label = ("gap", "[gap]") if previous == "linear" else ("guard", "[guard region]")
            found.append(Region(label, kind, cursor, region.start))  # type: ignore[arg-type]
        found.append(region)
        cursor = region.end
        previous = region.kind
    if cursor < 1 << 64:
        found.append(Region("[guard region]", "guard", cursor, 1 << 64))
    return tuple(found)

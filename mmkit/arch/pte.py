"""arm64 stage-1 VMSAv8-64 translation table descriptors, bit by bit.

This module models the 64-bit descriptor format the arm64 MMU walks, with the names Linux
v5.4 gives the bits in ``arch/arm64/include/asm/pgtable-hwdef.h`` (hardware bits) and
``arch/arm64/include/asm/pgtable-prot.h`` (software bits and the ``PROT_*``/``PAGE_*``
combinations), and the memory-type indexes of ``arch/arm64/include/asm/memory.h``.

A descriptor at hardware level ``n`` (0..3) is one of:

* invalid (bit 0 clear): the walk stops with a translation fault;
* a *table* descriptor (bits[1:0] = 0b11 at levels 0-2): points at the next-level table;
* a *block* descriptor (bits[1:0] = 0b01 at a level that may hold blocks): maps a
  naturally aligned ``2**ARM64_HW_PGTABLE_LEVEL_SHIFT(n)`` byte region;
* a *page* descriptor (bits[1:0] = 0b11 at level 3): maps one page;
* a *reserved* encoding (bits[1:0] = 0b01 at level 3, or at a level that cannot hold
  blocks): the hardware treats it as invalid.

Everything here is a pure function of its arguments: encoders return an ``int`` and decoders a
frozen :class:`Descriptor`; bad input raises :class:`mmkit.errors.InvalidArgument`.

>>> raw = encode_block(0x4000_0000, kernel_prot("PROT_SECT_NORMAL"), level=2, page_shift=12)
>>> hex(raw)
'0x60000040000711'
>>> d = decode(raw, 2, page_shift=12, block_levels=frozenset({1, 2}))
>>> d.kind.name, hex(d.output_address), d.mem_type, d.pxn, d.uxn, d.rdonly
('BLOCK', '0x40000000', 'MEM/NORMAL', True, True, False)
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Set
from dataclasses import dataclass

from mmkit.errors import InvalidArgument, UnknownName

__all__ = [
    "KERNEL_PROT_NAMES",
    "MT_DEVICE_GRE",
    "MT_NAMES",
    "MT_NORMAL",
    "MT_NORMAL_NC",
    "MT_NORMAL_WT",
    "PMD_SECT_AF",
    "PMD_SECT_CONT",
    "PMD_SECT_NG",
    "PMD_SECT_PXN",
    "PMD_SECT_RDONLY",
    "PMD_SECT_S",
    "PMD_SECT_USER",
    "PMD_SECT_UXN",
    "PMD_SECT_VALID",
    "PMD_TABLE_BIT",
    "PMD_TYPE_MASK",
    "PMD_TYPE_SECT",
    "PMD_TYPE_TABLE",
    "PTDUMP_MEM_TYPES",
    "PTE_AF",
    "PTE_ATTRINDX",
    "PTE_ATTRINDX_MASK",
    "PTE_CONT",
    "PTE_DBM",
    "PTE_DEVMAP",
    "PTE_DIRTY",
    "PTE_NG",
    "PTE_NS",
    "PTE_PROT_NONE",
    "PTE_PXN",
    "PTE_RDONLY",
    "PTE_SHARED",
    "PTE_SPECIAL",
    "PTE_TABLE_BIT",
    "PTE_TYPE_MASK",
    "PTE_TYPE_PAGE",
    "PTE_USER",
    "PTE_UXN",
    "PTE_VALID",
    "PTE_WRITE",
    "TABLE_AP_MASK",
    "TABLE_AP_SHIFT",
    "TABLE_NS",
    "TABLE_PXN",
    "TABLE_UXN",
    "TABLE_XN",
    "BitField",
    "Descriptor",
    "DescriptorKind",
    "MT_DEVICE_nGnRE",
    "MT_DEVICE_nGnRnE",
    "addr_mask",
    "armv8_block_levels",
    "decode",
    "encode_block",
    "encode_page",
    "encode_table",
    "index",
    "kernel_prot",
    "phys_to_pte_val",
    "pte_to_phys",
]

# --------------------------------------------------------------------------------------------
# Hardware bits (v5.4 pgtable-hwdef.h, "Level 3 descriptor (PTE)" and "Section" blocks).
# The kernel gives block ("section") bits PMD_SECT_* names; they sit at the same positions as
# the PTE_* bits, so both spellings are provided.
# --------------------------------------------------------------------------------------------

PTE_VALID = 1 << 0  #: bit 0: the descriptor is valid.
#: bit 1: set = table (levels 0-2) or page (level 3); clear = block.
PTE_TABLE_BIT = 1 << 1
PTE_TYPE_MASK = 0b11 << 0  #: bits[1:0], the descriptor type.
PTE_TYPE_PAGE = 0b11 << 0  #: level-3 page descriptor type.
PMD_TYPE_MASK = PTE_TYPE_MASK
PMD_TYPE_TABLE = 0b11 << 0  #: table descriptor type (levels 0-2).
PMD_TYPE_SECT = 0b01 << 0  #: block ("section") descriptor type.
PMD_TABLE_BIT = PTE_TABLE_BIT
PMD_SECT_VALID = PTE_VALID

PTE_ATTRINDX_SHIFT = 2
PTE_ATTRINDX_MASK = 0b111 << PTE_ATTRINDX_SHIFT  #: bits[4:2], AttrIndx into MAIR_EL1.


def PTE_ATTRINDX(idx: int) -> int:
    """``PTE_ATTRINDX(t)`` (v5.4 pgtable-hwdef.h): put MAIR index ``idx`` in bits[4:2].

    >>> hex(PTE_ATTRINDX(MT_NORMAL))
    '0x10'
    """
    if type(idx) is not int or not 0 <= idx <= 7:
        raise _bad("idx", "a MAIR_EL1 attribute index 0..7", idx, "pass one of the MT_* values")
    return idx << PTE_ATTRINDX_SHIFT


#: bit 5: NS, non-secure output address (only meaningful from Secure state; Linux leaves it 0).
#: v5.4 has no macro for it; the name follows the architecture's field name.
PTE_NS = 1 << 5
PTE_USER = 1 << 6  #: bit 6: AP[1], EL0 may access.
PTE_RDONLY = 1 << 7  #: bit 7: AP[2], read-only.
PTE_SH_SHIFT = 8
PTE_SH_MASK = 0b11 << PTE_SH_SHIFT  #: bits[9:8], SH (shareability).
PTE_SHARED = 0b11 << PTE_SH_SHIFT  #: SH = 0b11, inner shareable.
PTE_AF = 1 << 10  #: bit 10: Access Flag.
PTE_NG = 1 << 11  #: bit 11: not Global (ASID-tagged TLB entries).
PTE_DBM = 1 << 51  #: bit 51: Dirty Bit Modifier (ARMv8.1 hardware dirty state).
PTE_CONT = 1 << 52  #: bit 52: Contiguous hint.
PTE_PXN = 1 << 53  #: bit 53: Privileged eXecute Never.
PTE_UXN = 1 << 54  #: bit 54: User (EL0) eXecute Never.

PMD_SECT_USER = PTE_USER
PMD_SECT_RDONLY = PTE_RDONLY
PMD_SECT_S = PTE_SHARED
PMD_SECT_AF = PTE_AF
PMD_SECT_NG = PTE_NG
PMD_SECT_CONT = PTE_CONT
PMD_SECT_PXN = PTE_PXN
PMD_SECT_UXN = PTE_UXN

# Software bits (v5.4 pgtable-prot.h). The hardware ignores bits[58:55] of a leaf descriptor,
# so Linux keeps its own state there; PTE_WRITE reuses the hardware DBM bit on purpose, so
# that a writable-clean page is "DBM set, RDONLY set" and the CPU can flip it to dirty.
PTE_WRITE = PTE_DBM  #: the kernel's name for bit 51.
PTE_DIRTY = 1 << 55  #: software dirty.
PTE_SPECIAL = 1 << 56  #: pte_special(): no struct page behind it.
PTE_DEVMAP = 1 << 57  #: ZONE_DEVICE mapping.
PTE_PROT_NONE = 1 << 58  #: PROT_NONE; "only when !PTE_VALID" (pte_present() honours it).

# Table-descriptor attributes (ARM ARM "Next-level attributes in stage 1 VMSAv8-64 table
# descriptors"). v5.4 defines no macros for these (later kernels add PMD_TABLE_PXN/UXN); the
# names follow the architecture.
TABLE_PXN = 1 << 59  #: PXNTable: no privileged execution anywhere below this table.
TABLE_UXN = 1 << 60  #: UXNTable (called XNTable in the EL2/EL3 regime).
TABLE_XN = TABLE_UXN
TABLE_AP_SHIFT = 61
TABLE_AP_MASK = 0b11 << TABLE_AP_SHIFT  #: APTable[62:61]: access-permission limits below.
TABLE_NS = 1 << 63  #: NSTable: next-level table is in the Non-secure PA space.

# Every bit a leaf encoder may take from ``attrs``: lower attributes [11:2] and upper
# attributes/software bits [58:51]. Bits [50:48] are RES0 in ARMv8.0-8.4 and bits [63:59] are
# ignored by the hardware (PBHA from ARMv8.2) and unused by v5.4, so they are not attributes.
_LOWER_ATTRS = ((1 << 12) - 1) & ~PTE_TYPE_MASK
_UPPER_ATTRS = ((1 << 59) - 1) & ~((1 << 51) - 1)
_LEAF_ATTRS = _LOWER_ATTRS | _UPPER_ATTRS

# --------------------------------------------------------------------------------------------
# Memory types: MAIR_EL1 indexes (v5.4 memory.h) and the strings ptdump prints for them
# (v5.4 arch/arm64/mm/dump.c, pte_bits[]). v5.4 ptdump has no string for MT_NORMAL_WT.
# --------------------------------------------------------------------------------------------

MT_DEVICE_nGnRnE = 0  # kernel macro names keep their case
MT_DEVICE_nGnRE = 1
MT_DEVICE_GRE = 2
MT_NORMAL_NC = 3
MT_NORMAL = 4
MT_NORMAL_WT = 5

MT_NAMES: dict[int, str] = {
    MT_DEVICE_nGnRnE: "MT_DEVICE_nGnRnE",
    MT_DEVICE_nGnRE: "MT_DEVICE_nGnRE",
    MT_DEVICE_GRE: "MT_DEVICE_GRE",
    MT_NORMAL_NC: "MT_NORMAL_NC",
    MT_NORMAL: "MT_NORMAL",
    MT_NORMAL_WT: "MT_NORMAL_WT",
}
PTDUMP_MEM_TYPES: dict[int, str] = {
    MT_DEVICE_nGnRnE: "DEVICE/nGnRnE",
    MT_DEVICE_nGnRE: "DEVICE/nGnRE",
    MT_DEVICE_GRE: "DEVICE/GRE",
    MT_NORMAL_NC: "MEM/NORMAL-NC",
    MT_NORMAL: "MEM/NORMAL",
}

_PAGE_SHIFTS = (12, 14, 16)
_PA_BITS = (48, 52)
_U64 = 1 << 64

# --------------------------------------------------------------------------------------------
# Kernel protection combinations (v5.4 pgtable-prot.h).
# --------------------------------------------------------------------------------------------


def _prot_values(ng: bool) -> dict[str, int]:
    # PTE_MAYBE_NG / PMD_MAYBE_NG: nG is added when arm64_kernel_use_ng_mappings() says so
    # (KPTI), which is a boot-time decision; the caller passes it as ``ng``.
    maybe_ng = PTE_NG if ng else 0
    prot_default = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | maybe_ng
    prot_sect_default = PMD_TYPE_SECT | PMD_SECT_AF | PMD_SECT_S | maybe_ng
    xn_write = PTE_PXN | PTE_UXN | PTE_WRITE
    sect_xn = PMD_SECT_PXN | PMD_SECT_UXN
    prot_normal = prot_default | xn_write | PTE_ATTRINDX(MT_NORMAL)
    return {
        "PROT_DEFAULT": prot_default,
        "PROT_SECT_DEFAULT": prot_sect_default,
        "PROT_DEVICE_nGnRnE": prot_default | xn_write | PTE_ATTRINDX(MT_DEVICE_nGnRnE),
        "PROT_DEVICE_nGnRE": prot_default | xn_write | PTE_ATTRINDX(MT_DEVICE_nGnRE),
        "PROT_NORMAL_NC": prot_default | xn_write | PTE_ATTRINDX(MT_NORMAL_NC),
        "PROT_NORMAL_WT": prot_default | xn_write | PTE_ATTRINDX(MT_NORMAL_WT),
        "PROT_NORMAL": prot_normal,
        "PROT_SECT_DEVICE_nGnRE": prot_sect_default | sect_xn | PTE_ATTRINDX(MT_DEVICE_nGnRE),
        "PROT_SECT_NORMAL": prot_sect_default | sect_xn | PTE_ATTRINDX(MT_NORMAL),
        "PROT_SECT_NORMAL_EXEC": prot_sect_default | PMD_SECT_UXN | PTE_ATTRINDX(MT_NORMAL),
        "PAGE_KERNEL": prot_normal,
        "PAGE_KERNEL_RO": (prot_normal & ~PTE_WRITE) | PTE_RDONLY,
        "PAGE_KERNEL_ROX": (prot_normal & ~(PTE_WRITE | PTE_PXN)) | PTE_RDONLY,
        "PAGE_KERNEL_EXEC": prot_normal & ~PTE_PXN,
        "PAGE_KERNEL_EXEC_CONT": (prot_normal & ~PTE_PXN) | PTE_CONT,
    }


#: Every name :func:`kernel_prot` knows, in pgtable-prot.h order.
KERNEL_PROT_NAMES: tuple[str, ...] = tuple(_prot_values(False))


def kernel_prot(name: str, *, ng: bool = False, block: bool = False) -> int:
    """The v5.4 ``pgtable-prot.h`` value called ``name`` (``PAGE_KERNEL``, ``PROT_SECT_NORMAL``...).

    ``ng`` models ``PTE_MAYBE_NG``/``PMD_MAYBE_NG`` (set when the kernel uses non-global
    mappings, i.e. KPTI). ``block=True`` applies ``mk_pmd_sect_prot()`` (v5.4 pgtable.h):
    clear the table bit and set the section type, turning a page prot into one usable for a
    block descriptor; ``PROT_SECT_*`` values are already block prots and are unchanged.

    >>> hex(kernel_prot("PAGE_KERNEL"))
    '0x68000000000713'
    >>> hex(kernel_prot("PAGE_KERNEL", ng=True, block=True))
    '0x68000000000f11'
    """
    values = _prot_values(bool(ng))
    if name not in values:
        raise UnknownName(
            f"kernel_prot: name: expected a v5.4 pgtable-prot.h protection name, found {name!r}; "
            "fix: use one of KERNEL_PROT_NAMES",
            choices=KERNEL_PROT_NAMES,
        )
    value = values[name]
    if block:
        value = (value & ~PMD_TABLE_BIT) | PMD_TYPE_SECT
    return value


# --------------------------------------------------------------------------------------------
# Validation helpers.
# --------------------------------------------------------------------------------------------


def _bad(culprit: str, expected: str, found: object, fix: str) -> InvalidArgument:
    # Addresses and bit patterns read best in hex, small counts (levels, indexes) in decimal.
    if isinstance(found, str):
        shown = found
    elif type(found) is int and found >= 10:
        shown = hex(found)
    else:
        shown = repr(found)
    return InvalidArgument(f"{culprit}: expected {expected}, found {shown}; fix: {fix}")


def _check_u64(name: str, value: object) -> int:
    if type(value) is not int or not 0 <= value < _U64:
        raise _bad(name, "an int in [0, 2**64)", value, f"pass {name} as a 64-bit unsigned int")
    return value


def _check_format(page_shift: object, pa_bits: object) -> None:
    if page_shift not in _PAGE_SHIFTS or type(page_shift) is not int:
        raise InvalidArgument(
            f"page_shift: expected 12 (4K), 14 (16K) or 16 (64K), found {page_shift!r}; "
            "fix: pass the granule's PAGE_SHIFT",
            choices=[str(s) for s in _PAGE_SHIFTS],
        )
    if pa_bits not in _PA_BITS or type(pa_bits) is not int:
        raise InvalidArgument(
            f"pa_bits: expected 48 or 52 (CONFIG_ARM64_PA_BITS), found {pa_bits!r}; "
            "fix: pass 48, or 52 with 64K pages",
            choices=[str(b) for b in _PA_BITS],
        )
    if pa_bits == 52 and page_shift != 16:
        raise _bad(
            "pa_bits",
            "52 only with 64K pages (ARMv8.2-LPA; Kconfig ARM64_PA_BITS_52 depends on "
            "ARM64_64K_PAGES)",
            f"52 with page_shift {page_shift}",
            "use page_shift=16 or pa_bits=48",
        )


def _check_level(level: object, page_shift: int) -> int:
    if type(level) is not int or level not in (0, 1, 2, 3):
        raise InvalidArgument(
            f"level: expected a hardware level 0..3, found {level!r}; "
            "fix: pass the lookup level (0 = top of a 4-level 4K walk, 3 = pte)",
            choices=["0", "1", "2", "3"],
        )
    if level == 0 and page_shift == 16:
        # A 64K walk resolves at most 13 bits per level; even 52-bit VAs fit in levels 1..3,
        # so the architecture has no level-0 lookup for this granule.
        raise _bad(
            "level",
            "1..3 with the 64K granule (it has no level 0 lookup)",
            level,
            "start the walk at level 1",
        )
    return level


def _check_block_levels(block_levels: object) -> frozenset[int]:
    if not isinstance(block_levels, Set) or not all(
        type(lv) is int and lv in (0, 1, 2) for lv in block_levels
    ):
        raise _bad(
            "block_levels",
            "a set of levels from {0, 1, 2} (level 3 never holds blocks)",
            block_levels,
            "pass e.g. armv8_block_levels(page_shift, pa_bits)",
        )
    return frozenset(block_levels)


def _level_shift(level: int, page_shift: int) -> int:
    # ARM64_HW_PGTABLE_LEVEL_SHIFT(n): each level resolves (page_shift - 3) bits (a table is
    # one page of 8-byte entries) on top of the page offset.
    return (page_shift - 3) * (4 - level) + 3


def armv8_block_levels(page_shift: int, pa_bits: int = 48) -> frozenset[int]:
    """Levels at which ARMv8.0-8.6 allows block descriptors for this granule.

    4K: levels 1 (1 GiB) and 2 (2 MiB); 16K: level 2 (32 MiB) only; 64K: level 2 (512 MiB),
    plus level 1 (4 TiB) when 52-bit PAs are in use (ARMv8.2-LPA). FEAT_LPA2 (ARMv8.7) block
    levels are not modelled. This is what :func:`encode_block` checks when given no set.

    >>> sorted(armv8_block_levels(12)), sorted(armv8_block_levels(16, 52))
    ([1, 2], [1, 2])
    """
    _check_format(page_shift, pa_bits)
    if page_shift == 12:
        return frozenset({1, 2})
    if page_shift == 16 and pa_bits == 52:
        return frozenset({1, 2})
    return frozenset({2})


# --------------------------------------------------------------------------------------------
# Output-address field.
# --------------------------------------------------------------------------------------------


def addr_mask(page_shift: int, pa_bits: int = 48) -> int:
    """``PTE_ADDR_MASK`` (v5.4 pgtable-hwdef.h): descriptor bits that hold the address.

    Bits [47:page_shift] (``PTE_ADDR_LOW``), plus bits [15:12] (``PTE_ADDR_HIGH``, PA[51:48])
    when 52-bit PAs are configured.

    >>> hex(addr_mask(12)), hex(addr_mask(16)), hex(addr_mask(16, 52))
    ('0xfffffffff000', '0xffffffff0000', '0xfffffffff000')
    """
    _check_format(page_shift, pa_bits)
    low = ((1 << (48 - page_shift)) - 1) << page_shift
    return low | (0xF << 12) if pa_bits == 52 else low


def phys_to_pte_val(pa: int, *, page_shift: int, pa_bits: int = 48) -> int:
    """``__phys_to_pte_val()`` (v5.4 pgtable.h): place page-aligned ``pa`` in a descriptor.

    With 52-bit PAs (64K pages only) PA[51:48] move down to descriptor bits [15:12], which are
    free because a 64K-aligned address has zeros there.

    >>> hex(phys_to_pte_val(0x000F_0000_0001_0000, page_shift=16, pa_bits=52))
    '0x1f000'
    """
    _check_format(page_shift, pa_bits)
    pa = _check_u64("pa", pa)
    _check_pa(pa, 1 << page_shift, "page", page_shift, pa_bits)
    if pa_bits == 52:
        return (pa | (pa >> 36)) & addr_mask(page_shift, pa_bits)
    return pa


def pte_to_phys(raw: int, *, page_shift: int, pa_bits: int = 48) -> int:
    """``__pte_to_phys()`` (v5.4 pgtable.h): the page-aligned address held in ``raw``.

    >>> hex(pte_to_phys(0x1F703, page_shift=16, pa_bits=52))
    '0xf000000010000'
    """
    _check_format(page_shift, pa_bits)
    raw = _check_u64("raw", raw)
    low = raw & addr_mask(page_shift, 48)
    if pa_bits == 52:
        return low | ((raw & (0xF << 12)) << 36)
    return low


def _check_pa(
    pa: int, align: int, what: str, page_shift: int, pa_bits: int, culprit: str = "pa"
) -> None:
    if pa >= 1 << pa_bits:
        wider = "" if pa_bits == 52 else ", or pa_bits=52 with 64K pages"
        raise _bad(
            culprit,
            f"a physical address below 2**{pa_bits} (pa_bits={pa_bits})",
            pa,
            f"use a smaller address{wider}",
        )
    if pa % align:
        raise _bad(
            culprit,
            f"a {what} address aligned to {align:#x} bytes",
            pa,
            f"round down to {pa & ~(align - 1):#x}",
        )


def _check_attrs(attrs: object, type_bits: int, what: str, fix: str) -> int:
    attrs = _check_u64("attrs", attrs)
    stray = attrs & ~(_LEAF_ATTRS | PTE_TYPE_MASK)
    if stray:
        raise _bad(
            "attrs",
            "only attribute bits [11:2] and [58:51] (address, RES0 and ignored bits belong "
            "to the encoder)",
            f"stray bits {stray:#x} in {attrs:#x}",
            f"mask attrs with {_LEAF_ATTRS:#x}",
        )
    if attrs & PTE_TYPE_MASK not in (0, type_bits):
        raise _bad(
            "attrs",
            f"type bits[1:0] of 0b00 or {type_bits:#04b} for a {what}",
            f"type bits {attrs & PTE_TYPE_MASK:#04b} in {attrs:#x}",
            fix,
        )
    return attrs & _LEAF_ATTRS


# --------------------------------------------------------------------------------------------
# Encoders.
# --------------------------------------------------------------------------------------------


def encode_table(
    next_table_pa: int,
    *,
    level: int,
    page_shift: int,
    pa_bits: int = 48,
    pxn_table: bool = False,
    uxn_table: bool = False,
    ap_table: int = 0,
    ns_table: bool = False,
) -> int:
    """A table descriptor at ``level`` (0-2) pointing at the table at ``next_table_pa``.

    Models ``__pmd_populate()``/``__pud_populate()`` (v5.4 pgtable.h): the address placed as
    by ``__phys_to_pmd_val()``, ORed with ``PMD_TYPE_TABLE``. The next-level attributes
    (PXNTable, UXNTable, APTable, NSTable) are not used by v5.4 but are part of the format.

    >>> hex(encode_table(0x4123_4000, level=2, page_shift=12))
    '0x41234003'
    """
    _check_format(page_shift, pa_bits)
    if _check_level(level, page_shift) == 3:
        raise _bad(
            "level",
            "0..2 for a table descriptor",
            level,
            "level 3 is the last level and holds pages: use encode_page()",
        )
    next_table_pa = _check_u64("next_table_pa", next_table_pa)
    _check_pa(
        next_table_pa, 1 << page_shift, "next-level table", page_shift, pa_bits, "next_table_pa"
    )
    if type(ap_table) is not int or not 0 <= ap_table <= 3:
        raise _bad("ap_table", "an APTable value 0..3", ap_table, "pass a 2-bit value")
    raw = phys_to_pte_val(next_table_pa, page_shift=page_shift, pa_bits=pa_bits) | PMD_TYPE_TABLE
    raw |= TABLE_PXN if pxn_table else 0
    raw |= TABLE_UXN if uxn_table else 0
    raw |= ap_table << TABLE_AP_SHIFT
    raw |= TABLE_NS if ns_table else 0
    return raw


def encode_block(
    pa: int,
    attrs: int,
    *,
    level: int,
    page_shift: int,
    pa_bits: int = 48,
    block_levels: frozenset[int] | None = None,
) -> int:
    """A block descriptor mapping the naturally aligned block at ``pa``.

    Models ``pfn_pmd(pfn, mk_pmd_sect_prot(prot))`` / ``pfn_pud()`` (v5.4 pgtable.h). ``attrs``
    is a prot value: either bare attribute bits or a block prot (type bits 0b01, e.g.
    ``kernel_prot(name, block=True)`` or a ``PROT_SECT_*``). ``block_levels`` defaults to
    :func:`armv8_block_levels`.

    >>> hex(encode_block(0x8000_0000, kernel_prot("PAGE_KERNEL", block=True), level=1,
    ...                  page_shift=12))
    '0x68000080000711'
    """
    _check_format(page_shift, pa_bits)
    if block_levels is None:
        block_levels = armv8_block_levels(page_shift, pa_bits)
    levels = _check_block_levels(block_levels)
    if _check_level(level, page_shift) == 3:
        raise _bad(
            "level",
            "a block level 0..2",
            level,
            "bits[1:0] = 0b01 at level 3 is reserved; map pages with encode_page()",
        )
    if level not in levels:
        raise _bad(
            "level",
            f"a level that may hold blocks, one of {sorted(levels)}",
            level,
            "map with a table of smaller blocks/pages instead",
        )
    pa = _check_u64("pa", pa)
    _check_pa(pa, 1 << _level_shift(level, page_shift), f"level-{level} block", page_shift, pa_bits)
    attrs = _check_attrs(
        attrs,
        PMD_TYPE_SECT,
        "block",
        "page prots carry type 0b11: convert with kernel_prot(name, block=True) "
        "(the kernel's mk_pmd_sect_prot())",
    )
    return phys_to_pte_val(pa, page_shift=page_shift, pa_bits=pa_bits) | attrs | PMD_TYPE_SECT


def encode_page(pa: int, attrs: int, *, page_shift: int, pa_bits: int = 48) -> int:
    """A level-3 page descriptor mapping the page at ``pa``: ``pfn_pte()`` (v5.4 pgtable.h).

    ``attrs`` is bare attribute bits or a page prot (type bits 0b11, e.g. ``PAGE_KERNEL``).

    >>> hex(encode_page(0x4000_1000, kernel_prot("PAGE_KERNEL_RO"), page_shift=12))
    '0x60000040001793'
    """
    _check_format(page_shift, pa_bits)
    pa = _check_u64("pa", pa)
    _check_pa(pa, 1 << page_shift, "page", page_shift, pa_bits)
    attrs = _check_attrs(
        attrs,
        PTE_TYPE_PAGE,
        "page",
        "block prots carry type 0b01: use the page prot (e.g. PAGE_KERNEL, not PROT_SECT_NORMAL)",
    )
    return phys_to_pte_val(pa, page_shift=page_shift, pa_bits=pa_bits) | attrs | PTE_TYPE_PAGE


# --------------------------------------------------------------------------------------------
# Decoding.
# --------------------------------------------------------------------------------------------


class DescriptorKind(enum.Enum):
    """What the hardware makes of a descriptor at a given level."""

    INVALID = "invalid"  #: bit 0 clear: translation fault.
    TABLE = "table"  #: 0b11 at levels 0-2: next-level table.
    BLOCK = "block"  #: 0b01 at a block level: maps a block.
    PAGE = "page"  #: 0b11 at level 3: maps a page.
    RESERVED = "reserved"  #: 0b01 where no block is allowed: treated as invalid.


@dataclass(frozen=True)
class BitField:
    """One field of a descriptor: bits ``[hi:lo]``, its name, raw value and meaning."""

    hi: int
    lo: int
    name: str
    value: int
    meaning: str

    @property
    def bits(self) -> str:
        """The bit range as the ARM ARM writes it, e.g. ``"[4:2]"`` or ``"[10]"``."""
        return f"[{self.hi}]" if self.hi == self.lo else f"[{self.hi}:{self.lo}]"

    @property
    def mask(self) -> int:
        """The field's bits as a 64-bit mask."""
        return ((1 << (self.hi - self.lo + 1)) - 1) << self.lo


@dataclass(frozen=True)
class Descriptor:
    """A decoded stage-1 descriptor; build with :func:`decode`.

    Attribute fields hold what the hardware (or the kernel's ``pte_*()`` accessors) reads for
    this ``kind``: leaf attributes for BLOCK/PAGE, next-level attributes for TABLE. Bits that
    the kind ignores or reserves (RES0) read as ``False``/``0`` here and are kept, unchanged,
    in ``unmodelled``. ``prot_none`` is also decoded for INVALID entries, the only place the
    kernel sets it. ``output_address`` is None for INVALID and RESERVED.
    """

    raw: int
    level: int
    page_shift: int
    pa_bits: int
    kind: DescriptorKind
    output_address: int | None
    attr_index: int
    mt_name: str | None  # "MT_NORMAL", for leaves with an index memory.h names
    mem_type: str | None  # "MEM/NORMAL", as v5.4 ptdump prints it (no string for WT, 6, 7)
    ns: bool
    user: bool
    rdonly: bool
    sh: int
    shared: bool
    af: bool
    ng: bool
    dbm: bool
    cont: bool
    pxn: bool
    uxn: bool
    dirty: bool
    special: bool
    devmap: bool
    prot_none: bool
    pxn_table: bool
    uxn_table: bool
    ap_table: int
    ns_table: bool
    unmodelled: int

    @property
    def valid(self) -> bool:
        """``pte_valid()``: bit 0."""
        return bool(self.raw & PTE_VALID)

    @property
    def write(self) -> bool:
        """``pte_write()``: the kernel's PTE_WRITE, which is the DBM bit."""
        return self.dbm

    @property
    def is_leaf(self) -> bool:
        """True for BLOCK and PAGE: the walk ends here with an output address."""
        return self.kind in (DescriptorKind.BLOCK, DescriptorKind.PAGE)

    @property
    def attrs(self) -> int:
        """The leaf attribute bits rebuilt from the decoded fields (0 unless a leaf).

        This is the ``attrs`` argument that re-creates the entry with :func:`encode_block` or
        :func:`encode_page`.
        """
        if not self.is_leaf:
            return 0
        bits = self.attr_index << PTE_ATTRINDX_SHIFT | self.sh << PTE_SH_SHIFT
        for flag, bit in (
            (self.ns, PTE_NS),
            (self.user, PTE_USER),
            (self.rdonly, PTE_RDONLY),
            (self.af, PTE_AF),
            (self.ng, PTE_NG),
            (self.dbm, PTE_DBM),
            (self.cont, PTE_CONT),
            (self.pxn, PTE_PXN),
            (self.uxn, PTE_UXN),
            (self.dirty, PTE_DIRTY),
            (self.special, PTE_SPECIAL),
            (self.devmap, PTE_DEVMAP),
            (self.prot_none, PTE_PROT_NONE),
        ):
            if flag:
                bits |= bit
        return bits

    def encode(self) -> int:
        """Re-encode from the decoded fields, then OR back ``unmodelled``; equals ``raw``.

        Raises :class:`~mmkit.errors.InvalidArgument` for INVALID and RESERVED entries, which
        have no encoder.
        """
        fmt = {"page_shift": self.page_shift, "pa_bits": self.pa_bits}
        if self.kind is DescriptorKind.TABLE:
            assert self.output_address is not None
            raw = encode_table(
                self.output_address,
                level=self.level,
                pxn_table=self.pxn_table,
                uxn_table=self.uxn_table,
                ap_table=self.ap_table,
                ns_table=self.ns_table,
                **fmt,
            )
        elif self.kind is DescriptorKind.BLOCK:
            assert self.output_address is not None
            raw = encode_block(
                self.output_address,
                self.attrs,
                level=self.level,
                block_levels=frozenset({self.level}),
                **fmt,
            )
        elif self.kind is DescriptorKind.PAGE:
            assert self.output_address is not None
            raw = encode_page(self.output_address, self.attrs, **fmt)
        else:
            raise _bad(
                "descriptor",
                "a TABLE, BLOCK or PAGE descriptor",
                self.kind.name,
                "an invalid or reserved entry has no encoder; use .raw",
            )
        return raw | self.unmodelled

    def fields(self) -> list[BitField]:
        """Every bit of ``raw``, low to high, as (bit range, name, value, meaning) records.

        The ranges cover bits 0..63 exactly once, so a learner can read any entry bit by bit.

        >>> d = decode(0x60000040000711, 2, page_shift=12, block_levels=frozenset({1, 2}))
        >>> [(f.bits, f.name, f.value) for f in d.fields()[:3]]
        [('[0]', 'VALID', 1), ('[1]', 'TABLE_BIT', 0), ('[4:2]', 'AttrIndx', 4)]
        """
        return [
            BitField(hi, lo, name, (self.raw >> lo) & ((1 << (hi - lo + 1)) - 1), meaning)
            for hi, lo, name, meaning, _ in _layout(self)
        ]


_IGNORED = "IGNORED"
_AP_TABLE = {
    0: "0: no limit on the levels below",
    1: "1: no EL0 access below",
    2: "2: read-only below",
    3: "3: read-only, no EL0 access below",
}
_RES0 = "RES0"


def _flag(on: bool, yes: str, no: str) -> str:
    return yes if on else no


def _layout(d: Descriptor) -> list[tuple[int, int, str, str, bool]]:
    """(hi, lo, name, meaning, modelled) for each field of ``d``'s kind, bits 0..63 in order."""
    ps = d.page_shift
    if d.kind is DescriptorKind.INVALID:
        return [
            (0, 0, "VALID", "0: invalid, a walk here faults; other bits are free", True),
            (57, 1, _IGNORED, "ignored by hardware (swap entries keep data here)", False),
            (
                58,
                58,
                "PTE_PROT_NONE",
                _flag(d.prot_none, "1: PROT_NONE, pte_present() is true", "0"),
                True,
            ),
            (63, 59, _IGNORED, "ignored by hardware", False),
        ]
    if d.kind is DescriptorKind.RESERVED:
        why = "at level 3" if d.level == 3 else f"and level {d.level} cannot hold blocks"
        return [
            (1, 0, "TYPE", f"0b01 {why}: reserved, treated as invalid", True),
            (63, 2, _IGNORED, "not interpreted", False),
        ]
    assert d.output_address is not None
    out: list[tuple[int, int, str, str, bool]] = [(0, 0, "VALID", "1: valid", True)]
    if d.kind is DescriptorKind.TABLE:
        out.append((1, 1, "TABLE_BIT", "1: table descriptor, points to next level", True))
        out.append((11, 2, _IGNORED, "ignored in a table descriptor", False))
        addr_name, addr_lo = "NLTA", ps
    else:
        page = d.kind is DescriptorKind.PAGE
        typ = "1: page descriptor (level 3)" if page else "0: block descriptor"
        mt = (
            f"MAIR_EL1.Attr{d.attr_index}: {d.mt_name or 'no MT_* in v5.4 memory.h'}"
            f" (ptdump: {d.mem_type or 'none'})"
        )
        sh = {0: "non-shareable", 1: "RESERVED", 2: "outer shareable", 3: "inner shareable"}
        out += [
            (1, 1, "TABLE_BIT", typ, True),
            (4, 2, "AttrIndx", mt, True),
            (5, 5, "NS", _flag(d.ns, "1: Non-secure PA (Secure state only)", "0"), True),
            (6, 6, "AP[1] USER", _flag(d.user, "1: EL0 access (USR)", "0: kernel only"), True),
            (7, 7, "AP[2] RDONLY", _flag(d.rdonly, "1: read-only (ro)", "0: read/write"), True),
            (9, 8, "SH", sh[d.sh], True),
            (10, 10, "AF", _flag(d.af, "1: accessed", "0: first access faults"), True),
            (11, 11, "nG", _flag(d.ng, "1: not global (ASID)", "0: global"), True),
        ]
        addr_name = "OA"
        addr_lo = ps if page else _level_shift(d.level, ps)
    if d.pa_bits == 52:
        out.append(
            (15, 12, f"{addr_name}[51:48]", f"PA[51:48] = {d.output_address >> 48:#x}", True)
        )
    elif ps > 12:
        out.append((ps - 1, 12, _RES0, "below the granule's address bits", False))
    if addr_lo > ps:
        out.append((addr_lo - 1, ps, _RES0, "below the block size", False))
    out.append((47, addr_lo, f"{addr_name}[47:{addr_lo}]", f"address {d.output_address:#x}", True))
    if d.kind is DescriptorKind.TABLE:
        out += [
            (51, 48, _RES0, "RES0 in a table descriptor", False),
            (58, 52, _IGNORED, "ignored in a table descriptor", False),
            (59, 59, "PXNTable", _flag(d.pxn_table, "1: no EL1 execution below", "0"), True),
            (60, 60, "UXNTable", _flag(d.uxn_table, "1: no EL0 execution below", "0"), True),
            (62, 61, "APTable", _AP_TABLE[d.ap_table], True),
            (63, 63, "NSTable", _flag(d.ns_table, "1: next table non-secure", "0"), True),
        ]
        return out
    out.extend(
        [
            (50, 48, _RES0, "RES0 (ARMv8.0-8.4)", False),
            (
                51,
                51,
                "DBM/PTE_WRITE",
                _flag(d.dbm, "1: PTE_WRITE, writable", "0: not writable"),
                True,
            ),
            (52, 52, "Contiguous", _flag(d.cont, "1: part of a contiguous run (CON)", "0"), True),
            (53, 53, "PXN", _flag(d.pxn, "1: no EL1 execution (NX)", "0: EL1 executable"), True),
            (54, 54, "UXN", _flag(d.uxn, "1: no EL0 execution (UXN)", "0: EL0 executable"), True),
            (55, 55, "PTE_DIRTY", _flag(d.dirty, "1: software dirty", "0"), True),
            (56, 56, "PTE_SPECIAL", _flag(d.special, "1: special, no struct page", "0"), True),
            (57, 57, "PTE_DEVMAP", _flag(d.devmap, "1: ZONE_DEVICE mapping", "0"), True),
            (58, 58, "PTE_PROT_NONE", _flag(d.prot_none, "1: set on a valid entry", "0"), True),
            (62, 59, _IGNORED, "ignored by hardware (PBHA from ARMv8.2)", False),
            (63, 63, _IGNORED, "ignored by hardware", False),
        ]
    )
    return out


def decode(
    raw: int,
    level: int,
    *,
    page_shift: int,
    pa_bits: int = 48,
    block_levels: frozenset[int],
) -> Descriptor:
    """Decode the 64-bit descriptor ``raw`` found at hardware ``level``.

    The kind follows the architecture's walk rules (and v5.4 ``pmd_table()``/``pmd_sect()``):
    bit 0 clear is invalid; 0b11 is a table at levels 0-2 and a page at level 3; 0b01 is a
    block at a level in ``block_levels`` and reserved elsewhere (always at level 3). Any
    64-bit value decodes; only the parameters are validated.

    >>> d = decode(0x0F713, 3, page_shift=16, pa_bits=52, block_levels=frozenset({2}))
    >>> d.kind.name, hex(d.output_address), d.mem_type, d.af, d.shared
    ('PAGE', '0xf000000000000', 'MEM/NORMAL', True, True)
    """
    _check_format(page_shift, pa_bits)
    levels = _check_block_levels(block_levels)
    _check_level(level, page_shift)
    raw = _check_u64("raw", raw)

    typ = raw & PTE_TYPE_MASK
    if not raw & PTE_VALID:
        kind = DescriptorKind.INVALID
    elif typ == PMD_TYPE_TABLE:
        kind = DescriptorKind.PAGE if level == 3 else DescriptorKind.TABLE
    else:
        kind = DescriptorKind.BLOCK if level in levels else DescriptorKind.RESERVED

    leaf = kind in (DescriptorKind.BLOCK, DescriptorKind.PAGE)
    table = kind is DescriptorKind.TABLE
    output: int | None = None
    if leaf or table:
        output = pte_to_phys(raw, page_shift=page_shift, pa_bits=pa_bits)
        if kind is DescriptorKind.BLOCK:
            # Like pmd_pfn()'s "& PMD_MASK": the low bits of a block's address field are RES0.
            output &= ~((1 << _level_shift(level, page_shift)) - 1)

    def bit(mask: int, when: bool = leaf) -> bool:
        return when and bool(raw & mask)

    attr_index = (raw & PTE_ATTRINDX_MASK) >> PTE_ATTRINDX_SHIFT if leaf else 0
    sh = (raw & PTE_SH_MASK) >> PTE_SH_SHIFT if leaf else 0
    d = Descriptor(
        raw=raw,
        level=level,
        page_shift=page_shift,
        pa_bits=pa_bits,
        kind=kind,
        output_address=output,
        attr_index=attr_index,
        mt_name=MT_NAMES.get(attr_index) if leaf else None,
        mem_type=PTDUMP_MEM_TYPES.get(attr_index) if leaf else None,
        ns=bit(PTE_NS),
        user=bit(PTE_USER),
        rdonly=bit(PTE_RDONLY),
        sh=sh,
        shared=leaf and sh == 0b11,
        af=bit(PTE_AF),
        ng=bit(PTE_NG),
        dbm=bit(PTE_DBM),
        cont=bit(PTE_CONT),
        pxn=bit(PTE_PXN),
        uxn=bit(PTE_UXN),
        dirty=bit(PTE_DIRTY),
        special=bit(PTE_SPECIAL),
        devmap=bit(PTE_DEVMAP),
        prot_none=bit(PTE_PROT_NONE, leaf or kind is DescriptorKind.INVALID),
        pxn_table=bit(TABLE_PXN, table),
        uxn_table=bit(TABLE_UXN, table),
        ap_table=(raw & TABLE_AP_MASK) >> TABLE_AP_SHIFT if table else 0,
        ns_table=bit(TABLE_NS, table),
        unmodelled=0,
    )
    # The layout (which needs the decoded fields for its meanings) says which bits are RES0 or
    # ignored for this kind; those are the bits no encoder produces, kept verbatim.
    mask = 0
    for hi, lo, _name, _meaning, modelled in _layout(d):
        if not modelled:
            mask |= ((1 << (hi - lo + 1)) - 1) << lo
    return dataclasses.replace(d, unmodelled=raw & mask)


# --------------------------------------------------------------------------------------------
# Index helper.
# --------------------------------------------------------------------------------------------


def index(va: int, shift: int, ptrs: int) -> int:
    """Entry index of ``va`` in a table: ``(va >> shift) & (ptrs - 1)``.

    The shape of v5.4 ``pgd_index()``, ``pud_index()``, ``pmd_index()`` and ``pte_index()``;
    ``shift`` is the level's ``*_SHIFT`` and ``ptrs`` its ``PTRS_PER_*`` (a power of two).

    >>> index(0xFFFF_0000_4060_1000, 21, 512)  # PMD_SHIFT, PTRS_PER_PMD on 4K
    3
    """
    va = _check_u64("va", va)
    if type(shift) is not int or not 0 <= shift < 64:
        raise _bad("shift", "a bit position 0..63", shift, "pass the level's *_SHIFT")
    if type(ptrs) is not int or ptrs < 1 or ptrs & (ptrs - 1):
        raise _bad("ptrs", "a power of two (PTRS_PER_*)", ptrs, "pass the table's entry count")
    return (va >> shift) & (ptrs - 1)

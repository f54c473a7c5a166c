"""The bits of an arm64 stage-1 descriptor, under the names Linux v5.4 gives them.

Hardware bits follow ``arch/arm64/include/asm/pgtable-hwdef.h``, the kernel's software bits
``arch/arm64/include/asm/pgtable-prot.h``, the memory-type indexes
``arch/arm64/include/asm/memory.h`` (with the strings v5.4 ``arch/arm64/mm/dump.c`` prints for
them), and the table-descriptor attributes, which v5.4 has no macros for, the ARM ARM.
:class:`DescriptorKind` names what the type bits[1:0] make of a descriptor at a given level.

These are constants and masks only; :mod:`mmkit.arch.pte` re-exports them with the encoders and
the decoder, and is the place to import them from.

>>> hex(PTE_PXN | PTE_UXN), MT_NAMES[MT_NORMAL], PTDUMP_MEM_TYPES[MT_NORMAL]
('0x60000000000000', 'MT_NORMAL', 'MEM/NORMAL')
"""

from __future__ import annotations

import enum

from mmkit.arch.pte_format import _bad

__all__ = [
    "MT_DEVICE_GRE",
    "MT_NAMES",
    "MT_NORMAL",
    "MT_NORMAL_NC",
    "MT_NORMAL_TAGGED",
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
    "PTE_ATTRINDX_SHIFT",
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
    "PTE_SH_MASK",
    "PTE_SH_SHIFT",
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
    "DescriptorKind",
    "MT_DEVICE_nGnRE",
    "MT_DEVICE_nGnRnE",
    "pgprot_tagged",
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


def pgprot_tagged(prot: int) -> int:
    """``pgprot_tagged(prot)`` (v6.1 ``asm/pgtable.h``): ``prot`` with AttrIndx set to
    :data:`MT_NORMAL_TAGGED`."""
    return (prot & ~PTE_ATTRINDX_MASK) | PTE_ATTRINDX(MT_NORMAL_TAGGED)


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
#: ``MT_NORMAL_TAGGED`` (v5.10 on; v6.1 memory.h gives it MAIR index 1): mmkit keeps the
#: v5.4 indexes for every era and gives the tagged type 6, which v5.4 leaves unused. v6.1
#: maps the linear map with ``pgprot_tagged(PAGE_KERNEL)`` (``map_mem``, ``pgprot_mhp``).
MT_NORMAL_TAGGED = 6

MT_NAMES: dict[int, str] = {
    MT_DEVICE_nGnRnE: "MT_DEVICE_nGnRnE",
    MT_DEVICE_nGnRE: "MT_DEVICE_nGnRE",
    MT_DEVICE_GRE: "MT_DEVICE_GRE",
    MT_NORMAL_NC: "MT_NORMAL_NC",
    MT_NORMAL: "MT_NORMAL",
    MT_NORMAL_WT: "MT_NORMAL_WT",
    MT_NORMAL_TAGGED: "MT_NORMAL_TAGGED",
}
PTDUMP_MEM_TYPES: dict[int, str] = {
    MT_DEVICE_nGnRnE: "DEVICE/nGnRnE",
    MT_DEVICE_nGnRE: "DEVICE/nGnRE",
    MT_DEVICE_GRE: "DEVICE/GRE",
    MT_NORMAL_NC: "MEM/NORMAL-NC",
    MT_NORMAL: "MEM/NORMAL",
}

# --------------------------------------------------------------------------------------------
# Descriptor kinds: what the walk makes of bits[1:0] at each level (the module docstring of
# mmkit.arch.pte lists the rules).
# --------------------------------------------------------------------------------------------


class DescriptorKind(enum.Enum):
    """What the hardware makes of a descriptor at a given level."""

    INVALID = "invalid"  #: bit 0 clear: translation fault.
    TABLE = "table"  #: 0b11 at levels 0-2: next-level table.
    BLOCK = "block"  #: 0b01 at a block level: maps a block.
    PAGE = "page"  #: 0b11 at level 3: maps a page.
    RESERVED = "reserved"  #: 0b01 where no block is allowed: treated as invalid.

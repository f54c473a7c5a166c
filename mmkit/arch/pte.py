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

The code lives in sibling modules, one idea each, and everything is re-exported here, which is
the place to import it from:

* :mod:`mmkit.arch.pte_bits`: the bit constants and masks, memory types and descriptor kinds;
* :mod:`mmkit.arch.pte_format`: granule/PA-size/level checks, block levels, the output-address
  field (52-bit PAs) and the table index;
* :mod:`mmkit.arch.pte_encode`: the table, block and page encoders;
* :mod:`mmkit.arch.pte_decode` and :mod:`mmkit.arch.pte_fields`: the decoder and its
  bit-by-bit field table;
* :mod:`mmkit.arch.pte_prot`: the kernel's ``PROT_*``/``PAGE_*`` values (:func:`kernel_prot`).
"""

from __future__ import annotations

from mmkit.arch.pte_bits import (
    MT_DEVICE_GRE,
    MT_NAMES,
    MT_NORMAL,
    MT_NORMAL_NC,
    MT_NORMAL_TAGGED,
    MT_NORMAL_WT,
    PMD_SECT_AF,
    PMD_SECT_CONT,
    PMD_SECT_NG,
    PMD_SECT_PXN,
    PMD_SECT_RDONLY,
    PMD_SECT_S,
    PMD_SECT_USER,
    PMD_SECT_UXN,
    PMD_SECT_VALID,
    PMD_TABLE_BIT,
    PMD_TYPE_MASK,
    PMD_TYPE_SECT,
    PMD_TYPE_TABLE,
    PTDUMP_MEM_TYPES,
    PTE_AF,
    PTE_ATTRINDX,
    PTE_ATTRINDX_MASK,
    PTE_CONT,
    PTE_DBM,
    PTE_DEVMAP,
    PTE_DIRTY,
    PTE_NG,
    PTE_NS,
    PTE_PROT_NONE,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_SPECIAL,
    PTE_TABLE_BIT,
    PTE_TYPE_MASK,
    PTE_TYPE_PAGE,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
    PTE_WRITE,
    TABLE_AP_MASK,
    TABLE_AP_SHIFT,
    TABLE_NS,
    TABLE_PXN,
    TABLE_UXN,
    TABLE_XN,
    DescriptorKind,
    MT_DEVICE_nGnRE,
    MT_DEVICE_nGnRnE,
    pgprot_tagged,
)

# Module attributes of the one-file pte.py that were never in __all__, still reachable here.
from mmkit.arch.pte_bits import PTE_ATTRINDX_SHIFT as PTE_ATTRINDX_SHIFT
from mmkit.arch.pte_bits import PTE_SH_MASK as PTE_SH_MASK
from mmkit.arch.pte_bits import PTE_SH_SHIFT as PTE_SH_SHIFT
from mmkit.arch.pte_decode import Descriptor, decode
from mmkit.arch.pte_encode import encode_block, encode_page, encode_table
from mmkit.arch.pte_fields import BitField
from mmkit.arch.pte_format import (
    addr_mask,
    armv8_block_levels,
    index,
    phys_to_pte_val,
    pte_to_phys,
)
from mmkit.arch.pte_prot import KERNEL_PROT_NAMES, kernel_prot

__all__ = [
    "KERNEL_PROT_NAMES",
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
    "pgprot_tagged",
    "phys_to_pte_val",
    "pte_to_phys",
]

"""Encoders: table, block and page descriptors from an address and attributes.

Each models how Linux v5.4 ``arch/arm64/include/asm/pgtable.h`` makes an entry
(``__pmd_populate()`` for a table, ``pfn_pmd(pfn, mk_pmd_sect_prot(prot))`` for a block,
``pfn_pte()`` for a page) and returns the 64-bit descriptor as an ``int``. ``attrs`` must hold
attribute bits only (see :mod:`mmkit.arch.pte_bits`); anything else raises
:class:`mmkit.errors.InvalidArgument`. Import from :mod:`mmkit.arch.pte`.
"""

from __future__ import annotations

from mmkit.arch.pte_bits import (
    _LEAF_ATTRS,
    PMD_TYPE_SECT,
    PMD_TYPE_TABLE,
    PTE_TYPE_MASK,
    PTE_TYPE_PAGE,
    TABLE_AP_SHIFT,
    TABLE_NS,
    TABLE_PXN,
    TABLE_UXN,
)
from mmkit.arch.pte_format import (
    _bad,
    _check_block_levels,
    _check_format,
    _check_level,
    _check_pa,
    _check_u64,
    _level_shift,
    armv8_block_levels,
    phys_to_pte_val,
)

__all__ = ["encode_block", "encode_page", "encode_table"]


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

    >>> from mmkit.arch.pte import kernel_prot
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

    >>> from mmkit.arch.pte import kernel_prot
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

"""The entry-format hook: how the engine reads and writes one architecture's table entries.

The page-table engine (:mod:`mmkit.pgtable`, :mod:`mmkit.boot`, :mod:`mmkit.mm.vmalloc`)
never tests entry bits itself: it asks the descriptor's **entry format**, a
:class:`PteFormat`. A descriptor offers one as its optional ``pte_format`` attribute (see
:data:`mmkit.plugins.OPTIONAL_ARCH_PARTS`); without it, :func:`pte_format_of` gives the
arm64 format (:class:`Arm64PteFormat`, over :mod:`mmkit.arch.pte`), so a descriptor that
models an arm64 configuration needs nothing more. A format may also have
``describe(raw, level_name) -> str``, the one-line decoding the tree views show in a node's
hover (without it they decode as arm64).

The engine speaks arm64's protection names (``PAGE_KERNEL``, ``PAGE_KERNEL_RO``,
``PAGE_KERNEL_ROX``, ``PROT_SECT_NORMAL``...); a format maps each to its own architecture's
nearest kernel protection (x86: ``PAGE_KERNEL_RX``, ``PAGE_KERNEL_LARGE``...).

>>> from mmkit import arch
>>> fmt = pte_format_of(arch.get("arm64-4k-48"))
>>> hex(fmt.table_entry(0x4000_1000)), fmt.is_table(fmt.table_entry(0x4000_1000), False)
('0x40001003', True)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mmkit.arch import pte as _hw

__all__ = ["Arm64PteFormat", "PteFormat", "pte_format_of"]


@runtime_checkable
class PteFormat(Protocol):
    """What the engine needs from an architecture's entry format (one per descriptor)."""

    #: the bits of an entry that hold the physical address
    addr_mask: int
    #: bits the engine ORs into a leaf to mark a contiguous run (0: no such hint)
    cont_bit: int
    #: ``(mask, value)``: above the leaf level an entry is a table iff ``raw & mask ==
    #: value`` (what :meth:`is_table` answers, in a form numpy can apply to a whole table)
    table_match: tuple[int, int]

    def pa_to_entry(self, pa: int) -> int:
        """Place a physical address in an entry's address field."""
        ...

    def entry_to_pa(self, raw: int) -> int:
        """The physical address an entry holds."""
        ...

    def table_entry(self, pa: int) -> int:
        """A kernel table entry pointing at the table page at ``pa``."""
        ...

    def is_table(self, raw: int, leaf_level: bool) -> bool:
        """Whether ``raw`` points at a lower table (never at the leaf level)."""
        ...

    def is_block(self, raw: int) -> bool:
        """Whether ``raw``, read above the leaf level, maps memory (a block/huge leaf)."""
        ...

    def is_page(self, raw: int) -> bool:
        """Whether ``raw``, read at the leaf level, maps a page (not a reserved encoding)."""
        ...

    def kernel_prot(self, name: str, *, ng: bool = False) -> int:
        """The kernel protection the engine names (arm64's name), in this format;
        ``ng`` asks for a non-global kernel mapping (KPTI / PTI)."""
        ...

    def block_prot(self, prot: int) -> int:
        """A page protection turned into a block/huge-leaf one (``mk_pmd_sect_prot()``)."""
        ...


class Arm64PteFormat:
    """The arm64 format (:mod:`mmkit.arch.pte`): the default for every descriptor."""

    def __init__(self, page_shift: int, pa_bits: int) -> None:
        self.page_shift, self.pa_bits = page_shift, pa_bits
        self.addr_mask = _hw.addr_mask(page_shift, pa_bits)
        self.cont_bit = _hw.PTE_CONT
        self.table_match = (0b11, 0b11)

    def pa_to_entry(self, pa: int) -> int:
        """``__phys_to_pte_val``: with 52-bit PA, PA[51:48] go to bits [15:12]."""
        if self.pa_bits == 52:
            return (pa | (pa >> 36)) & self.addr_mask
        return pa & self.addr_mask

    def entry_to_pa(self, raw: int) -> int:
        """``__pte_to_phys``."""
        if self.pa_bits == 52:
            field = raw & self.addr_mask
            return (field & ~(0xF << 12) & ((1 << 48) - 1)) | ((field & (0xF << 12)) << 36)
        return raw & self.addr_mask

    def table_entry(self, pa: int) -> int:
        """``__pmd_populate`` & co: ``PMD_TYPE_TABLE`` and the table's address."""
        return self.pa_to_entry(pa) | _hw.PMD_TYPE_TABLE

    def is_table(self, raw: int, leaf_level: bool) -> bool:
        """``p?d_table()``: bits[1:0] == 0b11 above the leaf level."""
        return not leaf_level and raw & 0b11 == 0b11

    def is_block(self, raw: int) -> bool:
        """``p?d_sect()``: bits[1:0] == 0b01."""
        return raw & 0b11 == 0b01

    def is_page(self, raw: int) -> bool:
        """A level-3 page descriptor: bits[1:0] == 0b11 (0b01 is reserved there)."""
        return raw & 0b11 == 0b11

    def kernel_prot(self, name: str, *, ng: bool = False) -> int:
        return _hw.kernel_prot(name, ng=ng)

    def block_prot(self, prot: int) -> int:
        """``mk_pmd_sect_prot()``: clear the table bit, keep the entry valid."""
        return (prot & ~_hw.PTE_TABLE_BIT) | _hw.PTE_VALID


def pte_format_of(desc: Any) -> PteFormat:
    """The descriptor's ``pte_format`` if it has one, else the arm64 format for its page
    size and ``pa_bits`` (48 when the descriptor does not say)."""
    fmt = getattr(desc, "pte_format", None)
    if fmt is not None:
        return fmt  # type: ignore[no-any-return]
    geo = getattr(desc, "geometry", None)
    page_shift = geo.page_shift if geo is not None else desc.page_shift
    return Arm64PteFormat(page_shift, getattr(desc, "pa_bits", 48))

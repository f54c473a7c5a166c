"""The x86_64 page-table entry format: bits, kernel protections, encode/decode, ptdump text.

Bits and protections are those of v5.4 ``arch/x86/include/asm/pgtable_types.h``
(``_PAGE_BIT_PRESENT`` 0 ... ``_PAGE_BIT_NX`` 63; ``__PAGE_KERNEL_EXEC`` = P | RW | D | A |
G; ``__PAGE_KERNEL`` adds NX; ``_KERNPG_TABLE`` = P | RW | A | D) with ``sme_me_mask`` 0 (no
memory encryption) and ``__default_kernel_pte_mask`` all ones (no PTI: kernel mappings keep
``_PAGE_GLOBAL``; ``global_=False`` models PTI clearing it). The physical address sits in
bits ``[51:12]`` (``PTE_PFN_MASK`` = ``PHYSICAL_PAGE_MASK`` = ``PAGE_MASK &
__PHYSICAL_MASK``, ``__PHYSICAL_MASK_SHIFT`` 52, ``page_types.h``); a 2 MiB or 1 GiB leaf
(PSE set in a PMD or PUD entry) has it in ``[51:21]`` or ``[51:30]``
(``PHYSICAL_PMD_PAGE_MASK``, ``PHYSICAL_PUD_PAGE_MASK``), bit 12 being ``_PAGE_PAT_LARGE``.
Bit 7 is PSE in a PMD/PUD entry and PAT in a PTE.

The ptdump text is ``printk_prot()`` of v5.4 ``arch/x86/mm/dump_pagetables.c``: fixed-width
tokens ``USR``/``RW|ro``/``PWT``/``PCD``/``PSE``/``PAT``/``GLB``/``NX|x``, then the level name,
and ``note_page()``'s size column; its level numbers run 1 (pgd) to 5 (pte).

>>> v = encode(0x1_0000_0000, kernel_prot("PAGE_KERNEL_LARGE"), "pmd")
>>> hex(v), ptdump_prot(v, "pmd")
('0x80000001000001e3', '    RW         PSE     GLB NX pmd')
>>> decode(v, "pmd").pa == 0x1_0000_0000
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mmkit.errors import InvalidArgument

__all__ = [
    "KERNEL_PROTS",
    "LEVEL_NAMES",
    "PTE_PFN_MASK",
    "X86Pte",
    "X86PteFormat",
    "decode",
    "encode",
    "kernel_prot",
    "pfn_mask",
    "ptdump_columns",
    "ptdump_line",
    "ptdump_prot",
    "ptdump_size",
    "table_entry",
]

_PAGE_PRESENT: Final = 1 << 0
_PAGE_RW: Final = 1 << 1
_PAGE_USER: Final = 1 << 2
_PAGE_PWT: Final = 1 << 3
_PAGE_PCD: Final = 1 << 4
_PAGE_ACCESSED: Final = 1 << 5
_PAGE_DIRTY: Final = 1 << 6
_PAGE_PSE: Final = 1 << 7
_PAGE_PAT: Final = 1 << 7  # the same bit, in a 4K PTE
_PAGE_GLOBAL: Final = 1 << 8
_PAGE_PAT_LARGE: Final = 1 << 12
_PAGE_NX: Final = 1 << 63

#: Every named flag bit, for decoding and the tests.
FLAG_BITS: Final[dict[str, int]] = {
    "_PAGE_PRESENT": _PAGE_PRESENT,
    "_PAGE_RW": _PAGE_RW,
    "_PAGE_USER": _PAGE_USER,
    "_PAGE_PWT": _PAGE_PWT,
    "_PAGE_PCD": _PAGE_PCD,
    "_PAGE_ACCESSED": _PAGE_ACCESSED,
    "_PAGE_DIRTY": _PAGE_DIRTY,
    "_PAGE_PSE": _PAGE_PSE,
    "_PAGE_GLOBAL": _PAGE_GLOBAL,
    "_PAGE_PAT_LARGE": _PAGE_PAT_LARGE,
    "_PAGE_NX": _PAGE_NX,
}

_PHYSICAL_MASK_SHIFT: Final = 52
_PHYSICAL_MASK: Final = (1 << _PHYSICAL_MASK_SHIFT) - 1
#: ``PTE_PFN_MASK``: bits [51:12]
PTE_PFN_MASK: Final = _PHYSICAL_MASK & ~((1 << 12) - 1)

#: Level names top first; ``dump_pagetables.c`` numbers them 1..5 (``level_name[]`` has
#: "cr3" at 0).
LEVEL_NAMES: Final = ("pgd", "p4d", "pud", "pmd", "pte")
_LEVEL_SHIFT: Final = {"pgd": 39, "p4d": 39, "pud": 30, "pmd": 21, "pte": 12}

_KERNEL_EXEC: Final = _PAGE_PRESENT | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_GLOBAL
_KERNEL: Final = _KERNEL_EXEC | _PAGE_NX

#: The kernel protections of v5.4 ``pgtable_types.h`` (``sme_me_mask`` 0).
KERNEL_PROTS: Final[dict[str, int]] = {
    "PAGE_KERNEL": _KERNEL,
    "PAGE_KERNEL_RO": _KERNEL & ~_PAGE_RW,
    "PAGE_KERNEL_EXEC": _KERNEL_EXEC,
    "PAGE_KERNEL_RX": _KERNEL_EXEC & ~_PAGE_RW,
    "PAGE_KERNEL_NOCACHE": _KERNEL | _PAGE_PCD,  # cachemode2protval(UC-) with the default PAT
    "PAGE_KERNEL_LARGE": _KERNEL | _PAGE_PSE,
    "PAGE_KERNEL_LARGE_EXEC": _KERNEL_EXEC | _PAGE_PSE,
    "_KERNPG_TABLE": _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY,
    "_PAGE_TABLE": _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_USER,
}


def kernel_prot(name: str, *, global_: bool = True) -> int:
    """A kernel protection by its macro name; ``global_=False`` applies PTI's
    ``__default_kernel_pte_mask`` (``_PAGE_GLOBAL`` cleared, ``pti_clone_*`` aside).

    >>> hex(kernel_prot("PAGE_KERNEL")), hex(kernel_prot("PAGE_KERNEL", global_=False))
    ('0x8000000000000163', '0x8000000000000063')
    """
    try:
        prot = KERNEL_PROTS[name]
    except (KeyError, TypeError):
        raise InvalidArgument(
            f"x86_64: unknown protection {name!r}", choices=tuple(KERNEL_PROTS)
        ) from None
    if not name.startswith("_") and not global_:
        prot &= ~_PAGE_GLOBAL
    return prot


def _check_level(level: str) -> None:
    if level not in _LEVEL_SHIFT:
        raise InvalidArgument(f"x86_64: unknown page-table level {level!r}", choices=LEVEL_NAMES)


def pfn_mask(value: int, level: str) -> int:
    """The mask of the physical address bits of ``value`` read at ``level``
    (``pmd_pfn_mask()``/``pud_pfn_mask()``: the large-page mask when PSE is set).

    >>> hex(pfn_mask(_PAGE_PSE, "pud")), hex(pfn_mask(0, "pud"))
    ('0xfffffc0000000', '0xffffffffff000')
    """
    _check_level(level)
    if level in ("pmd", "pud") and value & _PAGE_PSE:
        return _PHYSICAL_MASK & ~((1 << _LEVEL_SHIFT[level]) - 1)
    return PTE_PFN_MASK


def table_entry(pa: int) -> int:
    """A kernel table entry pointing at the table page at ``pa`` (``pmd_populate_kernel()``,
    ``pud_populate()``...: ``_KERNPG_TABLE | __pa(table)``)."""
    return encode(pa, KERNEL_PROTS["_KERNPG_TABLE"], "pmd")


def encode(pa: int, prot: int, level: str) -> int:
    """``pfn_pte()`` / ``pfn_pmd()`` / ``pfn_pud()``: ``pa | prot``, both checked.

    ``pa`` must fit ``__PHYSICAL_MASK_SHIFT`` bits and be aligned to what one entry maps
    (a page, or with PSE at a PMD/PUD 2 MiB / 1 GiB); ``prot`` must hold no address bits.
    A PGD or P4D entry is never a leaf (``p4d_large()`` is 0, ``BUILD_BUG_ON`` in
    ``remove_p4d_table()``), so PSE there is refused.
    """
    _check_level(level)
    if not isinstance(pa, int) or not isinstance(prot, int) or isinstance(prot, bool):
        raise InvalidArgument(f"x86_64: pa and prot must be ints, got {pa!r}, {prot!r}")
    if not 0 <= prot < 1 << 64:
        raise InvalidArgument(f"x86_64: prot {prot:#x} is not a 64-bit value")
    if level in ("pgd", "p4d") and prot & _PAGE_PSE:
        raise InvalidArgument(f"x86_64: a {level} entry cannot be a leaf (PSE set)")
    mask = pfn_mask(prot, level)
    if prot & PTE_PFN_MASK & ~(_PAGE_PAT_LARGE if mask != PTE_PFN_MASK else 0):
        raise InvalidArgument(f"x86_64: prot {prot:#x} sets physical-address bits")
    if not 0 <= pa <= _PHYSICAL_MASK or pa & ~mask:
        raise InvalidArgument(
            f"x86_64: physical address {pa!r} is not {~mask & _PHYSICAL_MASK:#x}+1-aligned "
            f"below 2**{_PHYSICAL_MASK_SHIFT}"
        )
    return pa | prot


@dataclass(frozen=True)
class X86Pte:
    """One decoded entry (the flag accessors of ``pgtable.h``: ``pte_present()``,
    ``pte_write()``, ``pmd_large()``...)."""

    value: int
    level: str
    present: bool
    rw: bool
    user: bool
    pwt: bool
    pcd: bool
    accessed: bool
    dirty: bool
    pse: bool  #: a 2 MiB/1 GiB leaf (PMD/PUD entries only)
    pat: bool  #: PAT (bit 7 in a PTE, bit 12 in a large leaf)
    global_: bool
    nx: bool
    pa: int  #: the physical address the entry holds

    @property
    def none(self) -> bool:
        """``pte_none()``: the whole entry is zero."""
        return self.value == 0

    @property
    def leaf(self) -> bool:
        """Maps memory rather than pointing at a table (a PTE, or a PSE PMD/PUD)."""
        return self.present and (self.level == "pte" or self.pse)

    @property
    def table(self) -> bool:
        """Points at a lower-level table page."""
        return self.present and not self.leaf

    @property
    def flags(self) -> int:
        """``pte_flags()``: everything but the address bits."""
        return self.value & ~pfn_mask(self.value, self.level) & ((1 << 64) - 1)


def decode(value: int, level: str) -> X86Pte:
    """Split a 64-bit entry read at ``level`` into its fields."""
    _check_level(level)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise InvalidArgument(f"x86_64: entry {value!r} is not a 64-bit unsigned value")
    large = level in ("pmd", "pud") and bool(value & _PAGE_PSE)
    pat_bit = _PAGE_PAT_LARGE if large else (_PAGE_PAT if level == "pte" else 0)
    return X86Pte(
        value=value,
        level=level,
        present=bool(value & _PAGE_PRESENT),
        rw=bool(value & _PAGE_RW),
        user=bool(value & _PAGE_USER),
        pwt=bool(value & _PAGE_PWT),
        pcd=bool(value & _PAGE_PCD),
        accessed=bool(value & _PAGE_ACCESSED),
        dirty=bool(value & _PAGE_DIRTY),
        pse=large,
        pat=bool(value & pat_bit),
        global_=bool(value & _PAGE_GLOBAL),
        nx=bool(value & _PAGE_NX),
        pa=value & pfn_mask(value, level),
    )


def ptdump_columns(value: int, level: str) -> tuple[str, ...]:
    """``printk_prot()``'s attribute columns, blanks included (empty when not present).

    >>> ptdump_columns(kernel_prot("PAGE_KERNEL"), "pte")
    ('    ', 'RW ', '    ', '    ', '    ', '    ', 'GLB ', 'NX ')
    """
    _check_level(level)
    n = LEVEL_NAMES.index(level) + 1  # dump_pagetables.c's level: 1 = pgd ... 5 = pte
    flags = value & ~pfn_mask(value, level)
    if not flags & _PAGE_PRESENT:
        return ()
    pat = (n == 5 and flags & _PAGE_PAT) or (n in (3, 4) and flags & _PAGE_PAT_LARGE)
    return (
        "USR " if flags & _PAGE_USER else "    ",
        "RW " if flags & _PAGE_RW else "ro ",
        "PWT " if flags & _PAGE_PWT else "    ",
        "PCD " if flags & _PAGE_PCD else "    ",
        "PSE " if n <= 4 and flags & _PAGE_PSE else "    ",
        "PAT " if pat else "    ",
        "GLB " if flags & _PAGE_GLOBAL else "    ",
        "NX " if flags & _PAGE_NX else "x  ",
    )


def ptdump_prot(value: int, level: str) -> str:
    """``printk_prot()``: the attribute columns and the level name, as debugfs prints them.

    A non-present entry prints 30 blanks; ``PSE`` shows at dump levels 1-4 (not in a PTE,
    where bit 7 is PAT); ``PAT`` is bit 7 in a PTE and bit 12 at the PUD and PMD levels.

    >>> ptdump_prot(kernel_prot("PAGE_KERNEL_RX"), "pte")
    '    ro                 GLB x  pte'
    >>> ptdump_prot(0, "pmd")
    '                              pmd'
    """
    return ("".join(ptdump_columns(value, level)) or " " * 30) + level


def ptdump_size(size: int) -> str:
    """``note_page()``'s size column: ``%9lu%c`` in the largest unit of ``BKMGTPE`` that
    divides the size exactly.

    >>> ptdump_size(2 << 20), ptdump_size(3 << 10), ptdump_size(1000)
    ('        2M', '        3K', '     1000B')
    """
    units = "BKMGTPE"
    unit = 0
    while size and not size & 1023 and unit + 1 < len(units):
        size >>= 10
        unit += 1
    return f"{size:9d}{units[unit]}"


def ptdump_line(start: int, end: int, value: int, level: str) -> str:
    """One line of ``/sys/kernel/debug/page_tables/kernel`` (``note_page()``).

    >>> ptdump_line(0xffff888000000000, 0xffff888040000000,
    ...             kernel_prot("PAGE_KERNEL_LARGE"), "pud")
    '0xffff888000000000-0xffff888040000000           1G     RW         PSE     GLB NX pud'
    """
    return f"0x{start:016x}-0x{end:016x}   {ptdump_size(end - start)} {ptdump_prot(value, level)}"


#: The engine names protections as arm64 does; their x86 counterparts (pgtable_types.h).
_ENGINE_PROT_NAMES: Final[dict[str, str]] = {
    "PAGE_KERNEL_ROX": "PAGE_KERNEL_RX",
    "PROT_SECT_NORMAL": "PAGE_KERNEL_LARGE",
    "PROT_SECT_NORMAL_EXEC": "PAGE_KERNEL_LARGE_EXEC",
}


class X86PteFormat:
    """This format as the engine's entry-format hook (:class:`mmkit.arch.pte_api.PteFormat`).

    A table entry is present without PSE (``pmd_large()`` false), a block is a present PMD
    or PUD entry with PSE; there is no contiguous hint. ``block_prot()`` adds PSE, as
    ``phys_pmd_init()`` does with ``pgprot_large``/``__PAGE_KERNEL_LARGE``. Addresses read
    through ``PTE_PFN_MASK``: for a large leaf the engine rounds them down to the leaf size
    itself, and kernel protections never set ``_PAGE_PAT_LARGE``.

    >>> fmt = X86PteFormat()
    >>> raw = fmt.table_entry(0x5000)
    >>> fmt.is_table(raw, False), fmt.is_block(raw), hex(raw)
    (True, False, '0x5063')
    >>> fmt.is_block(fmt.pa_to_entry(1 << 21) | fmt.block_prot(fmt.kernel_prot("PAGE_KERNEL")))
    True
    """

    addr_mask: int = PTE_PFN_MASK
    cont_bit: int = 0
    #: present and not PSE (``pmd_large()`` false): a table
    table_match: tuple[int, int] = (_PAGE_PRESENT | _PAGE_PSE, _PAGE_PRESENT)

    def pa_to_entry(self, pa: int) -> int:
        return pa & PTE_PFN_MASK

    def entry_to_pa(self, raw: int) -> int:
        return raw & PTE_PFN_MASK

    def table_entry(self, pa: int) -> int:
        return table_entry(pa)

    def is_table(self, raw: int, leaf_level: bool) -> bool:
        return not leaf_level and bool(raw & _PAGE_PRESENT) and not raw & _PAGE_PSE

    def is_block(self, raw: int) -> bool:
        return bool(raw & _PAGE_PRESENT) and bool(raw & _PAGE_PSE)

    def is_page(self, raw: int) -> bool:
        return bool(raw & _PAGE_PRESENT)  # bit 7 of a PTE is PAT, not PSE

    def kernel_prot(self, name: str, *, ng: bool = False) -> int:
        return kernel_prot(_ENGINE_PROT_NAMES.get(name, name), global_=not ng)

    def block_prot(self, prot: int) -> int:
        return prot | _PAGE_PSE

    def describe(self, raw: int, level: str) -> str:
        """One line for a tree node's hover: the value, what it is, the address, the flags
        as ptdump prints them.

        >>> X86PteFormat().describe(0x80000001000001E3, "pmd")
        'entry 0x80000001000001e3: pmd leaf, pa 0x100000000, RW PSE GLB NX'
        """
        d = decode(raw, level)
        kind = "none" if d.none else "table" if d.table else "leaf" if d.leaf else "not present"
        flags = " ".join(ptdump_prot(raw, level).split()[:-1])
        return f"entry {raw:#018x}: {level} {kind}, pa {d.pa:#x}" + (f", {flags}" if flags else "")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

"""Decoding: a 64-bit descriptor read into a frozen :class:`Descriptor`.

:func:`decode` sorts a descriptor into a :class:`~mmkit.arch.pte_bits.DescriptorKind` by the
architecture's walk rules (and Linux v5.4 ``pmd_table()``/``pmd_sect()`` in
``arch/arm64/include/asm/pgtable.h``) and reads every field the kind gives meaning to, with the
``pte_*()`` accessors' names. A :class:`Descriptor` re-encodes itself (:meth:`Descriptor.encode`)
and lists itself bit by bit (:meth:`Descriptor.fields`, from :mod:`mmkit.arch.pte_fields`).
Import from :mod:`mmkit.arch.pte`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mmkit._readable import record_repr
from mmkit.arch.pte_bits import (
    MT_NAMES,
    PMD_TYPE_TABLE,
    PTDUMP_MEM_TYPES,
    PTE_AF,
    PTE_ATTRINDX_MASK,
    PTE_ATTRINDX_SHIFT,
    PTE_CONT,
    PTE_DBM,
    PTE_DEVMAP,
    PTE_DIRTY,
    PTE_NG,
    PTE_NS,
    PTE_PROT_NONE,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SH_MASK,
    PTE_SH_SHIFT,
    PTE_SPECIAL,
    PTE_TYPE_MASK,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
    TABLE_AP_MASK,
    TABLE_AP_SHIFT,
    TABLE_NS,
    TABLE_PXN,
    TABLE_UXN,
    DescriptorKind,
)
from mmkit.arch.pte_encode import encode_block, encode_page, encode_table
from mmkit.arch.pte_fields import BitField, _layout
from mmkit.arch.pte_format import (
    _bad,
    _check_block_levels,
    _check_format,
    _check_level,
    _check_u64,
    _level_shift,
    pte_to_phys,
)

__all__ = ["Descriptor", "decode"]


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

    def __repr__(self) -> str:
        """``raw``, the output address and the unmodelled bits in hex; None fields left out."""
        return record_repr(self, ("raw", "output_address", "unmodelled"))

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

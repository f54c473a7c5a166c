"""The bit-by-bit field table behind :meth:`Descriptor.fields <mmkit.arch.pte.Descriptor.fields>`.

For each :class:`~mmkit.arch.pte_bits.DescriptorKind`, ``_layout()`` lists the bit ranges
0..63 once each, low to high, with a name (the ARM ARM's field names, and Linux v5.4's
``arch/arm64/include/asm/pgtable-prot.h`` names for the kernel's software bits), what the
field means in this descriptor, and whether the decoder models it. The bits it does not model
(RES0 and ignored bits) are the ones :func:`~mmkit.arch.pte.decode` keeps verbatim in
``Descriptor.unmodelled``. Each range reads as a :class:`BitField`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmkit.arch.pte_bits import DescriptorKind
from mmkit.arch.pte_format import _level_shift

if TYPE_CHECKING:
    from mmkit.arch.pte_decode import Descriptor

__all__ = ["BitField"]


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

"""Tests for mmkit.arch.pte: the arm64 stage-1 VMSAv8-64 descriptor format.

Expected values are written out bit by bit from the architecture (ARM ARM "VMSAv8-64
translation table format descriptors") and from Linux v5.4 pgtable-hwdef.h/pgtable-prot.h, not
computed with the code under test.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkit.arch import pte
from mmkit.arch.pte import (
    Descriptor,
    DescriptorKind,
    armv8_block_levels,
    decode,
    encode_block,
    encode_page,
    encode_table,
    index,
    kernel_prot,
)
from mmkit.errors import InvalidArgument

U64 = 1 << 64


def bits(hi: int, lo: int) -> int:
    """Mask of bits [hi:lo], written independently of the module under test."""
    return ((1 << (hi - lo + 1)) - 1) << lo


# (page_shift, pa_bits) combinations the architecture and v5.4 Kconfig allow.
FORMATS = [(12, 48), (14, 48), (16, 48), (16, 52)]
# Hardware levels that exist per granule: 64K has no level 0 lookup.
LEVELS = {12: (0, 1, 2, 3), 14: (0, 1, 2, 3), 16: (1, 2, 3)}
# Leaf attribute bits: lower [11:2] and upper [58:51] (DBM..PTE_PROT_NONE).
LEAF_ATTRS = bits(11, 2) | bits(58, 51)
TABLE_ATTRS = bits(63, 59)


def block_shift(level: int, page_shift: int) -> int:
    # Each level resolves page_shift - 3 bits: 4K L2 = 21, L1 = 30; 16K L2 = 25; 64K L2 = 29.
    return (page_shift - 3) * (4 - level) + 3


formats = st.sampled_from(FORMATS)


@st.composite
def aligned_pa(draw: st.DrawFn, align_shift: int, pa_bits: int) -> int:
    return draw(st.integers(0, (1 << (pa_bits - align_shift)) - 1)) << align_shift


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


def test_bit_positions_match_v54_pgtable_hwdef():
    assert pte.PTE_VALID == 1 << 0
    assert pte.PTE_TABLE_BIT == 1 << 1
    assert pte.PTE_ATTRINDX(7) == 0b111 << 2 == pte.PTE_ATTRINDX_MASK
    assert pte.PTE_NS == 1 << 5
    assert pte.PTE_USER == 1 << 6
    assert pte.PTE_RDONLY == 1 << 7
    assert pte.PTE_SHARED == 0b11 << 8
    assert pte.PTE_AF == 1 << 10
    assert pte.PTE_NG == 1 << 11
    assert pte.PTE_DBM == pte.PTE_WRITE == 1 << 51
    assert pte.PTE_CONT == 1 << 52
    assert pte.PTE_PXN == 1 << 53
    assert pte.PTE_UXN == 1 << 54
    assert pte.PTE_DIRTY == 1 << 55
    assert pte.PTE_SPECIAL == 1 << 56
    assert pte.PTE_DEVMAP == 1 << 57
    assert pte.PTE_PROT_NONE == 1 << 58
    assert pte.TABLE_PXN == 1 << 59
    assert pte.TABLE_UXN == pte.TABLE_XN == 1 << 60
    assert pte.TABLE_AP_MASK == 0b11 << 61
    assert pte.TABLE_NS == 1 << 63
    assert (pte.PMD_TYPE_SECT, pte.PMD_TYPE_TABLE, pte.PTE_TYPE_PAGE) == (0b01, 0b11, 0b11)


def test_memory_types_match_v54_memory_h_and_dump_c():
    assert (pte.MT_DEVICE_nGnRnE, pte.MT_DEVICE_nGnRE, pte.MT_DEVICE_GRE) == (0, 1, 2)
    assert (pte.MT_NORMAL_NC, pte.MT_NORMAL, pte.MT_NORMAL_WT) == (3, 4, 5)
    assert pte.PTDUMP_MEM_TYPES == {
        0: "DEVICE/nGnRnE",
        1: "DEVICE/nGnRE",
        2: "DEVICE/GRE",
        3: "MEM/NORMAL-NC",
        4: "MEM/NORMAL",
    }


# v5.4 pgtable-prot.h, composed by hand:
#   PROT_DEFAULT = PTE_TYPE_PAGE(0b11) | PTE_AF(1<<10) | PTE_SHARED(0b11<<8)         = 0x703
#   PROT_NORMAL  = PROT_DEFAULT | PXN(1<<53) | UXN(1<<54) | WRITE(1<<51) | (4 << 2)
#   PROT_SECT_DEFAULT = PMD_TYPE_SECT(0b01) | AF | S                                  = 0x701
_XN_WRITE = (1 << 53) | (1 << 54) | (1 << 51)
PROT_EXPECTED = {
    "PROT_DEFAULT": 0x703,
    "PROT_SECT_DEFAULT": 0x701,
    "PROT_DEVICE_nGnRnE": 0x703 | _XN_WRITE | (0 << 2),
    "PROT_DEVICE_nGnRE": 0x703 | _XN_WRITE | (1 << 2),
    "PROT_NORMAL_NC": 0x703 | _XN_WRITE | (3 << 2),
    "PROT_NORMAL_WT": 0x703 | _XN_WRITE | (5 << 2),
    "PROT_NORMAL": 0x703 | _XN_WRITE | (4 << 2),
    "PROT_SECT_DEVICE_nGnRE": 0x701 | (1 << 53) | (1 << 54) | (1 << 2),
    "PROT_SECT_NORMAL": 0x701 | (1 << 53) | (1 << 54) | (4 << 2),
    "PROT_SECT_NORMAL_EXEC": 0x701 | (1 << 54) | (4 << 2),
    "PAGE_KERNEL": 0x703 | _XN_WRITE | (4 << 2),
    "PAGE_KERNEL_RO": 0x703 | (1 << 53) | (1 << 54) | (1 << 7) | (4 << 2),
    "PAGE_KERNEL_ROX": 0x703 | (1 << 54) | (1 << 7) | (4 << 2),
    "PAGE_KERNEL_EXEC": 0x703 | (1 << 54) | (1 << 51) | (4 << 2),
    "PAGE_KERNEL_EXEC_CONT": 0x703 | (1 << 54) | (1 << 51) | (1 << 52) | (4 << 2),
}


def test_page_kernel_literal_value():
    # The value a v5.4 4K kernel without KPTI puts in its linear-map ptes.
    assert kernel_prot("PAGE_KERNEL") == 0x0068_0000_0000_0713
    assert kernel_prot("PAGE_KERNEL", ng=True) == 0x0068_0000_0000_0F13


@pytest.mark.parametrize("name", sorted(PROT_EXPECTED))
def test_kernel_prot_values(name):
    assert kernel_prot(name) == PROT_EXPECTED[name]
    # PTE_MAYBE_NG / PMD_MAYBE_NG add nG (bit 11) to every one of these.
    assert kernel_prot(name, ng=True) == PROT_EXPECTED[name] | (1 << 11)
    # mk_pmd_sect_prot(): clear bit 1, set bit 0.
    assert kernel_prot(name, block=True) == (PROT_EXPECTED[name] & ~0b10) | 0b01


def test_kernel_prot_names_enumerable():
    assert set(pte.KERNEL_PROT_NAMES) == set(PROT_EXPECTED)
    for required in (
        "PROT_DEFAULT",
        "PAGE_KERNEL",
        "PAGE_KERNEL_RO",
        "PAGE_KERNEL_ROX",
        "PAGE_KERNEL_EXEC",
        "PROT_SECT_NORMAL",
        "PROT_SECT_NORMAL_EXEC",
        "PROT_DEVICE_nGnRE",
    ):
        assert required in pte.KERNEL_PROT_NAMES


def test_prot_sect_normal_2mib_block_4k():
    expected = (
        (1 << 0)  # valid
        | (0 << 1)  # block
        | (4 << 2)  # AttrIndx = MT_NORMAL
        | (0b11 << 8)  # SH inner shareable
        | (1 << 10)  # AF
        | 0x4000_0000  # OA[47:21]
        | (1 << 53)  # PXN
        | (1 << 54)  # UXN
    )
    assert expected == 0x0060_0000_4000_0711
    raw = encode_block(0x4000_0000, kernel_prot("PROT_SECT_NORMAL"), level=2, page_shift=12)
    assert raw == expected
    d = decode(raw, 2, page_shift=12, block_levels=frozenset({1, 2}))
    assert d.kind is DescriptorKind.BLOCK
    assert d.output_address == 0x4000_0000
    assert (d.attr_index, d.mt_name, d.mem_type) == (4, "MT_NORMAL", "MEM/NORMAL")
    assert (d.sh, d.shared, d.af, d.pxn, d.uxn) == (3, True, True, True, True)
    assert not (d.user or d.rdonly or d.ng or d.dbm or d.cont or d.ns)
    assert d.unmodelled == 0


def test_page_kernel_page_4k():
    raw = encode_page(0x8123_4000, kernel_prot("PAGE_KERNEL"), page_shift=12)
    assert raw == 0x0068_0000_8123_4713
    d = decode(raw, 3, page_shift=12, block_levels=frozenset({1, 2}))
    assert d.kind is DescriptorKind.PAGE and d.write and d.dbm and not d.rdonly


def test_table_descriptor_bits():
    raw = encode_table(
        0x1234_5000,
        level=0,
        page_shift=12,
        pxn_table=True,
        uxn_table=True,
        ap_table=0b10,
        ns_table=True,
    )
    assert raw == 0x1234_5000 | 0b11 | (1 << 59) | (1 << 60) | (0b10 << 61) | (1 << 63)
    d = decode(raw, 0, page_shift=12, block_levels=frozenset({1, 2}))
    assert d.kind is DescriptorKind.TABLE and d.output_address == 0x1234_5000
    assert (d.pxn_table, d.uxn_table, d.ap_table, d.ns_table) == (True, True, 2, True)
    assert d.mem_type is None and d.attr_index == 0


def test_52bit_pa_on_64k_puts_pa_51_48_in_bits_15_12():
    pa = 0x000F_0000_0001_0000
    raw = encode_page(pa, 0, page_shift=16, pa_bits=52)
    assert (raw >> 12) & 0xF == 0xF
    assert raw == 0x1_0000 | (0xF << 12) | 0b11
    assert (
        decode(raw, 3, page_shift=16, pa_bits=52, block_levels=frozenset({2})).output_address == pa
    )
    # Same bits read with 48-bit PAs: [15:12] are RES0, the address loses PA[51:48].
    d48 = decode(raw, 3, page_shift=16, pa_bits=48, block_levels=frozenset({2}))
    assert d48.output_address == 0x1_0000 and d48.unmodelled == 0xF << 12
    # A 4 TiB level-1 block at the top of the 52-bit space (ARMv8.2-LPA only).
    top = 0xF << 48
    raw = encode_block(top, kernel_prot("PROT_SECT_NORMAL"), level=1, page_shift=16, pa_bits=52)
    assert raw == (0xF << 12) | 0x0060_0000_0000_0711


def test_pte_to_phys_and_back_52bit():
    pa = 0x000A_BC00_0001_0000
    assert pte.phys_to_pte_val(pa, page_shift=16, pa_bits=52) == 0x0000_BC00_0001_0000 | (0xA << 12)
    assert (
        pte.pte_to_phys(0xF000 | 0x2_0000 | 0x703, page_shift=16, pa_bits=52)
        == (0xF << 48) | 0x2_0000
    )


@pytest.mark.parametrize(
    ("page_shift", "pa_bits", "levels"),
    [(12, 48, {1, 2}), (14, 48, {2}), (16, 48, {2}), (16, 52, {1, 2})],
)
def test_armv8_block_levels(page_shift, pa_bits, levels):
    assert armv8_block_levels(page_shift, pa_bits) == frozenset(levels)


@pytest.mark.parametrize(
    ("page_shift", "level", "size"),
    [
        (12, 1, 1 << 30),  # 1 GiB
        (12, 2, 2 << 20),  # 2 MiB
        (14, 2, 32 << 20),  # 32 MiB
        (16, 2, 512 << 20),  # 512 MiB
    ],
)
def test_block_alignment_is_the_block_size(page_shift, level, size):
    prot = kernel_prot("PROT_SECT_NORMAL")
    assert encode_block(size, prot, level=level, page_shift=page_shift) & bits(47, 12) == size
    with pytest.raises(InvalidArgument):
        encode_block(size // 2, prot, level=level, page_shift=page_shift)


@pytest.mark.parametrize(
    ("low_bits", "level", "block_levels", "kind"),
    [
        (0b00, 2, {1, 2}, DescriptorKind.INVALID),
        (0b10, 1, {1, 2}, DescriptorKind.INVALID),
        (0b11, 0, {1, 2}, DescriptorKind.TABLE),
        (0b11, 2, {1, 2}, DescriptorKind.TABLE),
        (0b11, 3, {1, 2}, DescriptorKind.PAGE),
        (0b01, 1, {1, 2}, DescriptorKind.BLOCK),
        (0b01, 2, {1, 2}, DescriptorKind.BLOCK),
        (0b01, 0, {1, 2}, DescriptorKind.RESERVED),  # 4K level 0 holds no blocks (ARMv8.0)
        (0b01, 0, {0, 1, 2}, DescriptorKind.BLOCK),  # ...unless the caller says it may
        (0b01, 3, {0, 1, 2}, DescriptorKind.RESERVED),  # never a block at level 3
    ],
)
def test_descriptor_kind(low_bits, level, block_levels, kind):
    d = decode(low_bits, level, page_shift=12, block_levels=frozenset(block_levels))
    assert d.kind is kind
    assert (d.output_address is None) == (kind in (DescriptorKind.INVALID, DescriptorKind.RESERVED))


def test_unmodelled_bits_are_named():
    # 16K page: [13:12] RES0, [50:48] RES0, [63:59] ignored. All preserved in raw/unmodelled.
    extra = (1 << 12) | (1 << 49) | (1 << 62)
    raw = encode_page(0x4000, kernel_prot("PAGE_KERNEL"), page_shift=14) | extra
    d = decode(raw, 3, page_shift=14, block_levels=frozenset({2}))
    assert d.unmodelled == extra and d.raw == raw and d.encode() == raw
    names = {f.bits: f.name for f in d.fields()}
    assert names["[13:12]"] == names["[50:48]"] == "RES0"
    assert names["[62:59]"] == names["[63]"] == "IGNORED"


def test_fields_of_page_kernel_page():
    raw = encode_page(0x8123_4000, kernel_prot("PAGE_KERNEL"), page_shift=12)
    d = decode(raw, 3, page_shift=12, block_levels=frozenset({1, 2}))
    got = {f.name: (f.bits, f.value) for f in d.fields()}
    assert got["VALID"] == ("[0]", 1)
    assert got["TABLE_BIT"] == ("[1]", 1)
    assert got["AttrIndx"] == ("[4:2]", 4)
    assert got["SH"] == ("[9:8]", 3)
    assert got["AF"] == ("[10]", 1)
    assert got["OA[47:12]"] == ("[47:12]", 0x8_1234)
    assert got["DBM/PTE_WRITE"] == ("[51]", 1)
    assert got["PXN"] == ("[53]", 1) and got["UXN"] == ("[54]", 1)
    assert "MT_NORMAL" in next(f.meaning for f in d.fields() if f.name == "AttrIndx")


def test_invalid_prot_none_entry():
    # PAGE_NONE (v5.4): _PAGE_DEFAULT without VALID, plus PROT_NONE|RDONLY|NG|PXN|UXN.
    page_none = (0x703 | (4 << 2)) & ~1 | (1 << 58) | (1 << 7) | (1 << 11) | (1 << 53) | (1 << 54)
    d = decode(page_none, 3, page_shift=12, block_levels=frozenset({1, 2}))
    assert d.kind is DescriptorKind.INVALID and d.prot_none and d.output_address is None
    assert d.unmodelled == page_none & ~(1 << 58)
    with pytest.raises(InvalidArgument):
        d.encode()


def test_decode_result_is_frozen():
    d = decode(0x703, 3, page_shift=12, block_levels=frozenset({1, 2}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.raw = 0  # type: ignore[misc]


def test_index():
    va = 0xFFFF_0000_0000_0000 | (5 << 39) | (7 << 30) | (9 << 21) | (11 << 12) | 0x123
    assert [index(va, s, 512) for s in (39, 30, 21, 12)] == [5, 7, 9, 11]
    assert index(va, 48, 1) == 0


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------


@given(st.data(), formats)
def test_table_round_trip(data, fmt):
    page_shift, pa_bits = fmt
    level = data.draw(st.sampled_from([lv for lv in LEVELS[page_shift] if lv < 3]))
    pa = data.draw(aligned_pa(page_shift, pa_bits))
    tattrs = {
        "pxn_table": data.draw(st.booleans()),
        "uxn_table": data.draw(st.booleans()),
        "ap_table": data.draw(st.integers(0, 3)),
        "ns_table": data.draw(st.booleans()),
    }
    raw = encode_table(pa, level=level, page_shift=page_shift, pa_bits=pa_bits, **tattrs)
    assert raw & 0b11 == 0b11
    d = decode(raw, level, page_shift=page_shift, pa_bits=pa_bits, block_levels=frozenset())
    assert d.kind is DescriptorKind.TABLE and d.output_address == pa and d.unmodelled == 0
    assert {k: getattr(d, k) for k in tattrs} == tattrs
    again = encode_table(
        d.output_address,
        level=level,
        page_shift=page_shift,
        pa_bits=pa_bits,
        pxn_table=d.pxn_table,
        uxn_table=d.uxn_table,
        ap_table=d.ap_table,
        ns_table=d.ns_table,
    )
    assert again == raw == d.encode()


@given(st.data(), formats, st.integers(0, U64 - 1), st.booleans())
def test_block_round_trip(data, fmt, attr_noise, with_type):
    page_shift, pa_bits = fmt
    level = data.draw(st.sampled_from([lv for lv in LEVELS[page_shift] if lv < 3]))
    pa = data.draw(aligned_pa(block_shift(level, page_shift), pa_bits))
    attrs = attr_noise & LEAF_ATTRS
    given_attrs = attrs | (0b01 if with_type else 0)
    levels = frozenset({level})
    kw = {"page_shift": page_shift, "pa_bits": pa_bits}
    raw = encode_block(pa, given_attrs, level=level, block_levels=levels, **kw)
    assert raw & 0b11 == 0b01
    d = decode(raw, level, block_levels=levels, **kw)
    assert d.kind is DescriptorKind.BLOCK
    assert d.output_address == pa and d.attrs == attrs and d.unmodelled == 0
    assert encode_block(d.output_address, d.attrs, level=level, block_levels=levels, **kw) == raw
    assert d.encode() == raw


@given(st.data(), formats, st.integers(0, U64 - 1), st.booleans())
def test_page_round_trip(data, fmt, attr_noise, with_type):
    page_shift, pa_bits = fmt
    pa = data.draw(aligned_pa(page_shift, pa_bits))
    attrs = attr_noise & LEAF_ATTRS
    kw = {"page_shift": page_shift, "pa_bits": pa_bits}
    raw = encode_page(pa, attrs | (0b11 if with_type else 0), **kw)
    d = decode(raw, 3, block_levels=frozenset({2}), **kw)
    assert d.kind is DescriptorKind.PAGE
    assert d.output_address == pa and d.attrs == attrs and d.unmodelled == 0
    # Every modelled leaf bit, read back through the named booleans.
    assert d.user == bool(attrs & (1 << 6)) and d.rdonly == bool(attrs & (1 << 7))
    assert d.af == bool(attrs & (1 << 10)) and d.ng == bool(attrs & (1 << 11))
    assert d.sh == (attrs >> 8) & 3 and d.attr_index == (attrs >> 2) & 7
    assert d.dbm == bool(attrs & (1 << 51)) and d.cont == bool(attrs & (1 << 52))
    assert d.pxn == bool(attrs & (1 << 53)) and d.uxn == bool(attrs & (1 << 54))
    assert d.dirty == bool(attrs & (1 << 55)) and d.special == bool(attrs & (1 << 56))
    assert d.devmap == bool(attrs & (1 << 57)) and d.prot_none == bool(attrs & (1 << 58))
    assert encode_page(d.output_address, d.attrs, **kw) == raw == d.encode()


def expected_unmodelled_mask(kind: DescriptorKind, level: int, page_shift: int, pa_bits: int):
    """Bits no encoder produces, per the architecture (ARMv8.0-8.4, no LPA2)."""
    below_granule = bits(page_shift - 1, 12) if (page_shift > 12 and pa_bits == 48) else 0
    if kind is DescriptorKind.TABLE:
        return bits(11, 2) | bits(51, 48) | bits(58, 52) | below_granule
    if kind is DescriptorKind.PAGE:
        return bits(50, 48) | bits(63, 59) | below_granule
    if kind is DescriptorKind.BLOCK:
        return (
            bits(50, 48)
            | bits(63, 59)
            | below_granule
            | bits(block_shift(level, page_shift) - 1, page_shift)
        )
    if kind is DescriptorKind.INVALID:
        return (U64 - 1) & ~(1 << 58)  # only PTE_PROT_NONE is decoded
    return (U64 - 1) & ~0b11  # RESERVED: only the type bits mean anything


@given(
    st.integers(0, U64 - 1),
    formats,
    st.data(),
    st.frozensets(st.sampled_from([0, 1, 2])),
)
def test_decode_any_raw(raw, fmt, data, block_levels):
    page_shift, pa_bits = fmt
    level = data.draw(st.sampled_from(LEVELS[page_shift]))
    d = decode(raw, level, page_shift=page_shift, pa_bits=pa_bits, block_levels=block_levels)
    assert d.raw == raw
    assert d.unmodelled == raw & expected_unmodelled_mask(d.kind, level, page_shift, pa_bits)
    # The fields partition bits 0..63 and carry exactly the raw value.
    covered = 0
    rebuilt = 0
    for f in d.fields():
        assert f.mask & covered == 0
        covered |= f.mask
        rebuilt |= f.value << f.lo
        assert f.bits.startswith("[") and f.meaning
    assert covered == U64 - 1 and rebuilt == raw
    if d.kind in (DescriptorKind.TABLE, DescriptorKind.BLOCK, DescriptorKind.PAGE):
        assert d.output_address is not None and d.output_address < 1 << pa_bits
        assert d.encode() == raw
    if d.kind in (DescriptorKind.BLOCK, DescriptorKind.PAGE):
        kw = {"page_shift": page_shift, "pa_bits": pa_bits}
        if d.kind is DescriptorKind.PAGE:
            clean = encode_page(d.output_address, d.attrs, **kw)
        else:
            clean = encode_block(
                d.output_address, d.attrs, level=level, block_levels=frozenset({level}), **kw
            )
        assert clean & d.unmodelled == 0 and clean | d.unmodelled == raw


@given(st.integers(0, U64 - 1), st.integers(0, 63), st.sampled_from([1 << k for k in range(14)]))
def test_index_property(va, shift, ptrs):
    assert 0 <= index(va, shift, ptrs) < ptrs
    assert index(va, shift, ptrs) == (va // (1 << shift)) % ptrs


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

B12 = frozenset({1, 2})
SECT = 0x0060_0000_0000_0711  # PROT_SECT_NORMAL, written out

BAD_CALLS = {
    "raw negative": lambda: decode(-1, 3, page_shift=12, block_levels=B12),
    "raw too big": lambda: decode(U64, 3, page_shift=12, block_levels=B12),
    "raw not int": lambda: decode(1.0, 3, page_shift=12, block_levels=B12),
    "level 4": lambda: decode(0, 4, page_shift=12, block_levels=B12),
    "level -1": lambda: decode(0, -1, page_shift=12, block_levels=B12),
    "level 0 on 64K": lambda: decode(0, 0, page_shift=16, block_levels=frozenset({2})),
    "page_shift 13": lambda: decode(0, 3, page_shift=13, block_levels=B12),
    "pa_bits 40": lambda: decode(0, 3, page_shift=12, pa_bits=40, block_levels=B12),
    "52-bit on 4K": lambda: decode(0, 3, page_shift=12, pa_bits=52, block_levels=B12),
    "52-bit on 16K": lambda: encode_page(0, 0, page_shift=14, pa_bits=52),
    "block_levels with 3": lambda: decode(0, 3, page_shift=12, block_levels=frozenset({3})),
    "block_levels not a set": lambda: decode(0, 3, page_shift=12, block_levels=[1, 2]),
    "page misaligned": lambda: encode_page(0x1800, 0, page_shift=12),
    "page misaligned 64K": lambda: encode_page(0x1000, 0, page_shift=16),
    "page pa >= 2**48": lambda: encode_page(1 << 48, 0, page_shift=12),
    "page pa >= 2**52": lambda: encode_page(1 << 52, 0, page_shift=16, pa_bits=52),
    "page pa negative": lambda: encode_page(-4096, 0, page_shift=12),
    "block misaligned": lambda: encode_block(0x1000, SECT, level=2, page_shift=12),
    "block at level 3": lambda: encode_block(0, SECT, level=3, page_shift=12),
    "block at 4K level 0": lambda: encode_block(0, SECT, level=0, page_shift=12),
    "block at 16K level 1": lambda: encode_block(0, SECT, level=1, page_shift=14),
    "block at 64K L1, 48-bit": lambda: encode_block(0, SECT, level=1, page_shift=16),
    "block not in block_levels": lambda: encode_block(
        0, SECT, level=2, page_shift=12, block_levels=frozenset({1})
    ),
    "block pa >= 2**48": lambda: encode_block(1 << 48, SECT, level=2, page_shift=12),
    "attrs overlap address": lambda: encode_page(0, 1 << 12, page_shift=12),
    "attrs overlap 52-bit PA": lambda: encode_page(0, 1 << 13, page_shift=16, pa_bits=52),
    "attrs RES0 bit 48": lambda: encode_page(0, 1 << 48, page_shift=12),
    "attrs ignored bit 63": lambda: encode_page(0, 1 << 63, page_shift=12),
    "attrs negative": lambda: encode_page(0, -1, page_shift=12),
    "page prot on block": lambda: encode_block(0, 0x0068_0000_0000_0713, level=2, page_shift=12),
    "block prot on page": lambda: encode_page(0, SECT, page_shift=12),
    "attrs type 0b10": lambda: encode_page(0, 0b10, page_shift=12),
    "table at level 3": lambda: encode_table(0, level=3, page_shift=12),
    "table misaligned": lambda: encode_table(0x800, level=1, page_shift=12),
    "table pa >= 2**48": lambda: encode_table(1 << 48, level=1, page_shift=12),
    "table ap_table 4": lambda: encode_table(0, level=1, page_shift=12, ap_table=4),
    "table level 0 on 64K": lambda: encode_table(0, level=0, page_shift=16),
    "PTE_ATTRINDX 8": lambda: pte.PTE_ATTRINDX(8),
    "index ptrs 3": lambda: index(0, 12, 3),
    "index ptrs 0": lambda: index(0, 12, 0),
    "index shift 64": lambda: index(0, 64, 512),
    "index va negative": lambda: index(-1, 12, 512),
    "armv8_block_levels 13": lambda: armv8_block_levels(13),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_invalid_argument(case):
    prot_before = {n: kernel_prot(n) for n in pte.KERNEL_PROT_NAMES}
    with pytest.raises(InvalidArgument) as info:
        BAD_CALLS[case]()
    message = str(info.value)
    assert info.value.errno_name == "EINVAL"
    assert "expected" in message and "found" in message and "fix" in message, message
    # Pure functions: a failed call leaves every shared value as it was.
    assert {n: kernel_prot(n) for n in pte.KERNEL_PROT_NAMES} == prot_before


def test_unknown_kernel_prot_lists_choices():
    with pytest.raises(InvalidArgument) as info:
        kernel_prot("PAGE_KERNEL_WX")
    assert info.value.choices == pte.KERNEL_PROT_NAMES
    assert "PAGE_KERNEL_WX" in str(info.value)


def test_descriptor_encode_of_reserved_raises():
    d = decode(0b01, 3, page_shift=12, block_levels=B12)
    assert d.kind is DescriptorKind.RESERVED
    with pytest.raises(InvalidArgument):
        d.encode()
    assert isinstance(d, Descriptor)

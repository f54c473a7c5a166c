"""The x86_64 entry format: round trips, the kernel's protections, ptdump's text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmkit_x86_64 import pte

from mmkit.errors import InvalidArgument

_SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None)
_SHIFT = {"pte": 12, "pmd": 21, "pud": 30}
# flag bits an entry may carry besides the address (bit 12 only in a large leaf)
_SMALL_FLAGS = [b for n, b in pte.FLAG_BITS.items() if n not in ("_PAGE_PAT_LARGE",)]


@st.composite
def leaves(draw):
    level = draw(st.sampled_from(("pte", "pmd", "pud")))
    shift = _SHIFT[level]
    pa = draw(st.integers(0, (1 << (52 - shift)) - 1)) << shift
    flags = draw(st.lists(st.sampled_from(_SMALL_FLAGS), unique=True))
    prot = sum(flags) | pte.FLAG_BITS["_PAGE_PRESENT"]
    if level != "pte":
        prot |= pte.FLAG_BITS["_PAGE_PSE"]
        if draw(st.booleans()):
            prot |= pte.FLAG_BITS["_PAGE_PAT_LARGE"]
    return level, pa, prot


@_SETTINGS
@given(leaves())
def test_encode_decode_round_trip(case):
    level, pa, prot = case
    value = pte.encode(pa, prot, level)
    d = pte.decode(value, level)
    assert d.pa == pa and d.flags == prot and d.present and d.leaf and not d.table
    assert d.pse == (level != "pte")
    assert d.nx == bool(prot >> 63) and d.global_ == bool(prot & 0x100)
    assert d.rw == bool(prot & 2) and d.user == bool(prot & 4)


@_SETTINGS
@given(pa=st.integers(0, (1 << 40) - 1))
def test_table_entry_points_at_the_table(pa):
    pa <<= 12
    d = pte.decode(pte.table_entry(pa), "pmd")
    assert d.table and not d.leaf and d.pa == pa and d.rw and not d.nx and not d.global_


def test_kernel_protections_are_the_kernel_formulas():
    """__PAGE_KERNEL_EXEC = P|RW|D|A|G, __PAGE_KERNEL adds NX (pgtable_types.h)."""
    assert pte.kernel_prot("PAGE_KERNEL_EXEC") == 0x163
    assert pte.kernel_prot("PAGE_KERNEL") == 0x8000000000000163
    assert pte.kernel_prot("PAGE_KERNEL_RO") == 0x8000000000000161
    assert pte.kernel_prot("PAGE_KERNEL_LARGE") == 0x80000000000001E3
    assert pte.kernel_prot("_KERNPG_TABLE") == 0x63  # PDE_IDENT_ATTR's value too
    assert pte.kernel_prot("PAGE_KERNEL", global_=False) & 0x100 == 0


@pytest.mark.parametrize(
    ("value", "level", "text"),
    [
        # lines as v5.4 /sys/kernel/debug/page_tables/kernel prints them
        (
            pte.encode(0x1000000, pte.kernel_prot("PAGE_KERNEL_LARGE_EXEC") & ~2, "pmd"),
            "pmd",
            "    ro         PSE     GLB x  pmd",
        ),
        (
            pte.encode(0x5000, pte.kernel_prot("PAGE_KERNEL"), "pte"),
            "pte",
            "    RW                 GLB NX pte",
        ),
        (0, "pud", " " * 30 + "pud"),
        (pte.table_entry(0x7000) | 4, "p4d", "USR RW                     x  p4d"),
    ],
)
def test_ptdump_prot_text(value, level, text):
    assert pte.ptdump_prot(value, level) == text


def test_pat_bit_depends_on_the_level():
    """Bit 7 is PAT in a PTE and PSE above; bit 12 is PAT in a large leaf (printk_prot)."""
    assert "PAT" in pte.ptdump_prot(0x81, "pte") and "PSE" not in pte.ptdump_prot(0x81, "pte")
    large = pte.encode(1 << 21, 0x1081, "pmd")
    assert "PAT" in pte.ptdump_prot(large, "pmd") and "PSE" in pte.ptdump_prot(large, "pmd")
    assert pte.decode(large, "pmd").pa == 1 << 21  # bit 12 is not part of the address


def test_ptdump_line_is_note_pages_format():
    line = pte.ptdump_line(
        0xFFFFFFFF81000000,
        0xFFFFFFFF81E00000,
        pte.encode(0x1000000, pte.kernel_prot("PAGE_KERNEL_LARGE_EXEC") & ~2, "pmd"),
        "pmd",
    )
    assert line == (
        "0xffffffff81000000-0xffffffff81e00000          14M     ro         PSE     GLB x  pmd"
    )


@pytest.mark.parametrize(
    ("pa", "prot", "level"),
    [
        (0x1800, pte.kernel_prot("PAGE_KERNEL"), "pte"),  # not page aligned
        (1 << 20, pte.kernel_prot("PAGE_KERNEL_LARGE"), "pmd"),  # not 2M aligned
        (1 << 52, pte.kernel_prot("PAGE_KERNEL"), "pte"),  # beyond __PHYSICAL_MASK_SHIFT
        (0, pte.kernel_prot("PAGE_KERNEL") | 1 << 20, "pte"),  # address bits in prot
        (0, pte.kernel_prot("PAGE_KERNEL_LARGE"), "p4d"),  # no P4D leaves
        (0, 0, "pmx"),  # not a level
        (0, True, "pte"),
    ],
)
def test_bad_input_raises(pa, prot, level):
    with pytest.raises(InvalidArgument):
        pte.encode(pa, prot, level)


@pytest.mark.parametrize("value", [-1, 1 << 64, "0x1", None])
def test_decode_refuses_non_entries(value):
    with pytest.raises(InvalidArgument):
        pte.decode(value, "pte")


def test_unknown_protection_names_the_choices():
    with pytest.raises(InvalidArgument, match="PAGE_KERNEL"):
        pte.kernel_prot("PAGE_KERNEL_WX")

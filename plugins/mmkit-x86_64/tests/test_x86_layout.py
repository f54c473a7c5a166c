"""The x86_64 layout against Documentation/x86/x86_64/mm.rst (v5.4) and the paging formulas."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit import arch
from mmkit.errors import InvalidArgument

# (start, last) of mm.rst's rows, copied from the document's two tables: an independent
# source for what the formulas in mmkit_x86_64.layout compute.
MM_RST = {
    "x86_64-4k-48": {
        "guard": (0xFFFF800000000000, 0xFFFF87FFFFFFFFFF),
        "ldt": (0xFFFF880000000000, 0xFFFF887FFFFFFFFF),
        "linear": (0xFFFF888000000000, 0xFFFFC87FFFFFFFFF),
        "vmalloc": (0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF),
        "vmemmap": (0xFFFFEA0000000000, 0xFFFFEAFFFFFFFFFF),
        "kasan": (0xFFFFEC0000000000, 0xFFFFFBFFFFFFFFFF),
    },
    "x86_64-4k-57": {
        "guard": (0xFF00000000000000, 0xFF0FFFFFFFFFFFFF),
        "ldt": (0xFF10000000000000, 0xFF10FFFFFFFFFFFF),
        "vmalloc": (0xFFA0000000000000, 0xFFD1FFFFFFFFFFFF),
    },
}
# rows both tables share ("Identical layout to the 47-bit one from here on")
MM_RST_COMMON = {
    "cpu_entry_area": (0xFFFFFE0000000000, 0xFFFFFE7FFFFFFFFF),
    "espfix": (0xFFFFFF0000000000, 0xFFFFFF7FFFFFFFFF),
    "efi": (0xFFFFFFEF00000000, 0xFFFFFFFEFFFFFFFF),
    "kernel": (0xFFFFFFFF80000000, 0xFFFFFFFF9FFFFFFF),
    "modules": (0xFFFFFFFFA0000000, 0xFFFFFFFFFEFFFFFF),
    "vsyscall": (0xFFFFFFFFFF600000, 0xFFFFFFFFFF600FFF),
}
NAMES = ("x86_64-4k-48", "x86_64-4k-57")


@pytest.mark.parametrize("name", NAMES)
def test_regions_match_mm_rst(name):
    d = arch.get(name, kasan=True)
    for kind, (start, last) in {**MM_RST[name], **MM_RST_COMMON}.items():
        r = d.region(kind)
        assert (r.start, r.last) == (start, last), f"{name} {kind}: {r}"


def test_five_level_starts_match_mm_rst():
    """5-level rows whose end mm.rst draws wider than the kernel fills (module docstring)."""
    d = arch.get("x86_64-4k-57", kasan=True)
    assert d.region("linear").start == 0xFF11000000000000
    assert d.region("vmemmap").start == 0xFFD4000000000000
    assert d.region("linear").size == 1 << 52  # MAXMEM = 1 << MAX_PHYSMEM_BITS
    # KASAN_SHADOW_START = OFFSET + ((-1UL << 56) >> 3): mm.rst rounds it to ff df 00...
    assert d.region("kasan").start >> 48 == 0xFFDF
    assert d.region("kasan").end == 0xFFFFFC0000000000


@pytest.mark.parametrize("name", NAMES)
def test_regions_tile_the_address_space(name):
    regions = arch.get(name).regions
    assert regions[0].start == 0 and regions[-1].end == 1 << 64
    for a, b in itertools.pairwise(regions):
        assert a.end == b.start, (a, b)
    kinds = {r.kind for r in regions}
    assert "kasan" not in kinds  # only with kasan=True


@pytest.mark.parametrize(("name", "levels", "pgdir"), [(NAMES[0], 4, 39), (NAMES[1], 5, 48)])
def test_paging_macros(name, levels, pgdir):
    d = arch.get(name)
    m = d.macros()
    assert (m["PGTABLE_LEVELS"], m["PGDIR_SHIFT"]) == (levels, pgdir)
    assert m["P4D_SHIFT"] == 39 and m["PUD_SHIFT"] == 30 and m["PMD_SHIFT"] == 21
    assert m["PTRS_PER_P4D"] == (512 if levels == 5 else 1)
    # the shifts plus the index bits cover the implemented VA
    assert m["PGDIR_SHIFT"] + 9 == m["__VIRTUAL_MASK_SHIFT"] + 1 == d.va_bits == m["VA_BITS"]
    assert [lv.name for lv in d.geometry.levels_used] == (
        ["pgd", "p4d", "pud", "pmd", "pte"] if levels == 5 else ["pgd", "pud", "pmd", "pte"]
    )
    assert m["FIXADDR_TOP"] == 0xFFFFFFFFFF7FF000
    assert m["FIXADDR_START"] < m["VSYSCALL_ADDR"] < m["FIXADDR_TOP"]
    assert m["VMALLOC_END"] - m["VMALLOC_START"] + 1 == m["VMALLOC_SIZE_TB"] << 40


def test_ghes_adds_two_fixmap_slots():
    plain, ghes = arch.get(NAMES[0]).macros(), arch.get(NAMES[0], ghes=True).macros()
    assert plain["FIXADDR_START"] - ghes["FIXADDR_START"] == 2 * 4096


@pytest.mark.parametrize("name", NAMES)
def test_indices_partition_the_va(name):
    d = arch.get(name)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(va=st.integers(0, (1 << 64) - 1))
    def check(va):
        rebuilt = 0
        for lv, idx in d.indices(va):
            assert 0 <= idx < lv.ptrs
            rebuilt |= idx << lv.shift
        rebuilt |= va & 0xFFF
        mask = (1 << d.va_bits) - 1
        assert rebuilt == va & mask  # the bits above index nothing (the sign extension)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_indices_refuse_what_is_not_a_64_bit_address(name):
    d = arch.get(name)
    assert [i for _, i in d.indices(0x1000)] == [0] * len(d.geometry.levels_used[:-1]) + [1]
    for bad in (-1, 1 << 64, "0x1000", True):
        with pytest.raises(InvalidArgument):
            d.indices(bad)

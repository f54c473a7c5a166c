"""Geometry of every arm64 configuration against independent ground truth.

Oracles: the index bit fields that Documentation/arm64/memory.rst (v5.4) prints, drgn's
independent formulas (``libdrgn/arch_aarch64.c``: levels = ceil((va - page_shift) / stride),
top-level entries = 2 ** (((va - page_shift - 1) mod stride) + 1)), the hugetlb sizes that
``setup_hugepagesz()`` accepts (published per granule), and the Kconfig's choices.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmkit.arch
from mmkit.arch.arm64 import CONFIGS
from mmkit.arch.geometry import GRANULES, Geometry

ALL = list(CONFIGS)  # the built-in family (plugins may add more names)
ERAS = ("v5.3", "v5.4", "v5.7", "v6.1")


def test_the_eight_kconfig_configurations():
    assert set(ALL) <= set(mmkit.arch.names())  # registered through the entry point
    assert sorted(ALL) == sorted(
        [
            "arm64-4k-39",
            "arm64-4k-48",
            "arm64-16k-36",
            "arm64-16k-47",
            "arm64-16k-48",
            "arm64-64k-42",
            "arm64-64k-48",
            "arm64-64k-52",
        ]
    )


@pytest.mark.parametrize("name", ALL)
def test_levels_and_top_table_match_drgn_formulas(name):
    d = mmkit.arch.get(name, kernel="v5.7")
    m = d.macros()
    p, va = m["PAGE_SHIFT"], m["VA_BITS"]
    stride = p - 3
    assert m["PGTABLE_LEVELS"] == math.ceil((va - p) / stride)
    assert m["PTRS_PER_PGD"] == 2 ** (((va - p - 1) % stride) + 1)
    assert m["PTRS_PER_PTE"] == 2**stride


# Documentation/arm64/memory.rst (v5.4): "Translation table lookup with 4KB pages" and
# "... with 64KB pages" give each level's VA bits.
MEMORY_RST_FIELDS = {
    "arm64-4k-48": {"pgd": (47, 39), "pud": (38, 30), "pmd": (29, 21), "pte": (20, 12)},
    "arm64-64k-48": {"pgd": (47, 42), "pmd": (41, 29), "pte": (28, 16)},
    "arm64-64k-52": {"pgd": (51, 42), "pmd": (41, 29), "pte": (28, 16)},
}


@pytest.mark.parametrize("name", sorted(MEMORY_RST_FIELDS))
def test_index_fields_match_memory_rst(name):
    d = mmkit.arch.get(name)
    fields = {lv.name: lv.index_bits for lv in d.geometry.levels_used}
    assert fields == MEMORY_RST_FIELDS[name]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("name", ALL)
def test_index_fields_partition_the_va_exactly(name, era):
    d = mmkit.arch.get(name, kernel=era)
    g = d.geometry
    bits = [(g.page_shift - 1, 0)] + [lv.index_bits for lv in reversed(g.levels_used)]
    # contiguous from bit 0 upward, no overlap, no hole
    for (hi, _lo), (_nhi, nlo) in itertools.pairwise(bits):
        assert nlo == hi + 1
    top = bits[-1][0] + 1
    index_va = 52 if d.va_bits == 52 else g.va_bits
    assert top == (index_va if era in ("v5.3", "v5.4") else g.va_bits)


# setup_hugepagesz() accepts PUD_SIZE (4K only), CONT_PMD_SIZE, PMD_SIZE, CONT_PTE_SIZE.
HUGETLB = {
    "4k": {64 << 10, 2 << 20, 32 << 20, 1 << 30},
    "16k": {2 << 20, 32 << 20, 1 << 30},
    "64k": {2 << 20, 512 << 20, 16 << 30},
}


@pytest.mark.parametrize("name", ["arm64-4k-48", "arm64-16k-47", "arm64-64k-48"])
def test_contiguous_and_block_sizes_give_published_hugetlb_sizes(name):
    d = mmkit.arch.get(name)
    m = d.macros()
    sizes = {m["CONT_PTE_SIZE"], m["PMD_SIZE"], m["CONT_PMD_SIZE"]}
    if d.geometry.uses_1g_blocks:
        sizes.add(m["PUD_SIZE"])
    assert sizes == HUGETLB[d.granule]


@pytest.mark.parametrize("name", ALL)
def test_folded_levels_read_as_the_kernel_folds_them(name):
    m = mmkit.arch.get(name).macros()
    levels = m["PGTABLE_LEVELS"]
    if levels < 4:
        assert m["PUD_SHIFT"] == m["PGDIR_SHIFT"] and m["PTRS_PER_PUD"] == 1
    if levels < 3:
        assert m["PMD_SHIFT"] == m["PUD_SHIFT"] and m["PTRS_PER_PMD"] == 1
    assert m["SECTION_SHIFT"] == m["PMD_SHIFT"]


def test_only_4k_uses_1g_blocks_and_pmd_vmemmap_blocks():
    for name in ALL:
        d = mmkit.arch.get(name)
        assert (1 << 30 in d.block_sizes["linux"]) == (d.granule == "4k")
        assert d.vmemmap_population == ("pmd_blocks" if d.granule == "4k" else "base_pages")


def test_section_and_memory_block_sizes_per_era():
    assert mmkit.arch.get("arm64-4k-48").memory_block_size == 1 << 30
    assert mmkit.arch.get("arm64-4k-48", kernel="v6.1").memory_block_size == 128 << 20
    assert mmkit.arch.get("arm64-16k-47", kernel="v6.1").memory_block_size == 128 << 20
    assert mmkit.arch.get("arm64-64k-48", kernel="v6.1").memory_block_size == 512 << 20
    # memmap per section: 16 MiB with 4K, 4 MiB with 16K, 1 MiB with 64K (64-byte struct page)
    for name, memmap in [("arm64-4k-48", 16), ("arm64-16k-47", 4), ("arm64-64k-48", 1)]:
        m = mmkit.arch.get(name).macros()
        assert m["PAGES_PER_SECTION"] * 64 == memmap << 20


@given(
    granule=st.sampled_from(sorted(GRANULES)),
    va=st.integers(min_value=36, max_value=52),
)
def test_geometry_invariants_for_any_granule_and_va(granule, va):
    g = Geometry(page_shift=GRANULES[granule].page_shift, va_bits=va)
    if g.levels < 2 or g.levels > 4:
        return
    used = g.levels_used
    assert len(used) == g.levels
    assert [lv.hw_level for lv in used] == list(range(4 - g.levels, 4))
    # each level resolves exactly the bits below its parent's shift
    for parent, child in itertools.pairwise(used):
        assert child.shift + child.ptrs.bit_length() - 1 == parent.shift
    assert g.pgdir_shift + g.ptrs_per_pgd.bit_length() - 1 == va


@given(st.sampled_from(ALL), st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_indices_recompose_the_address(name, va):
    d = mmkit.arch.get(name)
    start = d.kernel_va_start()
    va = start + va % ((1 << 64) - start)
    total = va & (d.page_size - 1)
    for level, index in d.indices(va):
        assert 0 <= index < level.ptrs
        total |= index << level.shift
    mask = (1 << (d.geometry.pgdir_shift + d.geometry.ptrs_per_pgd.bit_length() - 1)) - 1
    assert total == va & mask

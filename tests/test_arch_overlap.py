"""The V7 vmalloc/vmemmap overlap test: the configurations the V7 cover letter names."""

from __future__ import annotations

import pytest

import mmkit.arch
from mmkit.arch.arm64 import CONFIGS

ALL = list(CONFIGS)  # the built-in family (plugins may add more names)


def flagged(**options):
    names = [n for n in ALL if not (options.get("kasan") and n == "arm64-16k-48")]
    return sorted(n for n in names if mmkit.arch.get(n, **options).vmalloc_vmemmap_overlap.overlap)


def test_v54_overlap_set_is_what_the_v7_cover_letter_names():
    # "Only the following two configurations have vmalloc and vmemmap overlap ...
    #  1. 4K page size with 48 bit VA space  2. 16K page size with 48 bit VA space"
    assert flagged() == ["arm64-16k-48", "arm64-4k-48"]
    assert flagged(kernel="v5.7") == ["arm64-16k-48", "arm64-4k-48"]


def test_kasan_does_not_change_the_overlap_set():
    assert flagged(kasan="generic") == ["arm64-4k-48"]  # 16K/48 refuses KASAN
    assert flagged(kasan="sw_tags") == ["arm64-4k-48"]


def test_pre_flip_layout_flags_only_16k_48():
    assert flagged(kernel="v5.3") == ["arm64-16k-48"]
    r = mmkit.arch.get("arm64-4k-48", kernel="v5.3").vmalloc_vmemmap_overlap
    assert (r.gap_start & r.pgdir_mask, r.gap_end & r.pgdir_mask) == (
        0xFFFF7D8000000000,
        0xFFFF7E0000000000,
    )


def test_4k_48_worked_example():
    r = mmkit.arch.get("arm64-4k-48").vmalloc_vmemmap_overlap
    assert r.gap_start == 0xFFFFFDFFBFFF0000 and r.gap_end == 0xFFFFFDFFFFE00000
    assert r.shared_entry == 0xFFFFFD8000000000
    assert "fixed mappings" in r.regions_in_entry  # the fixmap pins the shared table
    assert [t.level for t in r.shared_tables] == ["pud"]
    assert "shared" in r.explain() or "share" in r.explain()


@pytest.mark.parametrize("name", ALL)
def test_no_pmd_or_pte_table_spans_both_regions(name):
    # kernel-facts 7.2: VMALLOC_END sits 64 KB below the PMD table holding VMEMMAP_START.
    r = mmkit.arch.get(name).vmalloc_vmemmap_overlap
    assert all(t.level == "pud" for t in r.shared_tables)
    assert bool(r.shared_tables) == r.overlap


def test_explanations_differ_by_answer():
    yes = mmkit.arch.get("arm64-4k-48").vmalloc_vmemmap_overlap.explain()
    no = mmkit.arch.get("arm64-4k-39").vmalloc_vmemmap_overlap.explain()
    assert "skips free_empty_tables" in yes and "frees empty vmemmap" in no

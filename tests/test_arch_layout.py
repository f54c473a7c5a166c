"""Kernel VA layouts against the published kernel documentation and Kconfig.

Ground truth: the two tables of Documentation/arm64/memory.rst (v5.4; identical in v5.7),
which assume generic KASAN, GHES + KPTI without SDEI, and (table 2) 52-bit hardware; the
``KASAN_SHADOW_OFFSET`` defaults of ``arch/arm64/Kconfig`` in v5.4 and v6.1; the worked
numbers of the V7 discussion. Plus invariants that must hold for every configuration.
"""

from __future__ import annotations

import itertools

import pytest

import mmkit.arch
from mmkit.arch import format_size
from mmkit.arch.arm64 import CONFIGS
from mmkit.errors import InvalidArgument, UnknownName

ALL = list(CONFIGS)  # the built-in family (plugins may add more names)
ERAS = ("v5.3", "v5.4", "v5.7", "v6.1")

# (start, inclusive end, size as printed, use) -- copied from memory.rst, v5.4.
MEMORY_RST_4K_48 = [
    (0x0000000000000000, 0x0000FFFFFFFFFFFF, "256TB", "user"),
    (0xFFFF000000000000, 0xFFFF7FFFFFFFFFFF, "128TB", "kernel logical memory map"),
    (0xFFFF800000000000, 0xFFFF9FFFFFFFFFFF, "32TB", "kasan shadow region"),
    (0xFFFFA00000000000, 0xFFFFA00007FFFFFF, "128MB", "bpf jit region"),
    (0xFFFFA00008000000, 0xFFFFA0000FFFFFFF, "128MB", "modules"),
    (0xFFFFA00010000000, 0xFFFFFDFFBFFEFFFF, "~93TB", "vmalloc"),
    (0xFFFFFDFFBFFF0000, 0xFFFFFDFFFE5F8FFF, "~998MB", "[guard region]"),
    (0xFFFFFDFFFE5F9000, 0xFFFFFDFFFE9FFFFF, "4124KB", "fixed mappings"),
    (0xFFFFFDFFFEA00000, 0xFFFFFDFFFEBFFFFF, "2MB", "[guard region]"),
    (0xFFFFFDFFFEC00000, 0xFFFFFDFFFFBFFFFF, "16MB", "PCI I/O space"),
    (0xFFFFFDFFFFC00000, 0xFFFFFDFFFFDFFFFF, "2MB", "[guard region]"),
    (0xFFFFFDFFFFE00000, 0xFFFFFFFFFFDFFFFF, "2TB", "vmemmap"),
    (0xFFFFFFFFFFE00000, 0xFFFFFFFFFFFFFFFF, "2MB", "[guard region]"),
]
MEMORY_RST_64K_52 = [
    (0x0000000000000000, 0x000FFFFFFFFFFFFF, "4PB", "user"),
    (0xFFF0000000000000, 0xFFF7FFFFFFFFFFFF, "2PB", "kernel logical memory map"),
    (0xFFF8000000000000, 0xFFFD9FFFFFFFFFFF, "1440TB", "[gap]"),
    (0xFFFDA00000000000, 0xFFFF9FFFFFFFFFFF, "512TB", "kasan shadow region"),
    (0xFFFFA00000000000, 0xFFFFA00007FFFFFF, "128MB", "bpf jit region"),
    (0xFFFFA00008000000, 0xFFFFA0000FFFFFFF, "128MB", "modules"),
    (0xFFFFA00010000000, 0xFFFFF81FFFFEFFFF, "~88TB", "vmalloc"),
    (0xFFFFF81FFFFF0000, 0xFFFFFC1FFE58FFFF, "~3TB", "[guard region]"),
    (0xFFFFFC1FFE590000, 0xFFFFFC1FFE9FFFFF, "4544KB", "fixed mappings"),
    (0xFFFFFC1FFEA00000, 0xFFFFFC1FFEBFFFFF, "2MB", "[guard region]"),
    (0xFFFFFC1FFEC00000, 0xFFFFFC1FFFBFFFFF, "16MB", "PCI I/O space"),
    (0xFFFFFC1FFFC00000, 0xFFFFFC1FFFDFFFFF, "2MB", "[guard region]"),
    (0xFFFFFC1FFFE00000, 0xFFFFFFFFFFDFFFFF, "3968GB", "vmemmap"),
    (0xFFFFFFFFFFE00000, 0xFFFFFFFFFFFFFFFF, "2MB", "[guard region]"),
]


@pytest.mark.parametrize("kernel", ["v5.4", "v5.7"])
@pytest.mark.parametrize(
    ("name", "options", "table"),
    [
        ("arm64-4k-48", {}, MEMORY_RST_4K_48),
        ("arm64-64k-52", {"vabits_actual": 52}, MEMORY_RST_64K_52),
    ],
)
def test_layout_matches_memory_rst(name, options, table, kernel):
    d = mmkit.arch.get(name, kernel=kernel, kasan="generic", **options)
    got = [(r.start, r.last, format_size(r.size), r.name) for r in d.regions]
    assert got == table


# arch/arm64/Kconfig, config KASAN_SHADOW_OFFSET: (generic, sw_tags) per VA size.
KCONFIG_KASAN_OFFSETS = {
    "v5.4": {
        48: (0xDFFFA00000000000, 0xEFFF900000000000),
        52: (0xDFFFA00000000000, 0xEFFF900000000000),
        47: (0xDFFFD00000000000, 0xEFFFC80000000000),
        42: (0xDFFFFE8000000000, 0xEFFFFE4000000000),
        39: (0xDFFFFFD000000000, 0xEFFFFFC800000000),
        36: (0xDFFFFFFA00000000, 0xEFFFFFF900000000),
    },
    "v6.1": {
        48: (0xDFFF800000000000, 0xEFFF800000000000),
        52: (0xDFFF800000000000, 0xEFFF800000000000),
        47: (0xDFFFC00000000000, 0xEFFFC00000000000),
        42: (0xDFFFFE0000000000, 0xEFFFFE0000000000),
        39: (0xDFFFFFC000000000, 0xEFFFFFC000000000),
        36: (0xDFFFFFF800000000, 0xEFFFFFF800000000),
    },
}


@pytest.mark.parametrize("kernel", ["v5.4", "v6.1"])
@pytest.mark.parametrize("name", [n for n in ALL if n != "arm64-16k-48"])
def test_kasan_shadow_offset_matches_kconfig(name, kernel):
    va = int(name.split("-")[2])
    for mode, expected in zip(
        ("generic", "sw_tags"), KCONFIG_KASAN_OFFSETS[kernel][va], strict=True
    ):
        m = mmkit.arch.get(name, kernel=kernel, kasan=mode).macros()
        assert m["KASAN_SHADOW_OFFSET"] == expected


def test_kasan_shadow_starts_at_page_end_in_v54():
    # With 48-bit hardware (all but a 52-bit build on 52-bit hardware) the default offsets
    # put the shadow right at PAGE_END; on 52-bit hardware memory.rst shows a [gap] there.
    for name in ALL:
        if name == "arm64-16k-48":
            continue
        m = mmkit.arch.get(name, kasan="generic", vabits_actual=min(48, int(name[-2:])))
        assert m.macros()["KASAN_SHADOW_START"] == m.macros()["PAGE_END"]


@pytest.mark.parametrize(
    ("granule_name", "pages", "with_sdei"),
    [("arm64-4k-48", 1031, 1033), ("arm64-16k-47", 263, 265), ("arm64-64k-48", 71, 73)],
)
def test_fixmap_size_from_slot_count(granule_name, pages, with_sdei):
    d = mmkit.arch.get(granule_name)
    assert d.macros()["FIXADDR_SIZE"] == pages * d.page_size
    d2 = mmkit.arch.get(granule_name, sdei=True)
    assert d2.macros()["FIXADDR_SIZE"] == with_sdei * d.page_size


def test_worked_numbers_from_the_v7_discussion():
    m = mmkit.arch.get("arm64-16k-48").macros()
    assert m["VMEMMAP_START"] == 0xFFFFFF7FFFE00000
    assert m["VMALLOC_END"] == 0xFFFFFF6FFFFF0000
    m = mmkit.arch.get("arm64-4k-48").macros()
    assert m["VMEMMAP_SIZE"] == 2 << 40
    assert m["VMEMMAP_START"] == 0xFFFFFDFFFFE00000


def test_vmemmap_end_is_named_from_v57_only():
    v54 = mmkit.arch.get("arm64-4k-48", kernel="v5.4")
    v57 = mmkit.arch.get("arm64-4k-48", kernel="v5.7")
    assert v54.derived_macros == {"VMEMMAP_END"} and v57.derived_macros == frozenset()
    m = v57.macros()
    assert m["VMEMMAP_END"] == (1 << 64) - (2 << 20) == v54.macros()["VMEMMAP_END"]
    # otherwise v5.4 and v5.7 lay memory out identically
    a = dict(v54.macros())
    b = dict(m)
    b.pop("VA_BITS_MIN")
    a.pop("VA_BITS_MIN")
    a.pop("MAX_USER_VA_BITS")
    assert a == b


def test_v53_layout_is_the_pre_flip_one():
    m = mmkit.arch.get("arm64-4k-48", kernel="v5.3").macros()
    assert m["VA_START"] == 0xFFFF000000000000
    assert m["PAGE_OFFSET"] == 0xFFFF800000000000
    assert m["VMEMMAP_START"] + m["VMEMMAP_SIZE"] == m["PAGE_OFFSET"]  # no top guard
    # the 52-bit option was for user space only in v5.3: kernel keeps 48 bits
    m52 = mmkit.arch.get("arm64-64k-52", kernel="v5.3").macros()
    assert m52["VA_BITS"] == 48 and m52["MAX_USER_VA_BITS"] == 52
    assert m52["PTRS_PER_PGD"] == 1024


def test_v61_layout_formulas():
    m = mmkit.arch.get("arm64-4k-48", kernel="v6.1").macros()
    assert "BPF_JIT_REGION_START" not in m
    assert m["MODULES_VADDR"] == m["PAGE_END"] == 0xFFFF800000000000
    assert m["VMEMMAP_START"] == (1 << 64) - (1 << (48 - 6))
    assert m["VMALLOC_END"] == m["VMEMMAP_START"] - (256 << 20)
    assert m["FIXADDR_TOP"] == m["VMEMMAP_START"] - (32 << 20)
    assert m["SECTION_SIZE_BITS"] == 27


@pytest.mark.parametrize(
    ("kasan", "era"), [(k, e) for k in (None, "generic", "sw_tags") for e in ERAS]
)
@pytest.mark.parametrize("name", ALL)
def test_regions_ordered_disjoint_aligned_and_cover_the_kernel_half(name, kasan, era):
    if kasan and name == "arm64-16k-48":
        with pytest.raises(InvalidArgument):
            mmkit.arch.get(name, kasan=kasan, kernel=era)
        return
    d = mmkit.arch.get(name, kasan=kasan, kernel=era)
    regions = d.regions
    assert regions[0].kind == "user" and regions[0].start == 0
    kernel = regions[1:]
    assert kernel[-1].end == 1 << 64
    for a, b in itertools.pairwise(kernel):
        assert a.end == b.start, (a, b)
    for r in kernel:
        assert r.start < r.end
        if r.kind not in ("guard", "gap", "fixmap"):
            assert r.start % d.page_size == 0 and r.end % d.page_size == 0, r
    m = d.macros()
    assert m["VMALLOC_START"] < m["VMALLOC_END"] <= m["FIXADDR_START"]
    assert m["FIXADDR_START"] % d.page_size == 0
    kinds = [r.kind for r in kernel if r.kind not in ("guard", "gap")]
    assert ("kasan" in kinds) == bool(kasan)
    assert ("bpf_jit" in kinds) == (era != "v6.1")


def test_bad_options_raise_typed_errors_listing_choices():
    with pytest.raises(UnknownName) as err:
        mmkit.arch.get("arm64-8k-48")
    assert "arm64-4k-48" in str(err.value)
    with pytest.raises(InvalidArgument, match=r"v5\.4"):
        mmkit.arch.get("arm64-4k-48", kernel="v4.19")
    with pytest.raises(InvalidArgument, match="16K/48"):
        mmkit.arch.get("arm64-16k-48", kasan="generic")
    with pytest.raises(InvalidArgument, match="kasan"):
        mmkit.arch.get("arm64-4k-48", kasan="hw_tags")
    with pytest.raises(InvalidArgument, match="vabits_actual"):
        mmkit.arch.get("arm64-4k-48", vabits_actual=52)
    with pytest.raises(InvalidArgument, match="52-bit PA"):
        mmkit.arch.get("arm64-4k-48", pa_bits=52)
    with pytest.raises(InvalidArgument, match="unknown option"):
        mmkit.arch.get("arm64-4k-48", colour="blue")
    with pytest.raises(InvalidArgument, match="True or False"):
        mmkit.arch.get("arm64-4k-48", ghes="yes")


def test_descriptors_are_values():
    assert mmkit.arch.get("arm64-4k-48") == mmkit.arch.get("arm64-4k-48", kernel="v5.4")
    assert mmkit.arch.get("arm64-4k-48") != mmkit.arch.get("arm64-4k-48", kernel="v5.7")
    assert hash(mmkit.arch.get("arm64-4k-48")) == hash(mmkit.arch.get("arm64-4k-48"))


def test_indices_reject_user_addresses():
    d = mmkit.arch.get("arm64-4k-48")
    with pytest.raises(InvalidArgument, match="not a kernel address"):
        d.indices(0x0000_7FFF_0000_0000)
    with pytest.raises(InvalidArgument):
        d.indices(-1)

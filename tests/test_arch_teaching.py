"""The teaching layouts: a plugin like any other, and a layout built to show the race."""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest

from mmkit import arch, plugins
from mmkit.arch.teaching import CONFIGS, ERAS, PLUGIN
from mmkit.errors import InvalidArgument, UnknownName
from mmkit.machine import Machine
from mmkit.pgtable.shared import shared_tables
from mmkit.pgtable.teardown import pgtable_range_aligned
from mmkit.testing import ArchConformance

_M64 = (1 << 64) - 1


class TestTeachingConformance(ArchConformance):
    plugin = PLUGIN
    options: ClassVar = {
        "kernel": ERAS,
        "kasan": (None, "generic", "sw_tags"),
        "vabits_actual": (36, 39, 42, 47, 48),
        "pa_bits": (48, 52),
        "ghes": (True, False),
        "sdei": (True, False),
        "kpti": (True, False),
        "relocatable": (True, False),
    }


def test_registered_through_its_entry_point():
    report = next(r for r in plugins.reports(plugins.ARCH_GROUP) if r.name == "arm64-teaching")
    assert report.status == "ok", str(report)
    assert [n for n in arch.names() if n.startswith("teach-")] == list(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("kernel", ERAS)
def test_only_the_layout_moves(name, kernel):
    """Every geometry macro and size is the base configuration's; only placements differ."""
    d = arch.get(name, kernel=kernel)
    base = arch.get(d.base_name, kernel=kernel).macros()
    m = d.macros()
    moved = {
        "VMEMMAP_START",
        "VMEMMAP_END",
        "VMALLOC_START",
        "VMALLOC_END",
        "KIMAGE_VADDR",
        "PCI_IO_START",
        "PCI_IO_END",
        "FIXADDR_TOP",
        "FIXADDR_START",
    }
    assert set(m) == set(base)
    assert {k for k in m if m[k] != base[k]} <= moved
    assert m["VMEMMAP_END"] - m["VMEMMAP_START"] == base["VMEMMAP_SIZE"]
    assert m["FIXADDR_TOP"] - m["FIXADDR_START"] == base["FIXADDR_TOP"] - base["FIXADDR_START"]
    assert m["PCI_IO_END"] - m["PCI_IO_START"] == base["PCI_IO_SIZE"]


@pytest.mark.parametrize("name", CONFIGS)
def test_vmemmap_sits_right_below_vmalloc_and_one_table_holds_both(name):
    d = PLUGIN.create(name)
    m = d.macros()
    assert m["VMALLOC_START"] - m["VMEMMAP_END"] == 64 << 10
    kinds = [r.kind for r in d.regions if r.kind not in ("guard", "gap")]
    assert kinds.index("vmemmap") + 1 == kinds.index("vmalloc")
    # V7's test takes its second branch (vmemmap below vmalloc) and flags the layout
    report = d.vmalloc_vmemmap_overlap
    assert (report.gap_start, report.gap_end) == (m["VMEMMAP_END"], m["VMALLOC_START"])
    assert report.overlap
    # the smallest shared table is the one that holds the vmemmap's leaf entries
    leaf_parent = "pmd" if d.page_shift == 12 else "pte"
    t = report.shared_tables[-1]
    assert t.level == leaf_parent
    assert t.end - t.start == d.shared_table_span
    assert t.regions == ("vmemmap", "vmalloc")
    # the memmap of exactly one memory block (the topmost) is in it
    block_memmap = d.memory_block_size >> (d.page_shift - 6)
    assert m["VMEMMAP_END"] - t.start == block_memmap
    # the kernel image, the fixmap and PCI I/O are not
    for va in (m["KIMAGE_VADDR"], m["FIXADDR_START"], m["PCI_IO_START"]):
        assert not t.start <= va < t.end
    # v5.7's floor/ceiling ([VMEMMAP_START, VMEMMAP_END)) never lets T go
    mask = ~(t.end - t.start - 1) & _M64
    assert not pgtable_range_aligned(t.start, t.end, m["VMEMMAP_START"], m["VMEMMAP_END"], mask)


@pytest.mark.parametrize("kernel", ["v5.3", "v6.1", "v5.5"])
def test_other_eras_are_refused_naming_the_valid_ones(kernel):
    with pytest.raises(InvalidArgument) as err:
        PLUGIN.create("teach-4k-39", kernel=kernel)
    assert tuple(err.value.choices) == ERAS


def test_52_bit_configurations_have_no_teaching_variant():
    with pytest.raises(UnknownName) as err:
        PLUGIN.create("teach-64k-52")
    assert "teach-64k-48" in err.value.choices


def test_teaching_rows_are_marked_and_left_out_of_kernel_lessons():
    rows = {r["name"]: r for r in arch.config_rows()}
    assert all(rows[n]["teaching"] for n in CONFIGS)
    assert not any(rows[n]["teaching"] for n in arch.arm64.CONFIGS)


@pytest.mark.parametrize("name", ["teach-4k-39", "teach-16k-36", "teach-64k-42"])
@pytest.mark.parametrize(
    ("policy", "freed"),
    [("naive", True), ("v3", True), ("v6", False), ("v7", False), ("v5.7", False)],
)
def test_removing_the_top_block_empties_table_t_and_policies_differ(name, policy, freed):
    """Without a race: hot-add the topmost block (its memmap fills T), remove it, and see
    which policies free T. Nothing else ever used T, so it is empty afterwards either way."""
    m = Machine(name, policy=policy, vmalloc_areas=0, online_type="offline")
    mac = m.macros
    size = m.desc.memory_block_size
    top = m.memstart + ((mac["PAGE_END"] - mac["PAGE_OFFSET"]) & _M64) - size
    m.add_memory(0, top, size)
    [t] = [
        s
        for s in shared_tables(m)
        if s.level == m.desc.vmalloc_vmemmap_overlap.shared_tables[-1].level
    ]
    assert t.pfn is not None and all(e.regions == "vmemmap" for e in t.entries)
    memmap = (
        m.vmemmap_va(top >> m.desc.page_shift),
        m.vmemmap_va((top + size) >> m.desc.page_shift),
    )
    assert not shared_tables(m, removing=memmap)[-1].pinned_by()  # nothing else pins it
    m.remove_memory(top, size)
    assert m.events == []
    still = shared_tables(m)[-1]
    assert (still.pfn is None) is freed
    if not freed:
        assert still.entries == ()  # kept, but empty


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("kasan", [None, "generic", "sw_tags"])
@pytest.mark.parametrize("kernel", ERAS)
def test_regions_tile_the_kernel_half_with_every_option(name, kasan, kernel):
    if kasan and name == "teach-16k-48":
        with pytest.raises(InvalidArgument, match="KASAN is impossible"):
            PLUGIN.create(name, kasan=kasan, kernel=kernel)
        return
    d = PLUGIN.create(name, kasan=kasan, kernel=kernel)
    kernel_half = d.regions[1:]
    assert kernel_half[0].start == d.kernel_va_start() and kernel_half[-1].end == 1 << 64
    for a, b in itertools.pairwise(kernel_half):
        assert a.start < a.end == b.start
    assert d.macros()["VMEMMAP_START"] >= d.macros()["MODULES_END"]
    assert d.vmalloc_vmemmap_overlap.overlap

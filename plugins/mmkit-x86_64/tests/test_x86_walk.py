"""translate() against a separate x86 walk, and the dump's records against translate()."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmkit_x86_64 import pte

from mmkit.machine import Machine
from mmkit.mm import ptdump as mm_ptdump
from mmkit.mm.ptdump_records import PtdumpRange
from mmkit.pgtable.walk import translate

GIB = 1 << 30


@pytest.fixture(scope="module", params=["x86_64-4k-48", "x86_64-4k-57"])
def machine(request):
    m = Machine(request.param, memory=[(0, 2 * GIB)], policy="x86-remove-pagetable")
    m.hot_add(4 * GIB + (1 << 27), 1 << 27)  # not 1 GiB aligned: 2M leaves in a new table
    return m


def reference_walk(m: Machine, va: int) -> int | None:
    """The x86 rules read straight from the table pages: P clear faults, PSE at a PMD or
    PUD entry is a leaf, any present PTE is a page (pte.decode does the bits)."""
    pt = m.pgtables
    table = pt.pgd_pfn
    for level in pt.levels:
        entry = pte.decode(int(pt.content[table][(va >> level.shift) & 511]), level.name)
        if not entry.present:
            return None
        if entry.leaf:
            size = 1 << level.shift
            return (entry.pa & ~(size - 1)) + (va & (size - 1))
        table = entry.pa >> 12
    raise AssertionError("a PTE is always a leaf")


def test_translate_matches_the_reference_walk(machine):
    edges = [a for r in machine.desc.regions for a in (r.start, (r.start + r.end) // 2, r.end - 1)]
    for va in [*edges, machine.lm_va(4 * GIB + (1 << 27)), machine.kimage_va]:
        assert translate(machine, va).pa == reference_walk(machine, va), hex(va)

    @settings(max_examples=80, deadline=None, derandomize=True, database=None)
    @given(va=st.integers(0, (1 << 64) - 1))
    def drawn(va):
        assert translate(machine, va).pa == reference_walk(machine, va)

    drawn()


def test_ptdump_records_are_ordered_merged_and_true(machine):
    """Through mmkit's own ptdump_walk (the machine hooks' walk): ranges in order and
    disjoint, touching ranges differ, and a range is mapped iff its first address is."""
    previous = None
    ranges = 0
    for rec in mm_ptdump.ptdump_walk(machine):
        if not isinstance(rec, PtdumpRange):
            previous = None
            continue
        ranges += 1
        assert rec.start < rec.end
        if previous is not None:
            assert previous.end == rec.start
            assert (previous.level, previous.prot) != (rec.level, rec.prot)
        assert translate(machine, rec.start).ok == rec.mapped, rec
        previous = rec
    assert ranges > 10


def test_mmkit_ptdump_prints_x86s_text(machine):
    text = mm_ptdump.ptdump(machine)
    assert text.startswith("---[ User Space ]---\n")
    assert "     RW         PSE     GLB NX pmd" in text and "BLK" not in text


def test_walk_window(machine):
    lo = machine.macros["VMALLOC_START"]
    recs = list(mm_ptdump.ptdump_walk(machine, start=lo, end=lo + (4 << 20)))
    assert recs[0].name == "vmalloc() Area"
    assert recs[1].start == lo and recs[-1].end == lo + (4 << 20)

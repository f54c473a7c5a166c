"""The memblock figure against the machine's memblock, sections and pfn_valid()."""

from __future__ import annotations

import re

import pytest

from mmkit.machine import Machine
from mmkit.scenarios.memblock_order import memblock_order
from mmkit.viz.memblock import ROWS, memblock_figure


def _trace(fig, name):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


def _after_memblock_remove(kernel="v5.3"):
    """The scenario right after hot-remove's memblock_remove() of the block."""
    sc = memblock_order(kernel)
    for frame in sc.frames():
        if frame.operation == "remove" and frame.step.line.startswith("memblock_remove("):
            return sc
    raise AssertionError("no memblock_remove step")


@pytest.mark.parametrize(
    "machine",
    [
        Machine("arm64-4k-48"),
        Machine("arm64-64k-52", kernel="v5.3"),
        Machine("teach-16k-47"),
    ],
    ids=["4k-48", "64k-52-v5.3", "teach-16k-47"],
)
def test_bars_are_memblocks_regions_in_hex(machine):
    machine.add_memory(0, 0x4000_0000_0000, machine.desc.memory_block_size)
    fig = memblock_figure(machine)
    for row, name in ((ROWS[0], "memory"), (ROWS[1], "reserved")):
        regions = machine.memblock.regions(name)
        trace = _trace(fig, row)
        assert [c[1] for c in trace.customdata] == [f"{r.base:#x}" for r in regions]
        assert [c[2] for c in trace.customdata] == [f"{r.end:#x}" for r in regions]
        assert [c[3].split()[0] for c in trace.customdata] == [f"{r.size:#x}" for r in regions]
        for c, r in zip(trace.customdata, regions, strict=True):
            assert f"nid {r.nid}" in c[4]
            assert ("NONE" in c[4]) == (not r.flags)
        # drawn in address order, each bar after the one before, none empty
        ends = [b + w for b, w in zip(trace.base, trace.x, strict=True)]
        assert all(w > 0 for w in trace.x)
        assert all(b >= e for b, e in zip(trace.base[1:], ends, strict=False))
    # every present section is in a section bar, and nothing else is
    bits = machine.macros["SECTION_SIZE_BITS"]
    sec = _trace(fig, ROWS[2])
    drawn = set()
    for c in sec.customdata:
        drawn |= set(range(int(c[1], 16) >> bits, int(c[2], 16) >> bits))
    assert drawn == {n for n, s in machine.sections.items() if s.present and s.has_memmap}


def test_ticks_are_region_edges_in_hex_and_increase():
    m = Machine("arm64-4k-48")
    fig = memblock_figure(m)
    edges = {r.base for t in ("memory", "reserved") for r in m.memblock.regions(t)}
    edges |= {r.end for t in ("memory", "reserved") for r in m.memblock.regions(t)}
    text = list(fig.layout.xaxis.ticktext)
    assert all(re.fullmatch(r"0x[0-9a-f]+", t) for t in text)
    assert {int(t, 16) for t in text} <= edges
    assert int(text[0], 16) == min(edges) and int(text[-1], 16) == max(edges)
    assert list(fig.layout.xaxis.tickvals) == sorted(fig.layout.xaxis.tickvals)


@pytest.mark.parametrize("kernel", ["v5.3", "v5.5"])
def test_mark_says_what_pfn_valid_says(kernel):
    sc = memblock_order(kernel)
    m = sc.machine
    answers = []
    for frame in sc.frames():
        if frame.operation == "remove" and frame.step.line.startswith("memblock_remove("):
            fig = memblock_figure(m, mark_pfn=sc.pfn)
            (note,) = [a for a in fig.layout.annotations if a.name == "mark"]
            assert note.text.startswith(f"pfn {sc.pfn:#x} (PA {sc.start:#x}): pfn_valid() = ")
            answers.append(m.pfn_valid(sc.pfn))
            assert ("= true" in note.text) == m.pfn_valid(sc.pfn)
            # memblock.memory no longer has the block, but its section is still there
            # in v5.3 (the devices go after memblock); v5.5 removed the section first
            mem = _trace(fig, ROWS[0])
            assert not any(int(c[1], 16) <= sc.start < int(c[2], 16) for c in mem.customdata)
            (line,) = [s for s in fig.layout.shapes if s.name == "mark"]
            sec = _trace(fig, ROWS[2])
            inside = [b <= line.x0 < b + w for b, w in zip(sec.base, sec.x, strict=True)]
            assert any(inside) == ((sc.start >> m.macros["SECTION_SIZE_BITS"]) in m.sections)
    assert answers == [False]


def test_mark_outside_every_region_extends_the_axis():
    m = Machine("arm64-4k-48")
    far = 0x7000_0000_0000 >> m.desc.page_shift
    fig = memblock_figure(m, mark_pfn=far)
    (line,) = [s for s in fig.layout.shapes if s.name == "mark"]
    mem = _trace(fig, ROWS[0])
    assert line.x0 > mem.base[-1] + mem.x[-1]
    assert [s.name for s in fig.layout.shapes].count("hole") == 1
    (note,) = [a for a in fig.layout.annotations if a.name == "mark"]
    assert "= false" in note.text and not m.pfn_valid(far)


def test_hex_title_and_determinism():
    sc = _after_memblock_remove()
    fig = memblock_figure(sc.machine, mark_pfn=sc.pfn)
    assert "arm64-4k-48" in fig.layout.title.text and "v5.3" in fig.layout.title.text
    texts = [a.text for a in fig.layout.annotations]
    texts += [str(c) for t in fig.data for c in t.customdata]
    for t in texts:
        assert not re.search(r"(?<![0-9a-fA-Fx#])\d{5,}", t), t
    assert fig.to_dict() == memblock_figure(sc.machine, mark_pfn=sc.pfn).to_dict()
    assert "teaching layout" in memblock_figure(Machine("teach-4k-39")).layout.title.text

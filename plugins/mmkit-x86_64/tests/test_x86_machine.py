"""The same Machine on x86_64: boot tables, hot-add and hot-remove, through entry points."""

from __future__ import annotations

import pytest
from mmkit_x86_64 import pte

from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.pgtable.walk import translate

NAMES = ("x86_64-4k-48", "x86_64-4k-57")
GIB = 1 << 30


def _machine(name: str, **kw) -> Machine:
    return Machine(name, memory=[(0, 2 * GIB)], policy="x86-remove-pagetable", **kw)


@pytest.fixture(scope="module", params=NAMES)
def booted(request):
    return _machine(request.param)


def test_direct_map_uses_1g_pages_with_x86_bits(booted):
    """Aligned boot memory is mapped with 1 GiB PUD leaves, PAGE_KERNEL_LARGE (+P/RW/NX/G)."""
    m = booted
    for pa in (0, GIB + 0x1234_5000):
        w = translate(m, m.lm_va(pa))
        assert w.pa == pa and w.leaf_level == "pud"
        entry = pte.decode(w.steps[-1].raw, "pud")
        assert entry.pse and entry.rw and entry.nx and entry.global_ and not entry.user
    assert m.lm_va(0) == m.macros["PAGE_OFFSET"]


def test_levels_walked_are_the_configurations(booted):
    m = booted
    steps = [s.level for s in translate(m, m.lm_va(0)).steps]
    expected = ["pgd", "p4d", "pud"] if m.desc.levels == 5 else ["pgd", "pud"]
    assert steps == expected


def test_vmemmap_uses_2m_pages(booted):
    m = booted
    w = translate(m, m.vmemmap_va(0x1000))
    assert w.leaf_level == "pmd" and m.vmemmap_va(0) == m.macros["VMEMMAP_START"]
    assert pte.decode(w.steps[-1].raw, "pmd").pse


def test_kernel_text_is_mapped_executable(booted):
    m = booted
    w = translate(m, m.kimage_va)
    entry = pte.decode(w.steps[-1].raw, w.leaf_level)
    assert w.pa == m.kimage_pa and not entry.nx and entry.leaf


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("start", "size"), [(4 * GIB, GIB), (5 * GIB + (1 << 27), 1 << 27)])
def test_hot_add_then_remove_restores_the_tables(name, start, size):
    m = _machine(name)
    before = sorted((t.level, t.va_start) for t in m.table_pages())
    m.hot_add(start, size)
    w = translate(m, m.lm_va(start + size - 4096))
    assert w.pa == start + size - 4096
    assert translate(m, m.vmemmap_va(start >> 12)).pa is not None
    m.hot_remove(start, size)
    assert sorted((t.level, t.va_start) for t in m.table_pages()) == before
    assert translate(m, m.lm_va(start)).pa is None
    assert m.events == []


@pytest.mark.parametrize("bad", [(4 * GIB + 4096, 1 << 27), (4 * GIB, 1000), (-GIB, GIB)])
def test_bad_ranges_raise_and_change_nothing(bad):
    m = _machine(NAMES[0])
    before = m.digest()
    with pytest.raises(InvalidArgument):
        m.hot_add(*bad)
    assert m.digest() == before


def test_too_little_boot_memory_is_refused():
    with pytest.raises(InvalidArgument, match="16 MiB"):
        Machine(NAMES[0], memory=[(0, 64 << 20)], policy="x86-remove-pagetable")


def test_hot_add_out_of_memory_keeps_the_direct_map_and_frees_the_failed_memmap():
    """x86's arch_add_memory() does not unwind init_memory_mapping(); section_activate()
    frees the memmap of the section that failed."""
    from mmkit.errors import NoMemory

    m = _machine(NAMES[0])
    start = 4 * GIB
    m.physmem.fail_after = 0  # the first allocation of hot-add fails: the first memmap block
    with pytest.raises(NoMemory):
        m.hot_add(start, GIB)
    assert translate(m, m.lm_va(start)).pa == start  # 1 GiB leaf in the boot PUD table
    assert translate(m, m.vmemmap_va(start >> 12)).pa is None
    assert (start, GIB) not in m.hotplugged

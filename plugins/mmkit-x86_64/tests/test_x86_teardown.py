"""x86's remove_pagetable() rules, observed in the engine's steps (v5.4 init_64.c)."""

from __future__ import annotations

import pytest
from mmkit_x86_64 import teardown

from mmkit.machine import Machine
from mmkit.pgtable.walk import translate

GIB = 1 << 30
FAR = 512 * GIB  # beyond the boot PUD table's 512 GiB of direct map: new tables


def _machine(name: str) -> Machine:
    return Machine(name, memory=[(0, 2 * GIB)], policy="x86-remove-pagetable")


def _add_remove(name: str, start: int, size: int) -> tuple[Machine, list, set, set]:
    m = _machine(name)
    boot = {(t.level, t.va_start) for t in m.table_pages()}
    m.hot_add(start, size)
    added = {(t.level, t.va_start) for t in m.table_pages()} - boot
    mark = len(m.history)
    m.hot_remove(start, size)
    left = {(t.level, t.va_start) for t in m.table_pages()} - boot
    return m, m.history[mark:], added, left


def test_pud_tables_stay_with_four_levels():
    """free_pud_table() runs only when pgtable_l5_enabled(): a PUD table stays."""
    m, _, added, left = _add_remove("x86_64-4k-48", FAR, 1 << 27)
    assert ("pud", m.lm_va(FAR)) in added
    assert left == {("pud", m.lm_va(FAR))}
    assert m.events == []


def test_five_levels_free_the_pud_table_too():
    m, _, added, left = _add_remove("x86_64-4k-57", FAR, 1 << 27)
    assert ("pud", m.lm_va(FAR)) in added and left == set()


@pytest.mark.parametrize("name", ["x86_64-4k-48", "x86_64-4k-57"])
def test_a_table_is_freed_before_its_parent_entry_is_cleared(name):
    m, steps, _, _ = _add_remove(name, FAR, 1 << 27)
    frees = [i for i, s in enumerate(steps) if s.action == "free" and s.note == "table"]
    assert len(frees) >= 2
    for i in frees:
        freed = steps[i]
        # the next write clears the parent entry that pointed at the page just freed
        write = next(s for s in steps[i + 1 :] if s.action == "write")
        assert write.new == 0 and m.pgtables.next_table(write.old) == freed.pfn


@pytest.mark.parametrize("name", ["x86_64-4k-48", "x86_64-4k-57"])
def test_vmemmap_pages_are_freed_before_the_clear_and_only_flush_tlb_all(name):
    _, steps, _, _ = _add_remove(name, 4 * GIB, GIB)
    backing = [i for i, s in enumerate(steps) if s.action == "free" and s.note == "backing"]
    assert len(backing) == 8  # one 2 MiB memmap block per 128 MiB section
    for i in backing:
        write = next(s for s in steps[i + 1 :] if s.action == "write")
        assert write.new == 0 and write.level == "pmd" and write.old >> 12 << 12 != 0
    tlbi = [s for s in steps if s.action == "tlbi"]
    calls = [s for s in steps if s.action == "call" and s.function == "remove_pagetable"]
    assert tlbi and all(s.line == "flush_tlb_all()" for s in tlbi)
    assert len(tlbi) == len(calls)  # one at each end; no PTE loop ran (2M and 1G leaves)


def test_leaves_are_cleared_under_the_page_table_lock():
    _, steps, _, _ = _add_remove("x86_64-4k-48", 4 * GIB, 1 << 27)
    for i, s in enumerate(steps):
        if s.action == "write":
            assert steps[i - 1].action == "lock" and steps[i + 1].action == "unlock"


def test_page_inuse_frees_a_partly_removed_block_only_when_all_of_it_is_0xfd():
    m = _machine("x86_64-4k-48")
    m.hot_add(4 * GIB, 1 << 27)
    lo, hi = m.vmemmap_va(4 * GIB >> 12), m.vmemmap_va((4 * GIB + (1 << 27)) >> 12)
    mid = (lo + hi) // 2
    m.run(teardown.remove_pagetable(m, mid, hi, direct=False))
    assert translate(m, lo).pa is not None  # half still in use: kept
    assert m.x86_page_inuse  # the 0xFD bytes are remembered
    m.run(teardown.remove_pagetable(m, lo, mid, direct=False))
    assert translate(m, lo).pa is None and not m.x86_page_inuse


def test_identity_map_early_return_is_the_kernels_expression():
    """remove_pte_table() returns when pte_val(*pte) + (addr & PAGE_MASK) < 1 GiB: with a
    kernel address that sum wraps, so only a PTE whose value wraps it low (and without NX,
    bit 63 of the value) stops the loop."""
    from mmkit.pgtable.mapping import create_pgd_mapping

    m = _machine("x86_64-4k-48")
    fmt = m.pgtables.fmt
    va = 0xFFFF_FFFF_FF40_0000  # a free 4K slot below the fixmap
    wrap_pa = ((1 << 64) - va) & ~0xFFF  # pte_val + va == 2**64 + flags: below 1 GiB
    exe = fmt.kernel_prot("PAGE_KERNEL_EXEC")
    m.run(create_pgd_mapping(m, wrap_pa, va, 4096, exe))
    m.run(create_pgd_mapping(m, 0x5000_0000, va + 4096, 4096, exe))
    m.run(teardown.remove_pagetable(m, va, va + 8192, direct=True))
    assert translate(m, va).pa == wrap_pa and translate(m, va + 4096).pa == 0x5000_0000
    assert any("identity map" in s.line for s in m.history)


def test_a_pte_with_nx_never_looks_like_the_identity_map():
    from mmkit.pgtable.mapping import create_pgd_mapping

    m = _machine("x86_64-4k-48")
    va = 0xFFFF_FFFF_FF40_0000
    wrap_pa = ((1 << 64) - va) & ~0xFFF
    m.run(create_pgd_mapping(m, wrap_pa, va, 4096, m.pgtables.fmt.kernel_prot("PAGE_KERNEL")))
    m.run(teardown.remove_pagetable(m, va, va + 4096, direct=True))
    assert translate(m, va).pa is None


def test_p4d_tables_are_never_freed():
    """remove_pagetable() has no free_p4d_table(): a P4D table hot-add needed stays."""
    start = 1 << 48  # the direct map's second PGD entry with 5 levels
    m, steps, added, left = _add_remove("x86_64-4k-57", start, 1 << 27)
    assert ("p4d", m.lm_va(start)) in added
    assert left == {("p4d", m.lm_va(start))}
    assert not any(s.function == "free_p4d_table" for s in steps)


@pytest.mark.parametrize("name", ["x86_64-4k-48", "x86_64-4k-57"])
def test_add_then_remove_leaves_only_what_x86_keeps(name):
    """Any hot-added range, removed again: no kernel event, the range unmapped in the
    direct map and the memmap, every table page hot-add allocated freed except the ones
    x86 never frees (P4D tables; PUD tables with 4 levels), and no page leaked."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    block = 1 << 27
    base = _machine(name)

    @settings(max_examples=12, deadline=None, derandomize=True, database=None)
    @given(first=st.integers(16, 8 * 512), count=st.integers(1, 12))
    def check(first, count):
        import copy

        m = copy.deepcopy(base)
        boot = {(t.level, t.va_start) for t in m.table_pages()}
        free_before = m.physmem.available_pages()
        start, size = first * block, count * block
        m.hot_add(start, size)
        m.hot_remove(start, size)
        left = {(t.level, t.va_start) for t in m.table_pages()} - boot
        kept = {"p4d"} if m.desc.levels == 5 else {"pud"}
        assert {level for level, _ in left} <= kept
        assert m.events == []
        for pa in (start, start + size - 4096):
            assert translate(m, m.lm_va(pa)).pa is None
        assert translate(m, m.vmemmap_va(start >> 12)).pa is None
        assert m.physmem.available_pages() == free_before - len(left)

    check()

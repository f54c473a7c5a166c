"""The TLB model: clear → TLBI → free leaves no stale translation; V3's order did."""

from __future__ import annotations

import pytest

from mmkit.machine import Machine


def vmemmap_block(m):
    start = m.memstart + (64 << 30)
    return start, m.vmemmap_va(start >> m.desc.page_shift)


@pytest.mark.parametrize("policy", ["v6", "v7", "v5.7"])
def test_two_pass_teardown_leaves_no_stale_tlb_entry(policy):
    m = Machine("arm64-4k-48", policy=policy)
    start, va = vmemmap_block(m)
    m.hot_add(start, 1 << 30)
    assert m.access(va, cpu=1) is not None  # CPU1 caches the 2 MiB vmemmap block
    assert m.tlbs[1].lookup_leaf(va) is not None
    m.hot_remove(start, 1 << 30)
    assert m.tlbs[1].lookup_leaf(va) is None  # the TLBI dropped it
    assert m.access(va, cpu=1) is None  # so the access faults
    assert m.events == []


def test_v3_frees_a_block_before_clearing_it_and_never_invalidates_it():
    """V3 4/4 / V5 3/3 ``remove_pmd_table``: ``free_hotplug_page_range(page, PMD_SIZE)``, then
    ``pmd_clear``, no TLBI for the block. The block read here is the first of the section's
    memmap, in the vmemmap PMD table that also maps boot memory's memmap (VMEMMAP_START is
    2 MiB below a 1 GiB boundary), so no table free's TLBI names its address either."""
    m = Machine("arm64-4k-48", policy="v3")
    start, va = vmemmap_block(m)
    m.hot_add(start, 1 << 30)
    pa = m.access(va, cpu=1)
    m.hot_remove(start, 1 << 30)
    assert m.access(va, cpu=1) == pa  # still translates, through the stale entry
    [event] = m.events
    assert event.kind == "stale-tlb" and event.pfn == pa >> m.desc.page_shift
    assert event.freed_by == "free_hotplug_page_range"
    assert "stale TLB entry" in event.report()
    blocks = [s for s in m.history if s.function == "remove_pmd_table" and s.action == "write"]
    assert blocks and not any(
        s.action == "tlbi" and s.function == "remove_pmd_table" for s in m.history
    )


@pytest.mark.parametrize("policy", ["v3", "v5.7"])
def test_a_freed_table_is_invalidated_so_the_walk_cache_drops_it(policy):
    """V3's ``free_pte_table`` already did ``pmd_clear(); __flush_tlb_kernel_pgtable(addr);
    free_hotplug_pgtable_page(page)`` (V3 4/4, V5 3/3), as v5.7's ``free_empty_pte_table``
    does: a CPU that cached the walk to the PTE table does not reach the freed page."""
    m = Machine("arm64-64k-48", policy=policy, rodata_full=True)
    start = m.memstart + (64 << 30)
    m.hot_add(start, 1 << 30)
    va = m.lm_va(start)
    m.access(va, cpu=0)  # fills the walk cache with the PTE table for va
    assert m.tlbs[0].walk
    mark = len(m.history)
    m.hot_remove(start, 1 << 30)
    assert m.access(va + m.page_size, cpu=0) is None  # another page under that table
    assert m.events == []
    removed = m.history[mark:]
    frees = [i for i, s in enumerate(removed) if s.action == "free" and s.note == "table"]
    # one TLBI VAAE1IS per table page freed (a bulk free step frees several)
    assert frees and m.stats["vaae1is"] == sum(removed[i].count for i in frees)
    for i in frees:  # parent entry cleared, then TLBI VAAE1IS, then the free
        assert [s.action for s in removed[i - 2 : i]] == ["write", "tlbi"]
        assert removed[i - 1].count == removed[i].count
        assert removed[i - 1].line.startswith("__flush_tlb_kernel_pgtable(")


def test_v3_frees_each_mapped_page_before_pte_clear_and_flushes_once_after_the_loop():
    """V3 4/4 / V5 3/3 ``remove_pte_table``: per PTE, READ_ONCE, (vmemmap) free the page,
    ``pte_clear``; after the loop one ``flush_tlb_kernel_range(start, end)``. On 64K the
    memmap of a 1 GiB section is 1 MiB: 16 base pages in one PTE table (kernel-facts 2.1),
    so one flush of 16 TLBI VAALE1IS."""
    m = Machine("arm64-64k-42", policy="v3", fine=True)
    start = m.memstart + (64 << 30)
    m.hot_add(start, 1 << 30)
    lo = m.vmemmap_va(start >> m.desc.page_shift)
    mark = len(m.history)
    m.hot_remove(start, 1 << 30)
    fns = ("remove_pte_table", "free_hotplug_page_range")
    pte = [s for s in m.history[mark:] if s.function in fns]
    pages = (1 << 30 >> m.desc.page_shift) * 64 // m.page_size
    assert pages == 16
    acts = [s.action for s in pte]
    assert acts == ["read", "free", "write"] * pages + ["tlbi"]
    for i in range(pages):  # the free and the clear are of the same entry, free first
        read, free, clear = pte[3 * i : 3 * i + 3]
        assert read.va == free.va == clear.va == lo + i * m.page_size
    flush = pte[-1]
    assert flush.line == f"flush_tlb_kernel_range({lo:#x}, {lo + pages * m.page_size:#x})"
    assert flush.count == pages and flush.note == "vaale1is"


def test_v3_stale_window_lasts_until_the_flush_after_the_pte_loop():
    """Between V3's free of a memmap page and the flush after the loop, a CPU with the page
    in its TLB reads freed memory; after the flush, the same access faults."""
    m = Machine("arm64-64k-42", policy="v3", fine=True)
    start = m.memstart + (64 << 30)
    m.hot_add(start, 1 << 30)
    va = m.vmemmap_va(start >> m.desc.page_shift)
    pa = m.access(va, cpu=1)
    op = m.arch_remove_memory(start, 1 << 30)
    for step in op:  # run up to (and through) the free of the first memmap page
        if step.action == "free" and step.function == "free_hotplug_page_range":
            break
    next(op)  # perform the free; stop before pte_clear
    assert m.access(va, cpu=1) == pa
    assert [e.kind for e in m.events] == ["stale-tlb"]
    for _ in op:
        pass
    assert m.access(va, cpu=1) is None


def test_walk_cache_is_dropped_by_flush_tlb_kernel_pgtable():
    m = Machine("arm64-64k-48", policy="v5.7", rodata_full=True)
    start = m.memstart + (64 << 30)
    m.hot_add(start, 1 << 30)
    va = m.lm_va(start)
    m.access(va, cpu=0)
    assert m.tlbs[0].walk
    m.hot_remove(start, 1 << 30)
    assert m.access(va + m.page_size, cpu=0) is None
    assert m.events == []

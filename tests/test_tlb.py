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


def test_v3_frees_a_block_before_clearing_it_and_never_invalidates():
    m = Machine("arm64-4k-48", policy="v3")
    start, va = vmemmap_block(m)
    m.hot_add(start, 1 << 30)
    pa = m.access(va, cpu=1)
    m.hot_remove(start, 1 << 30)
    assert m.access(va, cpu=1) == pa  # still translates, through the stale entry
    [event] = m.events
    assert event.kind == "stale-tlb" and event.pfn == pa >> m.desc.page_shift
    assert event.freed_by == "free_pagetable"
    assert "stale TLB entry" in event.report()


def test_v3_leaves_a_stale_walk_cache_entry_to_a_freed_table():
    m = Machine("arm64-64k-48", policy="v3", rodata_full=True)
    start = m.memstart + (64 << 30)
    m.hot_add(start, 1 << 30)
    va = m.lm_va(start)
    m.access(va, cpu=0)  # fills the walk cache with the PTE table for va
    m.hot_remove(start, 1 << 30)  # V3 frees that PTE table without a TLBI
    m.access(va + m.page_size, cpu=0)  # another page under the same cached table
    kinds = [e.kind for e in m.events]
    assert kinds == ["use-after-free"]
    assert m.events[0].freed_by == "free_pte_table"


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

"""The boot machine and single hot-add / hot-remove operations, on every configuration."""

from __future__ import annotations

import pytest

from mmkit.arch import pte as hw
from mmkit.arch.arm64 import CONFIGS
from mmkit.errors import Busy, Exists, InvalidArgument, NotFound
from mmkit.machine import Machine
from mmkit.pgtable.walk import translate
from tests.machine_oracle import live_spans, reachable_tables, vmemmap_spans

ALL = list(CONFIGS)  # the built-in family (plugins may add more names)
POLICIES = ["naive", "v3", "v6", "v7", "v5.7"]
LEAF_ATTRS = hw.PTE_AF | hw.PTE_SHARED | hw.PTE_PXN | hw.PTE_UXN | hw.PTE_ATTRINDX(hw.MT_NORMAL)


def far_block(m: Machine) -> int:
    """A hot-pluggable block whose linear map and memmap need tables of their own."""
    lm_size = (m.macros["PAGE_END"] or 1 << 64) - m.macros["PAGE_OFFSET"]
    reach = min(lm_size, 1 << m.macros["MAX_PHYSMEM_BITS"]) // 2
    return m.memstart + (reach & ~(m.desc.memory_block_size - 1))


@pytest.mark.parametrize("kernel", ["v5.3", "v5.4", "v6.1"])
@pytest.mark.parametrize("name", ALL)
def test_boot_maps_memory_kernel_and_vmemmap(name, kernel):
    m = Machine(name, kernel=kernel)
    assert m.events == []
    for start, size in m.boot_memory:
        for pa in (start, start + size // 2, start + size - m.page_size):
            w = translate(m, m.lm_va(pa))
            assert w.ok and w.pa == pa
            assert w.leaf_raw & LEAF_ATTRS == LEAF_ATTRS
            assert not w.leaf_raw & hw.PTE_RDONLY
        w = translate(m, m.vmemmap_va(start >> m.desc.page_shift))
        assert w.ok and m.physmem.state(w.pa >> m.desc.page_shift) == "reserved"
    # map_kernel() maps from _text (v5.x) or _stext (v6.1, 64 KiB further)
    text = translate(m, m.kimage_va + m.stext_offset)
    assert text.ok and text.pa == m.kimage_pa + m.stext_offset
    assert text.leaf_raw & hw.PTE_RDONLY and not text.leaf_raw & hw.PTE_PXN  # ROX
    for va, size in m.vmalloc_ranges:
        w = translate(m, va + size - 1)
        assert w.ok and m.physmem.state(w.pa >> m.desc.page_shift) == "backing"
        assert not translate(m, va + size).ok  # the guard page
    assert sorted(reachable_tables(m)) == sorted(m.pgtables.info)


@pytest.mark.parametrize("name", ALL)
def test_linear_map_uses_blocks_unless_rodata_full(name):
    m = Machine(name)
    w = translate(m, m.lm_va(0x8000_0000))  # 1 GiB in: away from the kernel image
    assert w.leaf_level != "pte"
    m = Machine(name, rodata_full=True)
    w = translate(m, m.lm_va(0x8000_0000))
    assert w.leaf_level == "pte" and not w.leaf_raw & hw.PTE_CONT


@pytest.mark.parametrize("name", ALL)
def test_kernel_text_alias_in_the_linear_map_is_read_only_without_cont(name):
    m = Machine(name)
    w = translate(m, m.lm_va(m.kimage_pa))
    assert w.ok and w.leaf_raw & hw.PTE_RDONLY and not w.leaf_raw & hw.PTE_CONT
    assert w.leaf_raw & hw.PTE_PXN  # the alias is never executable


def test_4k_linear_map_uses_1g_blocks_and_contiguous_hints():
    m = Machine("arm64-4k-48", memory=[(0x4000_0000, (2 << 30) + (64 << 20))])
    assert translate(m, m.lm_va(0x8000_0000)).leaf_size == 1 << 30
    tail = translate(m, m.lm_va(0xC000_0000))
    assert tail.leaf_size == 2 << 20 and tail.leaf_raw & hw.PTE_CONT  # 32 MiB CONT_PMD run


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ALL)
def test_far_block_add_remove_leaves_exactly_what_the_policy_keeps(name, policy):
    m = Machine(name, policy=policy)
    boot = live_spans(m)
    start = far_block(m)
    m.hot_add(start, m.desc.memory_block_size)
    w = translate(m, m.lm_va(start))
    assert w.ok and w.pa == start
    assert translate(m, m.vmemmap_va(start >> m.desc.page_shift)).ok
    m.hot_remove(start, m.desc.memory_block_size)
    assert not translate(m, m.lm_va(start)).ok
    assert m.events == []
    new_vmemmap = vmemmap_spans(m, {start}) - boot
    keeps = policy == "v6" or (policy == "v7" and m.desc.vmalloc_vmemmap_overlap.overlap)
    expected = boot | (new_vmemmap if keeps else set())
    assert live_spans(m) == expected
    assert len(m.table_pages()) == m.boot_table_count + (len(new_vmemmap) if keeps else 0)
    assert sorted(reachable_tables(m)) == sorted(m.pgtables.info)


def test_tlbi_counts_per_policy_for_one_4k_block():
    counts = {}
    for policy in ("v7", "v5.7"):
        m = Machine("arm64-4k-39", policy=policy)
        start = far_block(m)
        m.hot_add(start, 1 << 30)
        m.stats = dict.fromkeys(m.stats, 0)
        m.hot_remove(start, 1 << 30)
        counts[policy] = m.stats
    # 16 MiB of memmap = 8 PMD blocks; V7: 512 TLBIs each, v5.7: one; plus the 1 GiB
    # linear block: a full flush (over MAX_TLBI_OPS) vs one TLBI
    assert counts["v7"]["vaale1is"] == 8 * 512 and counts["v7"]["vmalle1is"] == 1
    assert counts["v5.7"]["vaale1is"] == 8 + 1 and counts["v5.7"]["vmalle1is"] == 0


@pytest.mark.parametrize("name", ["arm64-4k-48", "arm64-64k-48", "arm64-16k-36"])
def test_bad_input_raises_typed_errors_and_changes_nothing(name):
    m = Machine(name)
    block = m.desc.memory_block_size
    start = far_block(m)
    m.hot_add(start, block)
    before = m.digest()
    bad = [
        (m.hot_remove, (0x4000_0000, block), Busy),  # boot memory
        (m.hot_remove, (start + block, block), NotFound),  # never added
        (m.hot_remove, (start, block // 2), InvalidArgument),  # unaligned size
        (m.hot_add, (start + m.page_size, block), InvalidArgument),  # unaligned start
        (m.hot_add, (start, block), Exists),  # already present
        (m.hot_add, (0x4000_0000, block), Exists),  # overlaps boot memory
        (m.hot_add, (1 << m.macros["MAX_PHYSMEM_BITS"], block), InvalidArgument),
        (m.hot_add, (start, 0), InvalidArgument),
        (m.hot_add, (start, -block), InvalidArgument),
        (m.hot_remove, (start - block, 2 * block), NotFound),  # overlapping, partly absent
    ]
    for op, args, error in bad:
        with pytest.raises(error) as info:
            op(*args)
        assert str(info.value)
        assert m.digest() == before, (op.__name__, args)


def test_remove_then_readd_reuses_left_tables_under_v6():
    m = Machine("arm64-16k-47", policy="v6")
    start = far_block(m)
    m.hot_add(start, 1 << 30)
    m.hot_remove(start, 1 << 30)
    left = len(m.table_pages())
    m.hot_add(start, 1 << 30)
    m.hot_remove(start, 1 << 30)
    assert len(m.table_pages()) == left and m.events == []

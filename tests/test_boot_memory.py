"""Boot memory per version: the notifier V12 added (v5.7 ``prevent_bootmem_remove_notifier``)
and what the kernel did without it (V7 and before) when a boot block could go offline.

Ground truth: v5.7 ``arch/arm64/mm/mmu.c`` (the notifier: ``early_section()`` →
``NOTIFY_BAD`` on ``MEM_GOING_OFFLINE``; ``free_hotplug_page_range()``: ``WARN_ON(
PageReserved(page))`` then ``free_pages()``), v5.7 ``mm/memory_hotplug.c``
``__offline_pages()`` (isolation, then the notifiers; ``notifier_to_errno(NOTIFY_BAD)`` is
-EPERM), v5.4/v5.7 ``mm/page_alloc.c`` (``PAGE_FLAGS_CHECK_AT_FREE`` holds ``PG_reserved``:
``bad_page()``, and the page is not freed), ``mm/sparse.c`` ``free_map_bootmem()`` (an early
section's memmap goes back through ``vmemmap_free()``).
"""

from __future__ import annotations

import pytest

from mmkit.errors import Busy, NotPermitted
from mmkit.machine import Machine
from mmkit.pgtable.walk import translate

GIB = 1 << 30
BANK = 0x1_0000_0000  # a second boot bank of 1 GiB: memblock allocates from the first one
MEMORY = [(0x4000_0000, 2 * GIB), (BANK, GIB)]


def boot_machine(policy, kernel="v5.7", config="arm64-4k-48"):
    return Machine(config, memory=MEMORY, policy=policy, kernel=kernel, online_type="online")


@pytest.mark.parametrize("kernel", ["v5.4", "v5.7"])
def test_the_notifier_refuses_an_early_section_with_eperm(kernel):
    m = boot_machine("v5.7", kernel)
    b = m.block_of(BANK)
    assert m.sections[BANK >> 30].early and not m.blocks[b].unmovable
    before = m.digest()
    with pytest.raises(NotPermitted, match="NOTIFY_BAD") as err:
        m.offline_block(b)
    assert err.value.errno_name == "EPERM" and m.digest() == before
    with pytest.raises(NotPermitted):  # the arch-level shortcut says the same
        m.hot_remove(BANK, GIB)


@pytest.mark.parametrize("policy", ["naive", "v3", "v6", "v7", "v5.7"])
def test_blocks_with_boot_allocations_never_go_offline(policy):
    """The kernel image's block and the one memblock allocates from: -EBUSY in isolation."""
    m = boot_machine(policy)
    for pa in (0x4000_0000, 0x8000_0000):
        assert m.blocks[m.block_of(pa)].unmovable
        with pytest.raises(Busy, match="has_unmovable_pages"):
            m.offline_block(m.block_of(pa))
        with pytest.raises(Busy):
            m.hot_remove(pa, GIB)


@pytest.mark.parametrize("config", ["arm64-4k-48", "arm64-64k-48"])
def test_without_the_notifier_boot_memory_is_removed_and_its_memmap_warns_and_leaks(config):
    """V7: the block goes offline and remove_memory() removes it. Its memmap came from
    memblock (PageReserved): free_hotplug_page_range() warns, frees anyway, and the page
    allocator reports a bad page and keeps it out of the free lists."""
    m = boot_machine("v7", config=config)
    b = m.block_of(BANK)
    m.offline_block(b)
    memmap = m.vmemmap_va(BANK >> m.desc.page_shift)
    backing = translate(m, memmap).pa >> m.desc.page_shift
    assert m.physmem.state(backing) == "reserved"
    free_before = m.physmem.pages_in("free")
    m.remove_memory(BANK, GIB)
    assert not translate(m, m.lm_va(BANK)).ok and not translate(m, memmap).ok
    assert b not in m.blocks and BANK >> m.macros["SECTION_SIZE_BITS"] not in m.sections
    assert (BANK, GIB) not in m.boot_memory
    warns = [e for e in m.events if e.kind == "warn"]
    bad = [e for e in m.events if e.kind == "bug"]
    assert warns and all("WARN_ON(PageReserved(page))" in e.message for e in warns)
    assert len(bad) == len(warns)  # each warned free then fails the allocator's check
    assert all("Bad page state" in e.message and "(reserved)" in e.message for e in bad)
    assert bad[0].pfn == backing
    assert m.physmem.state(backing) == "reserved"  # not freed: leaked
    assert m.physmem.pages_in("free") == free_before
    assert m.oops is None  # bad_page() taints; it does not kill the task


def test_the_memmap_of_a_removed_boot_bank_is_one_warning_per_freed_block():
    """4K: a 1 GiB section's memmap is 16 MiB = 8 PMD blocks of 2 MiB (kernel-facts 2.1),
    each freed with free_hotplug_page_range(page, PMD_SIZE)."""
    m = boot_machine("v7")
    m.offline_block(m.block_of(BANK))
    m.remove_memory(BANK, GIB)
    memmap_warns = [
        e for e in m.events if e.kind == "warn" and e.function != "free_empty_pmd_table"
    ]
    assert len(memmap_warns) == 8
    blocks = [e for e in m.events if e.kind == "bug" and "all 512 pages" in e.message]
    assert len(blocks) == 8


def test_a_removed_boot_bank_can_be_added_again_as_hot_added_memory():
    m = boot_machine("v7")
    m.offline_block(m.block_of(BANK))
    m.remove_memory(BANK, GIB)
    m.add_memory(0, BANK, GIB)
    assert translate(m, m.lm_va(BANK)).pa == BANK
    assert not m.sections[BANK >> 30].early

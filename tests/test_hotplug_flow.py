"""The generic hotplug flow and patch 1/3: the failure chain, both fixes, every config."""

from __future__ import annotations

import pytest

from mmkit.arch.arm64 import CONFIGS
from mmkit.errors import Busy, Exists, InvalidArgument, NotFound
from mmkit.machine import Machine
from mmkit.mm import hotplug as hp
from mmkit.pgtable.walk import translate
from mmkit.scenarios import memblock_order

ALL = list(CONFIGS)  # the built-in family (plugins may add more names)


def next_block(m: Machine) -> int:
    top = max(s + n for s, n in m.boot_memory)
    size = m.desc.memory_block_size
    return -(-top // size) * size


def test_patch_1_3_failure_chain_step_by_step_on_v53():
    sc = memblock_order("v5.3")
    frames = sc.run()
    lines = [f.step.line for f in frames]
    # 1. memblock is emptied for the range before the block devices go
    i_remove = next(
        i
        for i, f in enumerate(frames)
        if f.operation == "remove" and "memblock_remove" in f.step.line
    )
    assert all(not (b <= sc.start < e) for b, e, _ in frames[i_remove].memblock_memory)
    # 2. pfn_valid() is false, 3. so get_nid_for_pfn() is -1 ...
    walk = next(f for f in frames[i_remove:] if "get_nid_for_pfn" in f.step.line)
    assert walk.pfn_valid is False and walk.nid_for_pfn == -1
    # 4. ... no link is removed: the node0/memoryN link survives the removal
    removal = [f for f in frames if f.operation == "remove"]
    assert not any("sysfs_remove_link" in f.step.line for f in removal)
    assert f"/sys/devices/system/node/node0/memory{sc.block}" in removal[-1].links[0]
    # 5. the re-add gets -EEXIST and 6. hits BUG_ON(ret)
    assert any("-EEXIST" in line for line in lines)
    assert frames[-1].step.action == "bug" and "BUG_ON(ret)" in frames[-1].event
    m = sc.machine
    assert m.oops is not None and m.locks["mem_hotplug_lock"] == "write"
    with pytest.raises(Busy, match="oopsed"):  # the dead task still holds the lock
        m.remove_memory(sc.start, sc.size)


@pytest.mark.parametrize("kernel", ["v5.4", "v5.5", "v5.7", "v6.1"])
def test_the_node_c_simplification_and_the_reorder_both_fix_it(kernel):
    sc = memblock_order(kernel)
    frames = sc.run()
    m = sc.machine
    assert m.oops is None and m.events == []
    assert not any(f.step.action == "bug" for f in frames)
    removal = [f for f in frames if f.operation == "remove"]
    assert [f.step.line for f in removal if f.step.action == "sysfs"] == [
        f"sysfs_remove_link(node0, memory{sc.block})",
        f"sysfs_remove_link(memory{sc.block}, node0)",
    ]
    assert removal[-1].links == ()
    assert m.sysfs.has_link(("node", 0), ("memory", sc.block))  # re-linked by the re-add
    order = [f.step.line.split("(")[0] for f in removal if f.step.action in ("memblock", "sysfs")]
    if kernel == "v5.4":  # memblock still goes first; v5.4 unlinks by the stored nid
        assert order[:2] == ["memblock_free", "memblock_remove"]
    else:  # the reorder: devices (and links) first, memblock last
        assert order[-2:] == ["memblock_free", "memblock_remove"]


@pytest.mark.parametrize("kernel", ["v5.4", "v5.7", "v6.1"])
@pytest.mark.parametrize("name", ALL)
def test_add_online_offline_remove_on_every_configuration(name, kernel):
    m = Machine(name, kernel=kernel, online_type="offline")
    boot = m.digest()
    start, size = next_block(m), m.desc.memory_block_size
    m.add_memory(0, start, size)
    b = m.block_of(start)
    assert m.blocks[b].state == "offline" and m.pfn_valid(start >> m.desc.page_shift)
    assert translate(m, m.lm_va(start)).pa == start
    m.online_block(b, "online_movable")
    assert m.blocks[b].state == "online"
    m.offline_block(b)
    m.remove_memory(start, size)
    assert not translate(m, m.lm_va(start)).ok
    assert not m.pfn_valid(start >> m.desc.page_shift)
    assert m.events == []
    assert m.sysfs.digest() == boot[7] and m.memblock.snapshot() == boot[4]


def test_auto_online_follows_memhp_default_online_type():
    for online_type, state in [
        ("offline", "offline"),
        ("online", "online"),
        ("online_movable", "online"),
    ]:
        m = Machine("arm64-64k-48", online_type=online_type)
        start = next_block(m)
        m.add_memory(0, start, m.desc.memory_block_size)
        blk = m.blocks[m.block_of(start)]
        assert blk.state == state
        assert blk.online_type == ("" if online_type == "offline" else online_type)


@pytest.mark.parametrize("policy", ["v7", "v5.7"])
def test_the_boot_block_holding_the_kernel_image_cannot_be_offlined(policy):
    """offline_pages() isolates the range before the notifiers run: PageReserved pages make
    has_unmovable_pages() say -EBUSY, notifier or not (tests/test_boot_memory.py)."""
    m = Machine("arm64-4k-48", kernel="v5.7", policy=policy)
    with pytest.raises(Busy, match="has_unmovable_pages"):
        m.offline_block(m.block_of(0x4000_0000))


def test_unmovable_allocations_pin_a_normal_block_but_never_a_movable_one():
    m = Machine("arm64-16k-47", online_type="online")
    start = next_block(m)
    m.add_memory(0, start, m.desc.memory_block_size)
    b = m.block_of(start)
    hp.allocate_unmovable(m, b)
    with pytest.raises(Busy, match="has_unmovable_pages"):
        m.offline_block(b)
    m2 = Machine("arm64-16k-47", online_type="online_movable")
    m2.add_memory(0, start, m2.desc.memory_block_size)
    with pytest.raises(Busy, match="ZONE_MOVABLE"):
        hp.allocate_unmovable(m2, b)


@pytest.mark.parametrize("kernel", ["v5.3", "v5.5", "v5.7"])
def test_bad_input_and_bad_order_change_nothing(kernel):
    m = Machine("arm64-4k-48", kernel=kernel, online_type="online")
    start, size = next_block(m), 1 << 30
    m.add_memory(0, start, size)
    before = m.digest()
    bad = [
        (m.remove_memory, (start, size), Busy),  # still online
        (m.remove_memory, (0x4000_0000, size), Busy),  # boot memory
        (m.add_memory, (0, start, size), Exists),  # already there
        (m.add_memory, (0, 0x4000_0000, size), Exists),  # boot memory's range
        (m.add_memory, (0, start + size + 4096, size), InvalidArgument),  # unaligned
        (m.add_memory, (0, start + size, size // 2), InvalidArgument),  # unaligned size
        (m.add_memory, (0, 1 << 48, size), InvalidArgument),  # beyond MAX_PHYSMEM_BITS
        (m.add_memory, (7, start + size, size), InvalidArgument),  # unknown node
        (m.add_memory, (-1, start + size, size), InvalidArgument),
        (m.remove_memory, (start + size, size), NotFound),  # never added
        (m.online_block, (999,), NotFound),
        (m.online_block, (m.block_of(start), "online_sideways"), InvalidArgument),
    ]
    for op, args, error in bad:
        with pytest.raises(error):
            op(*args)
        assert m.digest() == before, (op.__name__, args)

"""Every policy field takes effect, as :mod:`mmkit.policies.base` says (policy versus era).

Each test flips one field of a built-in policy (``dataclasses.replace``) and checks the
engine's steps against what the kernel code that field stands for does.
"""

from __future__ import annotations

import dataclasses

import pytest

from mmkit import policies
from mmkit.errors import InvalidArgument, NotPermitted
from mmkit.machine import Machine
from mmkit.mm.hotplug import memblock_last
from mmkit.mm.ptdump_debugfs import ptdump_show
from mmkit.policies.base import DECISIONS, HotplugPolicy, check_decisions

GIB = 1 << 30


def with_(name: str, **changes: object) -> HotplugPolicy:
    return dataclasses.replace(policies.get(name), **changes)


def remove_steps(policy, config="arm64-4k-39", block=0x20_4000_0000, **kw):
    m = Machine(config, policy=policy, **kw)
    m.hot_add(block, GIB)
    mark = len(m.history)
    m.hot_remove(block, GIB)
    return m, m.history[mark:]


def test_every_builtin_policy_sets_every_decision_to_an_allowed_value():
    for name in policies.names():
        assert check_decisions(policies.get(name)) == []
    assert set(DECISIONS) == {f.name for f in dataclasses.fields(HotplugPolicy)} - {
        "name",
        "description",
        "kernel_versions",
        "history",
        "api_version",
    }
    with pytest.raises(InvalidArgument, match="passes is 3"):
        with_("v6", passes=3)


@pytest.mark.parametrize("base", ["v3", "v6"])
def test_passes_chooses_v3s_single_walk_or_the_two_passes(base):
    one = with_(base, passes=1)
    two = with_(base, passes=2)
    _, steps1 = remove_steps(one)
    _, steps2 = remove_steps(two)
    calls1 = {s.function for s in steps1 if s.action == "call"}
    calls2 = {s.function for s in steps2 if s.action == "call"}
    assert "remove_pagetable" in calls1 and "unmap_hotplug_range" not in calls1
    assert "unmap_hotplug_range" in calls2 and "remove_pagetable" not in calls2


@pytest.mark.parametrize("base", ["v3", "v6"])
def test_pgtable_lock_holds_init_mm_ptl_around_each_walk(base):
    for lock in (False, True):
        _, steps = remove_steps(with_(base, pgtable_lock=lock))
        held = [s for s in steps if s.action == "lock"]
        assert bool(held) is lock
        assert all(s.note == "init_mm.page_table_lock:exclusive" for s in held)
        # one walk each for the memmap (vmemmap_free) and the linear map
        assert len(held) == (2 if lock else 0)


@pytest.mark.parametrize("base", ["v3", "v6", "v5.7"])
def test_vmemmap_tables_never_leaves_the_memmaps_tables_and_always_frees_them(base):
    kept, _ = remove_steps(with_(base, vmemmap_tables="never"))
    freed, _ = remove_steps(with_(base, vmemmap_tables="always"))
    regions = {r.region for r in freed.table_pages()}
    left = [r for r in kept.table_pages() if r.region == "vmemmap"]
    assert len(left) > len([r for r in freed.table_pages() if r.region == "vmemmap"])
    assert "vmemmap" in regions  # boot memory's memmap tables stay in both


def test_vmemmap_tables_no_overlap_follows_v7s_test():
    # 4K/48 is one of the two layouts V7 flags (kernel-facts 3.5): no free pass there
    for config, frees in (("arm64-4k-48", False), ("arm64-4k-39", True)):
        block = 0x4000_0000_0000 if config == "arm64-4k-48" else 0x20_4000_0000
        _, steps = remove_steps(with_("v6", vmemmap_tables="no-overlap"), config, block)
        vm = [s for s in steps if s.action == "call" and s.function == "free_empty_tables"]
        assert len(vm) == (2 if frees else 1)  # the linear map's free pass always runs


@pytest.mark.parametrize("field", ["vmemmap_tables", "linear_floor_ceiling"])
def test_floor_and_ceiling_reach_the_free_pass(field):
    value = "floor-ceiling" if field == "vmemmap_tables" else True
    m, steps = remove_steps(with_("v6", **{"vmemmap_tables": "always", field: value}))
    calls = [s.line for s in steps if s.function == "free_empty_tables" and s.action == "call"]
    bounded = (
        f"{m.macros['VMEMMAP_START']:#x}, {m.desc.vmemmap_end:#x})"
        if field == "vmemmap_tables"
        else f"{m.macros['PAGE_OFFSET']:#x}, {m.macros['PAGE_END']:#x})"
    )
    assert sum(line.endswith(bounded) for line in calls) == 1


def test_vmemmap_floor_ceiling_in_v3s_single_walk_keeps_tables_outside_the_region():
    """A teaching layout where vmalloc and the memmap share a table: V3's walk frees it
    (the race of kernel-facts 7.2); bounded by [VMEMMAP_START, VMEMMAP_END) it stays."""
    from mmkit.scenarios.races import vmalloc_race

    assert vmalloc_race("teach-4k-39", "v3").explore(bound=1).found
    bounded = with_("v3", vmemmap_tables="floor-ceiling")
    assert not vmalloc_race("teach-4k-39", bounded).explore(bound=1).found


@pytest.mark.parametrize("base", ["v3", "v6"])
def test_block_tlbi_none_range_single(base):
    # 4K/39, one block: 8 vmemmap 2 MiB blocks and one 1 GiB linear-map block
    counts = {}
    for kind in ("none", "range", "single"):
        m, _ = remove_steps(with_(base, block_tlbi=kind))
        counts[kind] = (m.stats["vaale1is"], m.stats["vmalle1is"])
    assert counts["none"] == (0, 0)
    assert counts["range"] == (8 * 512, 1)  # flush_tlb_kernel_range(addr, next); >MAX: all
    assert counts["single"] == (8 + 1, 0)


@pytest.mark.parametrize("lock", [False, True])
def test_ptdump_hotplug_lock_decides_whether_ptdump_show_takes_get_online_mems(lock):
    m = Machine("arm64-64k-42", policy=with_("v5.7", ptdump_hotplug_lock=lock))
    steps = list(ptdump_show(m))
    taken = [s.note for s in steps if s.action == "lock"]
    assert taken == (["mem_hotplug_lock:read"] if lock else [])


def _remove_order(kernel, policy):
    m = Machine("arm64-4k-48", kernel=kernel, policy=policy, online_type="offline")
    start = -(-max(s + n for s, n in m.boot_memory) // GIB) * GIB
    m.add_memory(0, start, GIB)
    mark = len(m.history)
    m.remove_memory(start, GIB)
    kinds = [s for s in m.history[mark:] if s.action in ("memblock", "device")]
    first = next(i for i, s in enumerate(kinds) if s.action == "memblock")
    dev = next(i for i, s in enumerate(kinds) if s.action == "device")
    return m, first < dev


@pytest.mark.parametrize("kernel", ["v5.3", "v5.4", "v5.5", "v5.7", "v6.1"])
def test_memblock_after_arch_remove_wins_over_the_era_unless_none(kernel):
    """kernel-facts 4.2: v5.3/v5.4 free and remove memblock before the devices; 32d1fe8fcb32
    (v5.5) moves them after arch_remove_memory(). True/False apply on every era; None (the
    merged v5.7 policy: patch 1/3 left the series) is the era's own order."""
    era_first = kernel in ("v5.3", "v5.4")
    for value, memblock_first in ((True, False), (False, True), (None, era_first)):
        policy = with_("v6", memblock_after_arch_remove=value)
        m, first = _remove_order(kernel, policy)
        assert first is memblock_first
        assert memblock_last(m) is not memblock_first
    assert _remove_order(kernel, "naive")[1] is True  # naive's documented order, any era
    assert _remove_order(kernel, "v5.7")[1] is era_first


def test_patch_1_3_applied_on_v53_avoids_its_bug():
    """v5.3: the pre-patch order leaves node0/memoryN behind and the re-add hits BUG_ON;
    with patch 1/3 (V7's policy) the same kernel is clean."""
    for policy, bug in (("naive", True), ("v7", False), ("v5.7", True)):
        m = Machine("arm64-4k-48", kernel="v5.3", policy=policy, online_type="offline")
        start = -(-max(s + n for s, n in m.boot_memory) // GIB) * GIB
        m.add_memory(0, start, GIB)
        m.remove_memory(start, GIB)
        m.add_memory(0, start, GIB)
        assert (m.oops is not None) is bug


def test_boot_memory_notifier_decides_whether_a_free_boot_block_goes_offline():
    bank = (0x1_0000_0000, GIB)  # a second boot bank: no boot allocation lands there
    memory = [(0x4000_0000, 2 * GIB), bank]
    with_notifier = Machine("arm64-4k-48", memory=memory, policy="v5.7")
    b = with_notifier.block_of(bank[0])
    with pytest.raises(NotPermitted, match="NOTIFY_BAD"):
        with_notifier.offline_block(b)
    without = Machine(
        "arm64-4k-48", memory=memory, policy=with_("v5.7", boot_memory_notifier=False)
    )
    without.offline_block(b)
    assert without.blocks[b].state == "offline"

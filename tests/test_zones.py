"""Zones per era (arm64 ``zone_sizes_init()``: v5.4 ``max_zone_dma_phys()``, v5.7
``max_zone_phys(ARM64_ZONE_DMA_BITS)``, v6.1 ``max_zone_phys(zone_dma_bits)``) and
``valid_zones`` (``drivers/base/memory.c`` ``show_valid_zones()``)."""

from __future__ import annotations

import pytest

from mmkit.machine import Machine
from mmkit.mm.zones import boot_zone_limits, valid_zones

GIB = 1 << 30
QEMU = (0x4000_0000, 0xC000_0000)  # 2 GiB of RAM from 1 GiB


def test_boot_zone_limits_per_era_on_qemu_virt():
    assert boot_zone_limits("v5.4", *QEMU) == [("DMA32", 0xC000_0000)]
    assert boot_zone_limits("v5.7", *QEMU) == [("DMA", 0x8000_0000), ("DMA32", 0xC000_0000)]
    assert boot_zone_limits("v6.1", *QEMU) == [("DMA", 0xC000_0000), ("DMA32", 0xC000_0000)]


def test_boot_zone_limits_when_dram_starts_above_4_gib():
    start, end = 0x8_0000_0000, 0x9_0000_0000
    # v5.4: the 4 GiB window holding the start of DRAM; v6.1: phys_start > U32_MAX lifts
    # the mask, so ZONE_DMA takes all of it
    assert boot_zone_limits("v5.4", start, end) == [("DMA32", 0x9_0000_0000)]
    assert boot_zone_limits("v6.1", start, end)[0] == ("DMA", end)


@pytest.mark.parametrize(
    ("kernel", "zones"),
    [("v5.4", ["DMA32", "DMA32"]), ("v5.5", ["DMA", "DMA32"]), ("v5.7", ["DMA", "DMA32"])],
)
def test_boot_blocks_show_their_zone(kernel, zones):
    m = Machine("arm64-4k-48", kernel=kernel)
    assert [valid_zones(m, b) for b in sorted(m.blocks)] == zones


def test_v61_boot_memory_is_all_zone_dma_and_memory_above_4_gib_is_normal():
    m = Machine("arm64-4k-48", kernel="v6.1", memory=[(0x4000_0000, 2 * GIB), (1 << 32, GIB)])
    below = {valid_zones(m, b) for b in m.blocks if b * m.desc.memory_block_size < 1 << 32}
    above = {valid_zones(m, b) for b in m.blocks if b * m.desc.memory_block_size >= 1 << 32}
    assert below == {"DMA"} and above == {"Normal"}


@pytest.mark.parametrize(
    ("online_type", "zone"), [("online_movable", "Movable"), ("online", "Normal")]
)
def test_hot_added_memory_is_onlined_movable_or_normal(online_type, zone):
    m = Machine("arm64-4k-48", kernel="v6.1", online_type=online_type)
    m.add_memory(0, 0xC000_0000, GIB)  # the captures' virtio-mem region: 8 blocks
    blocks = [m.block_of(0xC000_0000 + i * m.desc.memory_block_size) for i in range(8)]
    assert {valid_zones(m, b) for b in blocks} == {zone}
    m.offline_block(blocks[0])
    assert valid_zones(m, blocks[0]) == "Normal Movable"  # default zone first

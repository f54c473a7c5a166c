"""Zones, minimally: which zone boot memory lands in per kernel era, and ``valid_zones``.

Boot memory's zones come from arm64 ``zone_sizes_init()`` (``arch/arm64/mm/init.c``):

* **v5.3, v5.4**: only ``ZONE_DMA32``, up to ``max_zone_dma_phys()`` = min(the 4 GiB window
  holding the start of DRAM + 4 GiB, end of DRAM); the rest is ``ZONE_NORMAL``.
* **v5.5, v5.7** (arm64 ZONE_DMA arrived in v5.5): ``ZONE_DMA`` up to
  ``max_zone_phys(ARM64_ZONE_DMA_BITS = 30)`` and ``ZONE_DMA32`` up to
  ``max_zone_phys(32)``, where ``max_zone_phys(bits)`` = min((start of DRAM rounded down to
  2**bits) + 2**bits, end of DRAM): on QEMU virt (RAM from 1 GiB) ZONE_DMA is [1 GiB,
  2 GiB) and ZONE_DMA32 [2 GiB, 4 GiB).
* **v6.1**: ``zone_dma_bits`` = min(32, the device tree's and IORT's DMA limits: none on
  QEMU virt, so 32) and ``max_zone_phys()`` clamps to ``DMA_BIT_MASK(bits)``: everything
  below 4 GiB is ``ZONE_DMA``, and ``ZONE_DMA32`` (up to the same limit) is empty.

Hot-added memory is onlined into ``ZONE_NORMAL`` (``online``) or ``ZONE_MOVABLE``
(``online_movable``). ``/sys/devices/system/memory/memoryN/valid_zones``
(``show_valid_zones()``, ``drivers/base/memory.c``) prints the zone of an online block, and
for an offline one the default zone first, then the others it may be onlined to
(``Normal Movable``).

>>> from mmkit.machine import Machine
>>> m = Machine("arm64-4k-48", kernel="v5.7")
>>> [valid_zones(m, b) for b in sorted(m.blocks)]
['DMA', 'DMA32']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["boot_zone_limits", "boot_zone_of", "valid_zones"]

_GIB4 = 1 << 32


def _max_zone_phys_v57(start: int, end: int, bits: int) -> int:
    return min((start & ~((1 << bits) - 1)) + (1 << bits), end)


def _max_zone_phys_v61(start: int, end: int, bits: int) -> int:
    mask = (1 << bits) - 1
    if start > _GIB4 - 1:
        mask = (1 << 64) - 1
    elif start > mask:
        mask = _GIB4 - 1
    return min(mask, end - 1) + 1


def boot_zone_limits(kernel: str, start: int, end: int) -> list[tuple[str, int]]:
    """(zone name, end PA) of each boot zone below ``ZONE_NORMAL``, in order, for DRAM
    [start, end) (module docstring)."""
    if kernel in ("v5.3", "v5.4"):
        return [("DMA32", min((start & ~(_GIB4 - 1)) + _GIB4, end))]
    if kernel in ("v5.5", "v5.7"):
        return [
            ("DMA", _max_zone_phys_v57(start, end, 30)),
            ("DMA32", _max_zone_phys_v57(start, end, 32)),
        ]
    dma = _max_zone_phys_v61(start, end, 32)
    return [("DMA", dma), ("DMA32", dma)]


def boot_zone_of(m: Machine, pa: int) -> str:
    """The zone boot memory at ``pa`` is in (``zone_sizes_init()`` of the machine's era)."""
    start = min(s for s, _ in m.boot_memory_at_boot)
    end = max(s + n for s, n in m.boot_memory_at_boot)
    for name, limit in boot_zone_limits(m.kernel, start, end):
        if pa < limit:
            return name
    return "Normal"


def valid_zones(m: Machine, block_id: int) -> str:
    """``cat /sys/devices/system/memory/memory<block_id>/valid_zones``."""
    blk = m.blocks[block_id]
    if blk.state == "online":
        return blk.zone
    return "Normal Movable"

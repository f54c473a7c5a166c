"""Architecture descriptors: one kernel configuration each, found through plugins.

``get(name, **options)`` builds a descriptor from whichever ``mmkit.arch`` plugin provides
``name``; mmkit's own arm64 family is such a plugin (:mod:`mmkit.arch.arm64`). A descriptor
gives the kernel's macro values (:meth:`macros`), the VA layout (:attr:`regions`), the levels
and their folding, and the V7 overlap test (:attr:`vmalloc_vmemmap_overlap`).

>>> names()[:2]
['arm64-4k-39', 'arm64-4k-48']
>>> get("arm64-16k-48").macros()["PTRS_PER_PGD"]
2
"""

from __future__ import annotations

from typing import Any

from mmkit.arch.base import (
    KERNEL_ERAS,
    ArchDescriptor,
    Level,
    OverlapReport,
    Region,
    SharedTable,
    format_size,
)
from mmkit.errors import MmkitError

__all__ = [
    "KERNEL_ERAS",
    "ArchDescriptor",
    "Level",
    "OverlapReport",
    "Region",
    "SharedTable",
    "config_rows",
    "format_size",
    "get",
    "names",
]


def names() -> list[str]:
    """Every configuration name the registered architecture plugins provide."""
    from mmkit import plugins

    return list(plugins.arch_configs())


def get(name: str, **options: Any) -> ArchDescriptor:
    """Build the descriptor ``name`` with ``options`` (e.g. ``kernel="v5.7"``).

    Raises :class:`~mmkit.errors.UnknownName` (listing the valid names) for a name no plugin
    provides, and :class:`~mmkit.errors.InvalidArgument` for a bad option.
    """
    from mmkit import plugins

    return plugins.create_arch(name, **options)


def config_rows(**options: Any) -> list[dict[str, object]]:
    """One summary row per configuration (geometry, layout highlights, V7 overlap).

    Options apply to every configuration that accepts them; a configuration that refuses
    them (KASAN on 16K/48) gets a row with its ``error`` instead of numbers.
    """
    rows: list[dict[str, object]] = []
    for name in names():
        try:
            desc = get(name, **options)
        except MmkitError as err:
            rows.append({"name": name, "error": str(err)})
            continue
        rows.append(summary(desc))
    return rows


def summary(desc: Any) -> dict[str, object]:
    """The summary row of one descriptor (used by ``mmkit configs`` and the tables)."""
    m = desc.macros()
    overlap = desc.vmalloc_vmemmap_overlap
    vmalloc = desc.region("vmalloc")
    vmemmap = desc.region("vmemmap")
    return {
        "name": desc.name,
        "kernel": desc.kernel,
        "page_size": m["PAGE_SIZE"],
        "va_bits": m["VA_BITS"],
        "levels": m["PGTABLE_LEVELS"],
        "folded": ",".join(desc.folded_levels),
        "PGDIR_SHIFT": m["PGDIR_SHIFT"],
        "PUD_SHIFT": m["PUD_SHIFT"],
        "PMD_SHIFT": m["PMD_SHIFT"],
        "PTRS_PER_PGD": m["PTRS_PER_PGD"],
        "PAGE_OFFSET": m["PAGE_OFFSET"],
        "VMALLOC_START": m["VMALLOC_START"],
        "VMALLOC_END": m["VMALLOC_END"],
        "vmalloc_size": vmalloc.size,
        "VMEMMAP_START": m["VMEMMAP_START"],
        "vmemmap_size": vmemmap.size,
        "memory_block_size": desc.memory_block_size,
        "vmemmap_population": desc.vmemmap_population,
        "v7_overlap": overlap.overlap,
        "expert_only": desc.expert_only,
    }

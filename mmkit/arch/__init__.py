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
from mmkit.errors import InvalidArgument, MmkitError, UnknownName

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

    _check_options(name, options)
    return plugins.create_arch(name, **options)


#: the options every built-in family takes, by the type each must have (a third-party
#: family's options, even of the same names, pass through to it unchecked: they are its own)
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "kernel": (str,),
    "kasan": (str, type(None)),
    "vabits_actual": (int,),
    "pa_bits": (int,),
    "ghes": (bool,),
    "sdei": (bool,),
    "kpti": (bool,),
    "relocatable": (bool,),
}


def _check_options(name: object, options: dict[str, Any]) -> None:
    """``get()``'s arguments by type, before any plugin sees them."""
    from mmkit._validate import show, text

    text(name, "name")
    if len(name) > 64:  # no configuration is named like this; keep the message short
        raise UnknownName(f"unknown configuration {show(name)}", choices=names())
    from mmkit import plugins

    family = plugins.arch_configs().get(name)
    if family is not None and not type(family).__module__.startswith("mmkit."):
        return  # a plugin's family checks its own options
    for key, value in options.items():
        types = _OPTION_TYPES.get(key)
        if types is None:
            continue
        wrong = not isinstance(value, types) or (bool not in types and isinstance(value, bool))
        if wrong:
            words = {bool: "True or False", int: "an integer", str: "a string"}
            expected = " or ".join(words.get(t, "None") for t in types)
            raise InvalidArgument(
                f"{name}: option {key}={show(value)} must be {expected}, not {type(value).__name__}"
            )


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
    """The summary row of one descriptor (used by ``mmkit configs`` and the tables).

    Every descriptor gives its macros; what only some families have (arm64's V7 overlap
    test, named regions, memory blocks) reads as None when a plugin's descriptor lacks it.
    """
    m = desc.macros()
    overlap = getattr(desc, "vmalloc_vmemmap_overlap", None)

    def size_of(kind: str) -> int | None:
        return next((r.end - r.start for r in desc.regions if r.kind == kind), None)

    folded = getattr(desc, "folded_levels", None)
    return {
        "name": desc.name,
        "kernel": getattr(desc, "kernel", None),
        "page_size": m.get("PAGE_SIZE", 1 << m["PAGE_SHIFT"]),
        "va_bits": m.get("VA_BITS"),
        "levels": m.get("PGTABLE_LEVELS"),
        "folded": ",".join(folded) if folded is not None else None,
        "PGDIR_SHIFT": m["PGDIR_SHIFT"],
        "PUD_SHIFT": m.get("PUD_SHIFT"),
        "PMD_SHIFT": m.get("PMD_SHIFT"),
        "PTRS_PER_PGD": m["PTRS_PER_PGD"],
        "PAGE_OFFSET": m.get("PAGE_OFFSET"),
        "VMALLOC_START": m["VMALLOC_START"],
        "VMALLOC_END": m["VMALLOC_END"],
        "vmalloc_size": size_of("vmalloc"),
        "VMEMMAP_START": m["VMEMMAP_START"],
        "vmemmap_size": size_of("vmemmap"),
        "memory_block_size": getattr(desc, "memory_block_size", None),
        "vmemmap_population": getattr(desc, "vmemmap_population", None),
        "v7_overlap": overlap.overlap if overlap is not None else None,
        "expert_only": getattr(desc, "expert_only", None),
        "teaching": bool(getattr(desc, "teaching_layout", False)),
    }

"""The plugin contracts: the API version, the entry-point groups, and the protocols a
plugin (:class:`ArchPlugin`, :class:`PolicyPlugin`) and what it creates
(:class:`ArchDescriptorLike`, :class:`RegionLike`) must follow.

The checks that enforce them at load time are in :mod:`mmkit.plugins._validate`; the
semantic checks are the test kit's (:mod:`mmkit.testing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

#: The plugin API this mmkit provides, ``"MAJOR.MINOR"``. A plugin must declare the same
#: major; a newer minor is accepted with a note (see the module docstring).
API_VERSION: Final = "1.0"

#: Entry-point group of architecture families (:class:`ArchPlugin`).
ARCH_GROUP: Final = "mmkit.arch"
#: Entry-point group of policies (:class:`PolicyPlugin`).
POLICY_GROUP: Final = "mmkit.policy"

#: Macros every architecture descriptor's ``macros()`` must provide, as ``int`` values.
REQUIRED_MACROS: Final = (
    "PAGE_SHIFT",
    "PGDIR_SHIFT",
    "PTRS_PER_PGD",
    "PTRS_PER_PTE",
    "VMALLOC_START",
    "VMALLOC_END",
    "VMEMMAP_START",
)


#: What :class:`~mmkit.machine.Machine` and the kernel code under it read on every
#: descriptor beyond :class:`ArchDescriptorLike` (``grep -E "desc\.[a-z_]+"`` over machine.py,
#: boot.py, pgtable/, mm/, sched/ and scenarios/). arm64's own boot options (``kpti``,
#: ``relocatable``, ``sdei``, ``ghes``, ``kasan``, ``vabits_actual``) are left out: only
#: arm64's boot reads them. A family whose descriptors lack some of these loads ``ok`` for
#: layouts, tables and ``mmkit.arch.get()``, with a note in its report, and ``Machine``
#: refuses it with a :class:`~mmkit.errors.PluginError` naming what is missing.
MACHINE_ATTRIBUTES: Final = (
    "geometry",
    "indices",
    "kernel",
    "kernel_va_start",
    "level_info",
    "levels",
    "memory_block_size",
    "pa_bits",
    "page_shift",
    "page_size",
    "region_of",
    "va_bits",
    "vmemmap_end",
    "vmemmap_population",
)


def machine_missing(desc: object) -> tuple[str, ...]:
    """The :data:`MACHINE_ATTRIBUTES` ``desc`` lacks (empty: it can run in a Machine).

    >>> from mmkit.arch import get
    >>> machine_missing(get("arm64-4k-48"))
    ()
    """
    missing = []
    for attr in MACHINE_ATTRIBUTES:
        try:
            getattr(desc, attr)
        except KeyboardInterrupt:
            raise
        except BaseException:  # a raising (or exiting) property is as good as none here
            missing.append(attr)
    return tuple(missing)


@runtime_checkable
class RegionLike(Protocol):
    """One VA region of a descriptor: the half-open range ``[start, end)``."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


@runtime_checkable
class ArchDescriptorLike(Protocol):
    """What ``ArchPlugin.create()`` returns: one kernel configuration.

    ``macros()`` maps kernel macro names to ints and holds at least :data:`REQUIRED_MACROS`;
    ``regions`` lists the VA regions in address order. Descriptors should be values (frozen
    dataclasses): creating the same name with the same options twice gives equal objects.
    """

    @property
    def name(self) -> str: ...
    @property
    def regions(self) -> Sequence[RegionLike]: ...
    def macros(self) -> Mapping[str, int]: ...


@runtime_checkable
class ArchPlugin(Protocol):
    """What an ``mmkit.arch`` entry point names: one architecture family.

    ``names()`` lists the family's configuration names (``"arm64-4k-48"``) in
    :func:`natural_key` order; ``describe(name)`` is one line for listings;
    ``create(name, **options)`` raises :class:`~mmkit.errors.UnknownName` for a name it does
    not provide and :class:`~mmkit.errors.InvalidArgument` for a bad option.
    """

    @property
    def api_version(self) -> str: ...
    @property
    def family(self) -> str: ...
    def names(self) -> Sequence[str]: ...
    def describe(self, name: str) -> str: ...
    def create(self, name: str, **options: Any) -> ArchDescriptorLike: ...


@runtime_checkable
class PolicyPlugin(Protocol):
    """What an ``mmkit.policy`` entry point names: one kernel policy (e.g. a patch version).

    ``kernel_versions`` is a non-empty tuple of the versions or patch revisions it models.
    It must also carry every decision the engine reads, each one of its allowed values:
    exactly :data:`mmkit.policies.base.DECISIONS` (``passes``, ``pgtable_lock``,
    ``vmemmap_tables``, ``linear_floor_ceiling``, ``block_tlbi``, ``ptdump_hotplug_lock``,
    ``memblock_after_arch_remove``, ``boot_memory_notifier``). The easy way is to make the
    plugin a :class:`mmkit.policies.HotplugPolicy`.
    """

    @property
    def api_version(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def kernel_versions(self) -> tuple[str, ...]: ...


#: Parts an architecture descriptor *may* offer, ``name -> meaning (default when absent)``.
#: The engine reads each through one accessor, named in the text.
OPTIONAL_ARCH_PARTS: Final[dict[str, str]] = {
    "pte_format": (
        "an object following mmkit.arch.pte_api.PteFormat: how the engine encodes, decodes "
        "and classifies this architecture's table entries and names its kernel protections; "
        "read through mmkit.arch.pte_api.pte_format_of (default: arm64's format for the "
        "descriptor's page size and pa_bits)"
    ),
    "machine_hooks": (
        "an object with boot(machine, vmalloc_areas) building what the kernel has after "
        "boot (page tables, physmem, the linear and vmemmap bases) and optionally "
        "arch_add_memory(machine, start, size) -> Iterator[Step], "
        "ptdump_walk(machine, *, start, end) -> Iterator[PtdumpRecord] and ptdump(machine) "
        "-> str; read through mmkit.boot.machine_hooks_of and, for the dump, "
        "mmkit.mm.ptdump (default: arm64's boot, arch_add_memory and ptdump)"
    ),
    "tlbi_names": (
        "a dict from each kind of TLB invalidation the engine counts (mmkit.pgtable.tlb."
        "TLBI_NAMES: vaale1is, vaae1is, vmalle1is) to what this architecture's kernel does "
        "for it, for views; read through mmkit.pgtable.tlb.tlbi_names_of (default: arm64's "
        "instructions)"
    ),
    "vmalloc_vmemmap_overlap": (
        "an mmkit.arch.base.OverlapReport: V7's vmalloc/vmemmap overlap test, which is "
        "arm64 code; read with getattr by vmemmap_free() and the views (default: no report, "
        "so a layout never overlaps and V7 frees its vmemmap tables there)"
    ),
}

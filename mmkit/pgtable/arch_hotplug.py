"""arm64's ``arch_add_memory`` / ``arch_remove_memory``: the page-table side of hotplug.

Models ``arch/arm64/mm/mmu.c`` as patch 3/3 leaves it (v5.7; V7 has the same structure):
the linear map is created with ``__create_pgd_mapping()`` and the memmap of each section
with ``vmemmap_populate()``; removal runs ``__remove_pages()`` (each section's
``vmemmap_free()``) and then ``__remove_pgd_mapping()``, both through the policy's teardown
(:mod:`mmkit.pgtable.teardown`). The v5.3 and v5.4 trees have no arm64 hot-remove: for every
kernel version this is the patch's code, with the policy choosing the patch version.
:class:`~mmkit.machine.Machine` calls these through its methods of the same names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit import _machine_checks
from mmkit.errors import Busy, Exists, NoMemory, NotFound, NotPermitted
from mmkit.events import Step
from mmkit.pgtable.mapping import (
    NO_BLOCK_MAPPINGS,
    NO_CONT_MAPPINGS,
    create_pgd_mapping,
    vmemmap_populate,
)
from mmkit.pgtable.remove_pagetable import PTL
from mmkit.pgtable.teardown import free_empty_tables, remove_pagetable, unmap_hotplug_range
from mmkit.policies.base import call_hook, frees_vmemmap_tables, hook

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "arch_add_memory",
    "arch_remove_memory",
    "check_hot_add",
    "check_hot_remove",
    "pages_needed",
    "remove_pgd_mapping",
    "vmemmap_free",
]


def arch_add_memory(m: Machine, start: int, size: int) -> Iterator[Step]:
    """``arch_add_memory(nid, start, size, params)`` (v5.7; V7 has the same body):
    linear map, then ``__add_pages()`` (``vmemmap_populate`` per section), and if that
    fails the linear map is torn down again and ``-ENOMEM`` is raised. The last step,
    ``return 0``, records the range in ``hotplugged`` when performed."""
    from mmkit.boot import linear_map_prot, machine_hooks_of

    hooks = machine_hooks_of(m.desc)
    if hooks is not None and hasattr(hooks, "arch_add_memory"):  # the architecture's own
        yield from hooks.arch_add_memory(m, start, size)
        m.hotplugged.append((start, size))
        m.hotplugged.sort()
        return
    fn = "arch_add_memory"
    yield Step("call", fn, f"arch_add_memory(nid, {start:#x}, {size:#x}, params)")

    flags = NO_BLOCK_MAPPINGS | NO_CONT_MAPPINGS if m.rodata_full or m.debug_pagealloc else 0
    # params->pgprot: PAGE_KERNEL, or v6.1's pgprot_mhp(PAGE_KERNEL) (tagged)
    yield from create_pgd_mapping(m, start, m.lm_va(start), size, linear_map_prot(m), flags)
    sec = 1 << m.macros["SECTION_SIZE_BITS"]
    shift = m.desc.page_shift
    for s in range(start, start + size, sec):  # __add_pages → sparse_add_section
        lo, hi = m.vmemmap_va(s >> shift), m.vmemmap_va((s + sec) >> shift)
        try:
            yield from vmemmap_populate(m, lo, hi)
        except NoMemory:
            # section_activate(): a failed memmap is depopulated again; earlier sections
            # stay (as in the kernel); then arch_add_memory() unwinds the linear map
            yield from vmemmap_free(m, lo, hi)
            yield from remove_pgd_mapping(m, m.lm_va(start), size)
            yield Step("call", fn, "return -ENOMEM", va=m.lm_va(start))
            m.added_sections_leaked = (s - start) // sec
            raise
    yield Step("call", fn, "return 0", va=m.lm_va(start))
    m.hotplugged.append((start, size))
    m.hotplugged.sort()


def remove_pgd_mapping(m: Machine, start: int, size: int) -> Iterator[Step]:
    """``__remove_pgd_mapping(swapper_pg_dir, start, size)`` under the machine's policy:
    the linear map's teardown, its tables bounded by [PAGE_OFFSET, PAGE_END) when
    ``linear_floor_ceiling``."""
    p = m.policy
    yield Step(
        "call",
        "__remove_pgd_mapping",
        f"__remove_pgd_mapping(swapper_pg_dir, {start:#x}, {size:#x})",
        va=start,
    )
    bounds = (m.macros["PAGE_OFFSET"], m.macros["PAGE_END"]) if p.linear_floor_ceiling else None
    for op in _teardown(m, "__remove_pgd_mapping", start, start + size, False, True, bounds):
        yield from op


def vmemmap_free(m: Machine, start: int, end: int) -> Iterator[Step]:
    """``vmemmap_free(start, end, altmap)`` under the machine's policy: its tables freed as
    ``vmemmap_tables`` says (never, always, unless V7's overlap, or inside [VMEMMAP_START,
    VMEMMAP_END))."""
    p = m.policy
    yield Step("call", "vmemmap_free", f"vmemmap_free({start:#x}, {end:#x}, NULL)", va=start)
    # V7's test is arm64's (an early_initcall of its mmu.c): a layout without it never
    # "overlaps", so V7 frees there as V3 did
    report = getattr(m.desc, "vmalloc_vmemmap_overlap", None)
    free_tables = frees_vmemmap_tables(p, report is not None and report.overlap)
    bounds = None
    if p.vmemmap_tables == "floor-ceiling":
        bounds = (m.macros["VMEMMAP_START"], m.desc.vmemmap_end)
    for op in _teardown(m, "vmemmap_free", start, end, True, free_tables, bounds):
        yield from op


def _teardown(
    m: Machine,
    fn: str,
    start: int,
    end: int,
    free_mapped: bool,
    free_tables: bool,
    bounds: tuple[int, int] | None,
) -> list[Iterator[Step]]:
    """The policy's teardown of [start, end), as the calls the caller makes in turn: V3's
    single ``remove_pagetable()`` walk (``passes`` 1, which takes the ptl itself) or
    ``unmap_hotplug_range()`` then (if ``free_tables``) ``free_empty_tables()``, under
    ``init_mm.page_table_lock`` when ``pgtable_lock``; ``bounds`` is the (floor, ceiling) a
    table must lie inside to be freed. (A list of calls, not one generator, so that each
    kernel function is its own frame for a stepping view.)"""
    p = m.policy
    if p.passes == 1:
        return [remove_pagetable(m, start, end, free_mapped, free_tables, bounds)]
    ops = [unmap_hotplug_range(m, start, end, free_mapped)]
    if free_tables:
        floor, ceiling = bounds or (0, 0)
        ops.append(
            free_empty_tables(m, start, end, floor, ceiling, floor_ceiling=bounds is not None)
        )
    if p.pgtable_lock:
        ops = [m.lock(fn, PTL), *ops, m.unlock(fn, PTL)]
    return ops


def arch_remove_memory(m: Machine, start: int, size: int) -> Iterator[Step]:
    """``arch_remove_memory(nid, start, size, altmap)``: ``__remove_pages()`` (each
    section's ``vmemmap_free``), then ``__remove_pgd_mapping()`` of the linear map. The
    last step, ``return``, takes the range out of ``hotplugged`` when performed."""
    own = hook(m.policy, "arch_remove_memory")  # OPTIONAL_HOOKS: read here only
    if own is not None:  # the policy's own teardown (another architecture's)
        yield from call_hook(m.policy, "arch_remove_memory", m, start, size)
    else:
        yield Step(
            "call", "arch_remove_memory", f"arch_remove_memory(nid, {start:#x}, {size:#x}, NULL)"
        )
        sec = 1 << m.macros["SECTION_SIZE_BITS"]
        for s in range(start, start + size, sec):
            yield from vmemmap_free(
                m,
                m.vmemmap_va(s >> m.desc.page_shift),
                m.vmemmap_va((s + sec) >> m.desc.page_shift),
            )
        yield from remove_pgd_mapping(m, m.lm_va(start), size)
        yield Step("call", "arch_remove_memory", "return", va=m.lm_va(start))
    m.hotplugged = _without(m.hotplugged, start, size)
    m._boot_ranges = _without(m._boot_ranges, start, size)  # boot memory a policy let go


def _without(ranges: list[tuple[int, int]], start: int, size: int) -> list[tuple[int, int]]:
    kept: list[tuple[int, int]] = []
    for s, n in ranges:
        for lo, hi in ((s, min(s + n, start)), (max(s, start + size), s + n)):
            if lo < hi:
                kept.append((lo, hi - lo))
    return sorted(kept)


def pages_needed(m: Machine, size: int) -> int:
    """An upper bound on the pages hot-adding ``size`` bytes may allocate."""
    g = m.desc.geometry
    pages = 0
    for lvl in g.levels_used[1:]:
        pages += size // (lvl.ptrs * lvl.entry_size) + 2
    memmap = (size >> g.page_shift) * 64
    pages += (memmap >> g.page_shift) + 2 * len(g.levels_used)
    if m.desc.vmemmap_population == "pmd_blocks":
        pages += 1 << (g.pmd_shift - g.page_shift)  # alignment slack of a 2 MiB block
    return pages


def check_hot_add(m: Machine, start: int, size: int, *, align: int | None = None) -> None:
    """What :meth:`Machine.hot_add <mmkit.machine.Machine.hot_add>` refuses, before anything
    changes: typed errors for a bad range, memory already present, or too little memory."""
    _machine_checks.hotplug_range(m, start, size, "hot-add", align=align)
    if m._overlaps(start, size, m._boot_ranges) or m._overlaps(start, size, m.hotplugged):
        raise Exists(
            f"hot-add: [{start:#x}, {start + size:#x}) overlaps memory that is "
            "already present (register_memory_resource: -EEXIST)"
        )
    need = pages_needed(m, size)
    if need > m.physmem.available_pages():
        raise NoMemory(
            f"hot-add: needs up to {need} free pages for page tables and "
            f"the memmap, the allocator has {m.physmem.available_pages()}"
        )


def check_hot_remove(m: Machine, start: int, size: int, *, align: int | None = None) -> None:
    """What :meth:`Machine.hot_remove <mmkit.machine.Machine.hot_remove>` refuses, before
    anything changes: a bad range, memory that is not all present, or boot memory that could
    not go offline: a block with unmovable (boot-allocated) pages (``-EBUSY``) or, under a
    policy with the boot-memory notifier, any early section (``-EPERM``; see
    :mod:`mmkit.mm.hotplug`). Boot memory a policy lets through is removed as the kernel
    would (its memmap's ``PageReserved`` pages warned about, and leaked)."""
    _machine_checks.hotplug_range(m, start, size, "hot-remove", align=align)
    present = [*m.hotplugged, *m._boot_ranges]
    covered = sum(max(0, min(s + n, start + size) - max(s, start)) for s, n in present)
    if covered != size:
        raise NotFound(
            f"hot-remove: [{start:#x}, {start + size:#x}) is not all present memory; "
            "remove only what was added"
        )
    if m._overlaps(start, size, m._boot_ranges):
        block = m.desc.memory_block_size
        for b in range(start // block, (start + size) // block):
            blk = m.blocks.get(b)
            if blk is not None and blk.unmovable:
                raise Busy(
                    f"hot-remove: memory{b} is boot memory holding boot allocations "
                    "(has_unmovable_pages): it cannot be offlined, so it cannot be removed"
                )
        if m.policy.boot_memory_notifier:
            raise NotPermitted(
                f"hot-remove: [{start:#x}, {start + size:#x}) is boot memory: "
                "prevent_bootmem_remove_notifier refuses to offline early sections"
            )

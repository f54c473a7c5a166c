"""The generic memory hotplug flow: add, online, offline and remove, per kernel version.

Models ``mm/memory_hotplug.c`` (``add_memory`` → ``add_memory_resource``, ``remove_memory`` →
``try_remove_memory``), ``drivers/base/memory.c`` (memory block devices, onlining) and
``drivers/base/node.c`` (the node ↔ memory block sysfs links) on top of the arch layer
(:meth:`~mmkit.machine.Machine.arch_add_memory` / ``arch_remove_memory``).

``try_remove_memory()`` calls its steps in the order of the machine's kernel version
(kernel-facts 4.2), unless the policy applies patch 1/3 or the pre-patch order itself
(``memblock_after_arch_remove``, see :mod:`mmkit.policies.base` for the rule):

* **v5.3, v5.4**: memblock ranges freed and removed *before* the memory block devices are
  removed. In v5.3, ``unregister_memory_block_under_nodes()`` finds the node by walking pfns
  through ``get_nid_for_pfn()`` → ``pfn_valid()`` → ``memblock_is_map_memory()``, which is
  already false: the node's link is never removed and the next hot-add of the range hits
  ``BUG_ON(ret)`` on ``-EEXIST`` (patch 1/3's bug). v5.4's node.c unlinks by the block's
  stored nid instead, so the same order is harmless there.
* **v5.5** (patch 1/3 merged as 32d1fe8fcb32): devices removed, then ``arch_remove_memory``,
  then the memblock ranges, in reverse order of add.
* **v5.7, v6.1**: as v5.5, with the devices removed before ``mem_hotplug_begin()`` (D.
  Hildenbrand's lock move). A policy that keeps the pre-patch order here frees and removes
  the memblock ranges right after ``firmware_map_remove()``, before the devices.

**Boot memory** (kernel-facts 4.4). Offlining runs ``offline_pages()`` in v5.7's order:
``start_isolate_page_range()`` first (``-EBUSY`` if ``has_unmovable_pages()``: a boot block
holding memblock allocations, the kernel image, or kernel allocations made later), then the
``MEM_GOING_OFFLINE`` notifiers. With the policy's ``boot_memory_notifier`` (V12 on, v5.7's
``prevent_bootmem_remove_notifier``) an early section answers ``NOTIFY_BAD``, which
``notifier_to_errno()`` turns into ``-EPERM``: boot memory never goes offline, so it is never
removed. Without it (V7 and before) a boot block with nothing pinned goes offline and
``remove_memory()`` removes it: ``__remove_pages()`` frees its memmap through
``free_map_bootmem()`` → ``vmemmap_free()``, whose pages came from memblock and are
``PageReserved``; ``free_hotplug_page_range()`` warns and frees them anyway, and the page
allocator reports each as a bad page and keeps it out of the free lists
(:meth:`~mmkit.machine.Machine.free_backing`).

Each step is yielded before it is performed (yield, then perform; see :mod:`mmkit.events`):
a lock is taken, a memblock range added or removed, a device registered, a sysfs link made
or removed when its step is resumed. What only performing tells is filled in then (the node
``get_nid_for_pfn()`` found, a link that failed with ``-EEXIST``). The checks that refuse an
operation with a typed error run before its first step, so a refused operation yields none.

Simplifications: one NUMA node per add, no ZONE_DEVICE, no altmap; the page allocator's
migration on offline is reduced to one fact per block (does it hold unmovable kernel
allocations?). arm64's hot-remove code (patch 3/3) is used for every kernel version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit import _machine_checks
from mmkit._validate import integer, show
from mmkit.errors import Busy, Exists, InvalidArgument, NotFound, NotPermitted
from mmkit.events import Step
from mmkit.mm.memblock import MemblockFlags, pfn_valid
from mmkit.mm.memory_block import NUMA_NO_NODE, MemoryBlock, MemSection

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "HOTPLUG_KERNELS",
    "ONLINE_TYPES",
    "add_memory",
    "get_nid_for_pfn",
    "offline_memory_block",
    "online_memory_block",
    "remove_memory",
]

#: kernel versions whose hotplug call order is modelled
HOTPLUG_KERNELS: tuple[str, ...] = ("v5.3", "v5.4", "v5.5", "v5.7", "v6.1")
#: ``memhp_default_online_type`` choices (v5.7 names); "offline" means no auto-online
ONLINE_TYPES: tuple[str, ...] = ("offline", "online", "online_movable")
MAX_NUMNODES = 4  # arm64 NODES_SHIFT default


def _step(action: str, fn: str, line: str, **kw: object) -> Step:
    return Step(action, fn, line, **kw)  # type: ignore[arg-type]


def _sections_of(m: Machine, start: int, size: int) -> range:
    bits = m.macros["SECTION_SIZE_BITS"]
    return range(start >> bits, (start + size) >> bits)


def _blocks_of(m: Machine, start: int, size: int) -> range:
    block = m.desc.memory_block_size
    return range(start // block, (start + size) // block)


def is_early(m: Machine, blk: MemoryBlock) -> bool:
    """Whether any section of ``blk`` is early (``SECTION_IS_EARLY``: boot memory)."""
    return any(m.sections[s].early for s in range(blk.start_section_nr, blk.end_section_nr + 1))


def get_nid_for_pfn(m: Machine, pfn: int) -> int:
    """``get_nid_for_pfn()`` (v5.3 drivers/base/node.c): -1 unless ``pfn_valid_within(pfn)``
    (which arm64's ``HOLES_IN_ZONE`` makes ``pfn_valid()``), else the page's node."""
    if not m.pfn_valid(pfn):
        return -1
    section = m.sections.get(pfn >> (m.macros["SECTION_SIZE_BITS"] - m.desc.page_shift))
    return section.nid if section else -1


# ------------------------------------------------------------------------ checks
def check_add(m: Machine, nid: int, start: int, size: int) -> None:
    """Everything ``add_memory`` would refuse, checked before anything changes."""
    _machine_checks.hotplug_range(m, start, size, "add_memory")
    if not isinstance(nid, int) or isinstance(nid, bool) or not 0 <= nid < MAX_NUMNODES:
        raise InvalidArgument(
            f"add_memory: node {show(nid)} does not exist (MAX_NUMNODES = "
            f"{MAX_NUMNODES}); use a node id from 0 to {MAX_NUMNODES - 1}"
        )
    if m._overlaps(start, size, m.hotplugged):
        raise Exists(
            f"add_memory: [{start:#x}, {start + size:#x}) is already mapped by the "
            "arch layer (hot_add); remove it with hot_remove first"
        )
    for s, e in m.resources:
        if s < start + size and start < e:
            raise Exists(
                f"add_memory: [{start:#x}, {start + size:#x}) overlaps System RAM "
                f"[{s:#x}, {e:#x}) (register_memory_resource: -EEXIST)"
            )
    m._check_oops("add_memory")


def check_remove(m: Machine, start: int, size: int) -> None:
    """Everything ``remove_memory`` would refuse, checked before anything changes."""
    _machine_checks.hotplug_range(m, start, size, "remove_memory")
    m._check_oops("remove_memory")
    for b in _blocks_of(m, start, size):
        blk = m.blocks.get(b)
        if blk is None:
            raise NotFound(
                f"remove_memory: memory{b} does not exist: nothing was added at "
                f"{b * m.desc.memory_block_size:#x}"
            )
        if blk.state != "offline":
            early = is_early(m, blk)
            raise Busy(
                f"remove_memory: memory{b} is {blk.state}; offline it first "
                f"(echo offline > /sys/devices/system/memory/memory{b}/state)"
                + ("; it is boot memory (early section)" if early else "")
            )


# ---------------------------------------------------------------------- add path
def add_memory(m: Machine, nid: int, start: int, size: int) -> Iterator[Step]:
    """``add_memory(nid, start, size)``: the whole v5.4/v5.7 hot-add path (checked when
    called, before the first step: :func:`check_add`)."""
    check_add(m, nid, start, size)
    return _add_memory(m, nid, start, size)


def _add_memory(m: Machine, nid: int, start: int, size: int) -> Iterator[Step]:
    fn = "add_memory"
    yield from m.lock(fn, "device_hotplug_lock")
    yield _step("call", "__add_memory", f"register_memory_resource({start:#x}, {size:#x})")
    m.resources.append((start, start + size))
    fn = "add_memory_resource"
    yield from m.lock(fn, "mem_hotplug_lock", mode="write")
    yield _step("memblock", fn, f"memblock_add_node({start:#x}, {size:#x}, {nid})", note="memory")
    m.memblock.add_node(start, size, nid)
    try:
        yield from m.arch_add_memory(start, size)
    except Exception:
        # the error path: memblock_remove, release the resource, unlock
        yield _step("memblock", fn, f"memblock_remove({start:#x}, {size:#x})", note="memory")
        m.memblock.remove(start, size)
        yield _step("call", fn, f"release_memory_resource({start:#x}, {size:#x})")
        m.resources.remove((start, start + size))
        yield from m.unlock(fn, "mem_hotplug_lock")
        yield from m.unlock("add_memory", "device_hotplug_lock")
        raise
    sections = _sections_of(m, start, size)
    # __add_pages → sparse_add_section → section_mark_present, for the sections just mapped
    yield _step(
        "call",
        "__add_pages",
        f"sparse_add_section() x {len(sections)}: section_mark_present(sections "
        f"{sections.start}..{sections.stop - 1})",
    )
    for s in sections:
        m.sections[s] = MemSection(s, early=False, online=False, nid=nid)
    per = m.desc.memory_block_size >> m.macros["SECTION_SIZE_BITS"]
    for b in _blocks_of(m, start, size):  # create_memory_block_devices
        yield _step("device", "create_memory_block_devices", f"register_memory(memory{b})")
        m.blocks[b] = MemoryBlock(b, b * per, b * per + per - 1)
        m.sysfs.register_memory(b)
    if nid not in m.nodes_online:
        yield _step("device", fn, f"__register_one_node({nid})")
        m.nodes_online.add(nid)
        m.sysfs.register_node(nid)
    # link_mem_sections → register_mem_sect_under_node for each block; BUG_ON(ret)
    for b in _blocks_of(m, start, size):
        blk = m.blocks[b]
        links = (
            (("node", nid), ("memory", b), f"node{nid}, memory{b}"),
            (("memory", b), ("node", nid), f"memory{b}, node{nid}"),
        )
        for i, (src, dst, args) in enumerate(links):
            step = _step(
                "sysfs", "register_mem_sect_under_node", f"sysfs_create_link_nowarn({args})"
            )
            yield step
            if i == 0:
                blk.nid = nid
            try:
                m.sysfs.create_link(src, dst)
            except Exists as err:
                step.line += f" = -EEXIST: {err}"
                yield _step("bug", "add_memory_resource", "BUG_ON(ret)")
                m.oops = m.record_event(
                    "bug",
                    "add_memory_resource",
                    "kernel BUG at mm/memory_hotplug.c: BUG_ON(ret) after link_mem_sections() "
                    f"returned -EEXIST (-17) for memory{b} under node{nid}: a stale sysfs link",
                    pfn=start >> m.desc.page_shift,
                )
                return  # the task dies here, still holding mem_hotplug_lock
    yield _step("call", fn, 'firmware_map_add_hotplug(start, start + size, "System RAM")')
    yield from m.unlock(fn, "mem_hotplug_lock")
    if m.online_type != "offline":  # walk_memory_blocks(..., online_memory_block)
        for b in _blocks_of(m, start, size):
            yield from online_memory_block(m, b, m.online_type)
    yield from m.unlock("add_memory", "device_hotplug_lock")


def online_memory_block(m: Machine, block_id: int, online_type: str = "online") -> Iterator[Step]:
    """``memory_subsys_online`` → ``online_pages``: a block becomes usable memory (checked
    when called, before the first step)."""
    blk = _block(m, block_id)
    if online_type not in ONLINE_TYPES[1:]:
        raise InvalidArgument(
            f"online type {show(online_type)} (echo it to memory{block_id}/state)",
            choices=ONLINE_TYPES[1:],
        )
    m._check_oops("online_pages")
    return _online_memory_block(m, blk, online_type)


def _block(m: Machine, block_id: object) -> MemoryBlock:
    integer(block_id, "block_id", lo=0)
    blk = m.blocks.get(block_id)  # type: ignore[call-overload]
    if blk is None:
        raise NotFound(
            f"memory{block_id} does not exist (present: "
            f"{', '.join(f'memory{b}' for b in sorted(m.blocks)[:8])}"
            f"{', ...' if len(m.blocks) > 8 else ''}); add memory there first"
        )
    return blk  # type: ignore[no-any-return]


def _online_memory_block(m: Machine, blk: MemoryBlock, online_type: str) -> Iterator[Step]:
    block_id = blk.id
    if blk.state == "online":
        return  # memory_subsys_online(): already online is success
    fn = "online_pages"
    yield from m.lock(fn, "mem_hotplug_lock", mode="write")
    yield _step("device", fn, f"memory{block_id}: offline -> online ({online_type})")
    for s in range(blk.start_section_nr, blk.end_section_nr + 1):
        m.sections[s].online = True
    blk.state = "online"
    blk.online_type = online_type
    blk.zone = "Movable" if online_type == "online_movable" else "Normal"
    yield from m.unlock(fn, "mem_hotplug_lock")


def offline_memory_block(m: Machine, block_id: int) -> Iterator[Step]:
    """``memory_subsys_offline`` → ``offline_pages`` (v5.7 order): ``-EBUSY`` when
    ``start_isolate_page_range()`` finds unmovable pages, then ``-EPERM`` when a
    ``MEM_GOING_OFFLINE`` notifier says ``NOTIFY_BAD`` (the policy's boot-memory notifier on
    an early section; module docstring). Checked when called, before the first step."""
    blk = _block(m, block_id)
    m._check_oops("offline_pages")
    if blk.state == "offline":
        return iter(())
    early = is_early(m, blk)
    if blk.unmovable:
        what = (
            "boot allocations (PageReserved: kernel image, memblock) or kernel allocations"
            if early
            else "kernel allocations in ZONE_NORMAL"
        )
        raise Busy(
            f"offline memory{block_id}: failure to isolate range: has_unmovable_pages(): "
            f"{what} cannot be migrated"
            + ("" if early else " (online it as online_movable next time)")
        )
    if early and m.policy.boot_memory_notifier:
        raise NotPermitted(
            f"offline memory{block_id}: notifier failure: prevent_bootmem_remove_notifier "
            "returned NOTIFY_BAD for an early section (boot memory is never removed)"
        )
    return _offline_memory_block(m, blk)


def _offline_memory_block(m: Machine, blk: MemoryBlock) -> Iterator[Step]:
    block_id = blk.id
    fn = "offline_pages"
    yield from m.lock(fn, "mem_hotplug_lock", mode="write")
    yield _step("device", fn, f"memory{block_id}: MEM_GOING_OFFLINE")
    blk.state = "going-offline"
    yield _step("device", fn, f"memory{block_id}: MEM_OFFLINE")
    for s in range(blk.start_section_nr, blk.end_section_nr + 1):
        m.sections[s].online = False
    blk.state = "offline"
    blk.zone = ""
    yield from m.unlock(fn, "mem_hotplug_lock")


# ------------------------------------------------------------------- remove path
def _unregister_under_nodes(m: Machine, blk: MemoryBlock) -> Iterator[Step]:
    fn = "unregister_memory_block_under_nodes"
    if m.kernel == "v5.3":
        # walk the pfns of the block's sections: first pfn of the first section to first
        # pfn of the last, and unlink each online node found once
        shift = m.macros["SECTION_SIZE_BITS"] - m.desc.page_shift
        seen: set[int] = set()
        for pfn in range(blk.start_section_nr << shift, (blk.end_section_nr << shift) + 1):
            step = _step("read", fn, f"nid = get_nid_for_pfn({pfn:#x})", pfn=pfn)
            yield step
            nid = get_nid_for_pfn(m, pfn)
            step.line += f" = {nid}"
            step.note = f"pfn_valid={m.pfn_valid(pfn)}"
            if nid < 0 or nid not in m.nodes_online or nid in seen:
                continue
            seen.add(nid)
            yield from _remove_links(m, blk.id, nid, fn)
        return
    if blk.nid == NUMA_NO_NODE:
        return
    yield from _remove_links(m, blk.id, blk.nid, fn)


def _remove_links(m: Machine, block_id: int, nid: int, fn: str) -> Iterator[Step]:
    yield _step("sysfs", fn, f"sysfs_remove_link(node{nid}, memory{block_id})")
    m.sysfs.remove_link(("node", nid), ("memory", block_id))
    yield _step("sysfs", fn, f"sysfs_remove_link(memory{block_id}, node{nid})")
    m.sysfs.remove_link(("memory", block_id), ("node", nid))


def _remove_memory_block_devices(m: Machine, start: int, size: int) -> Iterator[Step]:
    for b in _blocks_of(m, start, size):
        blk = m.blocks[b]
        yield from _unregister_under_nodes(m, blk)
        yield _step("device", "remove_memory_block_devices", f"unregister_memory(memory{b})")
        m.sysfs.unregister_memory(b)
        del m.blocks[b]


def _memblock_free_remove(m: Machine, start: int, size: int, fn: str) -> Iterator[Step]:
    yield _step("memblock", fn, f"memblock_free({start:#x}, {size:#x})", note="reserved")
    m.memblock.free(start, size)
    yield _step("memblock", fn, f"memblock_remove({start:#x}, {size:#x})", note="memory")
    m.memblock.remove(start, size)


def _arch_remove(m: Machine, start: int, size: int) -> Iterator[Step]:
    yield from m.arch_remove_memory(start, size)
    sections = _sections_of(m, start, size)
    # __remove_pages → sparse_remove_section, for the sections just unmapped
    yield _step(
        "call",
        "__remove_pages",
        f"sparse_remove_section() x {len(sections)} (sections "
        f"{sections.start}..{sections.stop - 1})",
    )
    for s in sections:
        m.sections.pop(s, None)


def memblock_last(m: Machine) -> bool:
    """Whether ``try_remove_memory()`` frees and removes the memblock ranges after
    ``arch_remove_memory()``: the policy's ``memblock_after_arch_remove``, or (None) the
    kernel era's order: v5.5 on (32d1fe8fcb32)."""
    after = m.policy.memblock_after_arch_remove
    return m.kernel not in ("v5.3", "v5.4") if after is None else after


def remove_memory(m: Machine, start: int, size: int) -> Iterator[Step]:
    """``remove_memory(nid, start, size)`` → ``try_remove_memory`` in the kernel's order
    (and the policy's memblock order, :func:`memblock_last`). Checked when called, before the
    first step (:func:`check_remove`)."""
    check_remove(m, start, size)
    return _remove_memory(m, start, size)


def _remove_memory(m: Machine, start: int, size: int) -> Iterator[Step]:
    fn = "try_remove_memory"
    last = memblock_last(m)
    yield from m.lock("remove_memory", "device_hotplug_lock")
    if m.kernel in ("v5.7", "v6.1"):
        yield _step("call", fn, 'firmware_map_remove(start, start + size, "System RAM")')
        if not last:
            yield from _memblock_free_remove(m, start, size, fn)
        yield from _remove_memory_block_devices(m, start, size)
        yield from m.lock(fn, "mem_hotplug_lock", mode="write")
        yield from _arch_remove(m, start, size)
    else:
        yield from m.lock(fn, "mem_hotplug_lock", mode="write")
        yield _step("call", fn, 'firmware_map_remove(start, start + size, "System RAM")')
        if not last:
            yield from _memblock_free_remove(m, start, size, fn)
        yield from _remove_memory_block_devices(m, start, size)
        yield from _arch_remove(m, start, size)
    if last:
        yield from _memblock_free_remove(m, start, size, fn)
    yield _step("call", fn, f"__release_memory_resource({start:#x}, {size:#x})")
    _release_resource(m, start, size)
    yield _step("call", fn, "try_offline_node(nid)")
    yield from m.unlock(fn, "mem_hotplug_lock")
    yield from m.unlock("remove_memory", "device_hotplug_lock")


def _release_resource(m: Machine, start: int, size: int) -> None:
    """``release_mem_region_adjustable()``: take [start, start + size) out of the "System
    RAM" resource holding it, splitting a boot bank's resource around it."""
    end = start + size
    for s, e in list(m.resources):
        if s <= start and end <= e:
            m.resources.remove((s, e))
            m.resources += [r for r in ((s, start), (end, e)) if r[0] < r[1]]
            m.resources.sort()
            return


def memblock_flags_ok(m: Machine) -> bool:
    """No memblock region is left NOMAP by hotplug (a consistency check for tests)."""
    return all(not r.flags & MemblockFlags.NOMAP for r in m.memblock.regions("memory"))


__all__ += ["memblock_flags_ok", "pfn_valid"]


def allocate_unmovable(m: Machine, block_id: int) -> None:
    """Let the kernel allocate unmovable memory (slab, page tables) in an online block.

    Only ZONE_NORMAL takes such allocations: a block onlined ``online_movable`` refuses
    (``-EBUSY``), which is why movable onlining is what makes memory removable again.
    """
    blk = _block(m, block_id)
    if blk.state != "online":
        raise Busy(f"memory{block_id} is {blk.state}: nothing can be allocated from it")
    if blk.online_type == "online_movable":
        raise Busy(f"memory{block_id} is in ZONE_MOVABLE: unmovable allocations never land there")
    blk.unmovable = True


__all__ += ["allocate_unmovable"]

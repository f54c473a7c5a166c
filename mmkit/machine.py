"""A simulated arm64 machine: boot page tables, hot-add and hot-remove, TLBs, the event log.

``Machine(arch, memory=[(start, size), ...], policy=..., rodata_full=...)`` builds what the
kernel has after boot for that configuration and kernel era (the defaults are QEMU ``virt``:
RAM from 0x4000_0000): the kernel image mapped in the vmalloc area with its segment
permissions, the linear map of boot memory (blocks and contiguous hints where allowed), the
fixmap tables, the vmemmap of boot memory and a few vmalloc areas. Then
``arch_add_memory`` / ``arch_remove_memory`` change it, step by step.

Every operation is a generator of :class:`~mmkit.events.Step` that yields each step *before*
performing it (yield, then perform: resuming the generator performs the step it yielded, and
nothing else, before the next yield); ``run()`` drives one to the end, a stepping view or the
scheduler drives it one step at a time and can see each next step before it is taken. Kernel
bugs (``WARN_ON``, ``BUG_ON``, use-after-free) are :class:`~mmkit.events.KernelEvent` records
in ``machine.events``, recorded when the step that detects them is performed.

>>> m = Machine("arm64-4k-48", memory=[(0x4000_0000, 2 << 30)])
>>> before = len(m.table_pages())
>>> m.hot_add(0x1_0000_0000, 1 << 30); m.hot_remove(0x1_0000_0000, 1 << 30)
>>> len(m.table_pages()) == before, m.events
(True, [])
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mmkit import _digest, _machine_checks, _validate
from mmkit import arch as _arch
from mmkit.boot import boot, memblock_alloc
from mmkit.errors import Busy, InvalidArgument, PluginError
from mmkit.events import KernelEvent, Step
from mmkit.mm import page_alloc
from mmkit.pgtable.tables import TablePageRecord
from mmkit.pgtable.tlb import TLB

__all__ = ["Machine"]

_M64 = (1 << 64) - 1
_SZ_2M = 2 << 20
#: PAGES_PER_SUBSECTION in bytes (SUBSECTION_SHIFT 21, v5.4 include/linux/mmzone.h)
_SUBSECTION = 1 << 21


def _check_machine_ready(desc: Any) -> None:
    """A plugin descriptor without what the engine reads: a PluginError naming it."""
    from mmkit.plugins import machine_missing

    missing = machine_missing(desc)
    if missing:
        raise PluginError(
            f"{getattr(desc, 'name', desc)!r} describes a layout only: a Machine needs "
            f"{', '.join(missing)} on its descriptor (mmkit.plugins.MACHINE_ATTRIBUTES)"
        )


class Machine:
    """One simulated system (see the module docstring)."""

    def __init__(
        self,
        arch: str | Any = "arm64-4k-48",
        memory: Sequence[tuple[int, int]] = ((0x4000_0000, 2 << 30),),
        *,
        policy: str | Any = "v5.7",
        rodata_full: bool = False,
        debug_pagealloc: bool = False,
        cpus: int = 2,
        vmalloc_areas: int = 3,
        fine: bool = False,
        record: bool = True,
        online_type: str = "online",
        unmap_kernel_at_el0: bool | None = None,
        **arch_options: Any,
    ) -> None:
        from mmkit import policies

        memory = _validate.machine_args(
            arch=arch,
            memory=memory,
            policy=policy,
            flags={
                "rodata_full": rodata_full,
                "debug_pagealloc": debug_pagealloc,
                "fine": fine,
                "record": record,
            },
            cpus=cpus,
            vmalloc_areas=vmalloc_areas,
            online_type=online_type,
            unmap_kernel_at_el0=unmap_kernel_at_el0,
            kernel=arch_options.get("kernel"),
        )
        kernel = arch_options.pop("kernel", None)
        if kernel is not None:
            # v5.5 lays memory out as v5.4 does; it differs in try_remove_memory's order
            arch_options["kernel"] = "v5.4" if kernel == "v5.5" else kernel
        extra = sorted(set(arch_options) - {"kernel"})
        if not isinstance(arch, str) and extra:
            raise InvalidArgument(
                f"options {extra} apply to a configuration name, not to a descriptor: "
                "pass them to mmkit.arch.get() instead"
            )
        self.desc = _arch.get(arch, **arch_options) if isinstance(arch, str) else arch
        _check_machine_ready(self.desc)
        #: the kernel version whose generic hotplug code runs (layout era: ``desc.kernel``)
        self.kernel = kernel or self.desc.kernel
        self.online_type = online_type
        self.policy = policies.get(policy)
        self.rodata_full = rodata_full
        self.debug_pagealloc = debug_pagealloc
        self.fine = fine
        self.record = record
        built = bool(getattr(self.desc, "kpti", False))  # CONFIG_UNMAP_KERNEL_AT_EL0
        if unmap_kernel_at_el0 and not built:
            raise InvalidArgument(
                "unmap_kernel_at_el0=True needs a kernel built with CONFIG_UNMAP_KERNEL_AT_EL0 "
                "(the kpti option); drop one of them"
            )
        #: arm64_kernel_unmapped_at_el0(): KPTI in use, decided at boot (built and needed;
        #: a CPU without Meltdown, such as QEMU's -cpu max, does not need it)
        self.kpti_enabled = built if unmap_kernel_at_el0 is None else unmap_kernel_at_el0
        #: PTE_MAYBE_NG / PMD_MAYBE_NG: nG on kernel mappings when KPTI is in use
        self.ng = self.kpti_enabled
        self.macros = self.desc.macros()
        self.events: list[KernelEvent] = []
        self.history: list[Step] = []
        self.stats: dict[str, int] = {"vaale1is": 0, "vaae1is": 0, "vmalle1is": 0}
        self.tlbs = [TLB() for _ in range(cpus)]
        #: kernel locks currently held (name -> mode), as the lock steps took them; changed
        #: only by :meth:`_acquire` and :meth:`_release`
        self.locks: dict[str, str] = {}
        self._lock_holders: dict[str, list[str]] = {}  #: lock -> threads holding it
        self._boot_ranges = _machine_checks.boot_memory(self, memory)
        self.hotplugged: list[tuple[int, int]] = []
        self.vmalloc_ranges: list[tuple[int, int]] = []
        #: the pages each vmalloc area was given (area VA -> pfns)
        self.vmalloc_backing: dict[int, list[int]] = {}
        boot(self, vmalloc_areas)

    def __deepcopy__(self, memo: dict[int, Any]) -> Machine:
        """A copy that shares the immutable descriptor and policy (scenarios copy a prepared
        machine instead of booting one per schedule)."""
        memo[id(self.desc)] = self.desc
        memo[id(self.policy)] = self.policy
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key in ("sections", "blocks"):  # records whose fields are all immutable
                setattr(new, key, {k: copy.copy(v) for k, v in value.items()})
            elif key == "tlbs":
                setattr(new, key, [TLB(dict(t.leaf), dict(t.walk)) for t in value])
            elif key == "macros":
                setattr(new, key, dict(value))
            else:
                setattr(new, key, copy.deepcopy(value, memo))
        return new

    # ------------------------------------------------------------------ layout
    @property
    def page_size(self) -> int:
        return self.desc.page_size

    @property
    def boot_memory(self) -> list[tuple[int, int]]:
        return list(self._boot_ranges)

    def lm_va(self, pa: int) -> int:
        """``__phys_to_virt(pa)``: where the linear map maps ``pa``."""
        if not isinstance(pa, int | np.integer) or not 0 <= pa < 1 << 64:
            _validate.address(pa, "pa")
        return (pa - self.physvirt_offset) & _M64

    def vmemmap_va(self, pfn: int) -> int:
        """Address of ``struct page`` for ``pfn`` (``pfn_to_page``, 64-byte struct page)."""
        if not isinstance(pfn, int | np.integer) or not 0 <= pfn < 1 << 64:
            _validate.address(pfn, "pfn")
        return (self.vmemmap_base + (pfn << 6)) & _M64

    # ------------------------------------------------------------------- boot
    def pfn_valid(self, pfn: int) -> bool:
        """arm64 ``pfn_valid()``: a present section with a memmap, and map memory in
        memblock (:func:`mmkit.mm.memblock.pfn_valid`)."""
        from mmkit.mm.memblock import pfn_valid

        _validate.address(pfn, "pfn")
        bits = self.macros["SECTION_SIZE_BITS"]
        return pfn_valid(
            self.memblock,
            pfn,
            page_shift=self.desc.page_shift,
            sections=lambda nr: nr in self.sections and self.sections[nr].has_memmap,
            kernel="v5.4",
            section_size_bits=bits,
            max_physmem_bits=self.macros["MAX_PHYSMEM_BITS"],
        )

    def _check_oops(self, what: str) -> None:
        if self.oops is not None:
            raise Busy(
                f"{what}: the kernel oopsed in {self.oops.function} holding "
                "mem_hotplug_lock; every later hotplug operation would block forever"
            )

    def _memblock_alloc(self, size: int, owner: str) -> int:
        return memblock_alloc(self, size, owner)

    # ------------------------------------------------------------ primitives
    def alloc_table(self, depth: int, va: int, fn: str, *, boot: bool = False) -> Iterator[Step]:
        """``pgtable_alloc()``: a zeroed table page (memblock at boot, buddy after).

        Yields the ``alloc`` step, then allocates (``step.pfn``); returns the pfn."""
        name = self.pgtables.levels[depth].name
        src = "early_pgtable_alloc" if boot else "__pgd_pgtable_alloc"
        step = Step(
            "alloc", fn, f"{src}({name.upper()}_SHIFT)", name, va, size=self.page_size, note="table"
        )
        yield step
        if boot:
            pfn = self._memblock_alloc(self.page_size, f"boot {name} table") >> self.desc.page_shift
        else:
            pfn = self.physmem.alloc_pages(0, "table", f"{name} table")
        self.pgtables.new_table(
            pfn, depth, va & ~(self.pgtables.span(depth) - 1) & _M64, boot=boot, for_va=va
        )
        step.pfn = pfn
        return pfn

    def alloc_backing(
        self, order: int, owner: str, fn: str, *, boot: bool = False
    ) -> Iterator[Step]:
        """A block of ``2**order`` pages backing a kernel mapping (vmemmap, vmalloc).

        Yields the ``alloc`` step, then allocates (``step.pfn``); returns the first pfn."""
        size = self.page_size << order
        step = Step("alloc", fn, f"alloc {size:#x} bytes for {owner}", size=size, note=owner)
        yield step
        if boot:
            pfn = self._memblock_alloc(size, f"boot {owner}") >> self.desc.page_shift
        else:
            pfn = self.physmem.alloc_pages(order, "backing", owner)
        step.pfn = pfn
        return pfn

    #: ``free_hotplug_page_range()`` of ``count`` blocks of ``2**order`` pages, in one step
    #: (:func:`mmkit.mm.page_alloc.free_hotplug_page_range`)
    free_backing = page_alloc.free_hotplug_page_range
    #: ``free_pages()`` of a ``PageReserved`` block (:func:`mmkit.mm.page_alloc.bad_page`)
    bad_page = page_alloc.bad_page

    def free_table(self, pfn: int, fn: str) -> Iterator[Step]:
        """``free_hotplug_pgtable_page()`` of one unhooked table page
        (:func:`mmkit.pgtable.bulk_free.free_tables`)."""
        from mmkit.pgtable.bulk_free import free_tables

        return free_tables(self, [pfn], fn)

    def lock(self, fn: str, name: str, mode: str = "exclusive") -> Iterator[Step]:
        """Take kernel lock ``name`` in ``mode`` (``exclusive``, ``read`` or ``write``).

        The ``lock`` step (``note`` ``"name:mode"``) is yielded before the lock is taken, so
        a scheduler sees the request first and may hold the thread back while
        :meth:`lock_available` says no; resuming takes the lock."""
        step = Step(
            "lock",
            fn,
            f"lock({name})" if mode == "exclusive" else f"{mode}_lock({name})",
            note=f"{name}:{mode}",
        )
        yield step
        self._acquire(name, mode, step.thread)

    def unlock(self, fn: str, name: str) -> Iterator[Step]:
        """Release kernel lock ``name`` (the ``unlock`` step, then the release)."""
        step = Step("unlock", fn, f"unlock({name})", note=name)
        yield step
        self._release(name, step.thread)

    def lock_available(self, name: str, mode: str, thread: str = "") -> bool:
        """Whether ``thread`` could take ``name`` in ``mode`` now. Nothing blocks on its own
        (``run()`` drives one operation at a time), so always True; a scheduler that
        interleaves threads overrides this to block a thread on a lock that is held."""
        return True

    def _acquire(self, name: str, mode: str, thread: str = "") -> None:
        """The one place a lock is taken (``locks`` bookkeeping; readers share a lock)."""
        self.locks[name] = mode
        self._lock_holders.setdefault(name, []).append(thread)

    def _release(self, name: str, thread: str = "") -> None:
        """The one place a lock is released: it stays held while another reader holds it."""
        holders = self._lock_holders.get(name, [])
        if thread in holders:
            holders.remove(thread)
        elif holders:
            holders.pop()
        if not holders:
            self._lock_holders.pop(name, None)
            self.locks.pop(name, None)

    # ----------------------------------------------------------------- events
    def record_event(self, kind: str, fn: str, message: str, **kw: Any) -> KernelEvent:
        # the step being performed is the last one appended (yield, then perform)
        ev = KernelEvent(
            kind, fn, message, step=len(self.history) - 1 if self.history else None, **kw
        )
        self.events.append(ev)
        return ev

    def warn(self, fn: str, message: str, **kw: Any) -> None:
        self.record_event("warn", fn, message, **kw)

    def bug(self, fn: str, message: str, **kw: Any) -> None:
        self.record_event("bug", fn, message, **kw)

    # ------------------------------------------------------------------- run
    def run(self, op: Iterator[Step], *, record: bool | None = None) -> int:
        """Drive ``op`` to completion; returns the number of steps. Steps go to
        ``history`` when recording is on, each as it is yielded: it is complete (performed,
        results filled in) once the next one has been asked for, the last one when ``op``
        returns."""
        _validate.iterator(op, "op")
        keep = self.record if record is None else _validate.boolean(record, "record")
        n = 0
        if keep:
            for step in op:
                self.history.append(step)
                n += 1
        else:
            for _ in op:
                n += 1
        return n

    def access(self, va: int, cpu: int = 0) -> int | None:
        """Load from ``va`` on ``cpu`` through its TLB (see :func:`mmkit.pgtable.tlb.access`);
        returns the physical address or None on a translation fault. Its one step goes to
        ``history`` (when recording) as :meth:`run` adds steps."""
        from mmkit.pgtable.tlb import access

        _machine_checks.access(self, va, cpu)
        op = access(self, va, cpu)
        while True:
            try:
                step = next(op)
            except StopIteration as done:
                return done.value
            if self.record:
                self.history.append(step)

    # --------------------------------------------------------------- queries
    def table_pages(self) -> list[TablePageRecord]:
        """One record per live table page (level, VA span, region, pfn, used entries)."""
        return self.pgtables.records()

    #: attributes :meth:`digest` reads by value (see :mod:`mmkit._digest`)
    DIGEST_ATTRIBUTES: tuple[str, ...] = _digest.DIGEST_ATTRIBUTES

    def digest(self, *, log: bool = True) -> tuple[object, ...]:
        """A value equal before and after anything that changed nothing: page tables, page
        frames, memblock, sections, memory blocks, sysfs, the event log, the number of steps
        in the history, the TLBI counts, every CPU's TLB and walk cache, the locks held and
        by whom, and every other attribute an operation sets (``hotplugged``, ``resources``,
        ``oops``, the vmalloc areas, ...).

        It is a state, not a trace: two schedules that take the same steps in another order
        and reach the same state have the same digest (the race explorer merges them). So
        the history counts by its length (steps are only appended; a refused operation
        appends none) and kernel events are compared without the history index they carry.
        ``log=False`` leaves out the event log and the history: what is left tells whether
        an operation that only warned (and took its steps) changed anything else.
        """
        return _digest.machine_digest(self, log=log)

    # --------------------------------------------------- generic memory hotplug
    def add_memory(self, nid: int, start: int, size: int) -> None:
        """``add_memory()`` to completion (see :mod:`mmkit.mm.hotplug`); typed errors before
        any change. A kernel BUG on the way is an event (``machine.oops``), not an error."""
        from mmkit.mm.hotplug import add_memory

        self.run(add_memory(self, nid, start, size))

    def remove_memory(self, start: int, size: int) -> None:
        """``remove_memory()`` to completion, in the call order of ``machine.kernel``."""
        from mmkit.mm.hotplug import remove_memory

        self.run(remove_memory(self, start, size))

    def online_block(self, block_id: int, online_type: str = "online") -> None:
        from mmkit.mm.hotplug import online_memory_block

        self.run(online_memory_block(self, block_id, online_type))

    def offline_block(self, block_id: int) -> None:
        from mmkit.mm.hotplug import offline_memory_block

        self.run(offline_memory_block(self, block_id))

    def block_of(self, pa: int) -> int:
        """The memory block id (the N of memoryN) holding ``pa``."""
        return _validate.address(pa, "pa") // self.desc.memory_block_size

    # ------------------------------------------------------------ hotplug
    def _overlaps(self, start: int, size: int, ranges: Sequence[tuple[int, int]]) -> bool:
        return any(s < start + size and start < s + n for s, n in ranges)

    def arch_add_memory(self, start: int, size: int) -> Iterator[Step]:
        """``arch_add_memory()`` as steps (:func:`mmkit.pgtable.arch_hotplug.arch_add_memory`).

        Checked when called, before the first step: the errors of :meth:`hot_add`, with the
        range aligned to a subsection (2 MiB) rather than a memory block: the kernel's
        ``__add_pages()`` refuses less (``check_pfn_span()``, v5.4/v5.7
        ``mm/memory_hotplug.c``: a ``WARN`` and ``-EINVAL``, after ``arch_add_memory()`` has
        mapped the range, which it then unmaps); the model refuses before the first step."""
        from mmkit.pgtable.arch_hotplug import arch_add_memory, check_hot_add

        check_hot_add(self, start, size, align=_SUBSECTION)
        return arch_add_memory(self, start, size)

    def arch_remove_memory(self, start: int, size: int) -> Iterator[Step]:
        """``arch_remove_memory()`` as steps
        (:func:`mmkit.pgtable.arch_hotplug.arch_remove_memory`).

        Checked when called, before the first step: the errors of :meth:`hot_remove`, with
        the range aligned to a subsection (``__remove_pages()``'s ``check_pfn_span()``)."""
        from mmkit.pgtable.arch_hotplug import arch_remove_memory, check_hot_remove

        check_hot_remove(self, start, size, align=_SUBSECTION)
        return arch_remove_memory(self, start, size)

    def hot_add(self, start: int, size: int) -> None:
        """Validate, then run :meth:`arch_add_memory` to completion.

        Raises :class:`~mmkit.errors.InvalidArgument` (misaligned, beyond
        ``MAX_PHYSMEM_BITS``, outside the linear map), :class:`~mmkit.errors.Exists`
        (overlaps boot or present memory) or :class:`~mmkit.errors.NoMemory`, all before
        anything changes.
        """
        from mmkit.pgtable.arch_hotplug import check_hot_add

        check_hot_add(self, start, size)  # whole memory blocks, as add_memory() takes them
        self.run(self.arch_add_memory(start, size))

    def hot_remove(self, start: int, size: int) -> None:
        """Validate, then run :meth:`arch_remove_memory` to completion.

        Raises :class:`~mmkit.errors.InvalidArgument` (misaligned...),
        :class:`~mmkit.errors.Busy` (boot memory) or :class:`~mmkit.errors.NotFound` (not
        all of the range was hot-added), all before anything changes.
        """
        from mmkit.pgtable.arch_hotplug import check_hot_remove

        check_hot_remove(self, start, size)
        self.run(self.arch_remove_memory(start, size))

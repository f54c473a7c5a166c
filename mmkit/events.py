"""Steps and kernel events: the records every view and every test reads.

Every simulated kernel operation is a generator that yields a :class:`Step` at each point
where another CPU could observe or interfere: an entry read or written, a page allocated or
freed, a TLB invalidation, a lock taken or released, a warning. The convention is **yield,
then perform**: a generator yields the step it is *about to* take, and resuming it performs
exactly that step (and then runs on to its next yield, doing nothing else that another CPU
could see on the way). So whoever drives the generator always knows every operation's next
step before it happens: a scheduler can ``peek()`` at it, or hold back a thread whose next
step takes a lock that is held. What is only known once the step is performed (the value a
read returned, the old value a write overwrote, the pfn an allocation got, the outcome of a
data access) is filled into the yielded object then: a step is *complete* once the generator
has been resumed past it (for the last one, when the generator returns).

Driving the generator to the end runs the operation; driving it one step at a time is what
the stepping widget and the scheduler do. A *coarse* step covers a run of alike entries of
one table page (``count > 1``) so that large runs stay fast; the whole run is performed when
the step is; ``Step.expand()`` turns it into the per-entry steps it stands for.

A :class:`KernelEvent` is what the simulated kernel would print in its log: a ``WARN_ON``
splat, a ``BUG``, a KASAN use-after-free report. Kernel bugs never raise in Python; they are
recorded when the step that detects them is performed, and the machine carries on (or stops
the operation, as the kernel's ``BUG`` would).

>>> s = Step("write", "unmap_hotplug_pte_range", "pte_clear(&init_mm, addr, ptep)",
...          level="pte", va=0xffff000040000000, table=0x41000, index=0, count=4,
...          old=0x0068000040000713, new=0, stride=0x1000, va_step=0x1000)
>>> [hex(x.old) for x in s.expand()][:2]
['0x68000040000713', '0x68000040001713']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

from mmkit._readable import record_repr

__all__ = ["ACTIONS", "Action", "KernelEvent", "Step"]

Action = Literal[
    "call",  # entering or leaving a kernel function (a frame a stepping view can show)
    "read",  # READ_ONCE of a table entry
    "write",  # set_pte / pmd_clear / __pmd_populate ...
    "alloc",  # a page allocated (table page or backing page)
    "free",  # a page freed
    "tlbi",  # TLB invalidate instructions issued
    "lock",
    "unlock",
    "warn",  # WARN_ON fired (also recorded as a KernelEvent)
    "bug",  # BUG_ON fired (also recorded as a KernelEvent)
    "access",  # a data access through the TLB / page tables (reader threads)
    "memblock",  # a memblock region array changed
    "device",  # a memory block or node device registered, unregistered or changed state
    "sysfs",  # a sysfs link created or removed
]

#: Every action, in a stable order for tables and legends.
ACTIONS: tuple[str, ...] = (
    "call",
    "read",
    "write",
    "alloc",
    "free",
    "tlbi",
    "lock",
    "unlock",
    "warn",
    "bug",
    "access",
    "memblock",
    "device",
    "sysfs",
)


#: Fields of :class:`Step` that print in hex: addresses, pfns, descriptors and byte sizes.
_STEP_HEX = frozenset({"va", "table", "old", "new", "pfn", "size", "stride", "va_step", "result"})


@dataclass(slots=True)
class Step:
    """One step of a simulated kernel operation: what it is about to do, then what it did.

    ``table`` is the page frame number of the table page touched and ``index`` the first
    entry; ``count`` entries from there were read or written (1 for a fine step). For a
    coarse write of a linear run, entry ``i`` held ``old + i * stride`` (when ``old`` is
    nonzero) and now holds ``new + i * stride`` (when ``new`` is nonzero): the output
    address advances by ``stride`` per entry, the attributes stay. ``va`` is the first
    virtual address concerned and ``va_step`` what each entry maps. For ``alloc``/``free``,
    ``pfn`` and ``size`` say which pages (a coarse free: ``count`` blocks of ``size`` bytes,
    ``stride`` pages apart); for ``tlbi``, ``count`` is the number of TLBI
    instructions and ``note`` their kind (``"vaale1is"``, ``"vaae1is"``, ``"vmalle1is"``);
    for ``lock``, ``note`` is ``"name:mode"`` (mode ``exclusive``, ``read`` or ``write``) and
    for ``unlock`` the lock's name.

    A step is yielded *before* it is performed (see the module docstring). The fields that
    only performing it can tell are filled in then: ``old`` for a read (what it read) or a
    write (what it overwrote; for a coarse write, what the first entry held), ``pfn`` for an
    allocation, the line and translation of an ``access``, a ``note`` with a result. So a step
    is *complete* once its generator has been resumed past it; before that it says what is
    about to happen. Complete steps are records: treat them as immutable (a Step is a mutable
    slots dataclass so that performing can fill it in, and because a frozen dataclass costs
    twice as much to build; hot paths build hundreds of thousands).
    """

    action: Action
    function: str
    line: str
    level: str | None = None
    va: int | None = None
    table: int | None = None
    index: int | None = None
    count: int = 1
    old: int | None = None
    new: int | None = None
    pfn: int | None = None
    size: int = 0
    stride: int = 0
    va_step: int = 0
    thread: str = ""
    note: str = ""
    #: what performing it found that the thread acts on later, beyond ``old`` (the table
    #: pages a whole-table read will descend into; for a bulk scan, each table's entries in
    #: use and first entry in use, as pairs); part of the explorer's state
    result: tuple[int, ...] | None = None
    #: a *bulk* step: the table pages it covers, in VA order (see :meth:`expand`); for a
    #: bulk ``alloc`` filled in when performed
    tables: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        """Fields set, addresses, pfns, descriptors and sizes in hex (``Step(action='read', ...,
        va=0xffff000040000000, table=0x41000, ...)``); counts and indices in decimal."""
        return record_repr(self, _STEP_HEX, keep=("action", "function", "line"))

    @property
    def coarse(self) -> bool:
        """Whether this step stands for several entry-level steps."""
        return (self.action in ("read", "write", "free", "alloc") and self.count > 1) or (
            self.tables is not None
        )

    @property
    def bulk(self) -> bool:
        """Whether this step stands for one coarse step per table page (``tables``)."""
        return self.tables is not None

    def expand(self) -> Iterator[Step]:
        """The steps a coarse step stands for (itself when already fine): for a bulk step
        (``tables`` set) one coarse step per table page, else the entry-level steps.

        A bulk read or write takes ``count`` entries from ``index`` of each table, the
        tables mapping consecutive VA (``count * va_step`` apart) and linear values
        continuing from one table to the next; a bulk ``alloc`` or ``free`` is one table page
        (``pfn``) per entry of ``tables``, ``va_step`` apart; a bulk ``tlbi`` is an equal
        share of its ``count`` instructions for each table, in VA order.
        """
        if self.tables is not None:
            yield from self._per_table()
            return
        if not self.coarse:
            yield self
            return
        for i in range(self.count):
            yield replace(
                self,
                va=None if self.va is None else self.va + i * self.va_step,
                index=None if self.index is None else self.index + i,
                count=1,
                old=self.old and self.old + i * self.stride,
                new=self.new and self.new + i * self.stride,
                pfn=self.pfn + i * self.stride if self.action == "free" and self.pfn else self.pfn,
            )

    def _per_table(self) -> Iterator[Step]:
        tables = self.tables or ()
        if self.action in ("alloc", "free"):
            for i, pfn in enumerate(tables):
                yield replace(
                    self, va=_plus(self.va, i * self.va_step), count=1, pfn=pfn, tables=None
                )
            return
        if self.action == "tlbi":  # the TLBI instructions for each table's entries
            per = self.count // len(tables)
            for i in range(len(tables)):
                yield replace(
                    self, va=_plus(self.va, i * per * self.va_step), count=per, tables=None
                )
            return
        span = self.count * self.va_step
        shift = self.count * self.stride
        found = self.result
        for i, table in enumerate(tables):
            part = replace(
                self,
                va=_plus(self.va, i * span),
                table=table,
                old=self.old and self.old + i * shift,
                new=self.new and self.new + i * shift,
                tables=None,
                result=None,
            )
            if found is not None:  # a bulk scan: what each table held
                part.old = found[2 * i + 1]
                part.note = f"{found[2 * i]} {self.note.partition(' ')[2]}"
            yield part

    def frames(self, page_shift: int) -> Iterator[int]:
        """The page frames an ``alloc`` or ``free`` step is about: one table page per entry
        of a bulk step's ``tables``, else ``count`` blocks of ``size`` bytes from ``pfn``,
        each ``stride`` pages after the one before (negative: below it)."""
        if self.tables is not None:
            yield from self.tables
            return
        if self.pfn is None:
            return
        pages = max(self.size >> page_shift, 1)
        for i in range(max(self.count, 1)):
            first = self.pfn + i * self.stride
            yield from range(first, first + pages)

    def covers(self, frame: int, page_shift: int) -> bool:
        """Whether ``frame`` is one of :meth:`frames` (worked out, not listed: a free of a
        run of 2 MiB blocks is about thousands of frames)."""
        if self.tables is not None:
            return frame in self.tables
        if self.pfn is None:
            return False
        pages, n, stride = max(self.size >> page_shift, 1), max(self.count, 1), self.stride
        off = frame - self.pfn
        if n == 1 or stride == 0:
            return 0 <= off < pages
        near = off // stride  # the block starting at or next to ``frame``
        return any(0 <= i < n and 0 <= off - i * stride < pages for i in (near - 1, near, near + 1))

    def entries(self) -> Iterator[Step]:
        """The entry-level steps of a step: :meth:`expand`, through the per-table steps of
        a bulk step."""
        for part in self.expand():
            if part is self or not part.coarse:
                yield part
            else:
                yield from part.expand()

    def describe(self) -> str:
        """One line for a log or a stepping view."""
        where = []
        if self.level:
            where.append(self.level)
        if self.tables is not None and self.table is not None and self.action != "alloc":
            entry = f"[{self.index}]" if self.count == 1 else f"[{self.index}..+{self.count}]"
            where.append(f"{len(self.tables)} tables from pfn {self.table:#x}, each {entry}")
        elif self.table is not None:
            entry = f"[{self.index}]" if self.count == 1 else f"[{self.index}..+{self.count}]"
            where.append(f"table pfn {self.table:#x}{entry}")
        if self.va is not None:
            where.append(f"va {self.va:#x}")
        detail = ""
        if self.action == "write" and self.old is not None:  # performed: what it replaced
            detail = f" {self.old:#x} -> {self.new or 0:#x}"
        elif self.action == "write" and self.new is not None:  # about to write
            detail = f" -> {self.new:#x}"
        elif self.action in ("alloc", "free") and self.pfn is not None:
            many = f"{self.count} x " if self.count > 1 else ""
            detail = f" pfn {self.pfn:#x} ({many}{self.size:#x} bytes)"
        elif self.action == "tlbi":
            detail = f" {self.count} x {self.note}"
        return f"{self.function}: {self.line} [{self.action}] {' '.join(where)}{detail}".rstrip()


def _plus(va: int | None, delta: int) -> int | None:
    return None if va is None else va + delta


@dataclass(frozen=True, slots=True)
class KernelEvent:
    """A kernel log report: ``WARN``, ``BUG``, a KASAN ``use-after-free`` or a stale TLB hit.

    ``kind`` is one of ``"warn"``, ``"bug"``, ``"use-after-free"``, ``"stale-tlb"``,
    ``"lost-mapping"``. ``freed_by`` names the function that freed the page involved, if any.
    """

    kind: str
    function: str
    message: str
    va: int | None = None
    pfn: int | None = None
    freed_by: str | None = None
    thread: str = ""
    #: index in the machine's history of the step being performed when it was recorded
    step: int | None = None

    def __repr__(self) -> str:
        """Fields set, ``va`` and ``pfn`` in hex; ``step`` (a history index) in decimal."""
        return record_repr(self, ("va", "pfn"), keep=("kind", "function", "message"))

    def report(self) -> str:
        """The event as the kernel log would show it (KASAN-style for use-after-free)."""
        if self.kind == "use-after-free":
            lines = [
                "BUG: KASAN: use-after-free in " + self.function,
                self.message,
            ]
            if self.pfn is not None:
                lines.append(f"The buggy address belongs to the page: pfn {self.pfn:#x}")
            if self.freed_by:
                lines.append(f"Freed by: {self.freed_by}")
            return "\n".join(lines)
        if self.kind == "warn":
            return f"WARNING: in {self.function}: {self.message}"
        if self.kind == "bug":
            return f"kernel BUG in {self.function}: {self.message}"
        return f"{self.kind}: {self.function}: {self.message}"

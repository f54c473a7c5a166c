"""Giving hot-removed pages back to the page allocator: ``free_hotplug_page_range()``
(arm64 v5.7 ``mm/mmu.c``) for the pages that backed a mapping, and what ``free_pages()``
does with a page the allocator never handed out (``bad_page()``, ``mm/page_alloc.c``).
``Machine.free_backing`` and ``Machine.bad_page`` call these."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit.events import Step

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["bad_page", "free_hotplug_page_range"]


def free_hotplug_page_range(
    m: Machine,
    pfn: int,
    order: int,
    fn: str,
    va: int,
    *,
    count: int = 1,
    va_step: int = 0,
    stride: int | None = None,
) -> Iterator[Step]:
    """``free_hotplug_page_range(page, size)``, for ``count`` blocks of ``2**order``
    pages from ``pfn``, each ``stride`` pages after the previous (``2**order`` unless
    given; negative for blocks handed out last-freed first), one each ``va_step`` bytes
    of VA, in one step.

    A boot-allocated (``PageReserved``) block gets the kernel's ``WARN_ON`` and is then
    freed anyway, which the page allocator refuses (:func:`bad_page`)."""
    size = m.page_size << order
    stride = (1 << order) if stride is None else stride
    yield Step(
        "free",
        fn,
        f"free_pages(page_address(page), get_order({size:#x}))",
        va=va,
        pfn=pfn,
        size=size,
        count=count,
        stride=stride,
        va_step=va_step,
        note="backing",
    )
    plain: list[int] = []  # allocated blocks, freed together after the loop
    for i in range(count):
        first = pfn + i * stride
        frame = m.physmem.frame(first)
        where = va + i * va_step
        if frame is not None and frame.state == "reserved":
            m.warn(fn, f"WARN_ON(PageReserved(page)): pfn {first:#x}", pfn=first, va=where)
            bad_page(m, first, order, va=where)
        elif frame is None:  # plain RAM the allocator never handed out
            m.warn(fn, f"freeing pfn {first:#x}, which was never allocated", va=where)
        elif frame.state == "free":
            m.record_event(
                "use-after-free",
                fn,
                f"double free of pfn {first:#x}",
                va=where,
                pfn=first,
                freed_by=frame.freed_by,
            )
        else:
            plain.append(first)
    if plain:
        m.physmem.free_pages_many(plain, order, fn)


def bad_page(m: Machine, pfn: int, order: int, *, va: int | None = None) -> None:
    """``free_pages()`` of a ``PageReserved`` block: ``free_pages_prepare()`` checks each
    page against ``PAGE_FLAGS_CHECK_AT_FREE`` (which holds ``PG_reserved``; v5.4 and
    v5.7 ``mm/page_alloc.c``), ``bad_page()`` prints "BUG: Bad page state" and taints
    the kernel, and the block never reaches the free lists: it stays reserved, leaked."""
    pages = 1 << order
    m.record_event(
        "bug",
        "free_pages_prepare",
        f"BUG: Bad page state in process {getattr(m, 'current_thread', '') or 'kworker'} "
        f"pfn:{pfn:#x}: PAGE_FLAGS_CHECK_AT_FREE flag(s) set, bad because of flags: "
        f"(reserved)"
        + (f"; all {pages} pages of the block" if pages > 1 else "")
        + "; not freed (leaked), kernel tainted B",
        pfn=pfn,
        va=va,
    )

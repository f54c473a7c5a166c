"""What ``Machine`` checks at its entry points before anything changes: the boot memory it
is built with, a range to hot-add or remove, and an access (see :mod:`mmkit._validate` for
the generic checks they use)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mmkit import _validate
from mmkit.errors import InvalidArgument

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["access", "boot_memory", "hotplug_range"]


def boot_memory(m: Machine, memory: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The boot memory ranges, sorted: page aligned, non-empty, not overlapping, below
    ``MAX_PHYSMEM_BITS``, the first one large enough for the kernel image and the boot
    allocations, all inside the linear map (:func:`mmkit._validate.boot_memory_fits`)."""
    ranges = sorted((int(s), int(n)) for s, n in memory)
    if not ranges:
        raise InvalidArgument("a machine needs at least one boot memory range")
    page = m.desc.page_size
    for (s, n), nxt in zip(ranges, [*ranges[1:], None], strict=True):
        if n <= 0 or s % page or n % page:
            raise InvalidArgument(
                f"boot memory ({s:#x}, {n:#x}) must be page aligned and non-empty"
            )
        if nxt and s + n > nxt[0]:
            raise InvalidArgument(f"boot memory ranges overlap at {nxt[0]:#x}")
        if s + n > 1 << m.macros["MAX_PHYSMEM_BITS"]:
            raise InvalidArgument("boot memory beyond MAX_PHYSMEM_BITS")
    if ranges[0][1] < 64 << 20:
        raise InvalidArgument(
            "the first boot memory range must hold at least 64 MiB "
            "(kernel image and boot allocations)"
        )
    _validate.boot_memory_fits(m, ranges)
    return ranges


def hotplug_range(
    m: Machine, start: int, size: int, what: str, *, align: int | None = None
) -> None:
    """A range to hot-add or remove: integers, aligned to ``align`` (default: the memory
    block size, as ``check_hotplug_memory_range()``), inside ``MAX_PHYSMEM_BITS`` and the
    linear map."""
    _validate.address(start, f"{what}: start")
    _validate.integer(size, f"{what}: size", lo=1)
    block = align or m.desc.memory_block_size
    rule = "check_pfn_span" if align else "check_hotplug_memory_range"
    if start % block or size % block:
        raise InvalidArgument(
            f"{what}: range ({start:#x}, {size:#x}) is not aligned to {block:#x} "
            f"({rule}); align both start and size to it"
        )
    if start + size > 1 << m.macros["MAX_PHYSMEM_BITS"]:
        raise InvalidArgument(
            f"{what}: {start + size - 1:#x} is beyond MAX_PHYSMEM_BITS "
            f"({m.macros['MAX_PHYSMEM_BITS']} bits)"
        )
    lm_end = m.lm_va(start + size - 1)
    page_end = m.macros["PAGE_END"] or (1 << 64)
    if start < m.memstart or lm_end >= page_end or m.lm_va(start) < m.macros["PAGE_OFFSET"]:
        raise InvalidArgument(
            f"{what}: [{start:#x}, {start + size:#x}) does not fit the linear map "
            f"(PA {m.memstart:#x} maps to PAGE_OFFSET)"
        )


def access(m: Machine, va: object, cpu: object) -> None:
    """An access names a kernel VA (TTBR1: bits [63:vabits_actual] all ones; mmkit has
    no user page tables for TTBR0) and one of this machine's CPUs."""
    _validate.address(va, "va")
    _validate.integer(cpu, "cpu", lo=0, hi=len(m.tlbs) - 1)
    first = m.desc.kernel_va_start()
    if va < first:  # type: ignore[operator]
        raise InvalidArgument(
            f"va={_validate.show(va)} is not a kernel address: the kernel's tables "
            f"(TTBR1) translate [{first:#x}, 2**64), user addresses go through TTBR0, "
            f"which mmkit does not model; use a kernel VA such as machine.lm_va(pa)"
        )

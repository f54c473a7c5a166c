"""Argument checks for mmkit's public entry points, run before anything changes.

Each check returns the value it accepted or raises :class:`~mmkit.errors.InvalidArgument`
(``-EINVAL``) with a message that names the argument, shows the value (addresses in hex,
long values cut short), says what was expected and how to fix the call. ``bool`` is not an
integer here: ``True`` as an address or a CPU number is a mistake, not 1.

>>> address(0xFFFF_0000_4000_0000, "va")
18446462599806582784
>>> try:
...     integer(-1, "cpus", lo=1)
... except InvalidArgument as err:
...     print(err)
cpus=-1: expected an integer >= 1
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mmkit.errors import InvalidArgument, UnknownName

__all__ = [
    "address",
    "boolean",
    "choice",
    "integer",
    "iterator",
    "machine_args",
    "show",
    "text",
]

_U64 = 1 << 64
#: NR_CPUS of arm64's defconfig (arch/arm64/Kconfig, v5.4 and v6.1): the most CPUs a kernel
#: built from it brings up
NR_CPUS = 256
#: vmalloc areas a machine may allocate at boot (each is a few pages of the first bank)
MAX_BOOT_VMALLOC_AREAS = 64
_SHOW = 48


def show(value: object) -> str:
    """``value`` for a message: ints in hex (decimal for small ones), anything else as its
    ``repr``, cut to a readable length."""
    if isinstance(value, int) and not isinstance(value, bool):
        shown = f"{value:#x}" if abs(value) >= 4096 else str(value)
        if len(shown) > _SHOW:
            return f"{shown[:20]}...({value.bit_length()}-bit integer)"
        return shown
    try:
        shown = repr(value)
    except Exception:  # an object whose repr is itself broken
        shown = f"<{type(value).__name__}>"
    return shown if len(shown) <= _SHOW else f"{shown[: _SHOW - 3]}...{shown[-1:]}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(value: object, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[lo, hi]``."""
    expected = (
        f"an integer from {lo} to {hi}"
        if lo is not None and hi is not None
        else f"an integer >= {lo}"
        if lo is not None
        else f"an integer <= {hi}"
        if hi is not None
        else "an integer"
    )
    if not _is_int(value):
        raise InvalidArgument(f"{what}={show(value)}: expected {expected}, got {_kind(value)}")
    assert isinstance(value, int)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidArgument(f"{what}={show(value)}: expected {expected}")
    return value


def address(value: object, what: str) -> int:
    """``value`` if it is a 64-bit unsigned integer (an address: shown in hex)."""
    if not _is_int(value):
        raise InvalidArgument(
            f"{what}={show(value)}: expected an address, an integer from 0 to 2**64 - 1 "
            f"(e.g. 0xffff000040000000), got {_kind(value)}"
        )
    assert isinstance(value, int)
    if not 0 <= value < _U64:
        raise InvalidArgument(
            f"{what}={show(value)}: not a 64-bit address; give an integer from 0 to "
            "0xffffffffffffffff"
        )
    return value


def boolean(value: object, what: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (a string such as ``"no"`` is truthy)."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{what}={show(value)}: expected True or False, got {_kind(value)}")
    return value


def text(value: object, what: str) -> str:
    """``value`` if it is a string."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what}={show(value)}: expected a string, got {_kind(value)}")
    return value


def choice(value: object, what: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (:class:`~mmkit.errors.UnknownName` if it is a
    string that is not)."""
    text(value, what)
    assert isinstance(value, str)
    if value not in choices:
        raise UnknownName(f"{what}={show(value)} is not known", choices=choices)
    return value


def iterator(value: object, what: str) -> Iterator[Any]:
    """``value`` if it is an iterator (a step generator, for instance)."""
    if not isinstance(value, Iterator):
        raise InvalidArgument(
            f"{what}={show(value)}: expected a step generator such as "
            f"machine.arch_add_memory(start, size), got {_kind(value)}"
        )
    return value


def _kind(value: object) -> str:
    return f"a {type(value).__name__}"


def _ranges(memory: object) -> list[tuple[int, int]]:
    if isinstance(memory, str | bytes) or not isinstance(memory, Iterable):
        raise InvalidArgument(
            f"memory={show(memory)}: expected a list of (start, size) pairs, e.g. "
            "[(0x40000000, 2 << 30)]"
        )
    out = []
    for i, pair in enumerate(memory):
        if not isinstance(pair, Sequence) or isinstance(pair, str | bytes) or len(pair) != 2:
            raise InvalidArgument(
                f"memory[{i}]={show(pair)}: expected a (start, size) pair, e.g. "
                "(0x40000000, 2 << 30)"
            )
        start = address(pair[0], f"memory[{i}] start")
        size = integer(pair[1], f"memory[{i}] size", lo=1, hi=_U64 - start)
        out.append((start, size))
    return out


def machine_args(
    *,
    arch: object,
    memory: object,
    policy: object,
    flags: dict[str, object],
    cpus: object,
    vmalloc_areas: object,
    online_type: object,
    unmap_kernel_at_el0: object,
    kernel: object,
) -> list[tuple[int, int]]:
    """Everything :class:`~mmkit.machine.Machine` takes, by type and range, before it
    builds anything; returns the boot memory ranges as int pairs."""
    from mmkit.mm.hotplug import HOTPLUG_KERNELS, ONLINE_TYPES
    from mmkit.policies.base import PolicyLike, check_decisions

    if not isinstance(arch, str) and not callable(getattr(arch, "macros", None)):
        raise InvalidArgument(
            f"arch={show(arch)}: expected a configuration name such as 'arm64-4k-48' "
            "(see mmkit.arch.names()) or a descriptor from mmkit.arch.get()"
        )
    if not isinstance(policy, str) and (
        not isinstance(policy, PolicyLike) or check_decisions(policy)
    ):
        raise InvalidArgument(
            f"policy={show(policy)}: expected a policy name such as 'v5.7' (see "
            "mmkit.policies.names()) or a policy object: a HotplugPolicy, or anything with "
            "every field of mmkit.policies.PolicyLike"
        )
    for name, value in flags.items():
        boolean(value, name)
    if unmap_kernel_at_el0 is not None:
        boolean(unmap_kernel_at_el0, "unmap_kernel_at_el0")
    integer(cpus, "cpus", lo=1, hi=NR_CPUS)
    integer(vmalloc_areas, "vmalloc_areas", lo=0, hi=MAX_BOOT_VMALLOC_AREAS)
    choice(online_type, "online_type", ONLINE_TYPES)
    if kernel is not None:
        choice(kernel, "kernel", HOTPLUG_KERNELS)
    return _ranges(memory)


#: most boot memory a machine may have: the model builds every table and struct page's
#: mapping of it at boot, which at 16K pages takes about 10 s for 256 GiB
MAX_BOOT_MEMORY = 256 << 30


def boot_memory_fits(m: Any, ranges: Sequence[tuple[int, int]]) -> None:
    """The boot banks ``ranges`` (sorted, page aligned, disjoint) fit what boot builds: at
    most :data:`MAX_BOOT_MEMORY`, all inside the linear map from ``memstart_addr``
    (``arm64_memblock_init()`` would drop the rest), and the memmap of all of them
    allocatable from the first bank's memblock area (``sparse_init()`` panics otherwise)."""
    from mmkit.boot import memstart_shift
    from mmkit.errors import NoMemory

    total = sum(n for _, n in ranges)
    if total > MAX_BOOT_MEMORY:
        raise InvalidArgument(
            f"memory: {show(total)} bytes of boot memory; the model boots at most "
            f"{show(MAX_BOOT_MEMORY)} (256 GiB): use smaller banks, then hot-add"
        )
    mac = m.macros
    align = 1 << max(memstart_shift(m), mac["SECTION_SIZE_BITS"])
    memstart = ranges[0][0] & ~(align - 1)
    linear = ((mac["PAGE_END"] or 1 << 64) - mac["PAGE_OFFSET"]) % (1 << 64) or 1 << 64
    last = ranges[-1][0] + ranges[-1][1]
    if last - memstart > linear:
        raise InvalidArgument(
            f"memory: boot memory ends at {show(last)}, beyond the linear map, which covers "
            f"{show(linear)} bytes from memstart_addr {show(memstart)}; keep every bank "
            f"below {show(memstart + linear)}"
        )
    sec = 1 << mac["SECTION_SIZE_BITS"]
    shift = m.desc.page_shift
    memmap = sum(((s + n + sec - 1) // sec - s // sec) * (sec >> shift) * 64 for s, n in ranges)
    size0 = ranges[0][1]
    budget = max(size0 // 4, 32 << 20) - (8 << 20)  # less the FDT, boot tables and slack
    if memmap > budget:
        raise NoMemory(
            f"memory: the memmap of {show(total)} bytes of boot memory needs {show(memmap)} "
            f"bytes from the first bank, which has {show(max(budget, 0))} for boot "
            f"allocations; make the first bank at least {show(4 * (memmap + (8 << 20)))} bytes"
        )


def shaped(value: object, what: str, expected: str, *attrs: str) -> None:
    """``value`` has the attributes a view reads (``expected`` names what to pass)."""
    missing = [a for a in attrs if not hasattr(value, a)]
    if missing:
        raise InvalidArgument(
            f"{what}={show(value)}: expected {expected}, got {_kind(value)} (no {missing[0]})"
        )


def records(value: object, what: str, expected: str, *attrs: str) -> None:
    """``value`` is a collection (not a string) whose items have ``attrs``."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{what}={show(value)}: expected {expected}, got {_kind(value)}")
    if isinstance(value, Sequence | set | frozenset | dict):  # safe to look at twice
        for i, item in enumerate(value):
            shaped(item, f"{what}[{i}]", expected, *attrs)

"""The one-operation scenarios a :class:`~mmkit.widgets.stepper.Stepper` steps.

A scenario is a factory of a fresh ``(machine, generator)`` pair: the machine is prepared
once (booted, and for a removal the range hot-added) and deep-copied on every call, so going
back (which calls the factory again and replays) costs a copy, not a boot. The title names
the operation, range, configuration, kernel (whose hotplug call order runs) and policy.

>>> make, title = hot_remove_scenario("arm64-64k-42")
>>> title
'remove_memory(0x100000000, 0x40000000) on arm64-64k-42, Linux v5.4, policy v5.7'
>>> machine, op = make()
>>> next(op).describe()
'remove_memory: lock(device_hotplug_lock) [lock]'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.sched import Thread
from mmkit.widgets._stepper_session import Factory

__all__ = ["hot_add_scenario", "hot_remove_scenario", "operation_factory"]

OpFactory = Callable[[], tuple[Machine, Any]]


def operation_factory(factory: Callable[[], tuple[Machine, Any]], thread: str) -> Factory:
    """A scheduler factory from ``() -> (machine, generator)`` (one thread named ``thread``),
    or from a factory that already returns ``(machine, [Thread, ...])``."""

    def make() -> tuple[Machine, Sequence[Thread]]:
        machine, op = factory()
        if isinstance(op, (list, tuple)) and all(isinstance(t, Thread) for t in op):
            return machine, op
        label = getattr(op, "__name__", "operation")
        return machine, [Thread(thread, f"{label}()", 0, op)]

    return make


def _free_start(m: Machine, size: int) -> int:
    """The lowest block-aligned address at or above 0x1_0000_0000 past boot memory."""
    block = m.desc.memory_block_size
    top = max([0x1_0000_0000, *(s + n for s, n in m.boot_memory)])
    return (top + block - 1) & ~(block - 1)


def _op_title(op: str, start: int, size: int, config: str, m: Machine, rodata_full: bool) -> str:
    policy = getattr(m.policy, "name", str(m.policy))
    return f"{op}({start:#x}, {size:#x}) on {config}, Linux {m.kernel}, policy {policy}" + (
        ", rodata_full" if rodata_full else ""
    )


def hot_remove_scenario(
    config: str = "arm64-4k-48",
    start: int | None = None,
    size: int | None = None,
    policy: str = "v5.7",
    rodata_full: bool = False,
    *,
    op: str = "remove_memory",
    **machine_options: Any,
) -> tuple[OpFactory, str]:
    """(factory, title) of the removal :meth:`Stepper.hot_remove
    <mmkit.widgets.stepper.Stepper.hot_remove>` steps (see there)."""
    from mmkit.mm.hotplug import offline_memory_block, remove_memory
    from mmkit.pgtable.arch_hotplug import check_hot_remove

    if op not in ("remove_memory", "arch_remove_memory"):
        raise InvalidArgument(
            f"hot_remove op {op!r}", choices=("remove_memory", "arch_remove_memory")
        )
    machine_options.setdefault("online_type", "offline")
    base = Machine(config, policy=policy, rodata_full=rodata_full, record=False, **machine_options)
    size = size if size is not None else base.desc.memory_block_size
    start = start if start is not None else _free_start(base, size)
    if op == "remove_memory":
        base.add_memory(0, start, size)
        for b, blk in sorted(base.blocks.items()):
            if start <= b * base.desc.memory_block_size < start + size and blk.state != "offline":
                base.run(offline_memory_block(base, b))
    else:
        base.hot_add(start, size)
    base.history.clear()

    def make() -> tuple[Machine, Any]:
        m = copy.deepcopy(base)
        if op == "remove_memory":
            return m, remove_memory(m, start, size)
        check_hot_remove(m, start, size)
        return m, m.arch_remove_memory(start, size)

    return make, _op_title(op, start, size, config, base, rodata_full)


def hot_add_scenario(
    config: str = "arm64-4k-48",
    start: int | None = None,
    size: int | None = None,
    policy: str = "v5.7",
    rodata_full: bool = False,
    *,
    op: str = "add_memory",
    **machine_options: Any,
) -> tuple[OpFactory, str]:
    """(factory, title) of the hot-add :meth:`Stepper.hot_add
    <mmkit.widgets.stepper.Stepper.hot_add>` steps (see there)."""
    from mmkit.mm.hotplug import add_memory
    from mmkit.pgtable.arch_hotplug import check_hot_add

    if op not in ("add_memory", "arch_add_memory"):
        raise InvalidArgument(f"hot_add op {op!r}", choices=("add_memory", "arch_add_memory"))
    machine_options.setdefault("online_type", "offline")
    base = Machine(config, policy=policy, rodata_full=rodata_full, record=False, **machine_options)
    size = size if size is not None else base.desc.memory_block_size
    start = start if start is not None else _free_start(base, size)
    base.history.clear()

    def make() -> tuple[Machine, Any]:
        m = copy.deepcopy(base)
        if op == "add_memory":
            return m, add_memory(m, 0, start, size)
        check_hot_add(m, start, size)
        return m, m.arch_add_memory(start, size)

    return make, _op_title(op, start, size, config, base, rodata_full)

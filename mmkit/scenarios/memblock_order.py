"""Patch 1/3: why ``try_remove_memory()`` must remove memblock ranges last.

The scenario hot-adds one memory block on node 0, offlines it, removes it, and hot-adds it
again, on a chosen kernel version. On **v5.3** ``memblock_free()``/``memblock_remove()``
run before the memory block devices are torn down, so when
``unregister_memory_block_under_nodes()`` asks ``get_nid_for_pfn()`` for the block's node,
``pfn_valid()`` already says no (``memblock_is_map_memory()`` is false): the
``node0/memoryN`` link stays, and the re-add's ``link_mem_sections()`` gets ``-EEXIST`` and
hits ``BUG_ON(ret)`` (the V7 1/3 trace, on 5.1-rc2). **v5.4** unlinks by the block's stored
nid (commit 60bb462fc7ad) and **v5.5** reorders the calls (32d1fe8fcb32): both are clean.

Every step is a :class:`Frame` showing memblock, the ``pfn_valid()`` answer and the node
found for the block's first pfn, and the sysfs links as they are once that step has been
performed (the engine yields a step, then performs it when resumed), so a learner can watch
the chain form.

>>> frames = memblock_order("v5.3").run()
>>> [f.pfn_valid for f in frames if "get_nid_for_pfn" in f.step.line][:1]
[False]
>>> frames[-1].event.split(":")[0]
'kernel BUG in add_memory_resource'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.mm.hotplug import get_nid_for_pfn

__all__ = ["Frame", "MemblockOrderScenario", "memblock_order"]


@dataclass(frozen=True)
class Frame:
    """What the lesson shows after one step, once it has been performed."""

    operation: str  #: "add", "offline", "remove", "add again"
    step: Step
    memblock_memory: tuple[tuple[int, int, int], ...]  #: (base, end, nid) of memblock.memory
    pfn_valid: bool  #: pfn_valid(first pfn of the block)
    nid_for_pfn: int  #: get_nid_for_pfn(first pfn of the block)
    links: tuple[str, ...]  #: the block's sysfs links
    event: str  #: the kernel event this step raised, if any

    def __repr__(self) -> str:
        """memblock ranges' base and end in hex (the node decimal); the step as its own repr."""
        ranges = "".join(f"({b:#x}, {e:#x}, {n}), " for b, e, n in self.memblock_memory)
        return (
            f"Frame(operation={self.operation!r}, step={self.step!r}, "
            f"memblock_memory=({ranges.rstrip()}), pfn_valid={self.pfn_valid}, "
            f"nid_for_pfn={self.nid_for_pfn}, links={self.links!r}, event={self.event!r})"
        )


class MemblockOrderScenario:
    """The add / offline / remove / add-again sequence on one kernel version."""

    def __init__(
        self, kernel: str = "v5.3", config: str = "arm64-4k-48", policy: str = "v5.7"
    ) -> None:
        self.kernel = kernel
        self.machine = Machine(config, kernel=kernel, policy=policy, online_type="online")
        self.size = self.machine.desc.memory_block_size
        top = max(s + n for s, n in self.machine.boot_memory)
        self.start = -(-top // self.size) * self.size
        self.block = self.machine.block_of(self.start)
        self.pfn = self.start >> self.machine.desc.page_shift

    def operations(self) -> list[tuple[str, Iterator[Step]]]:
        from mmkit.mm import hotplug as hp

        m = self.machine
        return [
            ("add", lambda: hp.add_memory(m, 0, self.start, self.size)),
            ("offline", lambda: hp.offline_memory_block(m, self.block)),
            ("remove", lambda: hp.remove_memory(m, self.start, self.size)),
            ("add again", lambda: hp.add_memory(m, 0, self.start, self.size)),
        ]  # type: ignore[return-value]

    def frame(self, operation: str, step: Step, events_before: int) -> Frame:
        m = self.machine
        new = m.events[events_before:]
        links = tuple(p for p in m.sysfs.paths() if f"memory{self.block}" in p and "->" in p)
        return Frame(
            operation,
            step,
            tuple((r.base, r.end, r.nid) for r in m.memblock.regions("memory")),
            m.pfn_valid(self.pfn),
            get_nid_for_pfn(m, self.pfn),
            links,
            new[-1].report() if new else "",
        )

    def frames(self) -> Iterator[Frame]:
        """Run the operations step by step, yielding a frame after each step is performed.

        Each operation yields a step before performing it; the step is performed (and
        completed) when the operation is resumed, which also brings the next step, so the
        frame of a step is made then (for the last one, when the operation returns)."""
        m = self.machine
        for name, start in self.operations():
            if m.oops is not None:
                return
            op = start()  # type: ignore[operator]
            step = next(op, None)
            while step is not None:
                m.history.append(step)
                before = len(m.events)
                nxt = next(op, None)  # performs `step`, stops at the next one
                yield self.frame(name, step, before)
                step = nxt

    def run(self) -> list[Frame]:
        return list(self.frames())


def memblock_order(kernel: str = "v5.3", config: str = "arm64-4k-48") -> MemblockOrderScenario:
    """The patch 1/3 scenario on ``kernel`` ("v5.3" fails; "v5.4" and "v5.5" are clean)."""
    return MemblockOrderScenario(kernel, config)

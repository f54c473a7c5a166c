"""Which memory-block boxes the sysfs figure draws, and which node links are stale.

Records for :func:`mmkit.viz.sysfs.sysfs_figure` (which re-exports them), read from the
machine's sysfs model (:mod:`mmkit.mm.memory_block`): runs of alike consecutive blocks fold
into one box, at most :data:`MAX_BOXES` boxes are drawn, and :func:`stale_links` finds the
``nodeN/memoryM`` links patch 1/3's bug leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmkit import _validate

__all__ = ["FOLD_RUN", "MAX_BOXES", "StaleLink", "SysfsBox", "stale_links", "sysfs_boxes"]

#: The most memory-block boxes drawn (after folding); the rest are summarised in one box.
MAX_BOXES = 24
#: Runs of at least this many alike consecutive blocks fold into one box.
FOLD_RUN = 3


@dataclass(frozen=True)
class StaleLink:
    """A ``nodeN/memoryM`` link that patch 1/3's bug left behind."""

    nid: int
    block: int
    why: str  #: "dangling" (memoryM is gone) or "hit" (the re-add's -EEXIST came from it)


@dataclass(frozen=True)
class SysfsBox:
    """One drawn memory-block box: one block, a folded run of alike blocks, or the rest."""

    first: int  #: first block id
    last: int  #: last block id (== first unless folded)
    count: int  #: blocks it stands for
    state: str  #: "online", "going-offline", "offline", "removed" (no device) or "more"
    origin: str  #: "boot", "hot-added", "removed" or "" (for "more")
    zone: str  #: "Normal", "Movable" or "" (offline, or not known)
    nodes: tuple[int, ...]  #: node ids with a nodeN/memoryM link to it
    backlinks: tuple[int, ...]  #: node ids with a memoryM/nodeN link in it

    @property
    def label(self) -> str:
        if self.state == "more":
            return f"… {self.count} more blocks (memory{self.first}–memory{self.last})"
        if self.count > 1:
            return f"memory{self.first} … memory{self.last} ({self.count} blocks)"
        return f"memory{self.first}"


def _zone(block: Any) -> str:
    """The zone an online block's pages are in (the engine's, per era), else ""."""
    if block.state != "online":
        return ""
    zone = getattr(block, "zone", "")
    if zone:
        return str(zone)
    return {"online": "Normal", "online_movable": "Movable"}.get(block.online_type, "")


def stale_links(machine: Any) -> list[StaleLink]:
    """The ``nodeN/memoryM`` links patch 1/3's bug left behind, sorted.

    *dangling*: the link's target directory ``memoryM`` no longer exists (v5.3 after a
    hot-remove). *hit*: the machine oopsed in ``add_memory_resource()`` (the only BUG there
    is ``BUG_ON(ret)`` after ``link_mem_sections()`` returned ``-EEXIST``) while re-adding
    block M, and the old link is what was in the way.
    """
    _validate.shaped(machine, "machine", "a Machine", "sysfs", "blocks")
    sysfs = machine.sysfs
    out = {
        (where[1], target[1]): "dangling"
        for where, target in sysfs.links
        if where[0] == "node" and target[0] == "memory" and target[1] not in sysfs.memory
    }
    oops = getattr(machine, "oops", None)
    if oops is not None and oops.function == "add_memory_resource" and oops.pfn is not None:
        block = machine.block_of(oops.pfn << machine.desc.page_shift)
        for where, target in sysfs.links:
            if where[0] == "node" and target == ("memory", block):
                out.setdefault((where[1], block), "hit")
    return [StaleLink(nid, block, why) for (nid, block), why in sorted(out.items())]


def _signature(machine: Any, block_id: int) -> tuple[object, ...]:
    sysfs = machine.sysfs
    nodes = tuple(
        sorted(w[1] for w, t in sysfs.links if w[0] == "node" and t == ("memory", block_id))
    )
    back = tuple(
        sorted(t[1] for w, t in sysfs.links if w == ("memory", block_id) and t[0] == "node")
    )
    block = machine.blocks.get(block_id)
    if block_id not in sysfs.memory or block is None:
        return ("removed", "removed", "", nodes, back)
    early = any(
        getattr(machine.sections.get(s), "early", False)
        for s in range(block.start_section_nr, block.end_section_nr + 1)
    )
    return (block.state, "boot" if early else "hot-added", _zone(block), nodes, back)


def sysfs_boxes(machine: Any, *, max_boxes: int = MAX_BOXES) -> list[SysfsBox]:
    """The memory-block boxes the figure draws, in block order (see the module docstring):
    every ``memoryM`` directory and every block a ``nodeN/memoryM`` link names, with runs of
    :data:`FOLD_RUN` or more consecutive alike blocks folded, capped at ``max_boxes``."""
    sysfs = machine.sysfs
    ids = sorted(
        set(sysfs.memory) | {t[1] for w, t in sysfs.links if w[0] == "node" and t[0] == "memory"}
    )
    runs: list[list[int]] = []
    for b in ids:
        if (
            runs
            and runs[-1][-1] == b - 1
            and _signature(machine, b) == _signature(machine, runs[-1][0])
        ):
            runs[-1].append(b)
        else:
            runs.append([b])
    pieces: list[list[int]] = []
    for run in runs:  # a short run stays as single boxes
        pieces += [run] if len(run) >= FOLD_RUN else [[b] for b in run]
    boxes = []
    for piece in pieces:
        state, origin, zone, nodes, back = _signature(machine, piece[0])
        boxes.append(SysfsBox(piece[0], piece[-1], len(piece), state, origin, zone, nodes, back))  # type: ignore[arg-type]
    if len(boxes) > max_boxes:
        # keep every box a stale link points at, then the lowest ids
        stale = {s.block for s in stale_links(machine)}
        keep = [b for b in boxes if stale & set(range(b.first, b.last + 1))]
        keep += [b for b in boxes if b not in keep][: max_boxes - 1 - len(keep)]
        keep.sort(key=lambda b: b.first)
        rest = [b for b in boxes if b not in keep]
        count = sum(b.count for b in rest)
        boxes = [*keep, SysfsBox(rest[0].first, rest[-1].last, count, "more", "", "", (), ())]
    return boxes

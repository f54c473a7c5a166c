"""Sparse sections, memory block devices and the sysfs tree that links them to nodes.

The kernel describes hotpluggable memory three ways, and patch 1/3 of the series is about
them disagreeing:

* **sections** (``struct mem_section``, ``SECTION_SIZE_BITS``): present or not, with a memmap
  or not, *early* (``SECTION_IS_EARLY``: boot memory) or hot-added, online or offline;
* **memory blocks** (``struct memory_block``, ``drivers/base/memory.c``): the unit user space
  onlines and offlines through ``/sys/devices/system/memory/memoryN``; on arm64 one block is
  one section. A block's life: *offline* → *online* (``online_pages``) → *going offline* →
  *offline* → *removed* (``unregister_memory``);
* **sysfs links** (``drivers/base/node.c``): ``/sys/devices/system/node/nodeN/memoryX`` and
  ``/sys/devices/system/memory/memoryX/nodeN``. The second lives inside the block's directory
  and goes with it; the first lives in the node's directory and stays unless removed. A link
  that already exists cannot be created again (``-EEXIST``).

>>> s = Sysfs()
>>> s.register_memory(7); s.register_node(0)
>>> s.create_link(("node", 0), ("memory", 7))
>>> s.paths()
['/sys/devices/system/memory/memory7', '/sys/devices/system/node/node0', \
'/sys/devices/system/node/node0/memory7 -> ../../memory/memory7']
"""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.errors import Exists, NotFound

__all__ = ["MemSection", "MemoryBlock", "Sysfs", "SysfsEntry"]

NUMA_NO_NODE = -1


@dataclass
class MemSection:
    """One sparse section (``struct mem_section``)."""

    nr: int
    present: bool = True  #: SECTION_MARKED_PRESENT
    has_memmap: bool = True  #: SECTION_HAS_MEM_MAP
    early: bool = False  #: SECTION_IS_EARLY: came with boot memory
    online: bool = False  #: SECTION_IS_ONLINE
    nid: int = 0


@dataclass
class MemoryBlock:
    """One memory block device (``struct memory_block``)."""

    id: int  #: the N of memoryN
    start_section_nr: int
    end_section_nr: int
    state: str = "offline"  #: "online", "going-offline", "offline"
    nid: int = NUMA_NO_NODE  #: set when linked under a node (v5.4 on)
    online_type: str = ""  #: "online" (ZONE_NORMAL) or "online_movable" (ZONE_MOVABLE)
    unmovable: bool = False  #: holds kernel allocations: cannot be offlined
    zone: str = ""  #: the zone an online block is in ("DMA", "DMA32", "Normal", "Movable")


@dataclass(frozen=True)
class SysfsEntry:
    """One sysfs node for the tree view: a directory, or a symlink and its target."""

    path: str
    kind: str  #: "dir" or "link"
    target: str = ""


def _dir(obj: tuple[str, int]) -> str:
    kind, n = obj
    return f"/sys/devices/system/{kind}/{kind}{n}"


class Sysfs:
    """The part of sysfs that hotplug touches: memoryN and nodeN directories and links."""

    def __init__(self) -> None:
        self.memory: set[int] = set()
        self.nodes: set[int] = set()
        #: links: (directory it lives in, object it points at)
        self.links: set[tuple[tuple[str, int], tuple[str, int]]] = set()

    def __deepcopy__(self, memo: dict[int, object]) -> Sysfs:
        """Sets of ints and tuples: copying the sets is a deep copy."""
        new = Sysfs.__new__(Sysfs)
        new.memory, new.nodes, new.links = set(self.memory), set(self.nodes), set(self.links)
        return new

    def register_memory(self, block_id: int) -> None:
        """``register_memory()``: the memoryN directory appears (empty)."""
        if block_id in self.memory:
            raise Exists(f"/sys/devices/system/memory/memory{block_id} already exists")
        self.memory.add(block_id)

    def unregister_memory(self, block_id: int) -> None:
        """``unregister_memory()``: memoryN goes, with every link inside it."""
        self.memory.discard(block_id)
        self.links = {link for link in self.links if link[0] != ("memory", block_id)}

    def register_node(self, nid: int) -> None:
        self.nodes.add(nid)

    def _exists(self, obj: tuple[str, int]) -> bool:
        return obj[1] in (self.memory if obj[0] == "memory" else self.nodes)

    def create_link(self, where: tuple[str, int], target: tuple[str, int]) -> None:
        """``sysfs_create_link_nowarn()``: ``-EEXIST`` if the name is taken."""
        if not self._exists(where):
            raise NotFound(f"{_dir(where)} does not exist")
        if (where, target) in self.links:
            raise Exists(f"{_dir(where)}/{target[0]}{target[1]} already exists")
        self.links.add((where, target))

    def remove_link(self, where: tuple[str, int], target: tuple[str, int]) -> bool:
        """``sysfs_remove_link()``: silently nothing if absent; returns whether it existed."""
        if (where, target) in self.links:
            self.links.discard((where, target))
            return True
        return False

    def has_link(self, where: tuple[str, int], target: tuple[str, int]) -> bool:
        return (where, target) in self.links

    def entries(self) -> list[SysfsEntry]:
        """The tree as records (for tables and the plotly tree view), sorted by path."""
        out = [SysfsEntry(_dir(("memory", b)), "dir") for b in self.memory]
        out += [SysfsEntry(_dir(("node", n)), "dir") for n in self.nodes]
        for where, target in self.links:
            rel = f"../../{target[0]}/{target[0]}{target[1]}"
            out.append(SysfsEntry(f"{_dir(where)}/{target[0]}{target[1]}", "link", rel))
        return sorted(out, key=lambda e: e.path)

    def paths(self) -> list[str]:
        """Every entry as ``ls -l`` would name it."""
        return [e.path + (f" -> {e.target}" if e.kind == "link" else "") for e in self.entries()]

    def digest(self) -> tuple[object, ...]:
        return (tuple(sorted(self.memory)), tuple(sorted(self.nodes)), tuple(sorted(self.links)))

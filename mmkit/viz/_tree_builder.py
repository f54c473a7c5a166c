"""How :func:`mmkit.viz.tree_model.tree_nodes` builds the tree: one walk of the live tables
(runs found with numpy, uniform PTE tables recognised all at once), alike tables folded, the
snapshot's freed tables added as ghosts, and each node's state decided (see
:mod:`mmkit.viz.tree_model` for what the nodes and states mean).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from mmkit.pgtable.shared import _STATIC_NAMES
from mmkit.viz._tree_parts import Ghosts, UniformTables
from mmkit.viz.tree_model import (
    _UAF_KINDS,
    TreeNode,
    TreeSnapshot,
    _SnapTable,
    why_left,
)

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["TreeBuilder"]


class TreeBuilder(UniformTables, Ghosts):
    """One tree build: the machine, the snapshot, and the nodes made so far."""

    def __init__(self, m: Machine, since: TreeSnapshot | None, fold_min: int) -> None:
        self.m = m
        self.pt = m.pgtables
        self.levels = self.pt.levels
        self.since = since
        self.fold_min = fold_min
        self.attr_mask = np.uint64(~self.pt.addr_mask & ((1 << 64) - 1))
        top = self.levels[0]
        #: the VA of PGD entry 0 (entries count from there; the kernel uses the top ones)
        self.root_va = (1 << 64) - top.ptrs * top.entry_size
        self.nodes: list[TreeNode] = []
        #: [_text, _end) of the kernel image's mapping, as boot mapped it
        self.image = (getattr(m, "kimage_va", 0), getattr(m, "kimage_end", 0))
        self.static = dict(zip(getattr(m, "_static_tables", ()), _STATIC_NAMES, strict=False))
        self.uaf = self._uaf_pfns()
        self.shared = self._shared_pfns()
        self.ghosts = self._ghosts()
        #: (depth, va_start) of every table with a ghost child: never folded
        self.ghost_parents = {
            (g.depth - 1, self._align(g.va_start, g.depth - 1)) for g in self.ghosts.values()
        }

    # ------------------------------------------------------------ inputs
    def _uaf_pfns(self) -> dict[int, str]:
        start = self.since.events if self.since is not None else 0
        out: dict[int, str] = {}
        for e in self.m.events[start:]:
            if e.kind in _UAF_KINDS and e.pfn is not None:
                out.setdefault(e.pfn, f"{e.function}: {e.message.splitlines()[0]}")
        return out

    def _shared_pfns(self) -> set[int]:
        from mmkit.pgtable.shared import shared_tables

        return {t.pfn for t in shared_tables(self.m) if t.pfn is not None}

    def _ghosts(self) -> dict[int, _SnapTable]:
        """Tables live at the snapshot and not live now at the same place."""
        if self.since is None:
            return {}
        info = self.pt.info
        out = {}
        for pfn, t in self.since.tables.items():
            now = info.get(pfn)
            if now is None or (now.depth, now.va_start) != (t.depth, t.va_start):
                out[pfn] = t
        return out

    def _align(self, va: int, depth: int) -> int:
        """The first VA of the table at ``depth`` that maps ``va``."""
        if depth <= 0:
            return self.root_va
        span = self.pt.span(depth)
        return va - (va - self.root_va) % span

    def _region(self, lo: int, hi: int, engine: str | None = None) -> str:
        """The region a node is coloured by: ``"kernel"`` when it maps only kernel image
        addresses (memory.rst puts the image inside the vmalloc area), else the engine's
        region of the table (``engine``) or of its first address."""
        if self.image[0] <= lo and hi <= self.image[1]:
            return "kernel"
        return engine if engine is not None else self.m.desc.region_of(lo).kind

    def _snap_entries(self, pfn: int, depth: int, va: int) -> np.ndarray | None:
        """The table's entries at the snapshot, if it was the same table then."""
        if self.since is None:
            return None
        t = self.since.tables.get(pfn)
        if t is None or (t.depth, t.va_start) != (depth, va):
            return None
        return t.content[: self.levels[depth].ptrs]

    # ------------------------------------------------------------ build
    def build(self) -> list[TreeNode]:
        pt = self.pt
        top = self.levels[0]
        root = TreeNode(
            "pgd",
            "",
            "table",
            top.name,
            top.hw_level,
            max(self.root_va, self.m.desc.kernel_va_start()),
            1 << 64,
            "kernel-va",
            "live",
            pfn=pt.pgd_pfn,
            boot=True,
            pages={(top.name, "live"): 1},
        )
        self.nodes.append(root)
        self._table_children(pt.pgd_pfn, 0, self.root_va, "pgd")
        self._add_ghosts()
        self._fix_values()
        self.nodes.sort(key=lambda n: (n.va_start, n.hw_level, n.kind != "table", n.id))
        return self.nodes

    def _table_children(self, pfn: int, depth: int, va0: int, pid: str) -> list[TreeNode]:
        """Make the nodes under table ``pfn`` (at ``depth``, first VA ``va0``); return them."""
        leaf_depth = depth == len(self.levels) - 1
        arr = self.pt.content[pfn][: self.levels[depth].ptrs]
        root_or_live = depth == 0 or self.since is None
        old = self._snap_entries(pfn, depth, self.root_va if depth == 0 else va0)
        added_table = not root_or_live and old is None
        out: list[TreeNode] = []
        used = np.flatnonzero(arr)
        if used.size:
            mask, value = (np.uint64(v) for v in self.pt.fmt.table_match)
            is_table = np.zeros(used.size, bool) if leaf_depth else (arr[used] & mask) == value
            tables = self._child_tables(arr, used[is_table], depth, va0, pid)
            out.extend(self._runs(arr, old, used[~is_table], depth, va0, pid, added_table))
            out.extend(self._fold(tables, pid))
        if old is not None:  # entries present at the snapshot and cleared since
            gone = np.flatnonzero((old != 0) & (arr == 0))
            if gone.size and not leaf_depth:
                # a cleared table entry is drawn as the table it pointed at (a ghost)
                gone = gone[(old[gone] & np.uint64(3)) != 3]
            out.extend(self._runs(old, None, gone, depth, va0, pid, False, unmapped=True))
        return out

    def _runs(
        self,
        arr: np.ndarray,
        old: np.ndarray | None,
        idx: np.ndarray,
        depth: int,
        va0: int,
        pid: str,
        added_table: bool,
        *,
        unmapped: bool = False,
    ) -> list[TreeNode]:
        """Runs of consecutive entries ``idx`` of ``arr`` with the same attribute bits."""
        if not idx.size:
            return []
        level = self.levels[depth]
        attrs = arr[idx] & self.attr_mask
        if old is not None:  # entries written since the snapshot form runs of their own
            changed = (arr[idx] != old[idx]).astype(np.uint64)
            attrs = attrs ^ (changed << np.uint64(63))
        breaks = np.flatnonzero((np.diff(idx) != 1) | (attrs[1:] != attrs[:-1])) + 1
        bounds = [0, *breaks.tolist(), int(idx.size)]
        out = []
        for s, e in itertools.pairwise(bounds):
            i0 = int(idx[s])
            raw = int(arr[i0])
            va = va0 + i0 * level.entry_size
            if unmapped:
                state = "unmapped"
            elif added_table or (old is not None and int(old[i0]) != raw):
                state = "added"
            else:
                state = "live"
            node = TreeNode(
                f"{'u' if unmapped else 'r'}{depth}:{va:x}",
                pid,
                "run",
                level.name,
                level.hw_level,
                va,
                va + (e - s) * level.entry_size,
                self._region(va, va + (e - s) * level.entry_size),
                state,
                count=e - s,
                index=i0,
                pa=self.pt.desc_to_pa(raw) & ~(level.entry_size - 1),
                raw=raw,
            )
            node.value = node.span
            node.signature = ("run", level.name, int(attrs[s]), e - s, state)
            out.append(node)
        self.nodes.extend(out)
        return out

    def _child_table(self, arr: np.ndarray, i: int, depth: int, va0: int, pid: str) -> TreeNode:
        """The node of the table that entry ``i`` points at, with its subtree."""
        pt = self.pt
        child_depth = depth + 1
        level = self.levels[child_depth]
        raw = int(arr[i])
        cpfn = pt.next_table(raw)
        va = va0 + i * self.levels[depth].entry_size
        info = pt.info.get(cpfn)
        nid = f"t{child_depth}:{va:x}"
        node = TreeNode(
            nid,
            pid,
            "table",
            level.name,
            level.hw_level,
            va,
            min(va + pt.span(child_depth), 1 << 64),
            self._region(
                va, min(va + pt.span(child_depth), 1 << 64), info.region if info else None
            ),
            "live",
            index=i,
            pfn=cpfn,
            raw=raw,
            boot=bool(info and info.boot),
            value=pt.span(child_depth),
        )
        self.nodes.append(node)
        if info is None:  # the entry points at a page that is no longer a table page
            node.state = "touched-after-free" if cpfn in self.uaf else "freed"
            node.note = "a table entry still points at this page, which is no longer a table"
            return node
        children = self._table_children(cpfn, child_depth, va, nid)
        node.hollow = not any(c.in_use for c in children)
        static = self.static.get(cpfn)
        if static:  # swapper_pg_dir's bm_* tables live in the kernel image: never freed
            node.hollow = False
            node.note = f"{static}: static in the kernel image, never freed"
        if self.since is not None and self._snap_entries(cpfn, child_depth, va) is None:
            node.state = "added"
        if node.hollow:
            node.state = "empty"
            node.note = why_left(self.m, node)
        if cpfn in self.shared:
            node.state = "shared"
            node.note = "its span holds both vmalloc and vmemmap addresses (patch 3/3)"
        if cpfn in self.uaf:
            node.state = "touched-after-free"
            node.note = self.uaf[cpfn]
        node.pages = {(level.name, node.state): 1}
        foldable = (child_depth, va) not in self.ghost_parents and node.state not in (
            "shared",
            "touched-after-free",
        )
        inner = [c.signature for c in children]
        if foldable and len(inner) <= 1 and None not in inner:
            node.signature = ("table", level.name, node.region, node.state, *inner)
        return node

    def _fold(self, tables: list[TreeNode], pid: str) -> list[TreeNode]:
        """Fold ``fold_min`` or more consecutive alike child tables into one node."""
        out: list[TreeNode] = []
        i = 0
        while i < len(tables):
            sig = tables[i].signature
            j = i + 1
            while (
                sig is not None
                and j < len(tables)
                and tables[j].signature == sig
                and tables[j].index == (tables[j - 1].index or 0) + 1
            ):
                j += 1
            if sig is not None and j - i >= self.fold_min:
                out.append(self._folded(tables[i:j], pid))
            else:
                out.extend(tables[i:j])
            i = j
        return out

    def _folded(self, run: list[TreeNode], pid: str) -> TreeNode:
        first, last = run[0], run[-1]
        under = {n.id for n in run}
        kept = []
        pages: Counter[tuple[str, str]] = Counter()
        for n in self.nodes:  # the run's tables and their subtrees give way to one node
            if n.id in under or n.parent in under:
                under.add(n.id)
                pages.update(n.pages)
            else:
                kept.append(n)
        self.nodes[:] = kept
        node = TreeNode(
            f"f{first.id}",
            pid,
            "tables",
            first.level,
            first.hw_level,
            first.va_start,
            last.va_end,
            first.region,
            first.state,
            count=len(run),
            index=first.index,
            pfn=first.pfn,
            pfn_last=last.pfn,
            raw=first.raw,
            boot=first.boot,
            note=first.note,
            value=sum(n.value for n in run),
            signature=("tables", len(run), first.signature),
            hollow=first.hollow,
            pages=dict(pages),
        )
        self.nodes.append(node)
        return node

    def _fix_values(self) -> None:
        """A parent's value is the sum of its children's (the unmapped VA is not drawn)."""
        kids: dict[str, list[TreeNode]] = {}
        for n in self.nodes:
            kids.setdefault(n.parent, []).append(n)
        order: list[TreeNode] = []
        stack = [self.nodes[0]]
        while stack:  # parents before children; then sum children-first
            n = stack.pop()
            order.append(n)
            stack.extend(kids.get(n.id, ()))
        for n in reversed(order):
            ch = kids.get(n.id)
            if ch:
                n.value = sum(c.value for c in ch)

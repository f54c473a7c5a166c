"""Two parts of the tree build (:mod:`mmkit.viz._tree_builder`), each its own idea:

* :class:`UniformTables`: runs of PTE tables that each hold one run of alike entries in
  every slot, unchanged since the snapshot, recognised in one numpy pass over all of them
  and folded into one node (a page-granular linear map without a node per table page);
* :class:`Ghosts`: the table pages freed since the snapshot, drawn where they were.

Both are mixins of :class:`~mmkit.viz._tree_builder.TreeBuilder` and use its state.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from mmkit.viz.tree_model import TreeNode, _SnapTable

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["Ghosts", "UniformTables", "ghost_id"]


class UniformTables:
    """The fast path for the child tables of one table (see the module docstring)."""

    m: Machine
    pt: Any
    levels: Any
    since: Any
    fold_min: int
    attr_mask: np.uint64
    uaf: dict[int, str]
    shared: set[int]
    nodes: list[TreeNode]

    def _child_tables(
        self, arr: np.ndarray, idx: np.ndarray, depth: int, va0: int, pid: str
    ) -> list[TreeNode]:
        """The nodes of the tables entries ``idx`` point at.

        Leaf tables (PTE tables) that each hold one run of the same attributes in every
        entry, unchanged since the snapshot, are recognised in one numpy pass over all of
        them, so that a page-granular linear map folds without a node per table page."""
        pt = self.pt
        child_depth = depth + 1
        n = int(idx.size)
        if child_depth != len(self.levels) - 1 or n < self.fold_min:
            return [self._child_table(arr, i, depth, va0, pid) for i in idx.tolist()]
        if pt.pa_bits == 52:  # the address field is split: the engine's own decoding
            pfns = [pt.next_table(raw) for raw in arr[idx].tolist()]
        else:  # __pte_to_phys() is a mask below 52 bits: decode them all at once
            mask, shift = np.uint64(pt.addr_mask), np.uint64(pt.page_shift)
            pfns = ((arr[idx] & mask) >> shift).tolist()
        info = pt.info
        ok = [p in info and p not in self.uaf and p not in self.shared for p in pfns]
        ptrs = self.levels[child_depth].ptrs
        zero = np.zeros(ptrs, np.uint64)
        mat = np.stack([pt.content[p][:ptrs] if k else zero for p, k in zip(pfns, ok, strict=True)])
        attrs = mat & self.attr_mask
        simple = (mat != 0).all(axis=1) & (attrs == attrs[:, :1]).all(axis=1) & np.array(ok)
        added = np.zeros(n, bool)
        if self.since is not None:
            added, old_mat = self._snap_stack(pfns, idx, depth, va0)
            # a table changed in place since the snapshot is drawn entry by entry
            simple &= added | (old_mat == mat).all(axis=1)
        regions: dict[str, int] = {}
        region = np.array(
            [
                regions.setdefault(info[p].region, len(regions)) if k else -1
                for p, k in zip(pfns, ok, strict=True)
            ]
        )
        attr0 = attrs[:, 0]
        # segments: maximal runs of consecutive entries alike in every respect
        cut = (
            (np.diff(idx) != 1)
            | (attr0[1:] != attr0[:-1])
            | (added[1:] != added[:-1])
            | (region[1:] != region[:-1])
            | ~simple[1:]
            | ~simple[:-1]
        )
        bounds = [0, *(np.flatnonzero(cut) + 1).tolist(), n]
        out: list[TreeNode] = []
        for k, j in itertools.pairwise(bounds):
            if simple[k] and j - k >= self.fold_min:
                key = (int(attr0[k]), "added" if added[k] else "live", info[pfns[k]].region)
                out.append(self._uniform_run(arr, idx, pfns, k, j, depth, va0, pid, key))
            else:
                out.extend(self._child_table(arr, int(i), depth, va0, pid) for i in idx[k:j])
        return out

    def _snap_stack(
        self, pfns: list[int], idx: np.ndarray, depth: int, va0: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which of these child tables are new since the snapshot, and what the others held
        then (zeros for the new ones)."""
        assert self.since is not None
        key = (depth, va0, tuple(pfns), idx.tobytes())
        cached = self.since._stacks.get(key)
        if cached is not None:
            return cached
        snap = self.since.tables
        step = self.levels[depth].entry_size
        ptrs = self.levels[depth + 1].ptrs
        zero = np.zeros(ptrs, np.uint64)
        added = np.zeros(len(pfns), bool)
        olds = []
        for k, (p, i) in enumerate(zip(pfns, idx.tolist(), strict=True)):
            old = snap.get(p)
            same = old is not None and (old.depth, old.va_start) == (depth + 1, va0 + i * step)
            added[k] = not same
            olds.append(old.content[:ptrs] if same else zero)  # type: ignore[union-attr]
        out = (added, np.stack(olds))
        self.since._stacks[key] = out
        return out

    def _uniform_run(
        self,
        arr: np.ndarray,
        idx: np.ndarray,
        pfns: list[int],
        k: int,
        j: int,
        depth: int,
        va0: int,
        pid: str,
        key: tuple[int, str, str],
    ) -> TreeNode:
        """A folded node for tables ``k..j-1``, each one full run of ``key``'s attributes."""
        attrs, state, region = key
        level = self.levels[depth + 1]
        step = self.levels[depth].entry_size
        va = va0 + int(idx[k]) * step
        run_sig = ("run", level.name, attrs, level.ptrs, state)
        node = TreeNode(
            f"ft{depth + 1}:{va:x}",
            pid,
            "tables",
            level.name,
            level.hw_level,
            va,
            va + (j - k) * step,
            region,
            state,
            count=j - k,
            index=int(idx[k]),
            pfn=pfns[k],
            pfn_last=pfns[j - 1],
            raw=int(arr[idx[k]]),
            value=(j - k) * step,
            signature=("tables", j - k, ("table", level.name, region, state, run_sig)),
            pages={(level.name, state): j - k},
        )
        self.nodes.append(node)
        return node


class Ghosts:
    """Table pages freed since the snapshot (see the module docstring)."""

    m: Machine
    pt: Any
    levels: Any
    fold_min: int
    uaf: dict[int, str]
    nodes: list[TreeNode]
    ghosts: dict[int, _SnapTable]

    def _add_ghosts(self) -> None:
        """Draw every table freed since the snapshot where it was (alike runs folded)."""
        ids = {n.id for n in self.nodes}
        place = {(g.depth, g.va_start): pfn for pfn, g in self.ghosts.items()}
        by_parent: dict[str, list[tuple[int, _SnapTable]]] = {}
        for pfn, g in sorted(self.ghosts.items(), key=lambda kv: (kv[1].depth, kv[1].va_start)):
            pdepth = g.depth - 1
            pva = self._align(g.va_start, pdepth)
            pid = "pgd" if pdepth == 0 else f"t{pdepth}:{pva:x}"
            if pid not in ids and (pdepth, pva) in place:  # its parent was freed too
                pid = ghost_id(pdepth, pva, place[pdepth, pva])
            elif pid not in ids:
                pid = "pgd"
            by_parent.setdefault(pid, []).append((pfn, g))
        parents = set(by_parent)
        for pid, ghosts in by_parent.items():
            i = 0
            while i < len(ghosts):
                j = i + 1
                while j < len(ghosts) and self._ghosts_alike(ghosts[j - 1], ghosts[j], parents):
                    j += 1
                if j - i >= self.fold_min:
                    self._ghost_node(pid, ghosts[i:j])
                else:
                    for k in range(i, j):
                        self._ghost_node(pid, ghosts[k : k + 1])
                i = j

    def _ghosts_alike(
        self, a: tuple[int, _SnapTable], b: tuple[int, _SnapTable], parents: set[str]
    ) -> bool:
        (pa, ga), (pb, gb) = a, b
        return (
            ga.depth == gb.depth
            and ga.region == gb.region
            and gb.va_start == ga.va_start + self.pt.span(ga.depth)
            and (pa in self.uaf) == (pb in self.uaf)
            and ghost_id(ga.depth, ga.va_start, pa) not in parents
            and ghost_id(gb.depth, gb.va_start, pb) not in parents
        )

    def _ghost_node(self, pid: str, run: list[tuple[int, _SnapTable]]) -> None:
        pfn, g = run[0]
        level = self.levels[g.depth]
        span = self.pt.span(g.depth)
        frame = self.m.physmem.frame(pfn)
        by = getattr(frame, "freed_by", "") if frame is not None else ""
        uaf = pfn in self.uaf
        self.nodes.append(
            TreeNode(
                ghost_id(g.depth, g.va_start, pfn),
                pid,
                "table" if len(run) == 1 else "tables",
                level.name,
                level.hw_level,
                g.va_start,
                min(g.va_start + span * len(run), 1 << 64),
                g.region,
                "touched-after-free" if uaf else "freed",
                count=len(run),
                pfn=pfn,
                pfn_last=run[-1][0] if len(run) > 1 else None,
                note=self.uaf[pfn] if uaf else (f"freed by {by}" if by else "freed"),
                value=span * len(run),
                hollow=True,
                pages={(level.name, "touched-after-free" if uaf else "freed"): len(run)},
            )
        )


def ghost_id(depth: int, va: int, pfn: int) -> str:
    return f"x{depth}:{va:x}:{pfn:x}"

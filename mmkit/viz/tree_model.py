"""The kernel page tables as a tree of nodes a figure can draw, folded to stay readable.

The nodes are table pages and, inside a table, runs of alike entries. A run is what ptdump
folds into one line: consecutive entries of one table with the same attributes (a PTE table
of the linear map holds one run of 512 pages). Consecutive table entries whose child tables
are alike (each holds one run of the same attributes and count, and is in the same state)
fold into one "tables" node too, recursively, so a 64 GiB page-granular linear map (32,768
PTE tables) is a handful of nodes while a one-block teaching tree shows every table page.

Against a :class:`TreeSnapshot` taken earlier (``since``), every node gets a **state**:

* ``live``: there then and now;
* ``added``: a table page allocated, or entries written, since the snapshot;
* ``freed``: a table page live at the snapshot and given back since (a *ghost* node, drawn
  where it was);
* ``unmapped``: entries present at the snapshot and cleared since, in a table still live;
* ``empty``: a live table page with no entry in use (or only entries pointing to such tables):
  what ``free_empty_tables()`` looks for; when an operation is over, a table left behind;
* ``shared``: a table page whose span holds vmalloc *and* vmemmap addresses (patch 3/3's
  hazard, :func:`mmkit.pgtable.shared.shared_tables`);
* ``touched-after-free``: a table page a kernel event (KASAN-style use-after-free, a stale
  table pointer) reports as touched after it was freed.

When several apply the first in this order wins: touched-after-free, freed, unmapped, shared,
empty, added, live. Without ``since`` nothing is added, freed or unmapped.

>>> from mmkit.machine import Machine
>>> m = Machine("teach-4k-39", rodata_full=True)  # the linear map in pages
>>> before = snapshot(m, "boot")
>>> m.hot_add(0x1_0000_0000, 1 << 30)
>>> state_counts(tree_nodes(m, since=before))["added"]  # a PMD table and 512 PTE tables
513
>>> after_add = snapshot(m, "after hot-add")
>>> m.hot_remove(0x1_0000_0000, 1 << 30)
>>> state_counts(tree_nodes(m, since=after_add))["freed"]
513
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mmkit.arch import format_size
from mmkit.pgtable.shared import _STATIC_NAMES

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = [
    "STATES",
    "TreeNode",
    "TreeSnapshot",
    "level_counts",
    "snapshot",
    "state_counts",
    "tree_nodes",
    "why_left",
]

#: Node states, strongest first (see the module docstring).
STATES: tuple[str, ...] = (
    "touched-after-free",
    "freed",
    "unmapped",
    "shared",
    "empty",
    "added",
    "live",
)
_RANK = {s: i for i, s in enumerate(STATES)}

#: Events that report a table page touched after it was freed.
_UAF_KINDS = frozenset({"use-after-free"})


@dataclass(frozen=True)
class _SnapTable:
    depth: int
    va_start: int
    region: str
    content: np.ndarray  #: a private copy of the entries


@dataclass(frozen=True)
class TreeSnapshot:
    """The live table pages of a machine at one point, for "added since" and "freed".

    ``label`` says when it was taken ("before hot-remove"); ``events`` how many kernel
    events the machine had then.
    """

    tables: dict[int, _SnapTable]
    label: str = ""
    events: int = 0
    #: per run of child tables, what the snapshot held (the snapshot never changes, so a
    #: stepping view redrawing against it computes this once)
    _stacks: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __repr__(self) -> str:
        return f"TreeSnapshot({self.label or 'unnamed'}: {len(self.tables)} table pages)"


def snapshot(m: Machine, label: str = "") -> TreeSnapshot:
    """Record ``m``'s live table pages and their entries (a copy: later steps change nothing)."""
    pt = m.pgtables
    return TreeSnapshot(
        {
            pfn: _SnapTable(i.depth, i.va_start, i.region, pt.content[pfn].copy())
            for pfn, i in pt.info.items()
        },
        label,
        len(m.events),
    )


@dataclass
class TreeNode:
    """One node of the drawn tree.

    ``kind`` is ``"table"`` (one table page), ``"tables"`` (a folded run of ``count`` alike
    table pages) or ``"run"`` (``count`` alike entries of one table: blocks or pages, or
    cleared entries for an ``unmapped`` run). ``pfn`` is the table page (the first one of a
    folded run); for a run, ``pa`` is the output address of its first entry. ``raw`` is a
    descriptor to decode in the hover: the parent's entry pointing at a table, or the run's
    first entry. ``value`` is the VA span drawn (bytes).
    """

    id: str
    parent: str
    kind: str
    level: str
    hw_level: int
    va_start: int
    va_end: int
    region: str
    state: str
    count: int = 1
    index: int | None = None  #: entry index in the parent table
    pfn: int | None = None
    pfn_last: int | None = None  #: last table page of a folded run
    pa: int | None = None
    raw: int | None = None
    boot: bool = False
    note: str = ""  #: why it is in its state (freed by, left because, touched by)
    value: int = 0
    hollow: bool = False  #: a table with no entry in use (or only such tables under it)
    #: table pages this node stands for, by (level, state): itself for a table, and for a
    #: folded node every table page folded into it, the ones under its tables included
    pages: dict[tuple[str, str], int] = field(default_factory=dict)
    #: what a parent compares to fold alike children; None: never folded
    signature: tuple[object, ...] | None = field(default=None, repr=False)

    @property
    def span(self) -> int:
        return self.va_end - self.va_start

    @property
    def in_use(self) -> bool:
        """Whether this node keeps its parent table from being empty."""
        if self.kind == "run":
            return self.state != "unmapped"
        return not self.hollow and self.state != "freed"

    def label(self) -> str:
        """A short label for the drawn box."""
        name = self.level.upper()
        if self.kind == "table":
            head = "swapper_pg_dir" if self.level == "pgd" else f"{name} table"
            return f"{head}<br>pfn {self.pfn:#x}" if self.pfn is not None else head
        if self.kind == "tables":
            return f"{self.count} {name} tables"
        size = format_size(self.span // max(self.count, 1))
        if self.state == "unmapped":
            return f"{self.count}×{size} cleared"
        return f"{self.count}×{size} {'page' if self.level == 'pte' else 'block'}"


class _Builder:
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
            three = np.uint64(3)
            is_table = np.zeros(used.size, bool) if leaf_depth else (arr[used] & three) == three
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

    # ------------------------------------------------------------ ghosts
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
                pid = _ghost_id(pdepth, pva, place[pdepth, pva])
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
            and _ghost_id(ga.depth, ga.va_start, pa) not in parents
            and _ghost_id(gb.depth, gb.va_start, pb) not in parents
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
                _ghost_id(g.depth, g.va_start, pfn),
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


def _ghost_id(depth: int, va: int, pfn: int) -> str:
    return f"x{depth}:{va:x}:{pfn:x}"


def tree_nodes(
    m: Machine, *, since: TreeSnapshot | None = None, fold_min: int = 3
) -> list[TreeNode]:
    """The tree of ``m``'s kernel page tables, root (``swapper_pg_dir``) first.

    ``since`` colours what changed since that snapshot; ``fold_min`` is the shortest run of
    alike table pages folded into one node (a large number turns folding off)."""
    return _Builder(m, since, max(2, fold_min)).build()


def why_left(m: Machine, node: TreeNode) -> str:
    """Why an empty table page is still there, in the words of the machine's policy."""
    p = m.policy
    if p.passes == 1:
        return f"{p.name}: a table is freed during the walk only when it empties there"
    if node.region == "vmemmap":
        if p.vmemmap_tables == "never":
            return f"{p.name}: vmemmap_free() never frees table pages"
        if p.vmemmap_tables == "no-overlap" and m.desc.vmalloc_vmemmap_overlap.overlap:
            return (
                f"{p.name}: vmalloc and vmemmap share a PGD entry here, so vmemmap_free() "
                "skips free_empty_tables()"
            )
        if p.vmemmap_tables == "floor-ceiling":
            return f"{p.name}: free_empty_tables() frees only tables inside [floor, ceiling)"
    if node.region == "linear" and p.linear_floor_ceiling:
        return f"{p.name}: free_empty_tables() frees only tables inside [floor, ceiling)"
    return "empty: free_empty_tables() frees it if its whole span is being removed"


def state_counts(nodes: list[TreeNode]) -> Counter[str]:
    """Table pages per state (a folded node counts every page folded into it)."""
    c: Counter[str] = Counter()
    for n in nodes:
        for (_, state), k in n.pages.items():
            c[state] += k
    return c


def level_counts(nodes: list[TreeNode]) -> Counter[tuple[str, str]]:
    """Table pages per (state, level), folded pages included."""
    c: Counter[tuple[str, str]] = Counter()
    for n in nodes:
        for (level, state), k in n.pages.items():
            c[state, level] += k
    return c

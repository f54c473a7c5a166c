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

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mmkit import _validate
from mmkit.arch import format_size

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
    _validate.shaped(m, "m", "a Machine", "pgtables")
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


def tree_nodes(
    m: Machine, *, since: TreeSnapshot | None = None, fold_min: int = 3
) -> list[TreeNode]:
    """The tree of ``m``'s kernel page tables, root (``swapper_pg_dir``) first.

    ``since`` colours what changed since that snapshot; ``fold_min`` is the shortest run of
    alike table pages folded into one node (a large number turns folding off)."""
    _validate.shaped(m, "m", "a Machine", "pgtables")
    from mmkit.viz._tree_builder import TreeBuilder

    return TreeBuilder(m, since, max(2, fold_min)).build()


def why_left(m: Machine, node: TreeNode) -> str:
    """Why an empty table page is still there, in the words of the machine's policy."""
    p = m.policy
    if p.passes == 1:
        return f"{p.name}: a table is freed during the walk only when it empties there"
    if node.region == "vmemmap":
        if p.vmemmap_tables == "never":
            return f"{p.name}: vmemmap_free() never frees table pages"
        report = getattr(m.desc, "vmalloc_vmemmap_overlap", None)
        if p.vmemmap_tables == "no-overlap" and report is not None and report.overlap:
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

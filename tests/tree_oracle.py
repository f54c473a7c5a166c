"""Ground truth for the page-table tree tests, read from the engine's own tables.

Every check here reads ``m.pgtables`` (its live table pages, their entries, their spans)
and compares the nodes of :func:`mmkit.viz.tree_model.tree_nodes` with it; none of it
reuses the tree's own code. A table node is matched to the live table pages it stands for
by level and VA: the pages at that level whose span starts inside the node's VA range.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np

from mmkit.machine import Machine
from mmkit.viz.tree_model import TreeNode, state_counts

_M64 = (1 << 64) - 1

Key = tuple[int, int, int]  #: (pfn, depth, va_start) of a live table page


@dataclass(frozen=True)
class Truth:
    """What the engine had at one point: live table pages and a copy of their entries."""

    keys: frozenset[Key]
    content: dict[int, np.ndarray]


def truth(m: Machine) -> Truth:
    pt = m.pgtables
    return Truth(
        frozenset((p, i.depth, i.va_start) for p, i in pt.info.items()),
        {p: pt.content[p].copy() for p in pt.info},
    )


def depth_of(m: Machine, node: TreeNode) -> int:
    return [lv.name for lv in m.pgtables.levels].index(node.level)


def root_va(m: Machine) -> int:
    top = m.pgtables.levels[0]
    return (1 << 64) - top.ptrs * top.entry_size


def table_va0(m: Machine, node: TreeNode) -> int:
    """The VA of entry 0 of the table ``node`` stands for."""
    return root_va(m) if node.id == "pgd" else node.va_start


def is_live(node: TreeNode) -> bool:
    """A table node standing for live table pages (scenarios without a use-after-free)."""
    return node.kind in ("table", "tables") and node.state != "freed"


def pages_of(m: Machine, node: TreeNode, keys: frozenset[Key]) -> set[Key]:
    """The table pages of ``keys`` at the node's level whose span starts in its VA range."""
    if node.id == "pgd":
        return {k for k in keys if k[1] == 0}
    d = depth_of(m, node)
    return {k for k in keys if k[1] == d and node.va_start <= k[2] < node.va_end}


def expected_region(m: Machine, n: TreeNode, engine: str) -> str:
    """The engine's region, except "kernel" for a node whose span lies in the kernel image's
    mapping [kimage_va, kimage_end) (memory.rst puts the image inside vmalloc)."""
    if m.kimage_va <= n.va_start and n.va_end <= m.kimage_end:
        return "kernel"
    return engine


def pages_under(
    m: Machine, node: TreeNode, keys: frozenset[Key], nodes: list[TreeNode]
) -> set[Key]:
    """The table pages below a folded node drawn without children (a fold of tables that
    each hold a fold of tables): they are in its VA range, one level down or more."""
    if node.kind != "tables" or any(n.parent == node.id for n in nodes):
        return set()
    d = depth_of(m, node)
    return {k for k in keys if k[1] > d and node.va_start <= k[2] < node.va_end}


def children(nodes: list[TreeNode]) -> dict[str, list[TreeNode]]:
    out: dict[str, list[TreeNode]] = {}
    for n in nodes:
        out.setdefault(n.parent, []).append(n)
    return out


def entry_index(m: Machine, parent: TreeNode, child: TreeNode) -> int:
    """The parent-table entry a child sits at, from VAs alone."""
    step = m.pgtables.levels[depth_of(m, parent)].entry_size
    return (child.va_start - table_va0(m, parent)) // step


# ------------------------------------------------------------------ invariants
def check_geometry(m: Machine, nodes: list[TreeNode]) -> None:
    """Ids unique, parents exist and come first, each node inside its parent, spans right."""
    pt = m.pgtables
    ids = [n.id for n in nodes]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    root = nodes[0]
    assert (root.id, root.parent, root.kind, root.level) == ("pgd", "", "table", "pgd")
    assert root.pfn == pt.pgd_pfn
    assert root.va_end == 1 << 64
    by_id = {n.id: n for n in nodes}
    for n in nodes[1:]:
        assert n.parent in by_id, n
        p = by_id[n.parent]
        assert p.kind == "table", (p, n)
        assert p.va_start <= n.va_start < n.va_end <= p.va_end, (p, n)
        pd = depth_of(m, p)
        step = pt.levels[pd].entry_size
        assert (n.va_start - table_va0(m, p)) % step == 0, n
        if n.index is not None:
            assert n.index == entry_index(m, p, n), n
        if n.kind == "run":
            assert n.level == p.level and n.span == n.count * step, n
        else:
            assert depth_of(m, n) == pd + 1, (p, n)
            assert n.span == n.count * pt.span(pd + 1), n


def check_coverage(m: Machine, nodes: list[TreeNode]) -> None:
    """The live table nodes stand for every live table page once, level by level."""
    pt = m.pgtables
    keys = truth(m).keys
    drawn = Counter()
    seen: set[Key] = set()
    for n in nodes:
        if not is_live(n):
            continue
        pages = pages_of(m, n, keys)
        assert len(pages) == n.count, (n, sorted(pages))
        assert not pages & seen, n
        seen |= pages
        assert n.pfn in {k[0] for k in pages}, n
        below = pages_under(m, n, keys, nodes)
        assert not below & seen, n
        seen |= below
        if n.kind == "table":
            ((pfn, _, va),) = pages
            assert (n.pfn, n.va_start if n.id != "pgd" else va) == (pfn, va), n
            assert n.id == "pgd" or n.region == expected_region(m, n, pt.info[pfn].region), n
        else:
            assert n.pfn_last in {k[0] for k in pages}, n
        drawn[n.level] += n.count
        for k in below:
            drawn[pt.levels[k[1]].name] += 1
    assert seen == keys, sorted(keys - seen)[:5]
    assert drawn == Counter(r.level for r in m.table_pages())


def changed_entries(m: Machine, pfn: int, since: Truth | None) -> np.ndarray | None:
    """Per entry of live table ``pfn``: written since ``since`` (None: no snapshot)."""
    if since is None:
        return None
    pt = m.pgtables
    i = pt.info[pfn]
    if (pfn, i.depth, i.va_start) not in since.keys:
        return np.ones(pt.ptrs, bool)
    return pt.content[pfn] != since.content[pfn]


def check_entries(m: Machine, nodes: list[TreeNode], since: Truth | None = None) -> None:
    """Each unfolded live table: its children account for exactly its entries in use;
    runs are alike within and maximal; runs' states say whether they were written since."""
    pt = m.pgtables
    used = {r.pfn: r.used_entries for r in m.table_pages()}
    kids = children(nodes)
    attr_mask = np.uint64(~pt.addr_mask & _M64)
    for t in nodes:
        if t.kind != "table" or not is_live(t):
            continue
        d = depth_of(m, t)
        leaf = d == len(pt.levels) - 1
        ptrs = pt.levels[d].ptrs
        arr = pt.content[t.pfn][:ptrs]
        changed = changed_entries(m, t.pfn, since)
        covered: list[int] = []
        runs = []
        for c in kids.get(t.id, []):
            if c.kind == "run" and c.state != "unmapped":
                idx = list(range(c.index, c.index + c.count))
                ent = arr[c.index : c.index + c.count]
                assert (ent != 0).all(), c
                assert leaf or ((ent & np.uint64(3)) != 3).all(), c
                assert len({int(a) for a in ent & attr_mask}) == 1, c
                assert c.raw == int(ent[0])
                if c.region == "linear":  # the linear map: __phys_to_virt(pa) is the VA
                    assert m.lm_va(c.pa) == c.va_start, c
                if changed is not None:
                    ch = changed[c.index : c.index + c.count]
                    assert ch.all() or not ch.any(), c
                    assert (c.state == "added") == bool(ch[0]), c
                else:
                    assert c.state == "live", c
                runs.append(c)
            elif c.kind in ("table", "tables") and c.state != "freed":
                idx = list(range(c.index, c.index + c.count))
                assert pt.next_table(int(arr[c.index])) == c.pfn, c
                if c.kind == "tables":
                    assert pt.next_table(int(arr[c.index + c.count - 1])) == c.pfn_last, c
                assert all(int(a) & 3 == 3 for a in arr[c.index : c.index + c.count]), c
            else:
                continue
            covered += idx
        assert len(covered) == len(set(covered)), t
        assert sorted(covered) == np.flatnonzero(arr).tolist(), t
        assert len(covered) == used[t.pfn], t
        runs.sort(key=lambda r: r.index)
        for a, b in itertools.pairwise(runs):
            if a.index + a.count == b.index:  # touching runs must differ in something
                same_attrs = int(arr[a.index]) & int(attr_mask) == int(arr[b.index]) & int(
                    attr_mask
                )
                assert not same_attrs or a.state != b.state, (a, b)


def check_states(m: Machine, nodes: list[TreeNode], since: Truth | None = None) -> None:
    """Every live table node is in the state the engine says its pages are in."""
    expected = expected_states(m, since)
    keys = truth(m).keys
    for n in nodes:
        if is_live(n):
            pages = pages_of(m, n, keys) | pages_under(m, n, keys, nodes)
            states = {expected[k[0]] for k in pages}
            assert states == {n.state}, (n, states)


def check_structure(m: Machine, nodes: list[TreeNode], since: Truth | None = None) -> None:
    check_geometry(m, nodes)
    check_coverage(m, nodes)
    check_entries(m, nodes, since)
    check_states(m, nodes, since)


def check_changes(m: Machine, nodes: list[TreeNode], before: Truth) -> None:
    """Added, freed and unmapped against the engine's tables before and now."""
    now = truth(m)
    added = now.keys - before.keys
    freed = before.keys - now.keys
    counts = state_counts(nodes)  # table pages per state, as the figures' legends say
    expected = expected_states(m, before)
    check_states(m, nodes, before)
    assert counts["added"] == sum(1 for (pfn, _, _) in added if expected[pfn] == "added")
    # freed: ghost nodes stand for exactly the table pages gone since
    ghost_pages: set[Key] = set()
    for n in nodes:
        if n.kind in ("table", "tables") and n.state == "freed":
            pages = pages_of(m, n, freed)
            assert len(pages) == n.count and n.pfn in {k[0] for k in pages}, n
            ghost_pages |= pages
    assert ghost_pages == freed
    assert counts["freed"] == len(freed)
    # unmapped: entries present then and zero now, in tables live both times
    kids = children(nodes)
    for t in nodes:
        if t.kind != "table" or not is_live(t):
            continue
        key = next(iter(pages_of(m, t, now.keys)))
        if key not in before.keys:
            continue
        ptrs = m.pgtables.levels[key[1]].ptrs
        old, new = before.content[t.pfn][:ptrs], m.pgtables.content[t.pfn][:ptrs]
        gone = set(np.flatnonzero((old != 0) & (new == 0)).tolist())
        shown: list[int] = []
        for c in kids.get(t.id, []):
            if c.state == "unmapped":
                assert c.kind == "run", c
                shown += range(c.index, c.index + c.count)
                assert (old[c.index : c.index + c.count] != 0).all(), c
            elif c.kind in ("table", "tables") and c.state == "freed":
                i = entry_index(m, t, c)
                shown += range(i, i + c.count)
        assert len(shown) == len(set(shown)), t
        assert set(shown) == gone, (t, sorted(gone ^ set(shown))[:5])


def hollow_pfns(m: Machine) -> set[int]:
    """Live table pages with no entry in use, or only entries pointing at such tables
    (the static tables in the kernel image excepted: never freed)."""
    pt = m.pgtables
    static = set(getattr(m, "_static_tables", ()))
    last = len(pt.levels) - 1
    memo: dict[int, bool] = {}

    def hollow(pfn: int) -> bool:
        if pfn not in memo:
            d = pt.info[pfn].depth
            ent = pt.content[pfn][: pt.levels[d].ptrs]
            memo[pfn] = pfn not in static and all(
                d < last
                and int(e) & 3 == 3
                and pt.next_table(int(e)) in pt.info
                and hollow(pt.next_table(int(e)))
                for e in ent[ent != 0]
            )
        return memo[pfn]

    return {p for p in pt.info if p != pt.pgd_pfn and hollow(p)}


def expected_states(m: Machine, before: Truth | None) -> dict[int, str]:
    """The state each live table page should be drawn in (no use-after-free), from the
    engine: shared (patch 3/3's tables), else empty, else added since ``before``, else live."""
    from mmkit.pgtable.shared import shared_tables

    shared = {t.pfn for t in shared_tables(m) if t.pfn is not None}
    hollow = hollow_pfns(m)
    out = {}
    for pfn, i in m.pgtables.info.items():
        if pfn == m.pgtables.pgd_pfn:
            out[pfn] = "live"
        elif pfn in shared:
            out[pfn] = "shared"
        elif pfn in hollow:
            out[pfn] = "empty"
        elif before is not None and (pfn, i.depth, i.va_start) not in before.keys:
            out[pfn] = "added"
        else:
            out[pfn] = "live"
    return out


def next_block(m: Machine) -> int:
    """The first memory-block-aligned PA at or above 4 GiB past the boot memory."""
    b = m.desc.memory_block_size
    top = max(s + n for s, n in m.boot_memory)
    return max(0x1_0000_0000, -(-top // b) * b)

"""The step convention: a generator yields the step it is about to take; resuming performs it.

Each operation is driven one step at a time, as a scheduler would. At every yield the
machine is exactly as the previous step left it (for the first, as it was before the
operation started): the step has not happened yet. Once resumed, the step has happened, its
results are filled in, and nothing but that step changed the machine: a write changed only
its entries, a read nothing, an allocation made only its frame (and table) live, a free
released only its frame, a TLBI only the TLBs and the counters, a lock only ``m.locks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mmkit._digest import WRITES
from mmkit.errors import NoMemory
from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.mm import hotplug as hp
from mmkit.mm.vmalloc import vmalloc
from mmkit.pgtable.tlb import access
from mmkit.pgtable.walk import translate
from mmkit.scenarios import memblock_order

GIB = 1 << 30
# what each kind of step may change, by part of Machine.digest (0 page tables, 1 physmem,
# 2 hotplugged, 3 vmalloc_ranges, 4 memblock, 5 sections, 6 memory blocks, 7 sysfs,
# 8 resources, 11 stats, 12 TLBs, 13 locks, 14 lock holders, 15 other attributes): the
# engine's own contract, which the explorer's state keys rely on
MAY_CHANGE = WRITES


@dataclass
class State:
    """What the machine looks like at one instant (the expensive part computed once)."""

    digest: tuple[Any, ...]
    stats: dict[str, int]
    locks: dict[str, str]
    tlbs: str
    events: int
    #: a copy of every live table page's entries (the digest compares their fingerprints)
    live: dict[int, np.ndarray] = field(compare=False, repr=False)

    @classmethod
    def of(cls, m: Machine) -> State:
        tlbs = repr([(sorted(t.leaf.items()), sorted(t.walk.items())) for t in m.tlbs])
        pt = m.pgtables
        live = {pfn: pt.content[pfn].copy() for pfn in pt.info}
        return cls(m.digest(log=False), dict(m.stats), dict(m.locks), tlbs, len(m.events), live)

    def tables(self) -> dict[int, np.ndarray]:
        return self.live


def content(m: Machine, pfn: int | None) -> np.ndarray | None:
    """A copy of the entries of the table page ``pfn`` (live or not)."""
    if pfn is None or pfn not in m.pgtables.content:
        return None
    return m.pgtables.content[pfn].copy()


def _dev(name: str) -> tuple[str, int]:
    kind = name.rstrip("0123456789")
    return kind, int(name[len(kind) :])


def probe(m: Machine, step: Step) -> object:
    """The one fact a sysfs, device or section step is about (None for other steps)."""
    line = step.line
    if step.action == "sysfs":
        src, dst = (x.strip() for x in line.split("(")[1].split(")")[0].split(","))
        return m.sysfs.has_link(_dev(src), _dev(dst))
    if step.action == "device":
        if "register_memory(" in line:  # register_memory / unregister_memory
            return _dev(line.split("(")[1].rstrip(")"))[1] in m.blocks
        if "register_one_node" in line:
            return int(line.split("(")[1].rstrip(")")) in m.nodes_online
        blk = m.blocks[_dev(line.split(":")[0])[1]]  # a state change: with its sections'
        nrs = range(blk.start_section_nr, blk.end_section_nr + 1)
        return blk.state, {m.sections[nr].online for nr in nrs}
    if step.action == "call" and "_section()" in line:
        first, last = (int(x) for x in line.split("sections ")[1].rstrip(")").split(".."))
        return [nr in m.sections for nr in range(first, last + 1)]
    return None


#: what a probed step changes its fact from and to
PROBED = {
    "sysfs_create_link_nowarn": (False, True),
    "sysfs_remove_link": (True, False),
    "unregister_memory": (True, False),
    "register_memory": (False, True),
    "register_one_node": (False, True),
    "-> online": (("offline", {False}), ("online", {True})),
    "MEM_GOING_OFFLINE": (("online", {True}), ("going-offline", {True})),
    "MEM_OFFLINE": (("going-offline", {True}), ("offline", {False})),
    "sparse_add_section": (False, True),
    "sparse_remove_section": (True, False),
}


def contents(m: Machine, step: Step) -> dict[int, np.ndarray | None]:
    """Copies of the table pages ``step`` reads or writes (all of a bulk step's)."""
    return {p: content(m, p) for p in (step.tables or (step.table,)) if p is not None}


def check_performed(
    m: Machine,
    step: Step,
    index: int,
    at_yield: State,
    tables_at_yield: dict[int, np.ndarray | None],
    fact_at_yield: object,
    after: State,
) -> None:
    """``step`` was yielded in state ``at_yield`` and resumed into state ``after``."""
    what = f"step {index}: {step.describe()}"
    changed = {
        i for i, (a, b) in enumerate(zip(at_yield.digest, after.digest, strict=True)) if a != b
    }
    if after.events == at_yield.events:  # an event may change more (a BUG sets oops)
        assert changed <= MAY_CHANGE[step.action], f"{what} changed {changed}"
    if step.action != "tlbi":
        assert after.stats == at_yield.stats, what
    if step.action not in ("lock", "unlock"):
        assert after.locks == at_yield.locks, what
    if step.action not in ("tlbi", "access"):
        assert after.tlbs == at_yield.tlbs, what
    for ev in m.events[at_yield.events :]:  # recorded while this step was performed
        assert ev.step == index, (what, ev)
    fact = probe(m, step)
    if fact is not None and "-EEXIST" not in step.line:
        key = next(k for k in PROBED if k in step.line)
        was, now = PROBED[key]
        if isinstance(fact, list):  # one per section
            fact_at_yield, fact = set(fact_at_yield), set(fact)  # type: ignore[arg-type]
            was, now = {was}, {now}
        assert (fact_at_yield, fact) == (was, now), what
    before_tables, after_tables = at_yield.tables(), after.tables()
    pt = m.pgtables

    if step.action == "write":
        assert step.old is not None, f"{what}: old not filled in"
        touched: dict[int, set[int]] = {p: set() for p in tables_at_yield}
        for e in step.entries():  # through the per-table steps of a bulk step
            assert int(pt.content[e.table][e.index]) == (e.new or 0), what
            assert int(tables_at_yield[e.table][e.index]) == (e.old or 0), what
            touched[e.table].add(e.index)
        # nothing else in the page tables changed
        for p, was in tables_at_yield.items():
            diff = set(np.flatnonzero(was != pt.content[p]).tolist())
            assert diff <= touched[p], what
        others = {p for p in before_tables if p not in tables_at_yield}
        assert all(np.array_equal(before_tables[p], after_tables[p]) for p in others), what
    elif step.action == "read":
        if step.table is None:  # get_nid_for_pfn(): no table entry
            assert "=" in step.line.split("get_nid_for_pfn")[-1], what
            return
        assert step.old is not None, f"{what}: old not filled in"
        for part in step.expand() if step.bulk else [step]:  # a bulk step: each table
            entries = tables_at_yield[part.table][part.index : part.index + part.count]
            if part.count == 1:
                assert part.old == int(entries[0]), what
            elif "in use" in part.note:  # the scan of a table page before freeing it
                used = np.flatnonzero(entries)
                assert part.note == f"{len(used)} in use", what
                assert part.old == (int(entries[used[0]]) if len(used) else 0), what
            elif "still set" in part.note:  # the sanity check after unmapping
                assert part.note == f"{np.count_nonzero(entries)} still set", what
            elif part.old:  # a run of table entries, each pointing at the next table page
                assert [e.old for e in part.expand()] == entries.tolist(), what
            else:  # a run of none entries
                assert part.old == 0 and not np.count_nonzero(entries), what
    elif step.action == "alloc":
        if step.pfn is None:  # the allocation failed (-ENOMEM): nothing happened
            assert not changed, what
            return
        pfns = [e.pfn for e in step.expand()]  # a bulk allocation: one table page each
        assert len(pfns) == step.count and pfns[0] == step.pfn, what
        # a vmalloc area's pages are also noted as its backing (other attributes, 15)
        assert changed - {15} == ({0, 1} if step.note == "table" else {1}), what
        for pfn in pfns:
            frame = m.physmem.frame(pfn)
            assert frame is not None and frame.state != "free", what
            if step.note == "table":
                assert pfn in pt.info and pfn not in before_tables, what
                assert not np.count_nonzero(pt.content[pfn]), what
        if step.note == "table":
            assert set(after_tables) - set(before_tables) == set(pfns), what
    elif step.action == "free":
        if step.note == "table":  # one table page, or a bulk free of several
            pfns = [e.pfn for e in step.expand()]
            assert len(pfns) == step.count and pfns[0] == step.pfn, what
            for pfn in pfns:
                frame = m.physmem.frame(pfn)
                assert frame is not None and frame.state == "free", what
                assert pfn in before_tables and pfn not in pt.info, what
            assert set(before_tables) - set(after_tables) == set(pfns), what
        else:
            frame = m.physmem.frame(step.pfn)
            assert frame is not None and frame.state == "free", what
            assert changed == {1}, what
    elif step.action == "lock":
        name, _, mode = step.note.partition(":")
        assert name not in at_yield.locks, what
        assert after.locks == {**at_yield.locks, name: mode}, what
    elif step.action == "unlock":
        assert step.note in at_yield.locks, what
        assert after.locks == {k: v for k, v in at_yield.locks.items() if k != step.note}, what
    elif step.action == "tlbi":
        delta = {k: after.stats[k] - at_yield.stats[k] for k in after.stats}
        # every kind counts one per instruction the step stands for
        assert delta == {**dict.fromkeys(delta, 0), step.note: step.count}, what
    elif step.action == "access":
        assert step.line != f"load {step.va:#x}", f"{what}: outcome not filled in"
    elif step.action == "memblock":  # one region array, the one named by the note
        for (name, before), (_, now) in zip(at_yield.digest[4], after.digest[4], strict=True):
            assert name == step.note or before == now, what
        base, size = (int(x, 16) for x in step.line.split("(")[1].rstrip(")").split(",")[:2])
        present = m.memblock.is_region_memory(base, size)
        assert present == ("memblock_add" in step.line) or step.note != "memory", what


def drive(m: Machine, op: Iterator[Step]) -> tuple[list[Step], Any]:
    """Drive ``op`` one step at a time (as ``Machine.run`` does, into ``m.history``) and
    check every step; returns the steps and what ``op`` returned."""
    start = State.of(m)
    steps: list[Step] = []
    at_yield, tables_at_yield, fact_at_yield = start, {}, None
    while True:
        try:
            step = next(op)  # performs the step before, then yields this one
            done = False
        except StopIteration as stop:
            step, done, result = None, True, stop.value
        except Exception:
            if steps:  # the last step was performed, then the operation failed
                check_performed(
                    m,
                    steps[-1],
                    len(m.history) - 1,
                    at_yield,
                    tables_at_yield,
                    fact_at_yield,
                    State.of(m),
                )
            raise
        now = State.of(m)
        if steps:
            check_performed(
                m, steps[-1], len(m.history) - 1, at_yield, tables_at_yield, fact_at_yield, now
            )
        else:  # nothing happens before the first yield
            assert now == start
        if done:
            return steps, result
        assert step is not None
        m.history.append(step)
        steps.append(step)
        # the state the step is yielded in is the state the previous one left
        at_yield, tables_at_yield, fact_at_yield = now, contents(m, step), probe(m, step)


def next_block(m: Machine) -> int:
    top = max(s + n for s, n in m.boot_memory)
    size = m.desc.memory_block_size
    return -(-top // size) * size


CONFIGS = [
    pytest.param("arm64-4k-48", {}, False, GIB, id="4k-48"),
    pytest.param("arm64-4k-48", {}, True, GIB, id="4k-48-fine"),
    pytest.param("arm64-16k-47", {"rodata_full": True}, False, GIB, id="16k-47-rodata_full"),
    # runs of PTE tables in bulk steps (512 tables, a handful of steps)
    pytest.param("arm64-4k-48", {"rodata_full": True}, False, GIB, id="4k-48-rodata_full"),
    pytest.param("arm64-64k-42", {}, True, GIB, id="64k-42-fine"),
    pytest.param("arm64-64k-42", {"rodata_full": True}, False, GIB, id="64k-42-rodata_full"),
    # page by page, every PTE its own step (a smaller range: one digest per step)
    pytest.param("arm64-64k-42", {"rodata_full": True}, True, 32 << 20, id="64k-42-rf-fine"),
    pytest.param("arm64-64k-42", {"policy": "v3"}, True, GIB, id="64k-42-v3-fine"),
    pytest.param("arm64-64k-42", {"policy": "v6"}, False, GIB, id="64k-42-v6"),
]


@pytest.mark.parametrize(("name", "options", "fine", "size"), CONFIGS)
def test_arch_add_and_remove_yield_each_step_before_performing_it(name, options, fine, size):
    m = Machine(name, fine=fine, **options)
    start = next_block(m)
    vmemmap = m.vmemmap_va(start >> m.desc.page_shift)
    added, _ = drive(m, m.arch_add_memory(start, size))
    assert m.hotplugged == [(start, size)] and translate(m, m.lm_va(start)).pa == start
    for va in (m.lm_va(start), vmemmap, m.lm_va(start)):
        steps, pa = drive(m, access(m, va, 1))
        assert [s.action for s in steps] == ["access"] and pa is not None
    removed, _ = drive(m, m.arch_remove_memory(start, size))
    assert m.hotplugged == [] and not translate(m, m.lm_va(start)).ok
    kinds = {s.action for s in added + removed}
    assert {"call", "read", "write", "alloc", "free", "tlbi"} <= kinds
    assert ("lock" in kinds) == (m.policy.name == "v3")  # V3's remove_pagetable takes ptl
    if fine:  # (a table scan stays one step: it reads the whole page)
        assert all(s.count == 1 for s in added + removed if s.action == "write")
        assert all(s.count == 1 for s in added + removed if s.action == "read" and not s.note)
    events = len(m.events)
    steps, pa = drive(m, access(m, vmemmap + m.page_size, 1))
    # every version (V3's free_p?d_table too) invalidates a freed table with
    # __flush_tlb_kernel_pgtable(), so CPU1's walk cache no longer reaches it
    assert pa is None and "translation fault" in steps[0].line
    assert len(m.events) == events


@pytest.mark.parametrize(
    ("name", "options", "fine", "kernel"),
    [
        ("arm64-16k-47", {"rodata_full": True}, False, "v5.7"),
        ("arm64-64k-42", {}, True, "v5.5"),
        ("arm64-64k-42", {"rodata_full": True}, False, "v5.4"),
    ],
)
def test_the_generic_hotplug_flow_yields_each_step_before_performing_it(
    name, options, fine, kernel
):
    m = Machine(name, fine=fine, kernel=kernel, online_type="online", **options)
    start, size = next_block(m), m.desc.memory_block_size
    b = m.block_of(start)
    steps, _ = drive(m, hp.add_memory(m, 0, start, size))
    assert m.blocks[b].state == "online" and m.sysfs.has_link(("node", 0), ("memory", b))
    assert [s.note for s in steps if s.action == "lock"][:2] == [
        "device_hotplug_lock:exclusive",
        "mem_hotplug_lock:write",
    ]
    assert m.locks == {}
    drive(m, hp.offline_memory_block(m, b))
    assert m.blocks[b].state == "offline"
    steps, _ = drive(m, hp.remove_memory(m, start, size))
    assert b not in m.blocks and not m.pfn_valid(start >> m.desc.page_shift)
    kinds = {s.action for s in steps}
    assert {"lock", "unlock", "memblock", "device", "sysfs", "write", "free"} <= kinds
    assert m.events == [] and m.locks == {}


def test_a_failed_add_memory_unwinds_step_by_step():
    m = Machine("arm64-64k-42", fine=True, online_type="offline")
    start, size = next_block(m), m.desc.memory_block_size
    before = m.digest()
    m.physmem.fail_after = 3  # a few table and memmap pages, then -ENOMEM
    with pytest.raises(NoMemory):
        drive(m, hp.add_memory(m, 0, start, size))
    failed = [s for s in m.history if s.action == "alloc" and s.pfn is None]
    assert len(failed) == 1  # yielded, then the allocation failed: nothing was allocated
    assert [s.line.split("(")[0] for s in m.history[-4:]] == [
        "memblock_remove",
        "release_memory_resource",
        "unlock",
        "unlock",
    ]
    assert m.locks == {} and all(r[0] != start for r in m.resources)
    assert m.digest()[4:9] == before[4:9]  # memblock, sections, blocks, sysfs, resources


@pytest.mark.parametrize(("name", "fine"), [("arm64-4k-48", False), ("arm64-64k-42", True)])
def test_vmalloc_yields_each_step_before_performing_it(name, fine):
    m = Machine(name, fine=fine)
    va0 = m._vmalloc_next
    steps, va = drive(m, vmalloc(m, 3 * m.page_size))
    assert va == va0 and steps[0].line.endswith(f"= {va:#x}")
    assert m.vmalloc_ranges[-1] == (va, 3 * m.page_size)
    assert [s.action for s in steps[1:4]] == ["alloc"] * 3
    # an area no table maps yet: the unlocked test, alloc, the lock, the re-check under it,
    # the populate, the unlock, for each missing table, then the PTE
    span = m.pgtables.levels[-2].entry_size
    m._vmalloc_next = (m._vmalloc_next | (span - 1)) + 1 + span
    steps, va = drive(m, vmalloc(m, 2 * m.page_size))
    allocs = [i for i, s in enumerate(steps) if s.action == "alloc" and s.note == "table"]
    assert allocs
    for i in allocs:
        assert steps[i - 1].action == "read" and steps[i - 1].old == 0
        assert [s.action for s in steps[i : i + 5]] == ["alloc", "lock", "read", "write", "unlock"]
        assert steps[i + 3].new == m.pgtables.table_desc(steps[i].pfn)  # what alloc returned
    assert [s.function for s in steps if s.action == "write"][-2:] == ["vmap_pte_range"] * 2
    for k in range(0, 2 * m.page_size, m.page_size):
        assert translate(m, va + k).ok


def test_run_and_access_complete_every_step_they_record():
    m = Machine("arm64-16k-47", rodata_full=True)
    mark = len(m.history)
    start = next_block(m)
    m.hot_add(start, GIB)
    m.run(vmalloc(m, 5 * m.page_size))
    assert m.access(m.lm_va(start)) == start
    m.hot_remove(start, GIB)
    steps = m.history[mark:]
    assert all(s.old is not None for s in steps if s.action in ("read", "write"))
    assert all(s.pfn is not None for s in steps if s.action == "alloc")
    assert steps[-1].line == "return"  # the last one too, completed when the op returned
    access_step = next(s for s in steps if s.action == "access")
    assert access_step.line.endswith("(walk)") and access_step.pfn == start >> 14


def test_a_lock_is_requested_first_and_taken_when_resumed():
    m = Machine("arm64-64k-42")
    assert m.lock_available("mem_hotplug_lock", "write", "H")
    op = m.lock("offline_pages", "mem_hotplug_lock", mode="write")
    step = next(op)
    assert step.action == "lock" and step.note == "mem_hotplug_lock:write"
    assert step.line == "write_lock(mem_hotplug_lock)" and m.locks == {}
    with pytest.raises(StopIteration):
        next(op)
    assert m.locks == {"mem_hotplug_lock": "write"}
    op = m.unlock("offline_pages", "mem_hotplug_lock")
    assert next(op).note == "mem_hotplug_lock" and m.locks == {"mem_hotplug_lock": "write"}
    with pytest.raises(StopIteration):
        next(op)
    assert m.locks == {}


def test_peeking_at_an_operation_changes_nothing():
    m = Machine("arm64-4k-48", kernel="v5.7", online_type="offline")
    start, size = next_block(m), m.desc.memory_block_size
    before = m.digest()
    ops = [
        hp.add_memory(m, 0, start, size),
        m.arch_add_memory(start + size, size),
        vmalloc(m, 4 * m.page_size),
        access(m, m.lm_va(0x4000_0000)),
    ]
    first = [next(op) for op in ops]  # every operation's next step, none taken
    assert [s.action for s in first] == ["lock", "call", "call", "access"]
    assert m.digest() == before and m.locks == {} and m.events == []
    assert all(not t.leaf and not t.walk for t in m.tlbs)


@pytest.mark.parametrize("kernel", ["v5.4", "v5.5"])
def test_memblock_order_frames_show_each_step_performed(kernel):
    sc = memblock_order(kernel)
    frames = sc.run()
    assert [f.step for f in frames] == sc.machine.history
    inside = [any(b <= sc.start < e for b, e, _ in f.memblock_memory) for f in frames]
    for f, present in zip(frames, inside, strict=True):
        if f.step.action == "memblock" and f.step.note == "memory":
            assert present == ("memblock_add" in f.step.line), f.step.line
        if f.step.action == "sysfs":  # the frame of a link step shows the link made/removed
            made = "create" in f.step.line
            assert any(f"node0/memory{sc.block}" in link for link in f.links) == made

"""The bad-input corpus of the Python API: each call raises its typed error and the machine
it was made on is exactly as it was (``Machine.digest()``, which covers the event log,
history, TLBs, locks and stats too).

A case is ``(call, error)``: ``call(m)`` gets a copy of a prepared machine (4K/48, v5.7:
block ``ADDED`` added with ``add_memory`` and left offline, block ``HOT`` added at the arch
level with ``hot_add``); calls that make no machine of their own still run beside one, which
must not change either.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import mmkit
from mmkit.errors import (
    Busy,
    Exists,
    InvalidArgument,
    MmkitError,
    NoMemory,
    NotFound,
    NotPermitted,
    UnknownName,
)
from mmkit.machine import Machine
from mmkit.mm import hotplug as hp
from mmkit.mm.ptdump import parse_ptdump
from mmkit.scenarios import memblock_order
from mmkit.scenarios.races import ptdump_race, tlb_order, vmalloc_race

GIB = 1 << 30
BOOT = 0x4000_0000  # the boot bank: [1 GiB, 3 GiB)
ADDED = 0xC000_0000  # add_memory(), offline
HOT = 0x1_0000_0000  # hot_add(): mapped, no memory block
FREE = 0x2_0000_0000  # nothing there
KVA = 0xFFFF_0000_4000_0000  # the linear map of BOOT

_TEMPLATE: Machine | None = None


def prepared() -> Machine:
    global _TEMPLATE
    if _TEMPLATE is None:
        m = Machine("arm64-4k-48", policy="v5.7", vmalloc_areas=1, online_type="offline")
        m.add_memory(0, ADDED, GIB)
        m.hot_add(HOT, GIB)
        _TEMPLATE = m
    return copy.deepcopy(_TEMPLATE)


Call = Callable[[Machine], Any]
CASES: list[tuple[str, Call, type[MmkitError]]] = []


def case(name: str, call: Call, error: type[MmkitError]) -> None:
    CASES.append((name, call, error))


# a handful of values that are wrong wherever a number, a name or a flag is expected
NOT_INT = [None, 1.5, "0x1000", b"\x00", [1], True]
NOT_BOOL = [None, "no", 0, 1, "False"]
HUGE = [1 << 64, 1 << 200, -1, -(1 << 64)]

# ------------------------------------------------------------------ Machine(...)
for v in [None, 42, ["arm64-4k-48"], b"arm64-4k-48"]:
    case(f"Machine(arch={v!r})", lambda m, v=v: Machine(v), InvalidArgument)
for v in ["arm64-4k-47", "", "ARM64-4K-48", "arm64-4k-48 ", "ärm64-4k-48", "x" * 10_000]:
    case(f"Machine(arch={v[:20]!r})", lambda m, v=v: Machine(v), UnknownName)
for v in [42, None, 4.0, ["v7"], object()]:
    case(f"Machine(policy={v!r:.20})", lambda m, v=v: Machine(policy=v), InvalidArgument)
for v in ["v8", "", "V7", "v7\x00"]:
    case(f"Machine(policy={v!r})", lambda m, v=v: Machine(policy=v), UnknownName)
for flag in ("rodata_full", "debug_pagealloc", "fine", "record"):
    for v in NOT_BOOL:
        case(f"Machine({flag}={v!r})", lambda m, f=flag, v=v: Machine(**{f: v}), InvalidArgument)
for v in ["yes", 1]:
    case(
        f"Machine(unmap_kernel_at_el0={v!r})",
        lambda m, v=v: Machine(unmap_kernel_at_el0=v),
        InvalidArgument,
    )
for v in [0, -1, 257, 1 << 64, 2.0, "2", True, None]:
    case(f"Machine(cpus={v!r})", lambda m, v=v: Machine(cpus=v), InvalidArgument)
for v in [-1, 65, 1 << 40, 1.0, "3", None, False]:
    case(f"Machine(vmalloc_areas={v!r})", lambda m, v=v: Machine(vmalloc_areas=v), InvalidArgument)
for v in ["Online", "movable", ""]:
    case(f"Machine(online_type={v!r})", lambda m, v=v: Machine(online_type=v), UnknownName)
for v in [5, None, ["online"]]:
    case(f"Machine(online_type={v!r})", lambda m, v=v: Machine(online_type=v), InvalidArgument)
for v in ["v9.9", "5.4", "v5.6", ""]:
    case(f"Machine(kernel={v!r})", lambda m, v=v: Machine(kernel=v), UnknownName)
for v in [5.4, 54]:
    case(f"Machine(kernel={v!r})", lambda m, v=v: Machine(kernel=v), InvalidArgument)
case("Machine(kasan=True)", lambda m: Machine(kasan=True), InvalidArgument)
case("Machine(kasan='hw')", lambda m: Machine(kasan="hw"), InvalidArgument)
case("Machine(bogus=1)", lambda m: Machine(bogus=1), InvalidArgument)
case(
    "Machine(desc, kasan=...)",
    lambda m: Machine(mmkit.arch.get("arm64-4k-48"), kasan="generic"),
    InvalidArgument,
)
MEMORY = [
    None,
    42,
    "0x40000000",
    [],
    [42],
    [(BOOT,)],
    [(BOOT, GIB, 0)],
    [("0x40000000", GIB)],
    [(BOOT, 1.5)],
    [(BOOT, True)],
    [(-BOOT, 2 * GIB)],
    [(BOOT, -GIB)],
    [(BOOT, 0)],
    [(BOOT + 1, GIB)],
    [(BOOT, GIB + 1)],
    [(BOOT, 32 << 20)],
    [(BOOT, GIB), (BOOT + GIB // 2, GIB)],
    [(1 << 64, GIB)],
    [(BOOT, 1 << 64)],
    [(1 << 48, GIB)],
    [(BOOT, 1 << 44)],
    [(BOOT, 1 << 62)],
]
for v in MEMORY:
    case(f"Machine(memory={v!r:.40})", lambda m, v=v: Machine(memory=v), InvalidArgument)
case(
    "Machine(memory=[tiny first bank, 64 GiB])",
    lambda m: Machine(memory=[(BOOT, 64 << 20), (0x10_0000_0000, 64 * GIB)]),
    NoMemory,
)
case(
    "Machine(4k-39, memory beyond the linear map)",
    lambda m: Machine("arm64-4k-39", memory=[(BOOT, 2 * GIB), (0x40_0000_0000, 2 * GIB)]),
    InvalidArgument,
)

# ------------------------------------------------------------------ mmkit.arch.get
for v in [["arm64-4k-48"], None, 48, b"arm64-4k-48", ("arm64-4k-48",)]:
    case(f"arch.get({v!r})", lambda m, v=v: mmkit.arch.get(v), InvalidArgument)
for v in ["arm64-4k", "", "arm64-4k-48\n", "日本"]:
    case(f"arch.get({v!r})", lambda m, v=v: mmkit.arch.get(v), UnknownName)
ARCH_OPTIONS = {
    "vabits_actual": [48.0, "48", True, None, 47, 1 << 64],
    "pa_bits": [52.0, "48", 40, True],
    "kernel": [5.4, None, "v9.9"],
    "kasan": [True, 1, "hw_tags"],
    "ghes": ["yes", 1, None],
    "kpti": [0, "False"],
    "relocatable": [1],
    "bogus": [1],
}
for option, values in ARCH_OPTIONS.items():
    for v in values:
        case(
            f"arch.get(arm64-64k-52, {option}={v!r:.20})",
            lambda m, o=option, v=v: mmkit.arch.get("arm64-64k-52", **{o: v}),
            InvalidArgument,
        )
case("desc.indices(0)", lambda m: m.desc.indices(0), InvalidArgument)
case("desc.indices(1 << 64)", lambda m: m.desc.indices(1 << 64), InvalidArgument)
case("desc.indices('x')", lambda m: m.desc.indices("x"), InvalidArgument)
case("desc.region_of(None)", lambda m: m.desc.region_of(None), InvalidArgument)
case("desc.region_of(-1)", lambda m: m.desc.region_of(-1), InvalidArgument)
case("desc.region('nope')", lambda m: m.desc.region("nope"), InvalidArgument)


# ------------------------------------------------- hot_add / hot_remove and the arch steps
def run(op_name: str) -> Callable[[Machine, object, object], Any]:
    """The call ``op_name`` on ``(start, size)``: a step generator is run to its end."""

    def call(m: Machine, start: object, size: object) -> Any:
        op = getattr(m, op_name)(start, size)
        return m.run(op) if op_name.startswith("arch_") else op

    return call


RANGE_OPS = ["hot_add", "hot_remove", "arch_add_memory", "arch_remove_memory", "remove_memory"]
for op in RANGE_OPS:
    for v in [*NOT_INT, *HUGE]:
        case(f"{op}(start={v!r:.20})", lambda m, o=op, v=v: run(o)(m, v, GIB), InvalidArgument)
    for v in [None, 0, -GIB, 1.0 * GIB, "1G", 1 << 64]:
        case(f"{op}(size={v!r:.20})", lambda m, o=op, v=v: run(o)(m, FREE, v), InvalidArgument)
    case(f"{op}(unaligned)", lambda m, o=op: run(o)(m, FREE + 4096, GIB), InvalidArgument)
    case(f"{op}(past MAX_PHYSMEM)", lambda m, o=op: run(o)(m, 1 << 48, GIB), InvalidArgument)
    case(f"{op}(below memstart)", lambda m, o=op: run(o)(m, 0, GIB), InvalidArgument)
for op in ("hot_add", "arch_add_memory"):
    case(f"{op}(HOT again)", lambda m, o=op: run(o)(m, HOT, GIB), Exists)
    case(f"{op}(boot memory)", lambda m, o=op: run(o)(m, BOOT, GIB), Exists)
    case(f"{op}(overlapping HOT)", lambda m, o=op: run(o)(m, HOT - GIB, 2 * GIB), Exists)
    case(f"{op}(more than the allocator has)", lambda m, o=op: run(o)(m, FREE, 256 * GIB), NoMemory)
for op in ("hot_remove", "arch_remove_memory"):
    case(f"{op}(never added)", lambda m, o=op: run(o)(m, FREE, GIB), NotFound)
    case(f"{op}(half present)", lambda m, o=op: run(o)(m, HOT, 2 * GIB), NotFound)
    case(f"{op}(boot memory, pinned)", lambda m, o=op: run(o)(m, BOOT, GIB), Busy)
case("arch_add_memory(1 MiB)", lambda m: m.arch_add_memory(FREE, 1 << 20), InvalidArgument)
case("hot_add(32 MiB)", lambda m: m.hot_add(FREE, 32 << 20), InvalidArgument)

# ------------------------------------------------------------ the generic hotplug flow
for v in [-1, 4, 1.0, None, True, "0"]:
    case(f"add_memory(nid={v!r})", lambda m, v=v: m.add_memory(v, FREE, GIB), InvalidArgument)
case("add_memory(ADDED again)", lambda m: m.add_memory(0, ADDED, GIB), Exists)
case("add_memory(over HOT)", lambda m: m.add_memory(0, HOT, GIB), Exists)
case("add_memory(boot memory)", lambda m: m.add_memory(0, BOOT, GIB), Exists)
case("add_memory(unaligned)", lambda m: m.add_memory(0, FREE + (2 << 20), GIB), InvalidArgument)
case("remove_memory(never added)", lambda m: m.remove_memory(FREE, GIB), NotFound)
case("remove_memory(online boot block)", lambda m: m.remove_memory(BOOT, GIB), Busy)
for v in [None, -1, 1.0, "3", True, -(1 << 64)]:
    case(f"online_block({v!r:.20})", lambda m, v=v: m.online_block(v), InvalidArgument)
    case(f"offline_block({v!r:.20})", lambda m, v=v: m.offline_block(v), InvalidArgument)
case("online_block(1 << 64)", lambda m: m.online_block(1 << 64), NotFound)
case("online_block(absent)", lambda m: m.online_block(FREE // GIB), NotFound)
case("offline_block(absent)", lambda m: m.offline_block(FREE // GIB), NotFound)
for v in ["offline", "Online", "", None, 1]:
    case(
        f"online_block(ADDED, {v!r})",
        lambda m, v=v: m.online_block(ADDED // GIB, v),
        InvalidArgument,
    )
case("offline_block(pinned boot block)", lambda m: m.offline_block(BOOT // GIB), Busy)
case(
    "add_memory generator, refused when called",
    lambda m: hp.add_memory(m, 0, ADDED, GIB),
    Exists,
)
case("remove_memory generator", lambda m: hp.remove_memory(m, FREE, GIB), NotFound)
case("offline generator", lambda m: hp.offline_memory_block(m, BOOT // GIB), Busy)
case("online generator", lambda m: hp.online_memory_block(m, 99), NotFound)
case("allocate_unmovable(absent)", lambda m: hp.allocate_unmovable(m, 99), NotFound)
case("allocate_unmovable(offline)", lambda m: hp.allocate_unmovable(m, ADDED // GIB), Busy)


def _boot_removal_refused(m: Machine) -> None:
    v7 = Machine("arm64-4k-48", memory=[(BOOT, GIB), (0x1_0000_0000, GIB)], policy="v5.7")
    v7.offline_block(0x1_0000_0000 // GIB)


case("offline_block(boot, notifier)", _boot_removal_refused, NotPermitted)

# ------------------------------------------------------------------- access and queries
for v in [None, 1.5, "0xffff000040000000", True, -1, 1 << 64, 0, 0x1000, 0x0000_FFFF_0000_0000]:
    case(f"access(va={v!r:.24})", lambda m, v=v: m.access(v), InvalidArgument)
for v in [2, 5, -1, None, 1.0, True, "0"]:
    case(f"access(cpu={v!r})", lambda m, v=v: m.access(KVA, cpu=v), InvalidArgument)
for v in [None, 42, [1, 2], "steps", KVA]:
    case(f"run({v!r:.20})", lambda m, v=v: m.run(v), InvalidArgument)
case("run(op, record='yes')", lambda m: m.run(iter(()), record="yes"), InvalidArgument)
for query in ("lm_va", "vmemmap_va", "block_of", "pfn_valid"):
    for v in [None, "x", 1.5, -1, 1 << 64]:
        case(f"{query}({v!r})", lambda m, q=query, v=v: getattr(m, q)(v), InvalidArgument)

# --------------------------------------------------------------------------- ptdump text
PTDUMP = [
    b"---[ Modules start ]---",
    None,
    ["0xffff800000000000-0xffff800008000000   128M PTE"],
    "0xffff800000000000-0xffff800008000000   127M PTE",
    "0xffff800008000000-0xffff800000000000   128M PTE",
    "0xffff800000000000-0xffff800008000000   128M PTE RW ZZ",
    "---[  ]---",
    "garbage",
    "0x" + "f" * 5000,
    " " * 100_000 + "x",
]
for i, v in enumerate(PTDUMP):
    case(f"parse_ptdump[{i}]({v!r:.30})", lambda m, v=v: parse_ptdump(v), InvalidArgument)

# ---------------------------------------------------------------------------- scenarios
for race in (ptdump_race, tlb_order, vmalloc_race):
    case(f"{race.__name__}(config='nope')", lambda m, r=race: r(config="nope"), UnknownName)
    case(f"{race.__name__}(policy='v9')", lambda m, r=race: r(policy="v9"), UnknownName)
    case(f"{race.__name__}(config=42)", lambda m, r=race: r(config=42), InvalidArgument)
case("memblock_order(kernel='v9')", lambda m: memblock_order("v9"), InvalidArgument)
case("memblock_order(config='nope')", lambda m: memblock_order("v5.3", "nope"), UnknownName)


# ---------------------------------------------------------------------- views and tables
def _views() -> dict[str, Callable[[Any], Any]]:
    import mmkit.tables as tables
    import mmkit.viz as viz

    return {
        "viz.layout_figure": viz.layout_figure,
        "viz.pgd_boundaries": viz.pgd_boundaries,
        "viz.memblock_figure": viz.memblock_figure,
        "viz.sysfs_figure": viz.sysfs_figure,
        "viz.stale_links": viz.stale_links,
        "viz.timeline_figure": viz.timeline_figure,
        "viz.lock_holds": viz.lock_holds,
        "viz.event_steps": viz.event_steps,
        "viz.tree_figure": viz.tree_figure,
        "viz.snapshot": viz.snapshot,
        "viz.tree_nodes": viz.tree_nodes,
        "viz.tree_pair_figure(m, x)": lambda x: viz.tree_pair_figure(prepared(), x),
        "viz.tree_diff_figure(s, x)": lambda x: viz.tree_diff_figure(viz.snapshot(prepared()), x),
        "viz.comparison_figure": viz.comparison_figure,
        "tables.layout_frame": tables.layout_frame,
        "tables.layout_html": tables.layout_html,
        "tables.table_pages_frame": tables.table_pages_frame,
        "tables.ptdump_frame": tables.ptdump_frame,
        "tables.comparison_frame": tables.comparison_frame,
        "tables.steps_frame": tables.steps_frame,
        "tables.events_frame": tables.events_frame,
    }


VIEW_NAMES = [
    "viz.layout_figure",
    "viz.pgd_boundaries",
    "viz.memblock_figure",
    "viz.sysfs_figure",
    "viz.stale_links",
    "viz.timeline_figure",
    "viz.lock_holds",
    "viz.event_steps",
    "viz.tree_figure",
    "viz.snapshot",
    "viz.tree_nodes",
    "viz.tree_pair_figure(m, x)",
    "viz.tree_diff_figure(s, x)",
    "tables.layout_frame",
    "tables.layout_html",
    "tables.table_pages_frame",
    "tables.ptdump_frame",
]
for view in VIEW_NAMES:
    for v in [None, 42, "arm64-4k-48"]:
        case(f"{view}({v!r})", lambda m, view=view, v=v: _views()[view](v), InvalidArgument)
for view in ["viz.comparison_figure", "tables.comparison_frame", "tables.events_frame"]:
    for v in [None, 42, "v7", [1, 2]]:
        case(f"{view}({v!r})", lambda m, view=view, v=v: _views()[view](v), InvalidArgument)
case("tables.steps_frame(42)", lambda m: _views()["tables.steps_frame"](42), InvalidArgument)
case("tables.steps_frame(None)", lambda m: _views()["tables.steps_frame"](None), InvalidArgument)


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_its_typed_error_and_changes_nothing(call, error):
    m = prepared()
    before = m.digest()
    with pytest.raises(error) as err:
        call(m)
    assert type(err.value) is error or issubclass(type(err.value), error)
    assert m.digest() == before
    message = str(err.value)
    assert message and "\n" not in message and len(message) < 600, message
    assert "{" not in message.replace("{}", "") or "=" in message, message  # formatted


def test_the_corpus_is_large_and_varied():
    assert len(CASES) >= 200
    assert len({c[0] for c in CASES}) == len(CASES)  # every case is a different call
    assert {c[2] for c in CASES} >= {
        InvalidArgument,
        UnknownName,
        Exists,
        NotFound,
        Busy,
        NotPermitted,
        NoMemory,
    }

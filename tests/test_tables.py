"""pandas views: the configurations table, memory.rst-style layouts, and the record tables.

Ground truth for the layout table is Documentation/arm64/memory.rst (v5.4) as printed there:
the frame must reproduce its rows character for character (start, inclusive end, rounded
size, use). The configurations table must agree with the engine's records row by row.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mmkit import arch
from mmkit.arch.arm64 import CONFIGS as ARM64
from mmkit.arch.teaching import CONFIGS as TEACHING
from mmkit.tables import (
    CONFIG_COLUMNS,
    EVENT_COLUMNS,
    PTDUMP_COLUMNS,
    STEP_COLUMNS,
    TABLE_PAGE_COLUMNS,
    comparison_frame,
    configs_frame,
    events_frame,
    layout_frame,
    layout_html,
    ptdump_frame,
    steps_frame,
    table_pages_frame,
)

# memory.rst, "4KB pages + 4 levels (48-bit)" (generic KASAN, GHES + KPTI, no SDEI), verbatim.
MEMORY_RST_4K_48 = """
0000000000000000 0000ffffffffffff 256TB user
ffff000000000000 ffff7fffffffffff 128TB kernel logical memory map
ffff800000000000 ffff9fffffffffff 32TB kasan shadow region
ffffa00000000000 ffffa00007ffffff 128MB bpf jit region
ffffa00008000000 ffffa0000fffffff 128MB modules
ffffa00010000000 fffffdffbffeffff ~93TB vmalloc
fffffdffbfff0000 fffffdfffe5f8fff ~998MB [guard region]
fffffdfffe5f9000 fffffdfffe9fffff 4124KB fixed mappings
fffffdfffea00000 fffffdfffebfffff 2MB [guard region]
fffffdfffec00000 fffffdffffbfffff 16MB PCI I/O space
fffffdffffc00000 fffffdffffdfffff 2MB [guard region]
fffffdffffe00000 ffffffffffdfffff 2TB vmemmap
ffffffffffe00000 ffffffffffffffff 2MB [guard region]
"""

# memory.rst, "64KB pages + 3 levels (52-bit with HW support)", verbatim.
MEMORY_RST_64K_52 = """
0000000000000000 000fffffffffffff 4PB user
fff0000000000000 fff7ffffffffffff 2PB kernel logical memory map
fff8000000000000 fffd9fffffffffff 1440TB [gap]
fffda00000000000 ffff9fffffffffff 512TB kasan shadow region
ffffa00000000000 ffffa00007ffffff 128MB bpf jit region
ffffa00008000000 ffffa0000fffffff 128MB modules
ffffa00010000000 fffff81ffffeffff ~88TB vmalloc
fffff81fffff0000 fffffc1ffe58ffff ~3TB [guard region]
fffffc1ffe590000 fffffc1ffe9fffff 4544KB fixed mappings
fffffc1ffea00000 fffffc1ffebfffff 2MB [guard region]
fffffc1ffec00000 fffffc1fffbfffff 16MB PCI I/O space
fffffc1fffc00000 fffffc1fffdfffff 2MB [guard region]
fffffc1fffe00000 ffffffffffdfffff 3968GB vmemmap
ffffffffffe00000 ffffffffffffffff 2MB [guard region]
"""


def _doc_rows(text: str) -> list[list[str]]:
    return [line.split(" ", 3) for line in text.strip().splitlines()]


@pytest.mark.parametrize("kernel", ["v5.4", "v5.7"])
@pytest.mark.parametrize(
    ("name", "options", "doc"),
    [
        ("arm64-4k-48", {"kasan": "generic"}, MEMORY_RST_4K_48),
        ("arm64-64k-52", {"kasan": "generic", "vabits_actual": 52}, MEMORY_RST_64K_52),
    ],
)
def test_layout_frame_reproduces_memory_rst(
    name: str, options: dict[str, object], doc: str, kernel: str
) -> None:
    frame = layout_frame(arch.get(name, kernel=kernel, **options))
    assert frame[["start", "end", "size", "use"]].values.tolist() == _doc_rows(doc)


def _check_rows(desc: object) -> None:
    frame = layout_frame(desc)  # type: ignore[arg-type]
    regions = desc.regions  # type: ignore[attr-defined]
    assert list(frame.columns) == ["start", "end", "size", "use", "kind"]
    assert len(frame) == len(regions)
    for (_, row), region in zip(frame.iterrows(), regions, strict=True):
        assert int(row["start"], 16) == region.start
        assert int(row["end"], 16) == region.end - 1  # memory.rst prints inclusive ends
        assert len(row["start"]) == len(row["end"]) == 16
        assert row["use"] == region.name and row["kind"] == region.kind
        assert row["size"] == arch.format_size(region.end - region.start)


@pytest.mark.parametrize("kernel", arch.KERNEL_ERAS)
@pytest.mark.parametrize("name", ARM64)
def test_layout_frame_rows_follow_regions(name: str, kernel: str) -> None:
    _check_rows(arch.get(name, kernel=kernel))


@pytest.mark.parametrize("name", arch.names())
def test_layout_frame_of_any_registered_configuration(name: str) -> None:
    # Plugins' configurations too (CI installs plugins/*), with their default options.
    _check_rows(arch.get(name))


def test_configs_frame_matches_engine_rows() -> None:
    frame = configs_frame()
    rows = {row["name"]: row for row in arch.config_rows()}
    assert list(frame.index) == arch.names() == list(rows)
    assert list(frame.columns) == [title for title, _ in CONFIG_COLUMNS]
    for name in ARM64:
        row = rows[name]
        assert frame.loc[name, "VA bits"] == row["va_bits"]
        assert frame.loc[name, "levels"] == row["levels"]
        assert frame.loc[name, "PGDIR_SHIFT"] == row["PGDIR_SHIFT"]
        assert frame.loc[name, "PTRS_PER_PGD"] == row["PTRS_PER_PGD"]
        assert bool(frame.loc[name, "V7 overlap"]) is row["v7_overlap"]
        assert frame.loc[name, "page size"] == arch.format_size(row["page_size"])
        assert frame.loc[name, "vmemmap size"] == arch.format_size(row["vmemmap_size"])


def test_configs_frame_known_values() -> None:
    # Geometry from kernel-facts §2 / drgn's formulas: 16K/48 has a 2-entry PGD, 64K/42 2 levels.
    frame = configs_frame()
    assert frame.loc["arm64-16k-48", "PTRS_PER_PGD"] == 2
    assert frame.loc["arm64-64k-42", "levels"] == 2
    assert frame.loc["arm64-4k-48", "page size"] == "4KB"
    assert frame.loc["arm64-64k-52", "vmemmap size"] == "3968GB"
    # The V7 cover letter: exactly 4K/48 and 16K/48 overlap in the v5.4 layout.
    flagged = frame.index[frame["V7 overlap"].fillna(False)]  # NA: a family without the test
    assert sorted(n for n in flagged if n in ARM64) == ["arm64-16k-48", "arm64-4k-48"]
    assert set(TEACHING) <= set(flagged)  # the teaching layouts overlap by construction


def test_configs_frame_keeps_refused_configuration_with_its_reason() -> None:
    frame = configs_frame(kasan="generic")
    assert list(frame.index) == arch.names()
    reason = frame.loc["arm64-16k-48", "error"]
    assert "KASAN" in reason and "16K/48" in reason
    assert pd.isna(frame.loc["arm64-16k-48", "levels"])
    # The missing numbers do not turn the other rows' integers into floats.
    assert str(frame["levels"].dtype) == "Int64"
    assert frame.loc["arm64-4k-48", "levels"] == 4
    assert frame.loc["arm64-4k-48", "error"] == ""


def test_configs_frame_raw_keeps_exact_addresses() -> None:
    raw = configs_frame(raw=True)
    for row in arch.config_rows():
        if not str(row["name"]).startswith("arm64-"):
            continue
        assert raw.loc[row["name"], "VMALLOC_END"] == row["VMALLOC_END"]  # above 2**63: exact
        assert raw.loc[row["name"], "vmalloc_size"] == row["vmalloc_size"]


def test_configs_frame_passes_options_to_engine() -> None:
    v53 = configs_frame(kernel="v5.3")
    assert sorted(v53.index[v53["V7 overlap"].fillna(False)]) == [
        "arm64-16k-48"
    ]  # kernel-facts §3.5 aside


def test_layout_html_marks_shared_entry_and_escapes() -> None:
    html_text = layout_html(arch.get("arm64-4k-48"))
    assert "<table" in html_text and "mmkit-layout" in html_text
    assert "<b>vmalloc</b> (shared PGD entry)" in html_text
    assert "<b>vmemmap</b> (shared PGD entry)" in html_text
    assert "<b>kernel logical memory map</b>" not in html_text
    assert "[guard region]" in html_text
    no_overlap = layout_html(arch.get("arm64-64k-48"))
    assert "shared PGD entry" not in no_overlap


# ------------------------------------------------------------------ record tables
BLOCK = 0x4000_0000_0000


@pytest.fixture(scope="module")
def removed():
    """A 4K/48 machine that hot-added then hot-removed one block, every step recorded."""
    from mmkit.machine import Machine

    m = Machine("arm64-4k-48", record=True)
    m.hot_add(BLOCK, m.desc.memory_block_size)
    m.hot_remove(BLOCK, m.desc.memory_block_size)
    return m


def _same(cell: object, value: object, *, hexed: bool) -> bool:
    """Whether a frame cell shows the engine's ``value`` (hex string, or the int when raw)."""
    if value is None:
        return cell is None or bool(pd.isna(cell))
    if hexed:
        return isinstance(cell, str) and cell.startswith("0x") and int(cell, 16) == value
    return cell == value


def _check(frame: pd.DataFrame, records: list[dict[str, object]], hexed: set[str], raw: bool):
    assert len(frame) == len(records)
    for (_, row), want in zip(frame.iterrows(), records, strict=True):
        for column, value in want.items():
            assert _same(row[column], value, hexed=column in hexed and not raw), (
                column,
                row[column],
                value,
            )
    for column in hexed:  # the hex columns hold only strings or None, never numbers
        if not raw:
            assert all(v is None or isinstance(v, str) for v in frame[column]), column
    assert not any(str(t).startswith("float") for t in frame.dtypes)


STEP_FIELDS = {
    "thread": "thread",
    "function": "function",
    "action": "action",
    "level": "level",
    "va": "va",
    "table pfn": "table",
    "index": "index",
    "count": "count",
    "old": "old",
    "new": "new",
    "pfn": "pfn",
    "note": "note",
}
STEP_HEX = {"va", "table pfn", "old", "new", "pfn"}


@pytest.mark.parametrize("raw", [False, True])
def test_steps_frame_follows_the_history(removed, raw: bool) -> None:
    steps = removed.history
    frame = steps_frame(steps, raw=raw)
    assert list(frame.columns) == list(STEP_COLUMNS)
    want = [
        {"n": i, "describe": s.describe()} | {c: getattr(s, f) for c, f in STEP_FIELDS.items()}
        for i, s in enumerate(steps, start=1)
    ]
    _check(frame, want, STEP_HEX, raw)
    assert {"alloc", "free", "write", "read", "tlbi"} <= set(frame["action"])
    assert frame["va"].notna().sum() > 50  # plenty of addresses were checked


def _race_rows():
    from mmkit.scenarios.races import ptdump_race

    s = ptdump_race("arm64-4k-48", "naive").scheduler()
    info = s.machine.pgtables.info
    rows = []  # P walks into a table hot-remove will free, H frees it, P reads on
    while not (info.get(s.peek()["P"].table) is not None and not info[s.peek()["P"].table].boot):
        rows += list(s.take(["P"]))
    while not (s.threads["H"].done or s.blocked("H")):
        rows += list(s.take(["H"]))
    rows += list(s.take(["P"], run_on=True))
    return s, rows


def test_steps_frame_of_scheduler_rows_carries_their_events() -> None:
    s, rows = _race_rows()
    frame = steps_frame(rows)
    assert list(frame.columns) == [*STEP_COLUMNS, "events"]
    want = [
        {"n": r.n, "describe": r.step.describe(), "events": "\n".join(e.report() for e in r.events)}
        | {c: getattr(r.step, f) for c, f in STEP_FIELDS.items()}
        for r in rows
    ]
    _check(frame, want, STEP_HEX, raw=False)
    assert frame["events"].str.contains("KASAN: use-after-free").any()
    # a Scheduler's history is plain steps: the same rows without the events column
    history = steps_frame(s.history)
    assert list(history.columns) == list(STEP_COLUMNS) and len(history) == len(s.history)


@pytest.mark.parametrize("raw", [False, True])
def test_events_frame_lists_the_kernel_log(raw: bool) -> None:
    s, _ = _race_rows()
    events = s.machine.events
    assert any(e.va is not None for e in events) and any(e.pfn is not None for e in events)
    want = [
        {
            "step": e.step,
            "thread": e.thread,
            "kind": e.kind,
            "function": e.function,
            "va": e.va,
            "pfn": e.pfn,
            "freed by": e.freed_by,
            "message": e.message,
        }
        for e in events
    ]
    for source in (s.machine, list(events)):
        frame = events_frame(source, raw=raw)
        assert list(frame.columns) == list(EVENT_COLUMNS)
        _check(frame, want, {"va", "pfn"}, raw)


@pytest.mark.parametrize("raw", [False, True])
def test_table_pages_frame_matches_the_live_table_pages(removed, raw: bool) -> None:
    records = removed.table_pages()
    frame = table_pages_frame(removed, raw=raw)
    assert list(frame.columns) == list(TABLE_PAGE_COLUMNS)
    want = [
        {
            "pfn": r.pfn,
            "pa": r.pfn * removed.page_size,  # a page frame's physical address
            "level": r.level,
            "hw level": r.hw_level,
            "va start": r.va_start,
            "va end": r.va_end,
            "region": r.region,
            "used entries": r.used_entries,
            "boot": r.boot,
        }
        for r in records
    ]
    _check(frame, want, {"pfn", "pa", "va start", "va end"}, raw)


@pytest.mark.parametrize("raw", [False, True])
def test_ptdump_frame_matches_the_walk(removed, raw: bool) -> None:
    from mmkit.mm.ptdump import PtdumpMarker, ptdump_walk

    want = []
    section = None
    for rec in ptdump_walk(removed):
        if isinstance(rec, PtdumpMarker):
            section = rec.name
            continue
        want.append(
            {
                "section": section,
                "start": rec.start,
                "end": rec.end,
                "size": rec.size if raw else arch.format_size(rec.end - rec.start),
                "level": rec.level,
                "prot": rec.prot,
            }
        )
    frame = ptdump_frame(removed, raw=raw)
    assert list(frame.columns) == list(PTDUMP_COLUMNS)
    _check(frame, want, {"start", "end", "prot"}, raw)
    assert {"Linear Mapping start", "vmemmap start"} <= set(frame["section"])


@pytest.mark.parametrize("raw", [False, True])
def test_comparison_frame_matches_the_outcomes(raw: bool) -> None:
    from mmkit.mm.compare import compare_policies

    outcomes = compare_policies("arm64-4k-48", blocks=[BLOCK])
    frame = comparison_frame(outcomes, raw=raw)
    assert list(frame.index) == [o.policy for o in outcomes]
    left = [c for c in frame.columns if c.startswith("left ")]
    for o in outcomes:
        row = frame.loc[o.policy]
        assert row["tables left"] == o.tables_left and row["tables freed"] == o.tables_freed
        assert row["bytes left"] == (o.bytes_left if raw else arch.format_size(o.bytes_left))
        # every table page left is counted under exactly one level/region column
        assert sum(int(row[c]) for c in left) == o.tables_left
        assert all(row[f"tlbi {k}"] == v for k, v in o.tlbi.items())
        assert row["kernel events"] == len(o.events)
    assert left, "some policy must leave tables behind on 4K/48"
    assert str(frame["tables left"].dtype) == "Int64"

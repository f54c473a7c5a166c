"""Records print addresses in hex; macros() values stay the kernel's ints.

Each record is taken from a real run of the engine, and the expected text is computed from
the record's own fields: every address, pfn, descriptor and size field must show as
``name=0x...`` and none of those values may appear as a decimal number anywhere in the repr.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re

import numpy as np
import pytest

from mmkit import arch
from mmkit._readable import HexInt, record_repr
from mmkit.arch import pte
from mmkit.machine import Machine
from mmkit.mm.compare import compare_policies
from mmkit.mm.memblock import pfn_valid_why
from mmkit.mm.ptdump import PtdumpMarker, PtdumpRange, ptdump_walk
from mmkit.pgtable.shared import shared_tables
from mmkit.pgtable.walk import translate
from mmkit.scenarios.races import ptdump_race

BLOCK = 0x4000_0000_0000  # a hot-added block's physical address (4K/48)


def _decimal_tokens(text: str) -> set[str]:
    """Numbers written in decimal: digit runs not part of a word, a ``0x...`` or a float."""
    return set(re.findall(r"(?<![\w.])\d+(?![\w.])", text))


def assert_readable(record: object, fields: tuple[str, ...]) -> None:
    """``fields`` of ``record`` show in hex in its repr and nowhere in decimal."""
    text = repr(record)
    decimals = _decimal_tokens(text)
    for name in fields:
        value = getattr(record, name)
        if value is None:
            assert not re.search(rf"\b{name}=", text), f"{name}=None should be left out: {text}"
            continue
        values = value if isinstance(value, tuple) else (value,)
        shown = ", ".join(hex(v) for v in values)
        assert (f"{name}=({shown}" if isinstance(value, tuple) else f"{name}={shown}") in text
        for v in values:
            if v >= 10:  # below 10, decimal and hex digits coincide
                assert str(v) not in decimals, f"{name}={v} printed in decimal in {text}"
    assert text.startswith(type(record).__name__ + "(")


@pytest.fixture(scope="module")
def removed() -> Machine:
    """A 4K/48 machine that hot-added then hot-removed one block, every step recorded."""
    m = Machine("arm64-4k-48", record=True)
    m.hot_add(BLOCK, m.desc.memory_block_size)
    m.hot_remove(BLOCK, m.desc.memory_block_size)
    return m


STEP_HEX = ("va", "table", "old", "new", "pfn", "size", "stride", "va_step", "result")


def test_steps_of_every_action_print_hex(removed: Machine) -> None:
    seen = set()
    for step in removed.history:
        assert_readable(step, tuple(f for f in STEP_HEX if getattr(step, f)))
        seen.add(step.action)
    assert {"read", "write", "alloc", "free", "tlbi"} <= seen
    coarse = next(s for s in removed.history if s.coarse and s.action == "write")
    for fine in list(coarse.expand())[:3]:
        assert_readable(fine, ("va", "table", "old", "new"))


def test_step_repr_leaves_out_unset_fields_and_keeps_counts_decimal(removed: Machine) -> None:
    step = next(s for s in removed.history if s.action == "write" and s.count > 1)
    text = repr(step)
    assert f"count={step.count}," in text and f"index={step.index}," in text
    call = next(s for s in removed.history if s.action == "call")
    assert "table=" not in repr(call) and "old=" not in repr(call) and "count=" not in repr(call)


def test_kernel_events_and_trace_rows_print_hex() -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    s = race.scheduler()  # P walks into a table H will free, H frees it, P reads on
    info = s.machine.pgtables.info
    while not (info.get(s.peek()["P"].table) is not None and not info[s.peek()["P"].table].boot):
        s.step("P")
    s.run(until=lambda sc: sc.threads["H"].done or sc.blocked("H"))
    s.run()
    events = [e for e in s.machine.events if e.va is not None or e.pfn is not None]
    assert events, "the naive ptdump race must record a use-after-free"
    for event in events:
        assert_readable(event, ("va", "pfn"))
        indexed = dataclasses.replace(event, step=1234)  # a history index stays decimal
        assert repr(indexed).endswith("step=1234)")
    rows = list(race.scheduler().take(["P", "P", "P", "H"], run_on=True))
    row = next(r for r in rows if r.step.va is not None and r.step.table is not None)
    assert_readable(row.step, ("va", "table"))
    assert repr(row.step) in repr(row)


def test_table_page_records_print_hex(removed: Machine) -> None:
    for record in removed.table_pages():
        assert_readable(record, ("pfn", "va_start", "va_end"))
        assert f"hw_level={record.hw_level}," in repr(record)


@pytest.mark.parametrize("name", ["arm64-4k-48", "arm64-64k-52", "teach-4k-39"])
def test_regions_and_the_overlap_report_print_hex(name: str) -> None:
    desc = arch.get(name)
    for region in desc.regions:
        assert_readable(region, ("start", "end"))
        assert repr(region).endswith(f"size={arch.format_size(region.size)})")
    report = desc.vmalloc_vmemmap_overlap
    assert_readable(
        report, ("gap_start", "gap_end", "pgdir_mask", "shared_entry", "shared_entry_end")
    )
    for table in report.shared_tables:
        assert_readable(table, ("start", "end"))


def test_walks_print_hex(removed: Machine) -> None:
    ok = translate(removed, removed.lm_va(0x4000_0000))
    fault = translate(removed, removed.desc.region("vmalloc").start + 0x1234_5000)
    for walk in (ok, fault):
        assert_readable(walk, ("va", "pa", "leaf_raw") + (("leaf_size",) if walk.ok else ()))
        for step in walk.steps:
            assert_readable(step, ("table_pfn", "entry_pa", "raw"))
            assert repr(step) in repr(walk)
    assert not fault.ok and not re.search(r"\bpa=", repr(fault))


def test_ptdump_records_print_hex(removed: Machine) -> None:
    records = list(ptdump_walk(removed))
    ranges = [r for r in records if isinstance(r, PtdumpRange)]
    markers = [r for r in records if isinstance(r, PtdumpMarker)]
    assert ranges and markers
    for r in ranges:
        assert_readable(r, ("start", "end", "prot", "size"))
    for marker in markers:
        assert_readable(marker, ("address",))


def test_shared_tables_print_hex() -> None:
    m = Machine("arm64-4k-48", vmalloc_areas=0)
    states = shared_tables(m)
    assert states and any(s.entries for s in states)
    for state in states:
        assert_readable(state, ("va_start", "va_end", "pfn"))
        for entry in state.entries:
            assert_readable(entry, ("va_start", "va_end"))
            assert f"index={entry.index}," in repr(entry)


def test_policy_outcomes_print_bytes_left_in_hex() -> None:
    rows = compare_policies("arm64-4k-48", blocks=[BLOCK], policies=["v6", "v5.7"])
    assert any(r.bytes_left for r in rows)
    for r in rows:
        assert_readable(r, ("bytes_left",))
        assert f"tables_left={r.tables_left}," in repr(r)


def test_memblock_pfn_valid_and_descriptors_print_hex(removed: Machine) -> None:
    for region in removed.memblock.memory.regions:
        text = repr(region)
        assert f"{region.base:#x}" in text and str(region.base) not in _decimal_tokens(text)
    pfn = BLOCK >> removed.pgtables.page_shift
    why = pfn_valid_why(removed.memblock, pfn, page_shift=removed.pgtables.page_shift, sections=())
    assert_readable(why, ("pfn", "addr"))
    walk = translate(removed, removed.lm_va(0x4000_0000))
    d = removed.desc
    desc = pte.decode(
        walk.leaf_raw,
        walk.steps[-1].hw_level,
        page_shift=d.page_shift,
        pa_bits=d.pa_bits,
        block_levels=frozenset(lv.hw_level for lv in d.geometry.levels_used if lv.hw_block),
    )
    assert_readable(desc, ("raw", "output_address"))


def test_reprs_change_no_value_equality_or_hash(removed: Machine) -> None:
    records = removed.table_pages()
    again = removed.table_pages()
    assert records == again and hash(records[0]) == hash(again[0])
    fields = dataclasses.fields(records[0])
    assert all(type(getattr(records[0], f.name)) in (int, str, bool) for f in fields)


# ------------------------------------------------------------------------------ macros
def test_vmalloc_end_is_the_kernel_value_and_shows_in_hex() -> None:
    value = arch.get("arm64-4k-48", kernel="v5.4").macros()["VMALLOC_END"]
    # memory.rst (v5.4), 4K/48: vmalloc ends at fffffdffbffeffff (inclusive)
    assert value == 0xFFFFFDFFBFFF0000
    assert repr(value) == "0xfffffdffbfff0000"
    assert str(value) == "18446741873612488704" == f"{value}"  # str and format unchanged
    assert isinstance(value, int) and value + 0 == 0xFFFFFDFFBFFF0000
    assert type(value + 0) is int and type(value & 0xFFFF) is int
    assert hash(value) == hash(0xFFFFFDFFBFFF0000)
    assert json.dumps(value) == json.dumps(0xFFFFFDFFBFFF0000)
    assert np.uint64(value) == np.uint64(0xFFFFFDFFBFFF0000)
    assert np.array([value], dtype=np.uint64)[0] == np.uint64(0xFFFFFDFFBFFF0000)
    assert pickle.loads(pickle.dumps(value)) == value and copy.deepcopy(value) == value


@pytest.mark.parametrize("name", ["arm64-4k-48", "arm64-16k-36", "arm64-64k-52", "teach-4k-48"])
def test_macros_show_addresses_and_sizes_in_hex_and_counts_in_decimal(name: str) -> None:
    macros = arch.get(name).macros()
    hex_keys = {k for k in macros if k.endswith(("_START", "_END", "_SIZE", "_VADDR", "_TOP"))}
    hex_keys |= {"PAGE_OFFSET", "MODULES_VSIZE"} & set(macros)
    assert {"VMALLOC_START", "VMALLOC_END", "PAGE_OFFSET", "PGDIR_SIZE"} <= hex_keys
    for key, value in macros.items():
        if key in hex_keys:
            assert isinstance(value, HexInt) and repr(value) == hex(value), key
        else:
            assert type(value) is int and repr(value) == str(int(value)), key
    for key in ("PAGE_SHIFT", "PGDIR_SHIFT", "PTRS_PER_PGD", "VA_BITS", "PGTABLE_LEVELS"):
        assert repr(macros[key]) == str(int(macros[key]))
    assert macros["PAGE_SIZE"] == 1 << macros["PAGE_SHIFT"]


def test_macros_equal_the_descriptor_values_as_plain_ints() -> None:
    desc = arch.get("arm64-4k-48")
    plain = {k: int(v) for k, v in desc.macros().items()}
    assert desc.macros() == plain
    assert json.loads(json.dumps(desc.macros())) == plain
    desc.macros()["VMALLOC_END"] = 0  # a copy: the descriptor's values cannot change
    assert desc.macros()["VMALLOC_END"] == 0xFFFFFDFFBFFF0000


def test_record_repr_leaves_out_defaults_but_keeps_asked_fields() -> None:
    @dataclasses.dataclass
    class Rec:
        a: int
        b: int | None = None
        c: int = 0
        d: tuple[int, ...] = ()

    assert record_repr(Rec(4096), ("a",)) == "Rec(a=0x1000)"
    assert record_repr(Rec(4096, c=0), ("a",), keep=("c",)) == "Rec(a=0x1000, c=0)"
    assert record_repr(Rec(1, 2, 3, (16, 17)), ("d",)) == "Rec(a=1, b=2, c=3, d=(0x10, 0x11))"


def test_table_info_tlb_and_memblock_order_frames_print_hex(removed: Machine) -> None:
    from mmkit.pgtable.tlb import TLB
    from mmkit.scenarios.memblock_order import memblock_order

    for info in removed.pgtables.info.values():
        assert_readable(info, ("va_start",))
        assert f"depth={info.depth}," in repr(info)
    walk = translate(removed, removed.lm_va(0x4000_0000))
    base = walk.va & ~(walk.leaf_size - 1)
    table = walk.steps[-1]
    tlb = TLB(
        leaf={base: (walk.leaf_raw, walk.leaf_size)},
        walk={(len(walk.steps) - 1, base, base + walk.leaf_size): table.table_pfn},
    )
    text = repr(tlb)
    assert f"{base:#x}: ({walk.leaf_raw:#x}, {walk.leaf_size:#x})" in text
    assert f"({len(walk.steps) - 1}, {base:#x}, {base + walk.leaf_size:#x}): " in text
    assert f"{table.table_pfn:#x}" in text
    values = {base, walk.leaf_raw, walk.leaf_size, table.table_pfn}
    assert not {str(v) for v in values} & _decimal_tokens(text)
    frames = memblock_order().run()
    for frame in (frames[0], frames[-1]):
        text = repr(frame)
        assert repr(frame.step) in text
        for b, e, nid in frame.memblock_memory:
            assert f"({b:#x}, {e:#x}, {nid})" in text
            assert not {str(b), str(e)} & _decimal_tokens(text)

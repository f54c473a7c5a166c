"""mmkit.mm.ptdump: golden dumps checked line by line against each era's format rules,
round trips through the parser, the documentation sample, and the engine cross-check.

The format rules here are written from kernel-facts section 8 (and the v5.7 / v6.1 sources),
independently of the module's tables: a golden file alone would only test the code against
itself. Regenerate the golden files with ``MMKIT_REGEN_GOLDEN=1`` after a deliberate change.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.arch import pte as hw
from mmkit.arch.arm64 import CONFIGS
from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.mm.ptdump import (
    PtdumpMarker,
    PtdumpRange,
    format_ptdump,
    parse_ptdump,
    ptdump,
    ptdump_walk,
)
from mmkit.pgtable.walk import translate

GOLDEN = Path(__file__).parent / "golden"
TOP = 1 << 64
GOLDEN_CONFIGS = ["arm64-4k-48", "arm64-64k-48"]
GOLDEN_ERAS = ["v5.4", "v5.7", "v6.1"]
STATES = ["boot", "add", "remove"]
HOTPLUG_BASE = 0x2_0000_0000  # 8 GiB: far from boot memory, aligned to every block size

# --------------------------------------------------------------------------- the rules
# Attribute columns (kernel-facts 8.2; v5.7 and v6.1 dump.c / ptdump.c pte_bits[]): each
# string is preceded by one space; the order is fixed.
_HEAD = (
    r" (?: |F) (?:USR|   ) (?:ro|RW) (?:NX|x ) (?:SHD|   ) (?:AF|  ) (?:NG|  ) (?:CON|   )"
    r" (?:   |BLK)"
)
_MEM_V5 = r"(?: (?:DEVICE/nGnRnE|DEVICE/nGnRE|DEVICE/GRE|MEM/NORMAL-NC|MEM/NORMAL))?"
_MEM_V61 = r"(?: (?:DEVICE/nGnRnE|DEVICE/nGnRE|MEM/NORMAL-NC|MEM/NORMAL|MEM/NORMAL-TAGGED))?"
ATTRS = {
    "v5.4": _HEAD + r"(?: UXN)?" + _MEM_V5,  # clear UXN prints nothing
    "v5.7": r"(?:" + _HEAD + r" (?:UXN|   )" + _MEM_V5 + r")?",  # holes: no attributes
    "v6.1": r"(?:" + _HEAD + r" (?:UXN|   ) (?:GP|  )" + _MEM_V61 + r")?",
}
RANGE_RE = {
    era: re.compile(
        r"^0x(?P<start>[0-9a-f]{16})-0x(?P<end>[0-9a-f]{16})   (?P<num> *\d+)"
        r"(?P<unit>[KMGTPE]) (?P<level>PGD|PUD|PMD|PTE)(?P<attrs>" + attrs + r")$"
    )
    for era, attrs in ATTRS.items()
}
MARKER_RE = re.compile(r"^---\[ (?P<name>[^\]]+) \]---$")
UNIT_SHIFT = {u: 10 * (i + 1) for i, u in enumerate("KMGTPE")}


def expected_markers(m: Machine) -> list[tuple[str, int]]:
    """address_markers[] of v5.4/v5.7 dump.c and v6.1 ptdump.c (KASAN off); v5.3 dump.c
    has no "Linear Mapping start/end" but a last "Linear mapping" at PAGE_OFFSET."""
    mac = m.macros
    if m.desc.kernel == "v5.3":
        return [*expected_markers_common(m), ("Linear mapping", mac["PAGE_OFFSET"])]
    return [
        ("Linear Mapping start", mac["PAGE_OFFSET"]),
        ("Linear Mapping end", mac["PAGE_END"]),
        *expected_markers_common(m),
    ]


def expected_markers_common(m: Machine) -> list[tuple[str, int]]:
    mac = m.macros
    kasan = (
        [
            ("Kasan shadow start", mac["KASAN_SHADOW_START"]),
            ("Kasan shadow end", mac["KASAN_SHADOW_END"]),
        ]
        if m.desc.kasan
        else []
    )
    return [
        *kasan,
        ("Modules start", mac["MODULES_VADDR"]),
        ("Modules end", mac["MODULES_END"]),
        ("vmalloc() area", mac["VMALLOC_START"]),
        ("vmalloc() end", mac["VMALLOC_END"]),
        ("Fixmap start", mac["FIXADDR_START"]),
        ("Fixmap end", mac["FIXADDR_TOP"]),
        ("PCI I/O start", mac["PCI_IO_START"]),
        ("PCI I/O end", mac["PCI_IO_END"]),
        ("vmemmap start", mac["VMEMMAP_START"]),
        ("vmemmap end", m.desc.vmemmap_end),
    ]


def check_dump(text: str, m: Machine) -> list[tuple]:
    """Check every line of ``text`` against the era's rules; return the lines as tuples
    ("marker", name) / ("range", start, end, level, attrs)."""
    era = m.desc.kernel
    generic = era in ("v5.7", "v6.1")
    assert text.endswith("\n")
    lines: list[tuple] = []
    for n, line in enumerate(text.splitlines(), 1):
        mk = MARKER_RE.match(line)
        if mk:
            lines.append(("marker", mk["name"]))
            continue
        mr = RANGE_RE[era].match(line)
        assert mr, f"line {n} breaks the {era} format: {line!r}"
        start, end = int(mr["start"], 16), int(mr["end"], 16) or TOP
        num = mr["num"]
        assert len(num) == max(9, len(num.strip())), f"line {n}: %9lu field {num!r}"
        value = int(num)
        assert value << UNIT_SHIFT[mr["unit"]] == end - start, f"line {n}: size != end - start"
        assert value % 1024 or mr["unit"] == "E", f"line {n}: size not scaled up"
        if not generic:
            assert mr["attrs"], f"line {n}: v5.4 prints no range without attributes"
        lines.append(("range", start, end, mr["level"], mr["attrs"]))

    ranges = [t for t in lines if t[0] == "range"]
    for a, b in itertools.pairwise(ranges):
        assert a[1] < a[2] <= b[1], f"ranges out of order or overlapping: {a} {b}"
        if generic:
            assert a[2] == b[1], f"the generic walker prints every range: gap after {a}"
    if generic:
        assert ranges[-1][2] == TOP
        # v5.7's ptdump_walk() leaves st.level at 0 (not -1): its first range starts at 0
        assert ranges[0][1] == (0 if era == "v5.7" else m.macros["PAGE_OFFSET"])
    else:
        assert ranges[0][1] >= m.macros["PAGE_OFFSET"]

    # adjacent equal ranges are merged unless a marker line separates them
    for a, b in itertools.pairwise(lines):
        if a[0] == b[0] == "range" and a[2] == b[1]:
            assert (a[3], a[4]) != (b[3], b[4]), f"unmerged neighbours {a} {b}"

    # markers: a subsequence of the era's list, each printed once the walk reached it
    want = expected_markers(m)
    names = [t[1] for t in lines if t[0] == "marker"]
    it = iter(name for name, _ in want)
    assert all(name in it for name in names), f"markers out of order: {names}"
    if era == "v5.7":
        assert "Linear Mapping start" not in names  # only the level == -1 branch prints it
    else:
        assert lines[0] == ("marker", "Linear Mapping start")
    addr = dict(want)
    for i, t in enumerate(lines):
        if t[0] != "marker" or i == 0:
            continue
        nxt = next((r for r in lines[i + 1 :] if r[0] == "range"), None)
        if nxt is not None:
            assert nxt[1] >= addr[t[1]], f"{t[1]} printed before the walk reached it"
        prev = next((r for r in reversed(lines[:i]) if r[0] == "range"), None)
        if generic and prev is not None:
            assert prev[2] >= addr[t[1]], f"{t[1]} printed before the walk reached it"
    return lines


# ---------------------------------------------------------------------------- golden
def golden_machine(name: str, era: str, state: str) -> Machine:
    m = Machine(name, kernel=era)
    blk = m.desc.memory_block_size
    if state in ("add", "remove"):
        m.hot_add(HOTPLUG_BASE, 2 * blk)
    if state == "remove":
        m.hot_remove(HOTPLUG_BASE, blk)
    return m


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("era", GOLDEN_ERAS)
@pytest.mark.parametrize("name", GOLDEN_CONFIGS)
def test_golden(name, era, state):
    m = golden_machine(name, era, state)
    text = ptdump(m)
    check_dump(text, m)
    path = GOLDEN / f"{name}_{era}_{state}.txt"
    if os.environ.get("MMKIT_REGEN_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text
    check_dump(path.read_text(), m)


@pytest.mark.parametrize("era", GOLDEN_ERAS)
@pytest.mark.parametrize("name", GOLDEN_CONFIGS)
def test_hotplug_shows_in_the_linear_map(name, era):
    boot, add, rem = (golden_machine(name, era, s) for s in STATES)
    blk = boot.desc.memory_block_size
    lo, mid, hi = (boot.lm_va(HOTPLUG_BASE + k * blk) for k in range(3))

    def mapped_spans(m):
        out = []
        for r in ptdump_walk(m):
            if isinstance(r, PtdumpRange) and r.mapped:
                if out and out[-1][1] == r.start:
                    out[-1] = (out[-1][0], r.end)
                else:
                    out.append((r.start, r.end))
        return out

    def covered(spans, a, b):
        return any(s <= a and b <= e for s, e in spans)

    assert not covered(mapped_spans(boot), lo, lo + boot.page_size)
    assert covered(mapped_spans(add), lo, hi)
    assert not covered(mapped_spans(rem), lo, lo + boot.page_size)
    assert covered(mapped_spans(rem), mid, hi)


# ------------------------------------------------------------- a literal-walk oracle
# A slow, entry-by-entry transcription of the kernels' walkers (v5.4 dump.c walk_pgd ...
# walk_pte with the asm-generic folding stubs; v5.7/v6.1 mm/pagewalk.c walk_pgd_range ...
# walk_pte_range_inner with real_depth() and mm/ptdump.c's callbacks) and of note_page().
# No runs, no numpy: every note_page() call happens, so the module's run skipping and its
# level numbering are checked against the plain algorithm.
M64 = TOP - 1


def oracle(m: Machine) -> list[tuple]:
    era, levels = m.desc.kernel, m.desc.levels
    generic = era in ("v5.7", "v6.1")
    mac, pt = m.macros, m.pgtables
    page = m.page_size
    mask = (
        hw.PTE_VALID
        | hw.PTE_USER
        | hw.PTE_RDONLY
        | hw.PTE_PXN
        | hw.PTE_SHARED
        | hw.PTE_AF
        | hw.PTE_NG
        | hw.PTE_CONT
        | hw.PTE_TABLE_BIT
        | hw.PTE_UXN
        | hw.PTE_ATTRINDX_MASK
    )
    if era == "v6.1":
        mask |= 1 << 50  # PTE_GP
    names = {2: "PUD" if levels > 3 else "PGD", 3: "PMD" if levels > 2 else "PGD", 4: "PTE"}
    names.update({0: "PGD", 1: "P4D"} if generic else {1: "PGD"})
    markers = [*expected_markers(m), ("", M64)]
    out: list[tuple] = []
    s = {"level": (-1 if era == "v6.1" else 0), "prot": 0, "start": 0, "i": 0}
    unstarted = -1 if generic else 0

    def note(addr: int, level: int, val: int) -> None:
        prot = val & mask if level > 0 or (generic and level == 0) else 0
        if s["level"] == unstarted:
            s.update(level=level, prot=prot, start=addr)
            out.append(("marker", markers[s["i"]][0]))
        elif prot != s["prot"] or level != s["level"] or addr >= markers[s["i"] + 1][1]:
            if s["prot"] or generic:
                out.append(("range", s["start"], addr, names[s["level"]], s["prot"]))
            if addr >= markers[s["i"] + 1][1]:
                s["i"] += 1
                out.append(("marker", markers[s["i"]][0]))
            s.update(start=addr, prot=prot, level=level)
        if addr >= markers[s["i"] + 1][1]:
            s["i"] += 1
            out.append(("marker", markers[s["i"]][0]))

    shift = {
        "pgd": mac["PGDIR_SHIFT"],
        "pud": mac["PUD_SHIFT"],
        "pmd": mac["PMD_SHIFT"],
        "pte": mac["PAGE_SHIFT"],
    }
    ptrs = {
        "pgd": mac["PTRS_PER_PGD"],
        "pud": mac["PTRS_PER_PUD"],
        "pmd": mac["PTRS_PER_PMD"],
        "pte": mac["PTRS_PER_PTE"],
    }
    folded = {"pud": levels < 4, "pmd": levels < 3}

    def read(ptr: tuple[int, int]) -> int:
        return int(pt.content[ptr[0]][ptr[1]])

    def offset(kind: str, parent: tuple[int, int] | None, addr: int) -> tuple[int, int]:
        index = (addr >> shift[kind]) & (ptrs[kind] - 1)
        if kind == "pgd":
            return (pt.pgd_pfn, index)
        if folded.get(kind):
            return parent  # pud_offset()/pmd_offset() of a folded level: the same entry
        return (pt.next_table(read(parent)), index)

    def addr_end(kind: str, addr: int, end: int) -> int:
        if folded.get(kind):
            return end
        size = 1 << shift[kind]
        boundary = (addr + size) & ~(size - 1) & M64
        return boundary if (boundary - 1) & M64 < (end - 1) & M64 else end

    pgd_real = levels == 4
    pud_real = levels >= 3
    pud_sect_real = levels >= 3 and page != 64 << 10

    def sect(val: int) -> bool:
        return val & 3 == 1

    if not generic:  # v5.3 / v5.4 dump.c

        def walk_pte(pmdp, addr, end):
            ptep = offset("pte", pmdp, addr)
            while True:
                note(addr, 4, read(ptep))
                ptep = (ptep[0], ptep[1] + 1)
                addr = (addr + page) & M64
                if addr == end:
                    return

        def walk_pmd(pudp, addr, end):
            pmdp = offset("pmd", pudp, addr)
            while True:
                val, nxt = read(pmdp), addr_end("pmd", addr, end)
                if val == 0 or sect(val):
                    note(addr, 3, val)
                else:
                    walk_pte(pmdp, addr, nxt)
                pmdp, addr = (pmdp[0], pmdp[1] + 1), nxt
                if addr == end:
                    return

        def walk_pud(pgdp, addr, end):
            pudp = offset("pud", pgdp, addr)
            while True:
                val, nxt = read(pudp), addr_end("pud", addr, end)
                if (pud_real and val == 0) or (pud_sect_real and sect(val)):
                    note(addr, 2, val)
                else:
                    walk_pmd(pudp, addr, nxt)
                pudp, addr = (pudp[0], pudp[1] + 1), nxt
                if addr == end:
                    return

        addr = mac["VA_START"] if era == "v5.3" else mac["PAGE_OFFSET"]
        end = 0
        pgdp = offset("pgd", None, addr)
        while True:
            val, nxt = read(pgdp), addr_end("pgd", addr, end)
            if pgd_real and val == 0:
                note(addr, 1, val)
            else:
                walk_pud(pgdp, addr, nxt)
            pgdp, addr = (pgdp[0], pgdp[1] + 1), nxt
            if addr == end:
                break
        note(0, 0, 0)
        return out

    def real_depth(depth: int) -> int:
        if depth == 3 and ptrs["pmd"] == 1:
            depth = 2
        if depth == 2 and ptrs["pud"] == 1:
            depth = 1
        if depth == 1:  # PTRS_PER_P4D == 1 on arm64
            depth = 0
        return depth

    def present(val: int) -> bool:
        return bool(val & (hw.PTE_VALID | hw.PTE_PROT_NONE))

    def walk_pte_range(pmdp, addr, end):
        ptep = offset("pte", pmdp, addr)
        while True:
            note(addr, 4, read(ptep))
            if addr >= end - page:
                return
            addr += page
            ptep = (ptep[0], ptep[1] + 1)

    def walk_pmd_range(pudp, addr, end):
        pmdp = offset("pmd", pudp, addr)
        while True:
            val, nxt = read(pmdp), addr_end("pmd", addr, end)
            if val == 0:
                note(addr, real_depth(3), 0)
            else:
                if sect(val):
                    note(addr, 3, val)
                if not sect(val) and present(val):
                    walk_pte_range(pmdp, addr, nxt)
            pmdp, addr = (pmdp[0], pmdp[1] + 1), nxt
            if addr == end:
                return

    def walk_pud_range(p4dp, addr, end):
        pudp = offset("pud", p4dp, addr)
        while True:
            val, nxt = read(pudp), addr_end("pud", addr, end)
            if pud_real and val == 0:
                note(addr, real_depth(2), 0)
            else:
                leaf = pud_sect_real and sect(val)
                if leaf:
                    note(addr, 2, val)
                if not leaf and (present(val) or not pud_real):
                    walk_pmd_range(pudp, addr, nxt)
            pudp, addr = (pudp[0], pudp[1] + 1), nxt
            if addr == end:
                return

    addr, end = mac["PAGE_OFFSET"], M64
    pgdp = offset("pgd", None, addr)
    while True:
        val, nxt = read(pgdp), addr_end("pgd", addr, end)
        if pgd_real and val == 0:  # pgd_none (v5.7) or p4d_none (v6.1): depth 0 either way
            note(addr, 0 if era == "v5.7" else real_depth(1), 0)
        else:
            walk_pud_range(pgdp, addr, nxt)  # p4d folded: walk_p4d_range passes straight on
        pgdp, addr = (pgdp[0], pgdp[1] + 1), nxt
        if addr == end:
            break
    note(0, -1, 0)
    return out


@pytest.mark.parametrize("state", ["boot", "remove"])
@pytest.mark.parametrize("era", ["v5.3", "v5.4", "v5.7", "v6.1"])
@pytest.mark.parametrize("name", CONFIGS)
def test_walk_matches_the_literal_oracle(name, era, state):
    m = golden_machine(name, era, state)
    got = [
        ("marker", r.name)
        if isinstance(r, PtdumpMarker)
        else ("range", r.start, r.end & M64, r.level, r.prot)
        for r in ptdump_walk(m)
    ]
    assert got == oracle(m)


OPTION_CASES = [
    (era, name, options)
    for era in ["v5.3", "v5.4", "v5.7", "v6.1"]
    for name, options in [
        ("arm64-4k-48", {"kasan": "generic"}),
        ("arm64-16k-47", {"kasan": "sw_tags", "kpti": False}),
        ("arm64-64k-52", {"vabits_actual": 48}),  # a 52-bit kernel VA on 48-bit hardware
    ]
    if not (era == "v5.3" and "vabits_actual" in options)  # v5.3 kept a 48-bit kernel VA
]


@pytest.mark.parametrize(("era", "name", "options"), OPTION_CASES)
def test_walk_matches_the_oracle_with_options(era, name, options):
    m = Machine(name, kernel=era, **options)
    got = [
        ("marker", r.name)
        if isinstance(r, PtdumpMarker)
        else ("range", r.start, r.end & M64, r.level, r.prot)
        for r in ptdump_walk(m)
    ]
    assert got == oracle(m)
    if era != "v5.3":
        check_dump(ptdump(m), m)


# ------------------------------------------------------------------------ round trip
@st.composite
def machines(draw):
    name = draw(st.sampled_from(CONFIGS))
    era = draw(st.sampled_from(["v5.3", "v5.4", "v5.7", "v6.1"]))
    m = Machine(name, kernel=era)
    blk = m.desc.memory_block_size
    present: set[int] = set()
    for k in draw(st.lists(st.integers(0, 3), max_size=4)):
        start = HOTPLUG_BASE + k * blk
        if k in present:
            m.hot_remove(start, blk)
            present.discard(k)
        else:
            m.hot_add(start, blk)
            present.add(k)
    return m


def _key(rec):
    if isinstance(rec, PtdumpMarker):
        return ("marker", rec.name)
    return ("range", rec.start, rec.end, rec.level, rec.tokens)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machines())
def test_parse_round_trip(m):
    records = list(ptdump_walk(m))
    text = format_ptdump(records, m.desc.kernel)
    parsed = parse_ptdump(text)
    assert [_key(r) for r in parsed] == [_key(r) for r in records]
    for p, r in zip(parsed, records, strict=True):
        if isinstance(r, PtdumpRange):
            assert p.size == r.size == r.end - r.start and p.mapped == r.mapped
    # rendering parsed text again gives the same bytes (the spacing comes from the tokens)
    assert format_ptdump(parsed, m.desc.kernel) == text
    if m.desc.kernel != "v5.3":
        check_dump(text, m)


@pytest.mark.parametrize("era", ["v5.3", "v5.4", "v5.7", "v6.1"])
@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_dumps_within_the_rules(name, era):
    m = Machine(name, kernel=era)
    text = ptdump(m)
    if era == "v5.3":  # v5.3 starts at VA_START and lists its markers in its own order
        names = [r.name for r in parse_ptdump(text) if isinstance(r, PtdumpMarker)]
        assert names[0] == "Modules start" and names[-1] == "Linear mapping"
        assert all(RANGE_RE["v5.4"].match(x) or MARKER_RE.match(x) for x in text.splitlines())
        return
    check_dump(text, m)


# --------------------------------------------------------------- the engine cross-check
@pytest.mark.parametrize("era", ["v5.4", "v5.7", "v6.1"])
@pytest.mark.parametrize(
    "name",
    ["arm64-4k-39", "arm64-4k-48", "arm64-16k-36", "arm64-16k-47", "arm64-64k-42", "arm64-64k-48"],
)
def test_ranges_agree_with_translation(name, era):
    m = golden_machine(name, era, "remove")
    kernel_start = m.desc.kernel_va_start()
    events = len(m.events)  # (hot-remove may have recorded a modelled kernel WARN)
    for r in ptdump_walk(m):
        if not isinstance(r, PtdumpRange):
            continue
        if r.mapped:
            for va in (r.start, r.end - m.page_size):
                w = translate(m, va)
                assert w.ok, f"{r} does not translate at {va:#x}"
                assert w.leaf_level.upper() == r.level
                assert bool(w.leaf_raw & hw.PTE_RDONLY) == ("ro" in r.tokens)
                assert bool(w.leaf_raw & hw.PTE_PXN) == ("NX" in r.tokens)
                assert bool(w.leaf_raw & hw.PTE_CONT) == ("CON" in r.tokens)
                assert (w.leaf_raw & 0b11 == 0b01) == ("BLK" in r.tokens)
        elif r.start >= kernel_start:
            assert not translate(m, r.start).ok
    assert len(m.events) == events  # reading the tables records nothing


# ----------------------------------------------------------------- documentation sample
# Documentation/arch/arm64/ptdump.rst (kernel-facts 8.4): the condensed sample...
DOC_SAMPLE = """\
---[ Linear Mapping start ]---
0xfff0000000000000-0xfff0000000210000  2112K PTE RW NX SHD AF  UXN  MEM/NORMAL-TAGGED
0xfff0000000210000-0xfff0000001c00000 26560K PTE ro NX SHD AF  UXN  MEM/NORMAL
---[ Modules start ]---
0xffff800000000000-0xffff800008000000   128M PTE
---[ vmalloc() area ]---
0xffff800008010000-0xffff800008200000  1984K PTE ro x  SHD AF       UXN  MEM/NORMAL
0xffff800008200000-0xffff800008e00000    12M PTE ro x  SHD AF  CON  UXN  MEM/NORMAL
---[ Fixmap start ]---
0xfffffbfffdb80000-0xfffffbfffdb90000    64K PTE ro x  SHD AF  UXN  MEM/NORMAL
0xfffffbfffdb90000-0xfffffbfffdba0000    64K PTE ro NX SHD AF  UXN  MEM/NORMAL
---[ PCI I/O start ]---
0xfffffbfffe800000-0xfffffbffff800000    16M PTE
---[ vmemmap start ]---
0xfffffc0002000000-0xfffffc0002200000     2M PTE RW NX SHD AF  UXN  MEM/NORMAL
0xfffffc0002200000-0xfffffc0020000000   478M PTE
"""
# ...and its raw `cat` section.
DOC_RAW = """\
0xfff0000001c00000-0xfff0000080000000     2020M PTE  RW NX SHD AF   UXN    MEM/NORMAL-TAGGED
0xfff0000080000000-0xfff0000800000000       30G PMD
0xfff0000800000000-0xfff0000800700000        7M PTE  RW NX SHD AF   UXN    MEM/NORMAL-TAGGED
0xfff0000800700000-0xfff0000800710000       64K PTE  ro NX SHD AF   UXN    MEM/NORMAL-TAGGED
0xfff0000800710000-0xfff0000880000000  2089920K PTE  RW NX SHD AF   UXN    MEM/NORMAL-TAGGED
0xfff0000880000000-0xfff0040000000000     4062G PMD
0xfff0040000000000-0xffff800000000000     3964T PGD
"""


def test_parse_documentation_sample():
    recs = parse_ptdump(DOC_SAMPLE)
    assert [r.name for r in recs if isinstance(r, PtdumpMarker)] == [
        "Linear Mapping start",
        "Modules start",
        "vmalloc() area",
        "Fixmap start",
        "PCI I/O start",
        "vmemmap start",
    ]
    ranges = [r for r in recs if isinstance(r, PtdumpRange)]
    first = ranges[0]
    assert (first.start, first.end, first.size) == (
        0xFFF0000000000000,
        0xFFF0000000210000,
        0x210000,
    )
    assert first.level == "PTE" and first.mapped and first.prot is None
    assert first.tokens == {"RW", "NX", "SHD", "AF", "UXN", "MEM/NORMAL-TAGGED"}
    assert ranges[1].size == 26560 << 10 and "ro" in ranges[1].tokens
    modules = ranges[2]
    assert modules.size == 128 << 20 and not modules.mapped and modules.tokens == frozenset()
    assert "x" in ranges[3].tokens and "NX" not in ranges[3].tokens
    assert "CON" in ranges[4].tokens
    assert ranges[-1].size == 478 << 20 and not ranges[-1].mapped


def test_parse_documentation_raw_cat_section():
    ranges = parse_ptdump(DOC_RAW)
    assert all(isinstance(r, PtdumpRange) for r in ranges)
    sizes = [r.size for r in ranges]
    assert sizes == [2020 << 20, 30 << 30, 7 << 20, 64 << 10, 2089920 << 10, 4062 << 30, 3964 << 40]
    thirty = ranges[1]
    assert (thirty.level, thirty.mapped, thirty.tokens) == ("PMD", False, frozenset())
    assert ranges[3].tokens == {"ro", "NX", "SHD", "AF", "UXN", "MEM/NORMAL-TAGGED"}
    assert ranges[-1].level == "PGD" and ranges[-1].end == 0xFFFF800000000000
    for a, b in itertools.pairwise(ranges):
        assert a.end == b.start


# Lines of a real 6.x capture (pwndbg/pwndbg issue #3285, kernel_page_tables of an arm64
# QEMU guest): the v6.1 rules must accept them as they are.
CAPTURE_6X = "".join(
    line + "\n"
    for line in (
        "0xffff800082da4000-0xffff800082da5000           4K PTE",
        "0xffff800082da5000-0xffff800082da6000           4K PTE       RW NX     AF"
        "            UXN    DEVICE/nGnRE",
        "0xffff800082da6000-0xffff800082da8000           8K PTE",
        "0xffff800082da8000-0xffff800082dac000          16K PTE       RW NX     AF"
        "            UXN    MEM/NORMAL",
        "0xffff800082dbc000-0xffff800083258000        4720K PTE",
    )
)


def test_real_6x_capture_matches_the_v61_rules_and_parses():
    for line in CAPTURE_6X.splitlines():
        assert RANGE_RE["v6.1"].match(line), line
        assert not RANGE_RE["v5.4"].match(line)
    recs = parse_ptdump(CAPTURE_6X)
    assert recs[1].tokens == {"RW", "NX", "AF", "UXN", "DEVICE/nGnRE"}
    assert format_ptdump(recs[:4], "v6.1") == "".join(x + "\n" for x in CAPTURE_6X.splitlines()[:4])


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "bad",
    [
        "hello world",
        "0xffff000000000000-0xffff000000200000   2M",  # no level
        "0xffff000000000000-0xffff000000200000           2X PMD",  # bad unit
        "0xffff000000000000-0xffff000000200000           4M PMD",  # size disagrees
        "0xffff000000200000-0xffff000000000000           2M PMD",  # end below start
        "0xffff000000000000-0xffff000000200000           2M PMD RW FOO",  # unknown attribute
        "0xffff00000000000g-0xffff000000200000           2M PMD",
        "---[  ]---",
        "--[ Modules start ]--",
    ],
)
def test_parser_rejects_malformed_lines(bad):
    text = "---[ Linear Mapping start ]---\n" + bad + "\n"
    with pytest.raises(InvalidArgument) as err:
        parse_ptdump(text)
    assert "line 2" in str(err.value) and repr(bad) in str(err.value)


def test_parser_is_robust_to_spacing_and_wraps_the_last_end():
    recs = parse_ptdump(
        "\n   ---[   vmemmap end ]---  \n"
        "  0xfffffe0000000000 - 0x0000000000000000    2 T   PGD  \n\n"
    )
    assert recs[0] == PtdumpMarker("vmemmap end")
    r = recs[1]
    assert (r.start, r.end, r.size, r.level, r.mapped) == (
        0xFFFFFE0000000000,
        TOP,
        2 << 40,
        "PGD",
        False,
    )


def test_walk_subrange_and_bad_arguments():
    m = Machine("arm64-4k-48", kernel="v6.1")
    mac = m.macros
    recs = list(ptdump_walk(m, start=mac["VMEMMAP_START"], end=m.desc.vmemmap_end))
    ranges = [r for r in recs if isinstance(r, PtdumpRange)]
    assert recs[0] == PtdumpMarker("vmemmap start", mac["VMEMMAP_START"])
    assert ranges[0].start == mac["VMEMMAP_START"] and ranges[-1].end == m.desc.vmemmap_end
    assert ranges[0].mapped and ranges[0].level == "PMD" and "BLK" in ranges[0].tokens
    with pytest.raises(InvalidArgument):
        list(ptdump_walk(m, start=0x1000))
    with pytest.raises(InvalidArgument):
        list(ptdump_walk(m, start=mac["VMEMMAP_START"], end=mac["VMEMMAP_START"]))
    with pytest.raises(InvalidArgument):
        format_ptdump([], "v4.19")


def test_v54_hides_holes_that_v57_prints():
    text54 = ptdump(Machine("arm64-4k-48", kernel="v5.4"))
    text57 = ptdump(Machine("arm64-4k-48", kernel="v5.7"))
    mapped54 = [r for r in parse_ptdump(text54) if isinstance(r, PtdumpRange)]
    r57 = [r for r in parse_ptdump(text57) if isinstance(r, PtdumpRange)]
    assert all(r.mapped for r in mapped54)
    assert any(not r.mapped for r in r57)
    assert [(r.start, r.end, r.tokens) for r in r57 if r.mapped] == [
        (r.start, r.end, r.tokens) for r in mapped54
    ]


def test_clear_uxn_and_gp_columns_per_era():
    # kernel-facts 8.2: clear UXN prints nothing in v5.4, three spaces from v5.7; v6.1 adds
    # the GP column (two spaces when clear). A page (not block) mapping without UXN:
    prot = hw.kernel_prot("PAGE_KERNEL", ng=True) & ~hw.PTE_UXN
    r = PtdumpRange(0xFFFF000000000000, 0xFFFF000000001000, "PTE", prot, (), 0x1000)
    tails = {era: format_ptdump([r], era).split(" NG", 1)[1] for era in GOLDEN_ERAS}
    assert tails == {
        "v5.4": " " * 9 + "MEM/NORMAL\n",
        "v5.7": " " * 13 + "MEM/NORMAL\n",
        "v6.1": " " * 16 + "MEM/NORMAL\n",
    }

"""Lesson 05 (freeing page tables, patch 3/3): its checkers against published kernel facts, and
the notebook's shape.

The generic checks (every seed 0-49: right answer accepted, mistakes refused) are in
tests/test_exercises.py; here: what they cannot know. Ground truths: kernel-facts §6.1 (the TLB
helpers: VAALE1IS per page up to MAX_TLBI_OPS pages, else a full flush; VAAE1IS for a table),
§6.2/§6.3 (clear → TLBI → free; one TLBI per block from V10), §6.4 (pgtable_range_aligned's
semantics and its worked examples), §7.2 (the race, and the fixmap pinning the shared table on
4K/48 and 16K/48), the V7 cover letter and the merged commit bbd6ec605c0f (the quotes).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mmkit import arch
from mmkit.errors import InvalidArgument
from mmkit.exercises import by_lesson, get
from mmkit.exercises._lesson05_engine import (
    WIN_KINDS,
    aligned_verdict,
    removal_tlbi,
    replay_schedule,
    teardown_steps,
)
from mmkit.exercises._lesson05_race import parse_schedule
from mmkit.exercises.lesson05 import TeardownOrderExercise
from mmkit.machine import Machine
from mmkit.pgtable.unmap import pgtable_range_aligned
from mmkit.scenarios.races import tlb_order
from tests.lesson_run import run_all_outputs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05-freeing-tables.ipynb"
M64 = (1 << 64) - 1

#: The hook, exactly as the V7 cover letter (3 Sep 2019) has it (whitespace normalised).
COVER_LETTER = (
    "The problem here is caused by inadequate locking in vmalloc() which protects installation "
    "of a page table page but not the walk or the leaf entry modification."
)
#: The merged commit bbd6ec605c0f's message (whitespace normalised).
COMMIT = (
    "This conflict can not just be solved by taking the init_mm ptl because of existing locking "
    "scheme in vmalloc()."
)


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", " ".join(line.lstrip("> ") for line in text.splitlines()))


def test_lesson_has_its_exercises() -> None:
    assert {e.id for e in by_lesson("05")} >= {"05a", "05b", "05c", "05d", "05e"}


# ------------------------------------------------------------------ 05a: clear → TLBI → free
@pytest.mark.parametrize("case", TeardownOrderExercise.CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_v57_tears_down_in_the_published_order(case: tuple[str, str, bool]) -> None:
    """KF §6.2 item 5, §6.3 item 5: clear → TLBI → free; a table is scanned first and its
    unhooking is invalidated with VAAE1IS, a leaf or block with VAALE1IS (§6.1)."""
    which, config, rodata_full = case
    steps = teardown_steps(config, which, "v5.7", rodata_full)
    if which == "table":
        assert list(steps) == ["scan", "clear", "tlbi", "free"]
        assert steps["tlbi"].note == "vaae1is" and steps["tlbi"].count == 1
    else:
        assert list(steps) == ["clear", "tlbi", "free"]
        assert steps["tlbi"].note == "vaale1is"
        leaf = which == "pte"
        assert (steps["clear"].level == Machine(config).pgtables.levels[-1].name) == leaf


def test_05a_free_before_tlbi_points_at_a_replay_that_really_fails() -> None:
    ex = get("05a")
    v = ex.variant(0)
    (mistake,) = ex.mistakes(v)
    assert "tlb_order('v3')" in ex.check(v, mistake.answer).message
    # the advice is honest: V3's order lets a CPU read a freed page, v5.7's does not
    v3 = tlb_order("v3").explore(bound=2)
    assert v3.found and any(e.split(":")[0] in ("stale-tlb", "use-after-free") for e in v3.events)
    assert not tlb_order("v5.7").explore(bound=2).found


# ------------------------------------------------------------------ 05b: TLBIs per block
def _expected_tlbi(config: str, policy: str) -> int:
    """KF §6.1, §6.3 item 4, §6.4 example 1: a 1 GiB block on 4K is one PUD block in the
    linear map and 16 MiB of memmap in 2 MiB PMD blocks; on 16K/48 the linear map is 32 MiB
    PMD blocks and the 4 MiB memmap is page-mapped (256 pages)."""
    mac = arch.get(config).macros()
    page, block = mac["PAGE_SIZE"], 1 << 30
    limit = mac["MAX_TLBI_OPS"] * page
    memmap = block // page * 64

    def flush(size: int) -> int:  # flush_tlb_kernel_range(addr, addr + size)
        return 1 if size > limit else size // page

    if page == 4096:
        linear_blocks = [1 << 30]  # one PUD block
        memmap_blocks, memmap_pages = memmap // mac["PMD_SIZE"], 0
    else:
        linear_blocks = [mac["PMD_SIZE"]] * (block // mac["PMD_SIZE"])
        memmap_blocks, memmap_pages = 0, memmap // page
    blocks = linear_blocks + [mac["PMD_SIZE"]] * memmap_blocks
    per_block = sum(1 if policy == "v5.7" else flush(size) for size in blocks)
    return per_block + memmap_pages


@pytest.mark.parametrize("config", ["arm64-4k-48", "arm64-4k-39", "arm64-16k-48"])
@pytest.mark.parametrize("policy", ["v7", "v5.7"])
def test_05b_counts_match_the_tlb_helpers(config: str, policy: str) -> None:
    assert sum(removal_tlbi(config, policy).values()) == _expected_tlbi(config, policy)


def test_4k_48_numbers_of_kernel_facts() -> None:
    """KF §6.4 example 1: 8 PMD blocks of memmap, 512 TLBIs each under V7, one under v5.7;
    the 1 GiB linear block exceeds MAX_TLBI_OPS pages: one flush_tlb_all()."""
    assert removal_tlbi("arm64-4k-48", "v7") == {"vaale1is": 8 * 512, "vaae1is": 0, "vmalle1is": 1}
    assert removal_tlbi("arm64-4k-48", "v5.7") == {"vaale1is": 9, "vaae1is": 0, "vmalle1is": 0}


def test_05b_v7_mistake_is_one_per_block() -> None:
    ex = get("05b")
    seen = 0
    for seed in range(50):
        v = ex.variant(seed)
        if v.params["policy"] != "v7":
            continue
        one_per_block = sum(removal_tlbi(v.params["config"], "v5.7").values())
        assert "V7 flushes page by page" in ex.check(v, one_per_block).message
        seen += 1
    assert seen


# ------------------------------------------------------------------ 05c: be the scheduler
def test_05c_answers_break_naive_and_v3_but_not_v57() -> None:
    """KF §7.2: on a layout where nothing pins the shared table, naive and V3 (despite its
    lock) free it under vmalloc(); v5.7's floor/ceiling never does."""
    ex = get("05c")
    for seed in range(8):
        v = ex.variant(seed)
        config, policy = v.params["config"], v.params["policy"]
        assert config.startswith("teach-") and policy in ("naive", "v3")
        schedule = parse_schedule(ex.answer(v))
        s = replay_schedule(config, policy, schedule)
        assert any(e.kind in WIN_KINDS for e in s.machine.events)
        if policy == "v3":  # H held init_mm's lock, and it did not help
            held = [st for st in s.history if st.thread == "H" and st.action == "lock"]
            assert any("init_mm.page_table_lock" in st.note for st in held)
        try:
            safe = replay_schedule(config, "v5.7", schedule)
        except InvalidArgument:  # the schedule may not fit v5.7's steps: nothing to compare
            continue
        assert not any(e.kind in WIN_KINDS for e in safe.machine.events)


def test_05c_a_bad_schedule_is_feedback_not_a_crash() -> None:
    ex = get("05c")
    v = ex.variant(0)
    verdict = ex.check(v, "V*500")
    assert not verdict.correct and "cannot run" in verdict.message


# ------------------------------------------------------------------ 05d: floor and ceiling
def test_kernel_facts_worked_example_1() -> None:
    """KF §6.4 example 1 (4K/48, 1 GiB at 0x1_0000_0000): the memmap range, and the PMD
    and PUD tables pass the test."""
    m = Machine("arm64-4k-48", vmalloc_areas=0)
    mac = m.macros
    start, end = m.vmemmap_va(0x100000), m.vmemmap_va(0x140000)
    assert (start, end) == (0xFFFFFE0002E00000, 0xFFFFFE0003E00000)
    floor, ceiling = mac["VMEMMAP_START"], mac["VMEMMAP_END"]
    pud_mask, pgdir_mask = ~(mac["PUD_SIZE"] - 1) & M64, ~(mac["PGDIR_SIZE"] - 1) & M64
    assert pgtable_range_aligned(start, end, floor, ceiling, pud_mask)
    assert pgtable_range_aligned(start, end, floor, ceiling, pgdir_mask)
    # the shared-table case: a range starting in [0xfffffdffc0000000, 0xfffffe0000000000)
    assert aligned_verdict(0xFFFFFDFFFFE00000, 0xFFFFFE0000000000, floor, ceiling, pud_mask) == (
        "floor"
    )
    assert aligned_verdict(start, end, floor, ceiling, pgdir_mask) == "true"


def test_kernel_facts_worked_example_2() -> None:
    """KF §6.4 example 2 (16K/48): the PUD table behind PGD entry #1 is never freed."""
    mac = Machine("arm64-16k-48", vmalloc_areas=0).macros
    pgdir_mask = ~(mac["PGDIR_SIZE"] - 1) & M64
    start = mac["VMEMMAP_START"] + (64 << 20)
    assert start & pgdir_mask == 0xFFFF800000000000
    verdict = aligned_verdict(start, start + (4 << 20), mac["VMEMMAP_START"], 0, pgdir_mask)
    assert verdict == "floor"


def test_05d_verdict_agrees_with_the_engine_and_partial_is_never_right() -> None:
    ex = get("05d")
    verdicts = set()
    for seed in range(50):
        v = ex.variant(seed)
        p = v.params
        args = (p["start"], p["end"], p["floor"], p["ceiling"], p["mask"])
        verdict = aligned_verdict(*args)
        assert (verdict == "true") == pgtable_range_aligned(*args)
        assert not ex.answer(v).startswith("false: [start, end) does not cover")
        partial = next(o for o in v.options if "does not cover" in o)
        assert "only the span must fit" in ex.check(v, partial).message
        verdicts.add(verdict)
    assert {"true", "floor"} <= verdicts


# ------------------------------------------------------------------ 05e: the fixmap pin
@pytest.mark.parametrize("seed", range(4))
def test_05e_the_pin_is_the_fixmaps_bm_pmd(seed: int) -> None:
    """KF §7.2 Analysis: the shared PUD table of 4K/48 and 16K/48 holds the fixmap's bm_pmd."""
    ex = get("05e")
    v = ex.variant(seed)
    assert v.params["config"] in ("arm64-4k-48", "arm64-16k-48")
    assert "bm_pmd" in ex.answer(v)
    lock = next(o for o in v.options if "page_table_lock" in o)
    assert "it guards installation only" in ex.check(v, lock).message


# ----------------------------------------------------------------------- the notebook
def _cells() -> list:
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_notebook_shape() -> None:
    cells = _cells()
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "You will be able to" in text
    flat = _flat(text)
    assert COVER_LETTER in flat and COMMIT in flat
    assert "real kernel layouts" in text and "teaching layouts" in text
    glossary = (ROOT / "notebooks" / "GLOSSARY.md").read_text()
    for anchor in re.findall(r"GLOSSARY\.md#([\w-]+)", text):
        assert f'<a id="{anchor}"></a>' in glossary, anchor
    for link in re.findall(r"\]\((0\d-[\w-]+\.ipynb)\)", text):
        assert link.startswith("06-")
    sources = [c.source for c in cells if c.cell_type == "code"]
    for ex in by_lesson("05"):
        assert any(f'CheckWidget("{ex.id}")' in s for s in sources), ex.id

    def first(key: str) -> int:
        return next(i for i, s in enumerate(sources) if key in s)

    # each prediction comes before the view that reveals it
    assert first('CheckWidget("05a")') < first("teardown_steps(")
    assert first('CheckWidget("05e")') < first('vmalloc_race("arm64-4k-48"')
    assert first('CheckWidget("05e")') < first("shared_tables(real)")
    assert first('CheckWidget("05c")') < first("results = {p: vmalloc_race")
    # the widgets the lesson is built on
    for call in (
        'Stepper.hot_remove("arm64-4k-48"',
        'Stepper(tlb_order("v3"))',
        'RaceExplorer("tlb_order", policy="v3")',
        'RaceExplorer("vmalloc_race", config="teach-4k-39"',
        "tree_diff_figure(",
    ):
        assert any(call in s for s in sources), call


@pytest.mark.timeout(300)
def test_run_all_submits_nothing_and_shows_no_solution(tmp_path: Path) -> None:
    shown = run_all_outputs(NOTEBOOK, tmp_path)
    for ex in by_lesson("05"):
        for seed in (0, 1, 2, 3):
            v = ex.variant(seed)
            assert ex.solution(v) not in shown, (ex.id, seed)
    # 05c's class-seed answer (a schedule) is not printed by Run All
    ex = get("05c")
    assert ex.answer(ex.variant(0)) not in shown
    assert "Solution" not in shown and "✔" not in shown and "✘" not in shown

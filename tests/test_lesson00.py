"""Lesson 00 (welcome): its checkers against the cover letter and the kernel facts, and the
notebook's shape.

The generic exercise test (tests/test_exercises.py) runs every checker on seeds 0-49, and
tests/test_widgets.py compares 00a's flagged configurations with the cover letter (v5.4: 4K/48
and 16K/48) and the author's reply of 13 Sep 2019 (v5.3: 16K/48). Here, ground truths typed
from the sources: the V7 cover letter of 3 Sep 2019 (its opening sentence and the three patch
titles; "Changes in V3": the ptdump patch added; "Changes in V6": two passes, the kernel page
table lock dropped, vmemmap_free() no longer frees tables), kernel-facts §2.2 (levels),
§4.1 (the re-add BUG is -EEXIST from link_mem_sections), §5 (ptdump's use-after-free) and
§6.5 (V3 one pass under init_mm.page_table_lock, V7 the overlap flag, V8 on floor/ceiling).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mmkit import policies
from mmkit.exercises import _lesson00_series as series
from mmkit.exercises import get
from mmkit.exercises.lesson00 import change_version

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "00-welcome.ipynb"

# The V7 cover letter, "Anshuman Khandual (3):".
PATCH_TITLES = (
    "mm/hotplug: Reorder memblock_[free|remove]() calls in try_remove_memory()",
    "arm64/mm: Hold memory hotplug lock while walking for kernel page table dump",
    "arm64/mm: Enable memory hot remove",
)
# Its first sentence, from "after fixing" on (line breaks as posted).
HOOK = (
    "after fixing a memblock\nremoval ordering problem in generic try_remove_memory() and a "
    "possible\narm64 platform specific kernel page table race condition."
)
# kernel-facts §2.2: levels of the real configurations with fewer than 4 (v5.4).
FEWER_LEVELS = {
    "arm64-4k-39": 3,
    "arm64-16k-36": 2,
    "arm64-16k-47": 3,
    "arm64-64k-42": 2,
    "arm64-64k-48": 3,
    "arm64-64k-52": 3,
}
# The version each change of the series first appeared in (cover letter, kernel-facts §6.5).
FIRST_VERSION = {
    ("passes", 1): "V3",
    ("pgtable_lock", True): "V3",
    ("ptdump_hotplug_lock", True): "V3",
    ("passes", 2): "V6",
    ("pgtable_lock", False): "V6",
    ("vmemmap_tables", "never"): "V6",
    ("vmemmap_tables", "no-overlap"): "V7",
    ("vmemmap_tables", "floor-ceiling"): "V8",
    ("linear_floor_ceiling", True): "V8",
}
# What each failure looks like in the kernel log (kernel-facts §4.1, §5, §7).
SYMPTOM_IN_LOG = {1: ("kernel BUG", "-EEXIST"), 2: ("use-after-free",), 3: ("lost-mapping",)}


# --------------------------------------------------------------------------- 00a
def test_00a_names_the_folded_pud_for_every_configuration_with_fewer_levels() -> None:
    ex = get("00a")
    v = ex.variant(0)
    flagged = sorted(ex.answer(v))
    for name, levels in FEWER_LEVELS.items():
        fb = ex.check(v, [*flagged, name])
        assert not fb.correct and "PUD_SIZE = PGDIR_SIZE" in fb.message, (name, levels)
        assert "fewer than 4 levels" in fb.message
    four = [n for n in v.options if n not in FEWER_LEVELS and n not in flagged]
    for name in four:  # a 4-level pick that is not flagged gets no folding story
        assert "PUD_SIZE = PGDIR_SIZE" not in ex.check(v, [name]).message


# --------------------------------------------------------------------------- 00b
def test_00b_patch_titles_are_the_cover_letters() -> None:
    assert tuple(p.title for p in series.PATCHES) == PATCH_TITLES
    assert [p.number for p in series.PATCHES] == [1, 2, 3]


@pytest.mark.parametrize("number", [1, 2, 3])
def test_00b_each_patch_left_out_brings_back_its_own_failure(number: int) -> None:
    assert series.broken_by(number) == [list(series.SCENARIOS)[number - 1]]
    log = series.report(series.broken_by(number)[0], number)
    for word in SYMPTOM_IN_LOG[number]:
        assert word in log, (number, log)
    assert not any(series.fails(s, None) for s in series.SCENARIOS)  # all three: clean


def test_00b_variants_ask_about_every_patch_and_the_answer_is_that_patchs_failure() -> None:
    ex = get("00b")
    asked = {}
    for seed in range(12):
        v = ex.variant(seed)
        number = v.params["patch"]
        asked.setdefault(number, set()).add(v.options)
        assert PATCH_TITLES[number - 1] in v.question.replace("&#x27;", "'")
        scenario = list(series.SCENARIOS)[number - 1]
        assert ex.answer(v) == series.SYMPTOMS[scenario][0]
        assert all(word.lower() in ex.solution(v).lower() for word in SYMPTOM_IN_LOG[number][:1])
    assert set(asked) == {1, 2, 3}
    assert all(len(orders) > 1 for orders in asked.values())  # the option order varies


def test_00b_ptdump_patch_matched_with_the_readd_bug_hears_that_it_needs_no_race() -> None:
    ex = get("00b")
    v = next(ex.variant(s) for s in range(3) if ex.variant(s).params["patch"] == 2)
    fb = ex.check(v, series.SYMPTOMS["memblock_order"][0])
    assert not fb.correct and "needs no race" in fb.message


# --------------------------------------------------------------------------- 00c
def test_00c_each_change_is_dated_as_the_cover_letter_and_kernel_facts_say() -> None:
    assert {(c.field, c.value): change_version(c) for c in series.CHANGES} == FIRST_VERSION
    # V8's floor/ceiling is the merged policy's
    floor = next(c for c in series.CHANGES if c.value == "floor-ceiling")
    assert series.change_version(floor)[1] is policies.get("v5.7")


def test_00c_every_variant_has_one_change_of_each_version_and_the_answer_is_in_order() -> None:
    ex = get("00c")
    picks = set()
    for seed in range(50):
        v = ex.variant(seed)
        versions = [
            FIRST_VERSION[next((c.field, c.value) for c in series.CHANGES if c.text == t)]
            for t in ex.answer(v)
        ]
        assert versions == ["V3", "V6", "V7", "V8"]
        picks.add(frozenset(v.options))
    assert len(picks) > 4


def test_00c_floor_ceiling_before_the_flag_hears_that_v8_replaced_it() -> None:
    ex = get("00c")
    v = ex.variant(0)
    right = list(ex.answer(v))
    fb = ex.check(v, [right[0], right[1], right[3], right[2]])
    assert not fb.correct and "V8 replaced V7's flag" in fb.message


# --------------------------------------------------------------------------- notebook
def _nb() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _markdown(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _exercise_cell(nb: nbformat.NotebookNode, exercise_id: str) -> int:
    cells = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and f'CheckWidget("{exercise_id}")' in c.source
    ]
    assert len(cells) == 1, exercise_id
    return cells[0]


def test_notebook_has_goals_hook_patches_exercises_and_links() -> None:
    nb = _nb()
    text = _markdown(nb)
    assert "**You will be able to**" in text
    assert HOOK.replace("\n", " ") in re.sub(r"\s*\n>\s*", " ", text)
    for title in PATCH_TITLES:
        assert title in text
    for exercise in get("00a"), get("00b"), get("00c"):
        _exercise_cell(nb, exercise.id)
    glossary = (NOTEBOOK.parent / "GLOSSARY.md").read_text(encoding="utf-8")
    anchors = re.findall(r"GLOSSARY\.md#([\w-]+)", text)
    assert len(anchors) >= 5
    for anchor in anchors:
        assert f'<a id="{anchor}"></a>' in glossary, anchor
    assert "(01-granules.ipynb)" in text
    assert "real kernel layout" in text and "teaching layout" in text


def test_notebook_asks_00a_before_any_view_that_gives_the_verdict() -> None:
    nb = _nb()
    ask = _exercise_cell(nb, "00a")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if i < ask:
            assert "ConfigExplorer" not in cell.source and "layout_figure" not in cell.source
            if "configs_frame" in cell.source or "configs" in cell.source:
                assert 'drop(columns=["V7 overlap"])' in cell.source
        assert ".check(" not in cell.source, f"cell {i} checks an answer on Run All"
    assert any("set()" in c.source for c in nb.cells[ask:] if c.cell_type == "code")


def test_run_all_shows_no_verdict_and_no_solution_and_asks_before_it_reveals(
    tmp_path: Path,
) -> None:
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    started = time.monotonic()
    client.execute()
    print(f"00-welcome: executed in {time.monotonic() - started:.1f}s")
    outputs = []
    for cell in nb.cells:
        texts = []
        for out in cell.get("outputs", []):
            assert out.output_type != "error", out
            texts.append(out.get("text", ""))
            for mime, data in out.get("data", {}).items():
                if mime.startswith("text/"):
                    texts.append(data if isinstance(data, str) else "".join(data))
        outputs.append("\n".join(texts))
    everything = "\n".join(outputs)
    assert "✘" not in everything and "✔" not in everything
    for exercise_id in ("00a", "00b", "00c"):
        ex = get(exercise_id)
        assert ex.solution(ex.variant(0)) not in everything, exercise_id
    # nothing above 00a's question names a V7 verdict
    above = "\n".join(outputs[: _exercise_cell(nb, "00a")])
    assert "V7 overlap" not in above and "V7 test (" not in above
    assert "V7 overlap" in "\n".join(outputs[_exercise_cell(nb, "00a") :])

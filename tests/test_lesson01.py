"""Lesson 01: its checkers against published kernel facts, and the notebook's shape.

The generic exercise test (tests/test_exercises.py) already runs every checker on seeds 0-49.
Here the right answers are compared with ground truth typed from the sources, not from the
code: the v5.4 geometry table (pgtable-hwdef.h, kernel-facts 2.2), the index bit fields of
Documentation/arm64/memory.rst (kernel-facts 3.7), the worked gap arithmetic (kernel-facts
3.5) and the V7 cover letter's two configurations (v5.4) and the author's 13 Sep 2019 reply
(v5.3: 16K/48 only).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from mmkit import arch
from mmkit.exercises import get
from mmkit.exercises.lesson01 import DIFFERENT, QUANTITIES, SAME, gap_edges, geometry_seed
from mmkit.machine import Machine
from mmkit.pgtable.walk import translate

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01-granules.ipynb"
GLOSSARY = NOTEBOOK.parent / "GLOSSARY.md"

# kernel-facts 2.2: levels, PGDIR_SHIFT, PTRS_PER_PGD, PUD, PMD, PTE (v5.4).
GEOMETRY: dict[str, tuple[int, int, int, int, int, int]] = {
    "arm64-4k-39": (3, 30, 512, 1, 512, 512),
    "arm64-4k-48": (4, 39, 512, 512, 512, 512),
    "arm64-16k-36": (2, 25, 2048, 1, 1, 2048),
    "arm64-16k-47": (3, 36, 2048, 1, 2048, 2048),
    "arm64-16k-48": (4, 47, 2, 2048, 2048, 2048),
    "arm64-64k-42": (2, 29, 8192, 1, 1, 8192),
    "arm64-64k-48": (3, 42, 64, 1, 8192, 8192),
    "arm64-64k-52": (3, 42, 1024, 1, 8192, 8192),
}

# Documentation/arm64/memory.rst (kernel-facts 3.7): (high, low) bits of each level's index.
MEMORY_RST_FIELDS: dict[str, dict[str, tuple[int, int]]] = {
    "arm64-4k-48": {"pgd": (47, 39), "pud": (38, 30), "pmd": (29, 21), "pte": (20, 12)},
    "arm64-64k-48": {"pgd": (47, 42), "pmd": (41, 29), "pte": (28, 16)},
    "arm64-64k-52": {"pgd": (51, 42), "pmd": (41, 29), "pte": (28, 16)},
}

# The V7 cover letter (v5.4 layout) and the author's reply of 13 Sep 2019 (v5.3 layout).
FLAGGED = {"v5.4": {"arm64-4k-48", "arm64-16k-48"}, "v5.3": {"arm64-16k-48"}}


def _seeds(exercise_id: str, n: int = 200) -> list[Any]:
    ex = get(exercise_id)
    return [ex.variant(s) for s in range(n)]


# --------------------------------------------------------------------------- 01a
def test_01a_answers_match_the_v54_geometry_table() -> None:
    ex = get("01a")
    seen = set()
    for v in _seeds("01a", 48):
        config, quantity = v.params["config"], v.params["quantity"]
        expected = GEOMETRY[config][QUANTITIES.index(quantity)]
        assert ex.answer(v) == expected, (config, quantity)
        assert ex.check(v, expected).correct
        assert ex.check(v, hex(expected)).correct
        seen.add((config, quantity))
    assert len(seen) == 48  # seeds 0-47 cover every configuration x quantity


def test_01a_2048_pgd_entries_on_16k_48_gets_the_leftover_bits_feedback() -> None:
    ex = get("01a")
    v = ex.variant(geometry_seed("arm64-16k-48", "PTRS_PER_PGD"))
    fb = ex.check(v, 2048)
    assert not fb.correct
    assert "top level gets the leftover bits" in fb.message
    assert "2" not in fb.message.replace("PAGE_SHIFT − 3", "")  # the answer is not given


def test_01a_folded_level_feedback() -> None:
    ex = get("01a")
    v = ex.variant(geometry_seed("arm64-4k-39", "PTRS_PER_PUD"))
    fb = ex.check(v, 512)
    assert not fb.correct and "folded" in fb.message


# --------------------------------------------------------------------------- 01b
def test_01b_indices_match_the_memory_rst_bit_fields() -> None:
    ex = get("01b")
    checked = 0
    for v in _seeds("01b"):
        fields = MEMORY_RST_FIELDS.get(v.params["config"])
        if fields is None:
            continue
        high, low = fields[v.params["level"]]
        expected = (v.params["va"] >> low) & ((1 << (high - low + 1)) - 1)
        assert ex.answer(v) == expected
        assert ex.check(v, expected).correct
        checked += 1
    assert checked >= 30


def test_01b_the_lessons_worked_example() -> None:
    # 16K/48: bit 47 is the PGD index, bits [24:14] the PTE index (PAGE_SHIFT 14, stride 11).
    d = arch.get("arm64-16k-48")
    got = {lvl.name: i for lvl, i in d.indices(0xFFFF800000004000)}
    assert got == {"pgd": 1, "pud": 0, "pmd": 0, "pte": 1}


def test_01b_answers_agree_with_a_walk_of_the_machine() -> None:
    # translate() reads the entries the MMU reads: its index at each level is the exercise's.
    for config in ("arm64-4k-48", "arm64-16k-48", "arm64-64k-42"):
        m = Machine(config)
        va = m.lm_va(0x8000_0000 + 0x1234_5000)
        walk = translate(m, va)
        indices = {lvl.name: i for lvl, i in arch.get(config).indices(va)}
        for step in walk.steps:
            assert step.index == indices[step.level], (config, step)


def test_01b_nine_bit_indices_on_16k_get_the_stride_feedback() -> None:
    ex = get("01b")
    hits = 0
    for v in _seeds("01b"):
        if "16k" not in v.params["config"]:
            continue
        va = v.params["va"]
        d = arch.get(v.params["config"])
        names = [lvl.name for lvl, _ in d.indices(va)]
        depth = len(names) - 1 - names.index(v.params["level"])
        nine = (va >> (14 + 9 * depth)) & 511
        right = ex.answer(v)
        if (
            nine == right
            or nine == va >> [lvl for lvl, _ in d.indices(va)][names.index(v.params["level"])].shift
        ):
            continue
        if nine in {i for _, i in d.indices(va)}:
            continue
        fb = ex.check(v, nine)
        assert not fb.correct
        assert "PAGE_SHIFT − 3 = 11" in fb.message
        hits += 1
    assert hits >= 10


# --------------------------------------------------------------------------- 01c, 01d
def test_gap_edges_match_the_worked_arithmetic() -> None:
    assert gap_edges("arm64-4k-48", "v5.4") == (0xFFFFFD8000000000, 0xFFFFFD8000000000)
    assert gap_edges("arm64-16k-48", "v5.4") == (0xFFFF800000000000, 0xFFFF800000000000)
    assert gap_edges("arm64-4k-48", "v5.3") == (0xFFFF7D8000000000, 0xFFFF7E0000000000)


def test_01c_accepts_the_worked_edges_and_explains_vmemmap_end() -> None:
    ex = get("01c")
    found = 0
    for v in _seeds("01c", 32):
        p = v.params
        if (p["config"], p["kernel"]) != ("arm64-4k-48", "v5.4"):
            continue
        assert ex.check(v, "0xfffffd8000000000").correct
        if p["edge"] == "end":
            vmemmap_end = arch.get("arm64-4k-48").macros()["VMEMMAP_END"]
            fb = ex.check(v, hex(vmemmap_end & ~((1 << 39) - 1) & (2**64 - 1)))
            assert not fb.correct and "vmalloc end → vmemmap start" in fb.message
        found += 1
    assert found == 2  # both edges are asked about


def test_01c_edges_agree_with_the_engines_overlap_report() -> None:
    ex = get("01c")
    for v in _seeds("01c", 32):
        p = v.params
        report = arch.get(p["config"], kernel=p["kernel"]).vmalloc_vmemmap_overlap
        edge = report.gap_start if p["edge"] == "start" else report.gap_end
        assert ex.answer(v) == edge & report.pgdir_mask


def test_01d_verdicts_are_the_published_ones() -> None:
    ex = get("01d")
    pairs = set()
    for v in _seeds("01d", 16):
        config, kernel = v.params["config"], v.params["kernel"]
        expected = SAME if config in FLAGGED[kernel] else DIFFERENT
        assert ex.answer(v) == expected, (config, kernel)
        assert ex.check(v, expected).correct
        pairs.add((config, kernel))
    assert len(pairs) == 16  # every configuration in both eras


# --------------------------------------------------------------------------- notebook
def _nb() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_shape() -> None:
    nb = _nb()
    text = "\n".join(c.source for c in nb.cells)
    assert nb.cells[0].cell_type == "markdown" and "You will be able to" in nb.cells[0].source
    for eid in ("01a", "01b", "01c", "01d"):
        assert any(
            c.cell_type == "code" and f'CheckWidget("{eid}"' in c.source for c in nb.cells
        ), eid
    assert "GLOSSARY.md#" in text and "## Summary" in text
    # the exact words of the V7 cover letter it quotes
    assert "> Only the following two configurations have vmalloc and vmemmap overlap where" in text


def test_glossary_has_every_primer_term_as_a_link_target() -> None:
    text = GLOSSARY.read_text()
    anchors = {
        "granule", "va-bits", "levels", "folded-level", "descriptor", "contiguous-hint",
        "swapper_pg_dir", "linear-map", "page_offset", "vmalloc", "vmemmap", "memmap",
        "struct-page", "fixmap", "kasan-shadow", "section", "memory-block", "memblock",
        "online-offline", "tlb", "walk-cache", "tlbi", "vaale1is", "vaae1is", "vmalle1is",
        "dsb-isb", "mem_hotplug_lock", "ptl", "use-after-free", "preemption-bound",
        "teaching-layout", "policy", "kernel-era",
    }  # fmt: skip
    for a in anchors:
        assert f'<a id="{a}"></a>' in text, a
    nb_links = {
        link.split("#", 1)[1].split(")", 1)[0]
        for c in _nb().cells
        for link in c.source.split("GLOSSARY.md")[1:]
        if link.startswith("#")
    }
    assert nb_links and nb_links <= anchors


def _verdict_words(text: str) -> bool:
    return "V7 test" in text or "overlap" in text.lower()


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_run_all_submits_nothing_and_shows_no_solution_or_early_verdict(tmp_path: Path) -> None:
    # A copy of the lesson alone (other lessons may be changing beside it).
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        startup_timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    ).execute()

    # What Run All shows: every output and the saved widget state.
    outputs = []
    for c in nb.cells:
        outputs.append(json.dumps(c.get("outputs", []), ensure_ascii=False))
    everything = "\n".join(outputs) + json.dumps(nb.metadata.get("widgets", {}))

    shown = [get("01a").variant(geometry_seed("arm64-16k-48", "PTRS_PER_PGD"))]
    shown += [get(e).variant(0) for e in ("01a", "01b", "01c", "01d")]
    for v in shown:
        solution = get(v.exercise).solution(v)
        assert solution not in everything, v.exercise
    assert "✔" not in everything and "✘" not in everything  # no answer was checked

    # No V7 verdict in any output above the 01d widget.
    first_verdict_question = next(
        i for i, c in enumerate(nb.cells) if 'CheckWidget("01d")' in c.source
    )
    for i, c in enumerate(nb.cells[:first_verdict_question]):
        if c.cell_type == "code":
            assert not _verdict_words(outputs[i]), f"cell {i} shows a V7 verdict early"
            for view in ("ConfigExplorer", "layout_figure", "vmalloc_vmemmap_overlap"):
                assert view not in c.source, f"cell {i}: {view} shows the verdict early"
        else:
            assert "V7 overlap" not in c.source and "flags 4K/48" not in c.source, i

"""Lesson 06 (every patch version side by side): its checkers against the published kernel
facts, the claims its text makes against the engine, and the notebook's shape.

The generic checks (every seed 0-49: right answer accepted, mistakes refused) are in
tests/test_exercises.py; here: what they cannot know. Ground truths: the V7 cover letter (3 Sep
2019: the overlap test skips freeing vmemmap tables on exactly 4K/48 and 16K/48; the
changelog's "Changes in V3/V6/V7"), kernel-facts §6.3-6.5 (what each version frees) and §3.5
(KASAN moves neither edge of V7's gap).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mmkit import policies
from mmkit.exercises import by_lesson, get
from mmkit.exercises import lesson06 as l06
from mmkit.mm.compare import compare_policies
from tests.lesson_run import run_all_outputs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "06-policies.ipynb"

#: The two configurations the V7 cover letter names as overlapping (v5.4 layout).
COVER_LETTER_OVERLAP = {"arm64-4k-48", "arm64-16k-48"}
REAL = [f"arm64-{c}" for c in ("4k-39", "4k-48", "16k-36", "16k-47", "16k-48", "64k-42", "64k-48")]
#: The hook, exactly as in the V7 cover letter (whitespace normalised).
HOOK = (
    "The only downside here is that some page table pages might remain empty and unused until "
    "next memory hot-add operation for the same memory range. But as mentioned earlier those "
    "will be minimal."
)


def _left(config: str, policy: str) -> int:
    return next(o for o in l06.outcomes(config, [l06.far_block(config)]) if o.policy == policy)


# ----------------------------------------------------------------- checkers vs kernel facts
def test_lesson_has_its_exercises() -> None:
    assert {e.id for e in by_lesson("06")} >= {"06a", "06b", "06c", "06d"}


@pytest.mark.parametrize("config", REAL)
def test_v7_keeps_vmemmap_tables_exactly_where_the_cover_letter_says(config: str) -> None:
    """KF §6.5: V7 is V6 where the overlap test fires, and frees like naive elsewhere."""
    v6, v7, naive = (_left(config, p) for p in ("v6", "v7", "naive"))
    assert v6.tables_left > 0  # V6 never frees vmemmap tables (any layout)
    assert all(k.endswith("/vmemmap") for k in v6.left_by_level_region)
    if config in COVER_LETTER_OVERLAP:
        assert v7.left_by_level_region == v6.left_by_level_region
    else:
        assert v7.tables_left == naive.tables_left == 0


@pytest.mark.parametrize("config", REAL)
def test_floor_ceiling_leaves_nothing_of_a_far_block(config: str) -> None:
    """KF §6.4: every table mapping only the removed block lies inside [floor, ceiling)."""
    assert _left(config, "v5.7").tables_left == 0


def test_06a_v7_mistake_is_v6s_count_off_the_overlapping_configs() -> None:
    ex = get("06a")
    seen = False
    for seed in range(50):
        v = ex.variant(seed)
        if v.params["policy"] != "v7" or v.params["config"] in COVER_LETTER_OVERLAP:
            continue
        v6 = next(
            o.tables_left
            for o in l06.outcomes(v.params["config"], v.params["blocks"])
            if o.policy == "v6"
        )
        if v6 != ex.answer(v):
            seen = True
            assert "V7 frees there" in ex.check(v, v6).message
    assert seen, "no variant asks about V7 where it frees what V6 keeps"


def test_06d_is_the_cover_letters_leak_on_4k48() -> None:
    """ "some page table pages might remain empty": V6 and V7 leave some, v5.7 none."""
    ex = get("06d")
    answers = {ex.variant(s).params["policy"]: ex.answer(ex.variant(s)) for s in range(5)}
    assert set(answers) == set(l06.BUILTIN)
    assert answers["v6"] == answers["v7"] > 0 and answers["v5.7"] == 0
    assert ex.variant(0).params == {
        "config": "arm64-4k-48",
        "policy": "v7",
        "blocks": (0x400000000000,),
        "choice": "one far block",
    }


def test_06b_lines_belong_to_the_versions_their_changelog_lists() -> None:
    """Each line's answer (computed from the registry) stands for the version the V7 cover
    letter or the merged commit lists it under."""
    ex = get("06b")
    for i, line in enumerate(l06.CHANGELOG):
        v = ex.variant(i)
        assert line.quote in v.question
        policy = ex.answer(v).split()[0]
        assert line.version in policies.get(policy).kernel_versions, (line, policy)


def test_06b_v3_for_two_passes_is_v6s() -> None:
    ex = get("06b")
    i = next(i for i, line in enumerate(l06.CHANGELOG) if line.field == "passes")
    v = ex.variant(i)
    assert ex.answer(v).startswith("v6")
    assert "that is V6" in ex.check(v, l06.version_label("v3")).message


@pytest.mark.parametrize("seed", range(3))
def test_06c_only_floor_ceiling_passes_where_v7_keeps_tables(seed: int) -> None:
    ex = get("06c")
    v = ex.variant(seed)
    right = ex.answer(v)
    assert "v5.7" in right and not right & {"naive", "v3", "v6"}
    assert ("v7" in right) == (v.params["real"] not in COVER_LETTER_OVERLAP)
    assert "check tables_left" in ex.check(v, right | {"v6"}).message


def test_kasan_does_not_change_v7s_test() -> None:
    """KF §3.5: neither VMALLOC_END nor VMEMMAP_START depends on KASAN."""
    plain, kasan = (
        compare_policies("arm64-4k-48", blocks=[0x400000000000], policies=["v7"], kasan=k)[0]
        for k in (None, "generic")
    )
    assert plain.tables_left == kasan.tables_left > 0


def test_the_lessons_race_claims_hold() -> None:
    """The text says naive and V3 race on teach-4k-39, V6, V7 and v5.7 do not."""
    verdicts = {p: not l06.race_free("teach-4k-39", p) for p in l06.BUILTIN}
    assert verdicts == {"naive": True, "v3": True, "v6": False, "v7": False, "v5.7": False}


# ----------------------------------------------------------------------- the notebook
def _cells() -> list:
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_notebook_shape() -> None:
    cells = _cells()
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "You will be able to" in text
    flat = " ".join(line.lstrip("> ") for line in text.splitlines())
    assert HOOK in re.sub(r"\s+", " ", flat)
    assert "GLOSSARY.md#" in text
    # the next page it links to exists (lesson 07 comes with the plugin packages)
    linked = set(re.findall(r"\]\(([\w-]+\.ipynb)\)", text))
    assert linked and all((NOTEBOOK.parent / name).is_file() for name in linked), linked
    anchors = set(re.findall(r'<a id="([^"]+)"', (NOTEBOOK.parent / "GLOSSARY.md").read_text()))
    assert set(re.findall(r"GLOSSARY\.md#([\w-]+)", text)) <= anchors
    sources = [c.source for c in cells if c.cell_type == "code"]
    for ex in by_lesson("06"):
        assert any(f'CheckWidget("{ex.id}")' in s for s in sources), ex.id
    # the prediction comes before the comparison that reveals it
    first = {
        key: next(i for i, s in enumerate(sources) if key in s)
        for key in ('CheckWidget("06d")', "PolicyComparison(", "compare_policies(CONFIG")
    }
    assert first['CheckWidget("06d")'] < first["PolicyComparison("]
    assert first['CheckWidget("06d")'] < first["compare_policies(CONFIG"]
    # the changelog question comes before the table that pairs lines with versions
    at = {
        key: next(i for i, c in enumerate(cells) if key in c.source)
        for key in ('CheckWidget("06b")', "the review behind it")
    }
    assert at['CheckWidget("06b")'] < at["the review behind it"]
    # every view is labelled real or teaching
    assert "real kernel layouts" in text and "teaching" in text


@pytest.mark.timeout(300)
def test_run_all_submits_nothing_and_shows_no_solution(tmp_path: Path) -> None:
    shown = run_all_outputs(NOTEBOOK, tmp_path)
    for ex in by_lesson("06"):
        v = ex.variant(0)
        assert ex.solution(v) not in shown, ex.id
    assert "Solution" not in shown and "✔" not in shown and "✘" not in shown

"""Lesson 04 (ptdump locking, patch 2/3): its checkers against the published kernel facts and
the race explorer, and the notebook's shape.

The generic checks (every seed 0-49: right answer accepted, mistakes refused) are in
tests/test_exercises.py; here: what they cannot know. Ground truths: kernel-facts §5 (a stale
leaf only makes the dump stale, a freed table page is a use-after-free; hot-remove takes
``mem_hotplug_lock`` for write, ptdump for read), §6.6 (V3 held ``init_mm.page_table_lock``
over its walk, V6 dropped it), the review of 13 Sep 2019 and commit 59305202c67f (quoted in
the lesson), and the explorer's own counts (haystack, bounds).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mmkit.errors import InvalidArgument
from mmkit.exercises import by_lesson, get
from mmkit.exercises import lesson04 as l04
from mmkit.exercises._lesson04_engine import (
    RACE_CONFIGS,
    hot_remove_locks,
    naive_race,
    parse_schedule,
    play,
    shortest_failure,
    solo_steps,
)
from mmkit.scenarios.races import ptdump_race
from mmkit.sched import Scheduler
from mmkit.sched.explore import replay

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "04-ptdump-lock.ipynb"

#: Catalin Marinas, Re: [PATCH V7 3/3], 13 Sep 2019 <20190913100955.GB55043@arrakis...>
REVIEW = "There is also a race with ptdump that I haven't looked into."
#: the author's reply in the same thread
REPLY = "The second patch in the series deals with that."
#: commit 59305202c67f (20 Jun 2025), its tag and its first two claims
FIXES = 'Fixes: bbd6ec605c0f ("arm64/mm: Enable memory hot remove")'
STALE = (
    "When leaf entries are modified concurrently, the dump code may log stale or inconsistent "
    "information for a VA range, but this is otherwise not harmful."
)
FREED = (
    "But when intermediate levels of kernel page table are freed, the dump code will continue "
    "to use memory that has been freed and potentially reallocated for another purpose."
)


def _free_index(config: str, schedule: str) -> int:
    """0-based position, in ``schedule``, of H's step that frees a table page."""
    s = Scheduler(naive_race(config).make)
    for i, name in enumerate(schedule.split()):
        st = s.step(name)
        if name == "H" and st.action == "free" and st.note == "table":
            return i
    raise AssertionError("the schedule frees no table page")


def test_lesson_has_its_exercises() -> None:
    assert [e.id for e in by_lesson("04")] == ["04a", "04b", "04c", "04d"]


def test_parse_schedule_reads_letters_runs_and_the_explorers_fold() -> None:
    assert parse_schedule("P P H") == ("P", "P", "H") == parse_schedule("PPH")
    assert parse_schedule("P*2 H") == parse_schedule("P×2, h") == ("P", "P", "H")
    assert parse_schedule(l04.fold("P P P H H P")) == tuple("PPPHHP")
    for bad in ("", "P Q", "P*", "3P"):
        with pytest.raises(InvalidArgument):
            parse_schedule(bad)


@pytest.mark.parametrize("config", RACE_CONFIGS)
def test_a_freed_table_is_a_use_after_free_and_a_stale_leaf_is_not(config: str) -> None:
    # kernel-facts §5: P reading a table whose leaves H cleared is harmless; reading it
    # once H's free_empty_tables() freed it is KASAN's use-after-free
    shortest = shortest_failure(config).shortest
    assert shortest is not None
    won = play(config, shortest)
    assert won.failed_at == len(shortest.split()) and "use-after-free" in won.report
    assert "Freed by: free_empty_" in won.report and won.pointer_at_free
    assert any(f"table pfn {p:#x}" in won.report for p in won.pointer_at_free)
    names = shortest.split()
    cut = _free_index(config, shortest)
    before_free = " ".join([*names[:cut], "P"])
    stale = play(config, before_free)
    assert stale.failed_at is None and stale.report == "" and not stale.freed


@pytest.mark.parametrize("config", RACE_CONFIGS)
def test_no_preemption_cannot_fail_and_one_can(config: str) -> None:
    assert not shortest_failure(config, 0).found
    assert get("04b").answer(get("04b").variant(RACE_CONFIGS.index(config))) == 1
    # one preemption: P until it holds the pointer, then H to its very end, then P
    names = shortest_failure(config).shortest.split()
    a = names.index("H")
    h_total = solo_steps(config, "H")["H"]
    one = " ".join([*names[:a], *["H"] * h_total, *["P"] * 30])
    r = play(config, one)
    assert r.failed_at is not None and r.preemptions == 1
    ex = get("04a")
    assert ex.check(ex.variant(RACE_CONFIGS.index(config)), l04.fold(one)).correct


def test_04a_counts_preemptions_as_the_explorer_bounds_them() -> None:
    # the explorer's shortest at bound 2 is not found at bound 1 only if it needs 2
    for config in RACE_CONFIGS:
        r = play(config, shortest_failure(config).shortest)
        assert r.preemptions <= 2
        assert shortest_failure(config, r.preemptions).found


def test_under_v57_the_winning_schedule_is_refused_or_harmless() -> None:
    # kernel-facts §5: get_online_mems() (read) and mem_hotplug_begin() (write) exclude
    for config in RACE_CONFIGS:
        race = ptdump_race(config, "v5.7", fine=True)
        assert not race.explore(bound=2).found
        with pytest.raises(InvalidArgument, match="blocked on mem_hotplug_lock"):
            replay(race.make, shortest_failure(config).shortest)


def test_hot_remove_locks_follow_the_changelog() -> None:
    # V3: "Taken overall init_mm.page_table_lock"; V6 on: no kernel page-table lock;
    # every version: mem_hotplug_begin() = write side of mem_hotplug_lock
    assert hot_remove_locks("v3").get("init_mm.page_table_lock") == "exclusive"
    for policy in l04.LOCK_POLICIES:
        locks = hot_remove_locks(policy)
        assert locks.get("mem_hotplug_lock") == "write"
        assert "init_mm.page_table_lock" not in locks
        assert not any("mmap" in lock for lock in locks)


@pytest.mark.parametrize("seed", range(6))
def test_04c_answer_is_the_read_side_of_mem_hotplug_lock(seed: int) -> None:
    ex = get("04c")
    v = ex.variant(seed)
    assert ex.answer(v).startswith("mem_hotplug_lock, read side")
    ptl = next(o for o in v.options if "page_table_lock" in o)
    assert "From V6, hot-remove takes no ptl" in ex.check(v, ptl).message
    mmap = next(o for o in v.options if "mmap" in o)
    assert "mmap lock" in ex.check(v, mmap).message


@pytest.mark.parametrize("config", RACE_CONFIGS)
def test_04d_is_the_explorers_haystack(config: str) -> None:
    ex = get("04d")
    v = ex.variant(RACE_CONFIGS.index(config))
    result = shortest_failure(config)
    h, p = result.thread_steps["H"], result.thread_steps["P"]
    assert result.haystack == math.comb(h + p, p)
    assert ex.answer(v) == math.floor(math.log10(result.haystack))


# --------------------------------------------------------------------------- notebook
def _cells() -> list[nbformat.NotebookNode]:
    return nbformat.read(NOTEBOOK, as_version=4).cells


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", " ".join(line.lstrip("> ") for line in text.splitlines()))


def test_notebook_shape() -> None:
    cells = _cells()
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    flat = _flat(text)
    assert "You will be able to" in text
    for quote in (REVIEW, REPLY, FIXES, STALE, FREED):
        assert quote in flat, quote
    assert "59305202c67f" in text and "13 Sep 2019" in text and "20 Jun 2025" in text
    assert "GLOSSARY.md#mem_hotplug_lock" in text and "05-freeing-tables.ipynb" in text
    assert "real kernel layout" in text
    sources = [c.source for c in cells]
    for ex in by_lesson("04"):
        assert any(f'CheckWidget("{ex.id}")' in s for s in sources), ex.id

    def first(key: str) -> int:
        return next(i for i, s in enumerate(sources) if key in s)

    # each question comes before what answers it
    assert first('CheckWidget("04b")') < first("RaceExplorer(") < first('CheckWidget("04a")')
    assert first('CheckWidget("04a")') < first(".explore(") < first("replay(race.make")
    assert first('CheckWidget("04d")') < first(".summary()")
    assert first('CheckWidget("04c")') < first("get_online_mems")
    assert first('CheckWidget("04c")') < first("mem_hotplug_lock")


@pytest.mark.timeout(600)
def test_run_all_submits_nothing_and_shows_no_solution(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", out
            assert out.get("name") != "stderr", out
            outputs.append(str(out.get("text", "")))
            outputs.extend(str(v) for v in out.get("data", {}).values())
    shown = "\n".join(outputs)
    for ex in by_lesson("04"):
        v = ex.variant(0)
        assert ex.solution(v) not in shown, ex.id
    assert "Solution" not in shown and "✔" not in shown and "✘" not in shown
    # addresses are shown in hex: no table page or VA in decimal
    assert not re.search(r"\b(?:2693\d\d|1844674\d+)\b", shown)

"""Lesson 03 (patch 1/3, the memblock order): its checkers against kernel facts 4.1 and 4.2
and the V7 1/3 trace, and the notebook's shape.

The generic checks (right answer accepted, mistakes explained, seeds 0-49) live in
tests/test_exercises.py; here: what those cannot know.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import nbformat
import pytest

from mmkit.exercises import Variant, by_lesson, get
from mmkit.exercises.lesson03 import (
    CHANGES,
    FRAME_CONFIGS,
    bug_frame,
    change_fixes,
    fatal_frame,
    frames,
    remove_order,
)
from tests.lesson_run import run_all_outputs

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03-memblock-order.ipynb"

#: kernel-facts 4.2, try_remove_memory()'s calls per kernel (the offline check is no step)
KF_ORDER = {
    "v5.3": (
        "mem_hotplug_begin()",
        "firmware_map_remove()",
        "memblock_free()",
        "memblock_remove()",
        "remove_memory_block_devices()",
        "arch_remove_memory()",
        "__release_memory_resource()",
        "try_offline_node()",
        "mem_hotplug_done()",
    ),
    "v5.5": (
        "mem_hotplug_begin()",
        "firmware_map_remove()",
        "remove_memory_block_devices()",
        "arch_remove_memory()",
        "memblock_free()",
        "memblock_remove()",
        "__release_memory_resource()",
        "try_offline_node()",
        "mem_hotplug_done()",
    ),
    "v5.7": (
        "firmware_map_remove()",
        "remove_memory_block_devices()",
        "mem_hotplug_begin()",
        "arch_remove_memory()",
        "memblock_free()",
        "memblock_remove()",
        "__release_memory_resource()",
        "try_offline_node()",
        "mem_hotplug_done()",
    ),
}
KF_ORDER["v5.4"] = KF_ORDER["v5.3"]  # the reorder came in v5.5 (32d1fe8fcb32)


def _variant(exercise_id: str, **params: object) -> Variant:
    base = get(exercise_id).variant(0)
    return Variant(exercise_id, 0, base.question, base.kind, base.options, base.hint, params)


@pytest.mark.parametrize("kernel", sorted(KF_ORDER))
def test_remove_order_is_kernel_facts_4_2(kernel: str) -> None:
    assert remove_order(kernel) == KF_ORDER[kernel]


def test_order_checker_names_the_old_order_on_v5_7() -> None:
    ex = get("03a")
    v = _variant("03a", kernel="v5.7")
    assert ex.check(v, KF_ORDER["v5.7"]).correct
    assert "that is v5.3's order" in ex.check(v, KF_ORDER["v5.3"]).message


@pytest.mark.parametrize("config", ["arm64-4k-48", *FRAME_CONFIGS])
def test_the_fatal_frame_is_memblock_remove_in_the_removal(config: str) -> None:
    """KF 4.1 steps 1, 6-8: after memblock_remove() pfn_valid() is false, get_nid_for_pfn()
    returns -1, the links stay; step 9-10: the re-add's link creation gets -EEXIST, BUG."""
    run = frames("v5.3", config)
    i = fatal_frame(config)
    assert run[i].operation == "remove" and run[i].step.line.startswith("memblock_remove(")
    assert run[i - 1].pfn_valid and run[i - 1].step.line.startswith("memblock_free(")
    nid_steps = [f for f in run[i:] if "get_nid_for_pfn" in f.step.line]
    assert nid_steps and all(f.step.line.endswith("= -1") for f in nid_steps)
    assert [f for f in run if f.operation == "remove"][-1].links  # the stale link
    b = bug_frame(config)
    assert b > i and run[b].operation == "add again"
    assert "-EEXIST" in run[b - 1].step.line and "BUG" in run[b].event
    ex = get("03b")
    v = _variant("03b", config=config)
    assert ex.check(v, i).correct
    assert "reported there, caused earlier" in ex.check(v, b).message


def test_the_v7_trace_says_eexist_for_a_1_gib_block() -> None:
    """The V7 1/3 trace: x0 = 0xffffffef (-EEXIST as an int), x19..x20 a 1 GiB pfn range."""
    event = frames("v5.3")[bug_frame()].event
    assert f"-EEXIST ({-errno.EEXIST})" in event  # what the engine's BUG reports
    assert (-errno.EEXIST) & 0xFFFFFFFF == 0xFFFFFFEF  # the trace's x0
    assert (0x6C0000 - 0x680000) << 12 == 1 << 30  # x19..x20: one 1 GiB block
    text = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert "kernel BUG at mm/memory_hotplug.c:1143!" in text
    assert "x0 : 00000000ffffffef" in text


def test_which_change_fixes_it() -> None:
    """KF 4.1 'Status': 60bb462fc7ad (v5.4, stored nid) and 32d1fe8fcb32 (v5.5, reorder)
    each remove the bug; the ptdump lock (patch 2/3) and a warning do not."""
    assert change_fixes("nid") and change_fixes("reorder")
    assert not change_fixes("ptdump") and not change_fixes("warn")
    assert not any(f.event for f in frames("v5.4")) and any(f.event for f in frames("v5.3"))
    ex = get("03c")
    v = ex.variant(1)
    assert ex.check(v, [CHANGES["nid"], CHANGES["reorder"]]).correct
    wrong = ex.check(v, [CHANGES["nid"], CHANGES["reorder"], CHANGES["warn"]])
    assert "it hides the stale link" in wrong.message


# ------------------------------------------------------------------- notebook
def _cells() -> list:
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_notebook_has_goals_hook_and_every_exercise() -> None:
    cells = _cells()
    text = "\n".join(c.source for c in cells)
    assert "You will be able to" in text
    assert "Subsequent memory add operation hits BUG_ON() because" in text
    assert "60bb462fc7ad" in text and "32d1fe8fcb32" in text
    assert "GLOSSARY.md#" in text and "04-ptdump-lock.ipynb" in text
    shown = set(re.findall(r'CheckWidget\("(\d\d[a-z])"\)', text))
    assert shown == {e.id for e in by_lesson("03")}
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code")


def test_every_question_comes_before_its_reveal() -> None:
    src = [c.source for c in _cells()]

    def first(pattern: str) -> int:
        return next(i for i, s in enumerate(src) if pattern in s)

    assert first('CheckWidget("03a")') < first('MemblockOrder("v5.3")')
    assert first('CheckWidget("03c")') < first("remove_order(kernel)")
    assert first('CheckWidget("03c")') < first("Kernel** buttons")
    # the goals do not name the fixes (03c asks for them)
    assert "stored nid" not in src[0] and "removed last" not in src[0]


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_run_all_submits_nothing_and_prints_no_solution(tmp_path: Path) -> None:
    blob = run_all_outputs(NOTEBOOK, tmp_path)
    assert "Traceback" not in blob
    for ex in by_lesson("03"):
        solution = ex.solution(ex.variant(0))
        assert solution not in blob and "Solution:" not in blob

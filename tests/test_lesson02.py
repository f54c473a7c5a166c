"""Lesson 02 (hot-add): its checkers against published kernel facts, and the notebook's shape.

The generic checks (right answer accepted, mistakes explained, seeds 0-49) live in
tests/test_exercises.py; here: what those cannot know. Kernel facts 2.2, 4.3 and 4.5 and a
real v5.7.14 ``kernel_page_tables`` capture are the ground truth.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import nbformat
import pytest

from mmkit.arch.arm64 import CONFIGS
from mmkit.exercises import Variant, by_lesson, get
from mmkit.exercises.lesson02 import (
    DISTRACTOR,
    HOT_ADD_STARTS,
    add_memory_order,
    hot_add_tables,
)
from mmkit.machine import Machine
from mmkit.mm.ptdump import ptdump
from tests.lesson_run import run_all_outputs

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02-hot-add.ipynb"

#: kernel-facts 4.3, the steps of add_memory() -> add_memory_resource() in v5.4, in order
#: (``vmemmap_populate`` runs from ``__add_pages``, after ``__create_pgd_mapping``)
KF_ADD_ORDER = (
    "register_memory_resource()",
    "mem_hotplug_begin()",
    "memblock_add_node()",
    "__create_pgd_mapping() (the linear map)",
    "vmemmap_populate() (the memmap)",
    "create_memory_block_devices()",
    "link_mem_sections()",
    "firmware_map_add_hotplug()",
    "mem_hotplug_done()",
    "online_memory_block()",
)

#: A real Linux v5.7.14 (4K/48, rodata_full, no KASLR, QEMU virt, mem=2048M) dump, before
#: and after add_memory(0, 0xc0000000, 1 GiB): the lines that changed.
REAL_BEFORE = """\
0xffff00007f7e9000-0xffff000080000000        8284K PTE       RW NX SHD AF            UXN MEM/NORMAL
0xffff000080000000-0xffff008000000000         510G PUD
0xfffffdffffe00000-0xfffffe0001e00000          32M PMD       RW NX SHD AF        BLK UXN MEM/NORMAL
0xfffffe0001e00000-0xfffffe0040000000         994M PMD"""
REAL_AFTER = """\
0xffff00007f7e9000-0xffff0000c0000000     1056860K PTE       RW NX SHD AF            UXN MEM/NORMAL
0xffff0000c0000000-0xffff008000000000         509G PUD
0xfffffdffffe00000-0xfffffe0002e00000          48M PMD       RW NX SHD AF        BLK UXN MEM/NORMAL
0xfffffe0002e00000-0xfffffe0040000000         978M PMD"""


def _variant(exercise_id: str, **params: object) -> Variant:
    ex = get(exercise_id)
    base = ex.variant(0)
    return Variant(exercise_id, 0, base.question, base.kind, base.options, base.hint, params)


# ------------------------------------------------------------------------- 02a
def test_4k_linear_map_in_pages_costs_one_pmd_and_512_pte_tables_per_gib() -> None:
    """KF 4.5 (Catalin Marinas, 10 Sep 2019): with 4K pages and no blocks, 1 PMD table and
    512 PTE tables map 1 GiB of linear map; with blocks, a PUD entry of an existing table."""
    paged = hot_add_tables("arm64-4k-48", 0x1_0000_0000, True)
    assert paged.per_region["linear"] == {"pmd": 1, "pte": 512}
    assert hot_add_tables("arm64-4k-48", 0x1_0000_0000, False).per_region["linear"] == {}
    ex = get("02a")
    v = _variant("02a", config="arm64-4k-48", start=0x1_0000_0000, rodata_full=True)
    assert ex.check(v, 513).correct
    assert "it exists already" in ex.check(v, 514).message
    assert "other setting" in ex.check(v, 0).message


@pytest.mark.parametrize("config", [c for c in CONFIGS if "-4k-" in c])
def test_4k_vmemmap_has_no_pte_tables(config: str) -> None:
    """KF 2.2: with 4K pages vmemmap_populate() maps 2 MiB PMD blocks, never PTEs."""
    for start in HOT_ADD_STARTS:
        for rodata_full in (False, True):
            try:
                t = hot_add_tables(config, start, rodata_full)
            except Exception:  # outside this configuration's linear map
                continue
            assert "pte" not in t.per_region["vmemmap"], (config, hex(start), rodata_full)


@pytest.mark.parametrize("config", [c for c in CONFIGS if "-4k-" not in c])
def test_16k_64k_linear_map_uses_pmd_blocks_without_rodata_full(config: str) -> None:
    """KF 2.2: a 1 GiB block is a whole number of 32 MiB (16K) or 512 MiB (64K) sections, so
    without NO_BLOCK_MAPPINGS the linear map needs no PTE table; with it, PTE tables only."""
    t = hot_add_tables(config, 0x1_0000_0000, False)
    assert "pte" not in t.per_region["linear"]
    paged = hot_add_tables(config, 0x1_0000_0000, True)
    page_shift = {"16k": 14, "64k": 16}[config.split("-")[1]]
    ptes_per_table = 1 << (page_shift - 3)
    assert paged.per_region["linear"]["pte"] == (1 << 30 >> page_shift) // ptes_per_table


def test_alloc_steps_are_the_new_table_pages() -> None:
    """The count of alloc-table steps equals the set difference of the table pages."""
    for config in ("arm64-4k-48", "arm64-16k-47", "arm64-64k-42"):
        for rodata_full in (False, True):
            t = hot_add_tables(
                config, 0x40_0000_0000 if "4k" in config else 0x1_0000_0000, rodata_full
            )
            assert len(t.new_table_pfns) == t.total


# ------------------------------------------------------------------------- 02b
def test_add_order_is_kernel_facts_4_3() -> None:
    assert add_memory_order() == KF_ADD_ORDER
    assert add_memory_order("arm64-64k-48") == KF_ADD_ORDER


def test_order_checker_refuses_the_distractor_and_links_before_devices() -> None:
    ex = get("02b")
    for seed in range(10):
        v = ex.variant(seed)
        assert DISTRACTOR in v.options and len(v.options) == 8
        right = list(ex.answer(v))
        assert DISTRACTOR not in right
        assert [x for x in KF_ADD_ORDER if x in right] == right
        assert "does not belong" in ex.check(v, [DISTRACTOR, *right]).message
        assert not ex.check(v, right[:-1]).correct


# ------------------------------------------------------------------------- 02c
@pytest.mark.parametrize("config", CONFIGS)
def test_struct_page_of_the_first_ram_pfn_is_vmemmap_start(config: str) -> None:
    """v5.4 memory.h: vmemmap = VMEMMAP_START - (memstart_addr >> PAGE_SHIFT) struct pages."""
    ex = get("02c")
    m = Machine(config, record=False)
    first = m.memstart >> m.desc.page_shift
    v = _variant("02c", config=config, pfn=first)
    assert ex.answer(v) == m.macros["VMEMMAP_START"]
    v2 = _variant("02c", config=config, pfn=first + 3)
    assert ex.answer(v2) == m.macros["VMEMMAP_START"] + 3 * 64
    wrong = ex.check(v2, m.macros["VMEMMAP_START"] + ((first + 3) << 6))
    assert "indexed from the first RAM pfn" in wrong.message


# ---------------------------------------------------------------- a real dump
def test_hot_add_changes_the_dump_as_a_real_v5_7_kernel_did() -> None:
    """The simulated v5.7 dump changes the same lines, to the same ends and sizes, as a real
    v5.7.14 kernel's after add_memory(0, 0xc0000000, 1 GiB) (starts are build-specific)."""
    m = Machine("arm64-4k-48", kernel="v5.7", rodata_full=True, kpti=False)
    before = ptdump(m).splitlines()
    m.add_memory(0, 0xC000_0000, 1 << 30)
    after = ptdump(m).splitlines()
    diff = [d for d in difflib.unified_diff(before, after, lineterm="", n=0)]
    removed = [d[1:] for d in diff if d.startswith("-") and not d.startswith("---")]
    added = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]

    def tail(line: str) -> str:  # the range's end and what follows, not its start
        return line.split("-", 1)[1].split(maxsplit=1)[0] + " " + " ".join(line.split()[2:])

    assert len(removed) == len(added) == 4
    for sim, real in ((removed, REAL_BEFORE), (added, REAL_AFTER)):
        real_lines = real.splitlines()
        assert tail(sim[0]) == tail(real_lines[0])  # the linear map's run of PTEs
        assert sim[1:] == real_lines[1:]  # the PUD hole and the vmemmap's PMD blocks


# ------------------------------------------------------------------- notebook
def _cells() -> list:
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_notebook_has_goals_hook_and_every_exercise() -> None:
    cells = _cells()
    text = "\n".join(c.source for c in cells)
    assert "You will be able to" in text
    assert "just above 2MB of tables for 1GB" in text  # the hook, quoted exactly
    assert "GLOSSARY.md#" in text and "03-memblock-order.ipynb" in text
    shown = set(re.findall(r'CheckWidget\("(\d\d[a-z])"\)', text))
    assert shown == {e.id for e in by_lesson("02")}
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code")


def test_every_question_comes_before_its_reveal() -> None:
    """02b's CheckWidget comes before the engine's add_memory outline; 02a's before the
    stepper and the counts table; 02c's before the vmemmap arithmetic."""
    src = [c.source for c in _cells()]

    def first(pattern: str) -> int:
        return next(i for i, s in enumerate(src) if pattern in s)

    assert first('CheckWidget("02b")') < first("outline = [")
    assert first('CheckWidget("02a")') < first("Stepper.hot_add") < first("hot_add_tables(")
    assert first('CheckWidget("02c")') < first("m.vmemmap_va(")


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_run_all_submits_nothing_and_prints_no_solution(tmp_path: Path) -> None:
    blob = run_all_outputs(NOTEBOOK, tmp_path)
    assert "Traceback" not in blob
    for ex in by_lesson("02"):
        solution = ex.solution(ex.variant(0))
        assert solution not in blob and "Solution:" not in blob

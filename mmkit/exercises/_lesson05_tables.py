"""Lesson 05, exercises 05d and 05e: which table pages may be freed, and which never are.

* 05d: ``pgtable_range_aligned()`` (v5.7 ``arch/arm64/mm/mmu.c``, kernel-facts 6.4) on a
  memmap or linear-map range of a real layout, floor and ceiling the whole region or the
  range itself; the verdict comes from :func:`mmkit.pgtable.unmap.pgtable_range_aligned`,
  the deciding test from :func:`mmkit.exercises._lesson05_engine.aligned_verdict`.
* 05e: what pins the table page that vmalloc and vmemmap share on 4K/48 and 16K/48
  (kernel-facts 7.2, "Analysis"), from :func:`mmkit.pgtable.shared.shared_tables`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mmkit.errors import MmkitError
from mmkit.exercises import Exercise, Feedback, Mistake, Variant
from mmkit.exercises._lesson05_engine import aligned_verdict

__all__ = ["AlignedExercise", "PinExercise"]

# ------------------------------------------------------------------------------------ 05d
_VERDICTS = {
    "true": "true",
    "floor": "false: start & mask < floor",
    "ceiling0": "false: ceiling & mask is 0",
    "ceiling": "false: end - 1 > ceiling - 1",
    "partial": "false: [start, end) does not cover the table",
}


@lru_cache(maxsize=16)
def _machine(config: str) -> Any:
    from mmkit.machine import Machine

    return Machine(config, vmalloc_areas=0)


class AlignedExercise(Exercise):
    """05d: evaluate pgtable_range_aligned() and name the test that decides."""

    id = "05d"
    lesson = "05"
    title = "Floor and ceiling: pgtable_range_aligned()"
    kind = "choice"

    CONFIGS = ("arm64-4k-48", "arm64-16k-48", "arm64-4k-39", "arm64-64k-48")

    def variant(self, seed: int) -> Variant:
        rng = random.Random(seed)
        config = self.CONFIGS[seed % len(self.CONFIGS)]
        m = _machine(config)
        mac = m.macros
        levels = [(lv.name, lv.entry_size) for lv in m.pgtables.levels]
        region = ("vmemmap", "linear map")[(seed // len(self.CONFIGS)) % 2]
        depth = rng.randrange(1, len(levels))  # a table with a parent entry
        _, parent_size = levels[depth - 1]
        mask = ~(parent_size - 1) & ((1 << 64) - 1)
        pa = m.memstart + rng.choice((0, 2 << 30, 64 << 30))  # a 1 GiB block
        block = 1 << 30
        shift = m.desc.page_shift
        if region == "vmemmap":
            lo, hi = mac["VMEMMAP_START"], mac["VMEMMAP_END"]
            start, end = m.vmemmap_va(pa >> shift), m.vmemmap_va((pa + block) >> shift)
        else:
            lo, hi = mac["PAGE_OFFSET"], mac["PAGE_END"]
            start = mac["PAGE_OFFSET"] + (pa - m.memstart)
            end = start + block
        span_end = (start & mask) + parent_size
        end = min(end, span_end)  # the sub-range inside the one table page
        whole = rng.random() < 0.5
        floor, ceiling = (lo, hi & ((1 << 64) - 1)) if whole else (start, end)
        table = levels[depth][0]
        # the kernel's name for the mask free_empty_<table>_table() passes (equal values
        # where a level is folded)
        mask_name = {"pte": "PMD_MASK", "pmd": "PUD_MASK"}.get(table, "PGDIR_MASK")
        keys = list(_VERDICTS)
        rng.shuffle(keys)
        return Variant(
            self.id,
            seed,
            f"<code>{config}</code> (a real kernel layout), {region}: may the <b>{table}</b> "
            f"table holding the entries for [{start:#x}, {end:#x}) be freed? v5.7 asks "
            f"<code>pgtable_range_aligned({start:#x}, {end:#x}, floor={floor:#x}, "
            f"ceiling={ceiling:#x}, {mask_name}={mask:#x})</code>, with floor and ceiling "
            + ("the whole region." if whole else "the removed range itself (as first tried).")
            + " What does it return, and which test decides?",
            self.kind,
            tuple(_VERDICTS[k] for k in keys),
            "Follow it step by step: round start down with the mask (the table's first "
            "address) and compare with the floor; round the ceiling down; compare end - 1 "
            "with ceiling - 1.",
            {
                "config": config,
                "start": start,
                "end": end,
                "floor": floor,
                "ceiling": ceiling,
                "mask": mask,
            },
        )

    def answer(self, variant: Variant) -> str:
        from mmkit.pgtable.unmap import pgtable_range_aligned

        p = variant.params
        args = (p["start"], p["end"], p["floor"], p["ceiling"], p["mask"])
        if pgtable_range_aligned(*args):
            return _VERDICTS["true"]
        verdict = aligned_verdict(*args)
        return _VERDICTS[verdict if verdict != "true" else "partial"]

    def check(self, variant: Variant, answer: Any) -> Feedback:
        got = self.parse(variant, answer)
        if got == self.answer(variant):
            return Feedback(
                True,
                "Right: only the span of the table page must fit inside [floor, ceiling); "
                "whether it is empty is the next test.",
            )
        if got == _VERDICTS["partial"]:
            return Feedback(
                False,
                "pgtable_range_aligned() does not ask that: only the span must fit inside "
                "[floor, ceiling). A partly covered table is left to the scan of all its "
                "entries that follows.",
            )
        if got == _VERDICTS["true"]:
            return Feedback(False, "One of the tests fails: round start down with the mask first.")
        return Feedback(
            False,
            "Not that test. Round start down with the mask (the first address the table "
            "maps) before comparing it with the floor, and round the ceiling down too.",
        )

    def solution(self, variant: Variant) -> str:
        p = variant.params
        first = p["start"] & p["mask"]
        ceil = p["ceiling"] & p["mask"] if p["ceiling"] else 0
        return (
            f"{self.answer(variant)}. start & mask = {first:#x} "
            f"({'<' if first < p['floor'] else '>='} floor {p['floor']:#x}); ceiling & mask = "
            f"{ceil:#x}; end - 1 = {p['end'] - 1:#x}. The test guarantees that a freed table "
            "maps nothing outside [floor, ceiling), so no vmalloc() can hold a pointer into "
            "it (kernel-facts 6.4)."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        return (Mistake(_VERDICTS["partial"], "only the span must fit"),)


# ------------------------------------------------------------------------------------ 05e
_PIN_DISTRACTORS = {
    "vmalloc's init_mm.page_table_lock": "it guards installation only",
    "hot-remove's mem_hotplug_lock": "vmalloc() never takes mem_hotplug_lock",
    "the TLB's cached walk through it": "a cached walk keeps nothing alive",
}


@lru_cache(maxsize=8)
def _static_pin(config: str, kernel: str) -> tuple[str, str, str]:
    """(table name, level, the static table its pinning entry points at) per shared_tables."""
    from mmkit.machine import Machine
    from mmkit.pgtable.shared import shared_tables

    m = Machine(config, kernel=kernel, vmalloc_areas=0)
    for t in shared_tables(m):
        for e in t.entries:
            if e.pins and "static in the kernel image" in e.target:
                return t.name or f"the {t.level} table", t.level, e.target.split(",")[0]
    raise MmkitError(f"{config} ({kernel}): no shared table pinned by a static table")


class PinExercise(Exercise):
    """05e: what keeps the table page vmalloc and vmemmap share from ever being freed?"""

    id = "05e"
    lesson = "05"
    title = "Why is the race latent on the real layouts?"
    kind = "choice"

    CASES = tuple((c, k) for c in ("arm64-4k-48", "arm64-16k-48") for k in ("v5.4", "v5.7"))

    def _right(self, config: str, kernel: str) -> str:
        _, _, static = _static_pin(config, kernel)
        return f"the entry for {static} (fixmap)"

    def variant(self, seed: int) -> Variant:
        config, kernel = self.CASES[seed % len(self.CASES)]
        name, level, _ = _static_pin(config, kernel)
        options = [self._right(config, kernel), *_PIN_DISTRACTORS]
        random.Random(seed).shuffle(options)
        return Variant(
            self.id,
            seed,
            f"<code>{config}</code>, Linux {kernel} layout (a real kernel layout): one {level} "
            f"table page ({name}) maps both vmalloc and vmemmap addresses. What guarantees "
            "that no policy ever frees it under a vmalloc()?",
            self.kind,
            tuple(options),
            "A table is freed only when every entry is none. Which entry in it can never "
            "become none?",
            {"config": config, "kernel": kernel},
        )

    def answer(self, variant: Variant) -> str:
        return self._right(variant.params["config"], variant.params["kernel"])

    def check(self, variant: Variant, answer: Any) -> Feedback:
        got = self.parse(variant, answer)
        if got == self.answer(variant):
            return Feedback(
                True,
                "Right: that entry is never cleared, so the table is never empty and never "
                "freed; the race is latent here, not fixed.",
            )
        why = _PIN_DISTRACTORS.get(got, "")
        if why == "it guards installation only":
            why = (
                "it guards installation only: vmalloc() takes it to install a new table, not "
                "while it walks, so it cannot keep a table alive"
            )
        return Feedback(False, f"No: {why}. Hint: which entry of that table is never none?")

    def solution(self, variant: Variant) -> str:
        p = variant.params
        return (
            f"{self.answer(variant)}. mmkit.pgtable.shared.shared_tables(Machine('{p['config']}', "
            f"kernel='{p['kernel']}')) lists the entries in use in the shared table; the one "
            "pointing at the fixmap's bm_pmd is installed at boot and never removed "
            "(kernel-facts 7.2, Analysis)."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        return tuple(Mistake(o, says) for o, says in _PIN_DISTRACTORS.items())

"""Lesson 05's exercises: freeing page tables (patch 3/3 of "arm64/mm: Enable memory hot remove").

Every answer is computed by the engine (kernel-facts, cited by section):

* **05a** (order): tear down a vmemmap page, a vmemmap block or a table page in the order the
  v5.7 hot-remove takes (``unmap_hotplug_*_range``: clear → TLBI → free; ``free_empty_*_table``:
  scan, clear the parent entry, ``__flush_tlb_kernel_pgtable``, free; kernel-facts 6.2, 6.3).
* **05b** (number): TLB invalidations for hot-removing one memory block under V7 or v5.7
  (``flush_tlb_kernel_range(addr, next)`` per block up to V9, one TLBI per block from V10;
  kernel-facts 6.1, 6.3 item 4), from :func:`mmkit.mm.compare.compare_policies`.
* **05c** (text): be the scheduler on ``vmalloc_race`` on a ``teach-*`` layout under ``naive``
  or ``v3``: ``vmalloc()`` holds a pointer into a table page without a lock while hot-remove
  frees it (kernel-facts 7.2); the schedule is replayed.
* **05d** (choice): what ``pgtable_range_aligned()`` (v5.7 ``arch/arm64/mm/mmu.c``) returns,
  and which of its tests decides (kernel-facts 6.4), from the engine's own function.
* **05e** (choice): what keeps the table page shared by vmalloc and vmemmap from ever being
  freed on 4K/48 and 16K/48 (kernel-facts 7.2, "Analysis"), from
  :func:`mmkit.pgtable.shared.shared_tables`.

>>> from mmkit.exercises import get
>>> ex = get("05d")
>>> v = ex.variant(0)
>>> ex.check(v, ex.answer(v)).correct
True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from mmkit.errors import InvalidArgument
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.exercises._lesson05_engine import (
    BLOCK_START,
    removal_history,
    removal_tlbi,
    teardown_order,
)
from mmkit.exercises._lesson05_race import VmallocSchedulerExercise
from mmkit.exercises._lesson05_tables import AlignedExercise, PinExercise

__all__ = [
    "AlignedExercise",
    "PinExercise",
    "TeardownOrderExercise",
    "TlbiCountExercise",
    "VmallocSchedulerExercise",
]

_4K = ("arm64-4k-39", "arm64-4k-48")
_16K_64K = ("arm64-16k-36", "arm64-16k-47", "arm64-16k-48", "arm64-64k-42", "arm64-64k-48")
_REAL = _4K + _16K_64K


# ------------------------------------------------------------------------------------ 05a
class TeardownOrderExercise(Exercise):
    """05a: order the steps that tear down one vmemmap page, one vmemmap block or one table."""

    id = "05a"
    lesson = "05"
    title = "Clear, invalidate, free: in which order?"
    kind = "order"

    #: which -> configurations where the v5.7 removal of one block has one (a vmemmap page
    #: needs a granule whose memmap is page-mapped, a block the 4K one; tables: rodata_full)
    CASES: tuple[tuple[str, str, bool], ...] = (
        *(("pte", c, False) for c in _16K_64K),
        *(("block", c, False) for c in _4K),
        *(("table", c, True) for c in _REAL),
    )

    def _labels(self, which: str, config: str, rodata_full: bool) -> dict[str, str]:
        _, levels, _ = removal_history(config, "v5.7", rodata_full)
        if which == "table":
            from mmkit.exercises._lesson05_engine import teardown_steps

            steps = teardown_steps(config, "table", "v5.7", rodata_full)
            parent = steps["clear"].level if "clear" in steps else "pmd"
            child = steps["free"].level if "free" in steps else "pte"
            return {
                "scan": f"read all entries of the {child} table: is every one none?",
                "clear": f"{parent}_clear(): unhook the table from its parent entry",
                "tlbi": "__flush_tlb_kernel_pgtable(): TLBI VAAE1IS (all levels) for its VA",
                "free": "free_hotplug_pgtable_page(): give the table page back",
            }
        from mmkit.exercises._lesson05_engine import teardown_steps

        steps = teardown_steps(config, which, "v5.7", rodata_full)
        level = steps["clear"].level if "clear" in steps else levels[-1]
        what = "page" if which == "pte" else "block"
        return {
            "clear": f"{level}_clear(): clear the {what} entry",
            "tlbi": "flush_tlb_kernel_range(): TLBI VAALE1IS (last level)",
            "free": f"free_hotplug_page_range(): free the struct pages the {what} mapped",
        }

    def variant(self, seed: int) -> Variant:
        which, config, rodata_full = self.CASES[seed % len(self.CASES)]
        labels = self._labels(which, config, rodata_full)
        keys = list(labels)
        random.Random(seed).shuffle(keys)
        if keys == list(teardown_order(config, which, "v5.7", rodata_full)):
            keys.reverse()  # never show the lines already in order
        what = {
            "pte": "one vmemmap <b>page</b> (a PTE mapping struct pages)",
            "block": "one vmemmap <b>block</b> (a PMD block mapping struct pages)",
            "table": "one empty <b>table page</b> (pass 2, linear map with rodata_full)",
        }[which]
        return Variant(
            self.id,
            seed,
            f"<code>{config}</code> (a real kernel layout), policy v5.7: hot-remove tears "
            f"down {what}. Put these steps in the order the kernel takes them "
            "(their letters, e.g. 'C A B').",
            self.kind,
            tuple(labels[k] for k in keys),
            "Another CPU may still hold the old translation (or a cached walk through the "
            "table) in its TLB until the TLBI: what must be true before the page can go?",
            {"which": which, "config": config, "rodata_full": rodata_full, "keys": tuple(keys)},
        )

    def parse(self, variant: Variant, answer: Any) -> Any:
        got = super().parse(variant, answer)
        if not got:
            raise InvalidArgument("type the letters of the lines first, e.g. 'C A B'")
        return got

    def _key_of(self, variant: Variant) -> dict[str, str]:
        return dict(zip(variant.options, variant.params["keys"], strict=True))

    def answer(self, variant: Variant) -> tuple[str, ...]:
        p = variant.params
        order = teardown_order(p["config"], p["which"], "v5.7", p["rodata_full"])
        by_key = {k: o for o, k in self._key_of(variant).items()}
        return tuple(by_key[k] for k in order)

    def check(self, variant: Variant, answer: Any) -> Feedback:
        got = self.parse(variant, answer)
        right = self.answer(variant)
        if tuple(got) == right:
            return Feedback(
                True,
                "Right: the entry goes first, then every CPU's TLB forgets it, and only then "
                "is the memory given back, so no CPU can reach a freed page through a stale "
                "translation.",
            )
        if sorted(got) != sorted(right):
            return Feedback(False, "Use every line exactly once.")
        keys = self._key_of(variant)
        order = [keys[o] for o in got]
        if "free" in order and "tlbi" in order and order.index("free") < order.index("tlbi"):
            return Feedback(
                False,
                "Freed before the TLBI: until the invalidation another CPU can still reach "
                "the memory through its TLB, and the page may already belong to someone else. "
                "Replay tlb_order('v3') in the lesson and watch what that CPU reads.",
            )
        if "free" in order and "clear" in order and order.index("free") < order.index("clear"):
            return Feedback(
                False,
                "Freed while the entry still maps it: any walk can reach the freed page. "
                "Replay tlb_order('v3') in the lesson and watch what a CPU reads.",
            )
        if order.index("tlbi") < order.index("clear"):
            return Feedback(
                False,
                "An invalidation before the clear achieves nothing: a CPU can walk the "
                "still-valid entry again and refill its TLB.",
            )
        return Feedback(
            False,
            "The scan decides whether the table is freed at all: it must come before the "
            "parent entry is touched.",
        )

    def solution(self, variant: Variant) -> str:
        right = self.answer(variant)
        letters = {o: chr(ord("A") + i) for i, o in enumerate(variant.options)}
        return (
            f"{' '.join(letters[o] for o in right)}: {right[0]}, then "
            + ", then ".join(right[1:])
            + ". Clear → TLBI → free (kernel-facts 6.1-6.3): the TLBI drops every CPU's "
            "cached copy of the entry (VAALE1IS: last level; VAAE1IS for a table: all "
            "levels, since the walk cache may hold the table's address), and only then is "
            "nothing left that points at the memory being freed."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = list(self.answer(variant))
        keys = self._key_of(variant)
        pos = {keys[o]: i for i, o in enumerate(right)}
        swapped = right[:]
        a, b = pos["tlbi"], pos["free"]
        swapped[a], swapped[b] = swapped[b], swapped[a]
        return (Mistake(swapped, "tlb_order('v3')"),)


# ------------------------------------------------------------------------------------ 05b
class TlbiCountExercise(Exercise):
    """05b: how many TLBI instructions does hot-removing one memory block issue?"""

    id = "05b"
    lesson = "05"
    title = "TLB invalidations for one memory block"
    kind = "number"

    POLICIES = ("v7", "v5.7")
    CONFIGS = _REAL

    def variant(self, seed: int) -> Variant:
        config = self.CONFIGS[seed % len(self.CONFIGS)]
        policy = self.POLICIES[(seed // len(self.CONFIGS)) % 2]
        return Variant(
            self.id,
            seed,
            f"<code>{config}</code> (a real kernel layout), policy <b>{policy}</b>: one memory "
            f"block at PA {BLOCK_START:#x} is hot-added, then hot-removed. How many TLBI "
            "instructions does the removal issue in all (VAALE1IS + VAAE1IS + VMALLE1IS; a "
            "flush_tlb_all() counts as one)?",
            self.kind,
            (),
            "Count the leaf and block entries pass 1 clears in the linear map and the "
            "vmemmap, then what flush_tlb_kernel_range() does for each under this policy "
            "(per page up to MAX_TLBI_OPS pages, else a full flush; or one per block).",
            {"config": config, "policy": policy},
        )

    def answer(self, variant: Variant) -> int:
        p = variant.params
        return sum(removal_tlbi(p["config"], p["policy"]).values())

    def _other(self, variant: Variant) -> int:
        p = variant.params
        other = "v5.7" if p["policy"] == "v7" else "v7"
        return sum(removal_tlbi(p["config"], other).values())

    def check(self, variant: Variant, answer: Any) -> Feedback:
        got = self.parse(variant, answer)
        right = self.answer(variant)
        policy = variant.params["policy"]
        if got == right:
            return Feedback(
                True,
                f"Right: {right} TLBIs under {policy}, "
                + (
                    "since flush_tlb_kernel_range(addr, next) invalidates a block page by "
                    "page (or flushes everything past MAX_TLBI_OPS pages)."
                    if policy == "v7"
                    else "since from V10 one TLBI per block entry is enough: the TLB holds "
                    "one entry for a whole block."
                ),
            )
        if got == self._other(variant):
            if policy == "v7":
                return Feedback(
                    False,
                    "That is one TLBI per block, which came with V10. V7 flushes page by page: "
                    "flush_tlb_kernel_range(addr, next) over a block issues one TLBI per page "
                    "of it, or one flush_tlb_all() past MAX_TLBI_OPS pages.",
                )
            return Feedback(
                False,
                "That is V7's count. v5.7 (from V10) issues one TLBI per block entry: a block "
                "is one TLB entry, so flushing it page by page was wasted work.",
            )
        return Feedback(
            False,
            "Not that. Hint: which entries does pass 1 clear for this block (blocks or pages, "
            "linear map and vmemmap), and how many TLBIs does each get under this policy?",
        )

    def solution(self, variant: Variant) -> str:
        p = variant.params
        kinds = removal_tlbi(p["config"], p["policy"])
        parts = ", ".join(f"{n} {k.upper()}" for k, n in kinds.items() if n)
        return (
            f"{self.answer(variant)} ({parts or 'none'}), from compare_policies("
            f"'{p['config']}', blocks=[{BLOCK_START:#x}], policies=['{p['policy']}']). "
            "Up to V9 each block got flush_tlb_kernel_range(addr, next): one TLBI VAALE1IS "
            "per page, or flush_tlb_all() (VMALLE1IS) past MAX_TLBI_OPS pages; from V10 one "
            "TLBI per block; a freed table adds one VAAE1IS (kernel-facts 6.1, 6.3)."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        other = self._other(variant)
        if other == self.answer(variant):
            return ()
        says = "page by page" if variant.params["policy"] == "v7" else "one TLBI per block"
        return (Mistake(other, says),)


register(TeardownOrderExercise())
register(TlbiCountExercise())
register(VmallocSchedulerExercise())
register(AlignedExercise())
register(PinExercise())

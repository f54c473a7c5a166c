"""Lesson 06's exercises: every patch version of "arm64/mm: Enable memory hot remove" side by
side.

The series took 14 versions (kernel-facts §6.6) before V14 was merged as bbd6ec605c0f for
v5.7. mmkit models the versions whose choices differ as policies (:mod:`mmkit.policies`):
``v3`` (V3-V5: one pass under ``init_mm.page_table_lock``), ``v6`` (two passes, no lock,
``vmemmap_free()`` never frees tables), ``v7`` (as V6, but frees vmemmap tables unless
``vmalloc_vmemmap_overlap``: 4K/48 and 16K/48 on v5.4 layouts, kernel-facts §3.5) and
``v5.7`` (floor/ceiling, ``pgtable_range_aligned``, kernel-facts §6.3-6.4), plus ``naive``,
the strawman. Every answer is computed by the engine:

* ``06a`` (number): table pages a policy leaves behind after hot-adding and removing blocks
  (:func:`mmkit.mm.compare.compare_policies`, ``tables_left``).
* ``06b`` (choice): which version a changelog line belongs to. Each line (quoted from the V7
  cover letter of 3 Sep 2019 or the merged commit bbd6ec605c0f) names the policy field it
  changed; the answer is the first posted version in the registry whose field has that value.
* ``06c`` (multi): which policies are race-free against ``vmalloc()`` on a teaching layout
  (:func:`mmkit.scenarios.races.vmalloc_race`, explored with one preemption) *and* leave no
  table page on the matching real layout. Only floor/ceiling avoids both everywhere.

Engine runs are cached per distinct parameter (:mod:`mmkit.exercises._policy_runs`), so all
50 seeds of an exercise stay fast.

>>> [(o.policy, o.tables_left) for o in outcomes("arm64-4k-48", (0x400000000000,))][2:]
[('v6', 2), ('v7', 2), ('v5.7', 0)]
>>> first_version("passes", 2)
'v6'
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from mmkit import policies
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.exercises._policy_runs import (
    BUILTIN,
    CHANGELOG,
    RACE_BOUND,
    ChangelogLine,
    block_size,
    builtin_policies,
    far_block,
    first_version,
    leak_free,
    outcome,
    outcomes,
    posted_versions,
    race_free,
    v7_flagged_configs,
    v7_overlaps,
    version_label,
)
from mmkit.machine import Machine
from mmkit.mm.compare import PolicyOutcome

__all__ = [
    "BUILTIN",
    "CHANGELOG",
    "LESSON_BLOCK",
    "LESSON_CONFIG",
    "RACE_BOUND",
    "ChangelogExercise",
    "ChangelogLine",
    "PredictRowExercise",
    "SafeAndTidyExercise",
    "TablesLeftExercise",
    "far_block",
    "first_version",
    "leak_free",
    "outcomes",
    "posted_versions",
    "race_free",
    "version_label",
]

# --------------------------------------------------------------------------- 06a
_REAL = (
    "arm64-4k-39",
    "arm64-4k-48",
    "arm64-16k-36",
    "arm64-16k-47",
    "arm64-16k-48",
    "arm64-64k-42",
    "arm64-64k-48",
    "arm64-64k-52",
)
#: which blocks 06a hot-adds: one far block, two adjacent far blocks, one near boot memory
_BLOCK_CHOICES = ("one far block", "two far blocks", "one block next to boot memory")


def _blocks(config: str, choice: str) -> tuple[int, ...]:
    size = block_size(config)
    if choice == "one far block":
        return (far_block(config),)
    if choice == "two far blocks":
        return (far_block(config), far_block(config) + size)
    m = Machine(config, vmalloc_areas=0, record=False)
    end = max(base + length for base, length in m.boot_memory)
    return (-(-end // size) * size + size,)


class TablesLeftExercise(Exercise):
    """06a: how many table pages does a policy leave after hot-adding and removing blocks?"""

    id = "06a"
    lesson = "06"
    title = "Table pages left behind"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(f"06a-{seed}")
        config = _REAL[(3 * seed + 2) % len(_REAL)]
        pol = ("v7", "v6", "v5.7", "v7", "v3", "v6", "naive")[seed % 7]
        choice = _BLOCK_CHOICES[(0, 0, 0, 1, 1, 1, 2)[rng.randrange(7)]]
        blocks = _blocks(config, choice)
        where = ", ".join(hex(b) for b in blocks)
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> (a real kernel layout, Linux v5.4), hot-add {choice} "
            f"(memory block{'s' if len(blocks) > 1 else ''} at PA <code>{where}</code>), "
            f"then remove {'them' if len(blocks) > 1 else 'it'} under the <b>{pol}</b> "
            "policy. How many table pages that the hot-add allocated are still there "
            "afterwards (<code>tables_left</code>)?",
            self.kind,
            hint="Count the table pages hot-add allocated (linear map and vmemmap), then "
            "ask which of them this policy's free pass may free: V6 never frees vmemmap "
            "tables, V7 only where its overlap test does not fire, v5.7 only tables wholly "
            "inside [floor, ceiling).",
            params={"config": config, "policy": pol, "blocks": blocks, "choice": choice},
        )

    def _row(self, v: Variant) -> PolicyOutcome:
        return outcome(v.params["config"], v.params["blocks"], v.params["policy"])

    def answer(self, variant: Variant) -> int:
        return self._row(variant).tables_left

    def _v6_trap(self, v: Variant) -> int | None:
        """V6's count, when a learner who takes V7 for V6 would give it (and it is wrong)."""
        cfg = v.params["config"]
        if v.params["policy"] != "v7" or v7_overlaps(cfg):
            return None
        v6 = outcome(cfg, v.params["blocks"], "v6").tables_left
        return v6 if v6 != self.answer(v) else None

    def check(self, variant: Variant, answer: Any) -> Feedback:
        got = self.parse(variant, answer)
        row = self._row(variant)
        right = row.tables_left
        if got == right:
            return Feedback(
                True,
                f"Right: hot-add allocated {row.tables_allocated} table pages and "
                f"{row.policy} freed {row.tables_freed} of them.",
            )
        if got == self._v6_trap(variant):
            return Feedback(
                False,
                f"That is what V6 leaves. V7 frees there: its overlap test fires only on "
                f"{', '.join(v7_flagged_configs())}; on {variant.params['config']} "
                "vmemmap_free() runs free_empty_tables() again.",
            )
        if got == row.tables_allocated:
            return Feedback(
                False,
                "That is every table page hot-add allocated: the removal's free pass frees "
                "the empty ones this policy is allowed to free. Which are they?",
            )
        if got > right:
            return Feedback(
                False,
                "More than this policy leaves: some of the tables you counted are freed "
                "(empty, and in a region this policy frees tables in).",
            )
        return Feedback(
            False,
            "Fewer than this policy leaves: it skips some empty tables (which region's "
            "tables does it never or not always free?).",
        )

    def solution(self, variant: Variant) -> str:
        row = self._row(variant)
        left = ", ".join(f"{k}: {n}" for k, n in row.left_by_level_region.items()) or "none"
        return (
            f"{row.tables_left}. Hot-add allocated {row.tables_allocated} table pages; the "
            f"removal under {row.policy} freed {row.tables_freed}. Left by level/region: "
            f"{left}. (compare_policies({variant.params['config']!r}, "
            f"blocks=[{', '.join(hex(b) for b in variant.params['blocks'])}]))"
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        row = self._row(variant)
        right = row.tables_left
        out: list[Mistake] = []
        trap = self._v6_trap(variant)
        if trap is not None:
            out.append(Mistake(trap, "V7 frees there"))
        if row.tables_allocated not in (right, trap):
            out.append(Mistake(row.tables_allocated, "every table page hot-add allocated"))
        taken = {right, trap, row.tables_allocated}
        over = next(n for n in range(right + 1, right + 5) if n not in taken)
        out.append(Mistake(over, "More than"))
        if right > 0 and right - 1 not in taken:
            out.append(Mistake(right - 1, "Fewer than"))
        return out


#: The lesson's scenario: one memory block at this PA on arm64-4k-48 (06d, and the notebook).
LESSON_CONFIG = "arm64-4k-48"
LESSON_BLOCK = 0x400000000000


class PredictRowExercise(TablesLeftExercise):
    """06d: the prediction before the comparison: fill in the 4K/48 row, policy by policy
    (*New variant* moves to the next policy)."""

    id = "06d"
    title = "Predict the 4K/48 row"

    def variant(self, seed: int) -> Variant:
        order = [p for p in ("v7", "v6", "v5.7", "v3", "naive") if p in builtin_policies()]
        pol = order[seed % len(order)]
        return Variant(
            self.id,
            seed,
            f"Before you look: on <b>{LESSON_CONFIG}</b> (a real kernel layout, Linux v5.4), "
            f"hot-add the memory block at PA <code>{LESSON_BLOCK:#x}</code> and remove it "
            f"under the <b>{pol}</b> policy. How many of the table pages the hot-add "
            "allocated are left afterwards? (<i>New variant</i>: the next policy of the row.)",
            self.kind,
            hint="Hot-add maps the block twice: in the linear map (blocks, so few tables) "
            "and in the vmemmap (its struct pages). Which of those table pages may this "
            "policy's free pass free, given that V7's overlap test fires on 4K/48?",
            params={
                "config": LESSON_CONFIG,
                "policy": pol,
                "blocks": (LESSON_BLOCK,),
                "choice": "one far block",
            },
        )


# --------------------------------------------------------------------------- 06b
class ChangelogExercise(Exercise):
    """06b: which version's changelog says this?"""

    id = "06b"
    lesson = "06"
    title = "Which version made this change?"
    kind = "choice"

    def variant(self, seed: int) -> Variant:
        line = CHANGELOG[seed % len(CHANGELOG)]
        options = tuple(version_label(p) for p in posted_versions())
        return Variant(
            self.id,
            seed,
            f"From the {line.source}:<br><i>\u201c{line.quote}\u201d</i><br>Which version "
            "(mmkit policy) made this change first?",
            self.kind,
            options,
            hint="Read the policies' fields (mmkit.policies.get(name)): passes, pgtable_lock, "
            "vmemmap_tables, ptdump_hotplug_lock, boot_memory_notifier. A changelog line is "
            "where a value first appears; later versions inherit it.",
            params={"line": seed % len(CHANGELOG)},
        )

    def _line(self, v: Variant) -> ChangelogLine:
        return CHANGELOG[v.params["line"]]

    def answer(self, variant: Variant) -> str:
        line = self._line(variant)
        return version_label(str(first_version(line.field, line.value)))

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        line = self._line(variant)
        right = self.answer(variant)
        if picked == right:
            return Feedback(True, f"Right: {line.field} = {line.value!r} first appears there.")
        name = picked.split()[0]
        actual = getattr(policies.get(name), line.field)
        if line.field == "passes" and actual != line.value:
            return Feedback(
                False,
                f"{name} walked the tables once (passes = {actual}: remove_pagetable freed "
                "tables during the walk, under init_mm.page_table_lock). Two passes came "
                f"with the version that dropped that lock: that is {right.split()[0].upper()}.",
            )
        if actual != line.value:
            return Feedback(
                False,
                f"Not {name}: its policy has {line.field} = {actual!r}, so this line is not "
                "about it.",
            )
        return Feedback(
            False,
            f"{name} has {line.field} = {actual!r}, but inherited it from an earlier "
            "version: a changelog line names the version where a change first appeared.",
        )

    def solution(self, variant: Variant) -> str:
        line = self._line(variant)
        right = self.answer(variant)
        return (
            f"{right}. The line sets {line.field} = {line.value!r}; in history order the "
            f"first posted policy with that value is {right} (the line is listed under "
            f"{line.version} in the {line.source})."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        line = self._line(variant)
        right = self.answer(variant)
        out = []
        for p in posted_versions():
            label = version_label(p)
            if label == right:
                continue
            actual = getattr(policies.get(p), line.field)
            if line.field == "passes" and actual != line.value:
                out.append(Mistake(label, "that is V6"))
            elif actual != line.value:
                out.append(Mistake(label, "its policy has"))
            else:
                out.append(Mistake(label, "inherited"))
        return out


# --------------------------------------------------------------------------- 06c
#: (teaching layout for the race, real layout for the leak): the same granule and VA size
_PAIRS = (
    ("teach-4k-39", "arm64-4k-39"),
    ("teach-4k-48", "arm64-4k-48"),
    ("teach-64k-42", "arm64-64k-42"),
)


class SafeAndTidyExercise(Exercise):
    """06c: which policies neither race with vmalloc() nor leave table pages?"""

    id = "06c"
    lesson = "06"
    title = "Race-free and leak-free"
    kind = "multi"

    def variant(self, seed: int) -> Variant:
        teach, real = _PAIRS[seed % len(_PAIRS)]
        return Variant(
            self.id,
            seed,
            f"Which policies are <b>both</b> race-free against a concurrent vmalloc() on the "
            f"teaching layout <b>{teach}</b> (<code>vmalloc_race</code>: no failing schedule "
            f"with at most {RACE_BOUND} preemption) <b>and</b> leak-free on the real layout "
            f"<b>{real}</b> (no table page left after hot-adding and removing the block at "
            f"PA <code>{far_block(real):#x}</code>)?",
            self.kind,
            tuple(builtin_policies()),
            hint="Two tables: explore vmalloc_race on the teaching layout per policy, and "
            "read tables_left from compare_policies on the real one. A policy must pass both.",
            params={"teach": teach, "real": real},
        )

    def _why_not(self, v: Variant, policy: str) -> str | None:
        if not leak_free(v.params["real"], policy):
            return "leak"
        if not race_free(v.params["teach"], policy):
            return "race"
        return None

    def answer(self, variant: Variant) -> frozenset[str]:
        return frozenset(p for p in variant.options if self._why_not(variant, p) is None)

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        right = self.answer(variant)
        if picked == right:
            return Feedback(
                True,
                "Right: no trade-off is needed. Freeing only tables wholly inside [floor, "
                "ceiling) avoids both the race and the leak.",
            )
        parts = []
        leaky = sorted(p for p in picked - right if self._why_not(variant, p) == "leak")
        racy = sorted(p for p in picked - right if self._why_not(variant, p) == "race")
        if leaky:
            parts.append(
                f"{', '.join(leaky)} never races here, but check tables_left on "
                f"{variant.params['real']}: it leaves table pages behind"
            )
        if racy:
            parts.append(
                f"{', '.join(racy)} leaves nothing behind, but the explorer finds a failing "
                f"schedule on {variant.params['teach']}: freeing any empty table races"
            )
        missing = len(right - picked)
        if missing:
            parts.append(f"{missing} polic{'y' if missing == 1 else 'ies'} passing both missing")
        return Feedback(False, "Not yet: " + "; ".join(parts) + ".")

    def solution(self, variant: Variant) -> str:
        right = self.answer(variant)
        notes = []
        for p in variant.options:
            why = self._why_not(variant, p)
            if why == "leak":
                notes.append(f"{p} leaks on {variant.params['real']}")
            elif why == "race":
                notes.append(f"{p} races on {variant.params['teach']}")
        return f"{', '.join(sorted(right)) or 'no policy'}. " + "; ".join(notes) + "."

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = self.answer(variant)
        out = []
        for p in variant.options:
            why = self._why_not(variant, p)
            if why == "leak":
                out.append(Mistake(right | {p}, "check tables_left"))
            elif why == "race":
                out.append(Mistake(right | {p}, "failing schedule"))
        if right:
            out.append(Mistake(set(sorted(right)[1:]), "missing"))
        return out


register(TablesLeftExercise())
register(ChangelogExercise())
register(SafeAndTidyExercise())
register(PredictRowExercise())

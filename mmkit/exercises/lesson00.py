"""Lesson 00's exercises: which configurations does V7's vmalloc/vmemmap overlap test flag?

V7 3/3's ``find_vmalloc_vmemmap_overlap()`` skipped freeing vmemmap table pages where the end
of the vmalloc area and the start of the vmemmap fall in one PGD entry. The cover letter names
4K/48 and 16K/48 for the v5.4 layout; the author's reply of 13 Sep 2019 explains that before
the 52-bit VA series (v5.3's layout) only 16K/48 did. The checker computes the flagged set
from each era's layout (:attr:`mmkit.arch.arm64.Arm64Descriptor.vmalloc_vmemmap_overlap`).

>>> sorted(v7_flagged())
['arm64-16k-48', 'arm64-4k-48']
"""

from __future__ import annotations

import html
import random
from collections.abc import Iterable, Sequence
from typing import Any

from mmkit import arch
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.exercises import _lesson00_series as series

__all__ = [
    "PatchSymptomExercise",
    "SeriesOrderExercise",
    "V7OverlapExercise",
    "change_version",
    "check_v7_answer",
    "v7_candidates",
    "v7_flagged",
]

_DEFAULT_KERNEL = "v5.4"


def v7_candidates(kernel: str = _DEFAULT_KERNEL) -> list[str]:
    """The configurations the V7 test applies to: those with an overlap report in ``kernel``'s
    layout (arm64's; a plugin's family without one is no candidate, nor is a teaching
    layout, which is not a kernel's).

    >>> v7_candidates()[:3]
    ['arm64-4k-39', 'arm64-4k-48', 'arm64-16k-36']
    """
    return [
        str(row["name"])
        for row in arch.config_rows(kernel=kernel)
        if row.get("v7_overlap") is not None and not row.get("teaching")
    ]


def v7_flagged(kernel: str = _DEFAULT_KERNEL) -> frozenset[str]:
    """The configurations whose layout the V7 test flags as overlapping, per the engine.

    >>> sorted(v7_flagged())
    ['arm64-16k-48', 'arm64-4k-48']
    """
    return frozenset(
        str(row["name"])
        for row in arch.config_rows(kernel=kernel)
        if row.get("v7_overlap") and not row.get("teaching")
    )


def check_v7_answer(answer: Iterable[str], kernel: str = _DEFAULT_KERNEL) -> Feedback:
    """Check "which configurations does the V7 test flag?" against the engine.

    The feedback says how many picks are wrong and how many are missing, with a hint, but
    does not give the answer away.

    >>> check_v7_answer(["arm64-4k-48"]).message.split(";")[0]
    'Not yet: you found 1 of 2'
    >>> check_v7_answer({"arm64-4k-48", "arm64-16k-48"}).correct
    True
    """
    picked = set(answer)
    unknown = sorted(picked - set(v7_candidates(kernel)))
    if unknown:
        return Feedback(False, f"Not configurations the V7 test applies to: {', '.join(unknown)}.")
    expected = v7_flagged(kernel)
    if picked == expected:
        return Feedback(
            True,
            f"Right: with the {kernel} layout the V7 test flags "
            f"{', '.join(sorted(expected)) or 'no configuration'}. The gap is about PUD_SIZE "
            "wide; only where that is much smaller than PGDIR_SIZE (4 levels) can both of its "
            "edges land in one PGD entry, and whether they do depends on where the layout puts "
            "them.",
        )
    folded = sorted(
        str(row["name"])
        for row in arch.config_rows(kernel=kernel)
        if row["name"] in picked - expected and (row.get("levels") or 4) < 4
    )
    found = len(picked & expected)
    parts = [f"you found {found} of {len(expected)}"]
    wrong, missing = len(picked - expected), len(expected - picked)
    if wrong:
        parts.append(f"{wrong} of your picks {'is' if wrong == 1 else 'are'} not flagged")
    if missing:
        s = "" if missing == 1 else "s"
        parts.append(
            f"{missing} flagged configuration{s} {'is' if missing == 1 else 'are'} missing"
        )
    why = (
        f" {', '.join(folded)}: with fewer than 4 levels the PUD is folded, PUD_SIZE = "
        "PGDIR_SIZE, so the gap is about one PGD entry wide and its edges fall in two."
        if folded
        else ""
    )
    return Feedback(
        False,
        "Not yet: " + "; ".join(parts) + "." + why + " Hint: compare PGDIR_SHIFT with the "
        "size of the gap (about PUD_SIZE).",
    )


class V7OverlapExercise(Exercise):
    """00a: tick the configurations the V7 test flags, in the era the seed picks."""

    id = "00a"
    lesson = "00"
    title = "Which configurations does the V7 overlap test flag?"
    kind = "multi"

    def variant(self, seed: int) -> Variant:
        kernel = ("v5.4", "v5.3")[seed % 2]
        return Variant(
            self.id,
            seed,
            f"With the <b>Linux {kernel}</b> kernel VA layout, which configurations does V7's "
            "vmalloc/vmemmap overlap test flag (both edges of the gap in one PGD entry)?",
            self.kind,
            tuple(v7_candidates(kernel)),
            "Compare PGDIR_SHIFT with the size of the gap between the end of vmalloc and "
            "the start of the vmemmap (about PUD_SIZE): where a PGD entry is no wider than "
            "the gap, its two edges cannot share one.",
            {"kernel": kernel},
        )

    def answer(self, variant: Variant) -> frozenset[str]:
        return v7_flagged(variant.params["kernel"])

    def check(self, variant: Variant, answer: Any) -> Feedback:
        return check_v7_answer(self.parse(variant, answer), variant.params["kernel"])

    def solution(self, variant: Variant) -> str:
        kernel = variant.params["kernel"]
        flagged = sorted(self.answer(variant))
        which = (
            "these are the 4-level configurations"
            if len(flagged) > 1
            else "this is the 4-level configuration"
        )
        return (
            f"{', '.join(flagged)}. In the {kernel} layout {which} whose gap between "
            "VMALLOC_END and VMEMMAP_START starts and ends in the same PGD entry. "
            "With 2 or 3 levels the PUD is folded (PUD_SIZE = PGDIR_SIZE): "
            "the gap, about PUD_SIZE wide, spans a whole PGD entry and its edges fall in two. "
            "With 4 levels the gap is far narrower than a PGD entry, and the layout decides "
            "whether its edges share one."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        flagged = sorted(self.answer(variant))
        others = [c for c in variant.options if c not in flagged]
        kernel = variant.params["kernel"]
        levels = {str(r["name"]): r.get("levels") for r in arch.config_rows(kernel=kernel)}
        folded = [c for c in others if (levels.get(c) or 4) < 4]
        return (
            Mistake([], "Not yet: you found 0"),
            Mistake(flagged[:1] + others[:1], "is not flagged"),
            Mistake(flagged[:-1], "missing"),
            Mistake([*flagged, *folded[:1]], "PUD_SIZE = PGDIR_SIZE"),
        )


register(V7OverlapExercise())


# ----------------------------------------------------------------------------- 00b
_NONE = "nothing: it only tidies up the code"


class PatchSymptomExercise(Exercise):
    """00b: one patch of V7 left out of a merged kernel; which symptom comes back?

    The seed picks the patch and the order of the symptoms. The checker runs the three
    scenarios with that patch left out (:func:`mmkit.exercises._lesson00_series.broken_by`).
    """

    id = "00b"
    lesson = "00"
    title = "Which failure does each patch prevent?"
    kind = "choice"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(f"00b-{seed}")
        patch = series.PATCHES[seed % 3]
        options = [series.SYMPTOMS[s][0] for s in series.SCENARIOS] + [_NONE]
        rng.shuffle(options)
        return Variant(
            self.id,
            seed,
            f"Take the merged kernel and leave out <b>patch {patch.number}/3</b> of V7, "
            f"<code>{html.escape(patch.title)}</code>. What goes wrong?",
            self.kind,
            tuple(options),
            "Ask of each failure: does it need two threads at once, and if so, which "
            "thread reads table pages without taking the lock this patch adds?",
            {"patch": patch.number},
        )

    def answer(self, variant: Variant) -> str:
        broken = series.broken_by(variant.params["patch"])
        return series.SYMPTOMS[broken[0]][0] if broken else _NONE

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        number = variant.params["patch"]
        if picked == self.answer(variant):
            broken = ", ".join(series.broken_by(number))
            return Feedback(
                True,
                f"Right: with patch {number}/3 left out the engine's {broken} scenario fails; "
                "with all three patches it runs clean.",
            )
        scenario = next((s for s, (text, _) in series.SYMPTOMS.items() if text == picked), None)
        if scenario is None:
            return Feedback(
                False,
                "Every patch of the series prevents a failure the engine can show: none is "
                "a tidy-up. Think of what hot-remove frees or forgets.",
            )
        if scenario == "memblock_order":
            return Feedback(
                False,
                "That BUG needs no race: one thread removes the memory and adds it again, and "
                "no lock can change that order. Which failure needs two threads?",
            )
        if number == 1:
            return Feedback(
                False,
                "Patch 1/3 touches no page table: it changes when memblock forgets the "
                "range, relative to the sysfs links. What does a later hot-add find?",
            )
        if scenario == "ptdump_race":
            return Feedback(
                False,
                "ptdump is kept safe by patch 2/3's lock, which is still in this kernel. "
                "What else walks kernel table pages without taking it?",
            )
        return Feedback(
            False,
            "vmalloc() takes no hotplug lock, so patch 2/3's lock cannot protect it; that "
            "is patch 3/3's job. Who takes the lock this patch adds?",
        )

    def solution(self, variant: Variant) -> str:
        number = variant.params["patch"]
        patch = series.PATCHES[number - 1]
        broken = series.broken_by(number)
        where = ", ".join(f"{s} on {series.SCENARIOS[s]}" for s in broken)
        return (
            f"{self.answer(variant)}. Patch {number}/3 protects {patch.protects}. Left out, "
            f"{where} fails; with all three patches it runs clean. The kernel says: "
            f"{series.report(broken[0], number).splitlines()[0]}"
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        number = variant.params["patch"]
        text = {s: t for s, (t, _) in series.SYMPTOMS.items()}
        out = [Mistake(_NONE, "none is a tidy-up")]
        if number != 1:
            out.append(Mistake(text["memblock_order"], "That BUG needs no race"))
        if number == 1:
            out.append(Mistake(text["ptdump_race"], "touches no page table"))
        if number == 2:
            out.append(Mistake(text["vmalloc_race"], "vmalloc() takes no hotplug lock"))
        if number == 3:
            out.append(Mistake(text["ptdump_race"], "patch 2/3's lock"))
        return out


# ----------------------------------------------------------------------------- 00c
_LATER = {
    "V8": "V8 replaced V7's flag: floor/ceiling works in every layout, so no flag is needed",
    "V7": "V7 refined V6: V6 never freed vmemmap tables, V7 freed them where its flag allowed",
    "V6": "V6 rewrote V3's single pass: two passes, and no kernel page table lock",
}


class SeriesOrderExercise(Exercise):
    """00c: put four changes of the series in the order of the versions that made them.

    The seed picks one change of each of V3, V6, V7 and V8 and shuffles them; the checker
    reads each change's version from the policy registry
    (:func:`mmkit.exercises._lesson00_series.change_version`).
    """

    id = "00c"
    lesson = "00"
    title = "In which order did the series change?"
    kind = "order"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(f"00c-{seed}")
        by_version: dict[str, list[str]] = {}
        for change in series.CHANGES:
            by_version.setdefault(change_version(change), []).append(change.text)
        picked = [rng.choice(texts) for _, texts in sorted(by_version.items())]
        rng.shuffle(picked)
        return Variant(
            self.id,
            seed,
            "The series was posted 14 times before it was merged. Put these four changes "
            "in the order the versions that made them were posted (give the letters, "
            "earliest first, e.g. <code>C A D B</code>).",
            self.kind,
            tuple(picked),
            "V3 was modelled on x86 (one pass, one big lock); V6 split the work in two; V7 and "
            "V8 are about which vmemmap tables may be freed.",
        )

    def _version(self, text: str) -> str:
        change = next(c for c in series.CHANGES if c.text == text)
        return change_version(change)

    def answer(self, variant: Variant) -> tuple[str, ...]:
        return tuple(sorted(variant.options, key=lambda t: series.version_rank(self._version(t))))

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        right = self.answer(variant)
        if tuple(picked) == right:
            return Feedback(True, "Right: each change is in the version the registry gives it.")
        if sorted(picked) != sorted(right):
            return Feedback(False, "Give each of the four changes once.")
        for got, want in zip(picked, right, strict=False):
            if got != want:
                return Feedback(False, f"Not yet. {_LATER[self._version(got)]}.")
        raise AssertionError("unreachable")  # pragma: no cover

    def solution(self, variant: Variant) -> str:
        lines = []
        for text in self.answer(variant):
            version, policy = series.change_version(
                next(c for c in series.CHANGES if c.text == text)
            )
            lines.append(f"{version} (policy {policy.name!r}): {text}")
        return "; ".join(lines) + "."

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = list(self.answer(variant))
        swap_late = [*right[:2], right[3], right[2]]
        swap_early = [right[1], right[0], *right[2:]]
        return (
            Mistake(swap_late, "V8 replaced V7's flag"),
            Mistake(list(reversed(right)), "V8 replaced V7's flag"),
            Mistake(swap_early, "V6 rewrote V3's single pass"),
        )


def change_version(change: series.Change) -> str:
    """The first posted version with ``change``, from the policy registry.

    >>> change_version(series.CHANGES[0])
    'V3'
    """
    return series.change_version(change)[0]


register(PatchSymptomExercise())
register(SeriesOrderExercise())

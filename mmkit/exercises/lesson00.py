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

from collections.abc import Iterable, Sequence
from typing import Any

from mmkit import arch
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register

__all__ = ["V7OverlapExercise", "check_v7_answer", "v7_candidates", "v7_flagged"]

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
    return Feedback(
        False,
        "Not yet: " + "; ".join(parts) + ". Hint: compare PGDIR_SHIFT with the size of the gap "
        "(about PUD_SIZE).",
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
            "the start of the vmemmap (about PUD_SIZE): with 2 or 3 levels a PGD entry is "
            "huge, with 4 levels it is not.",
            {"kernel": kernel},
        )

    def answer(self, variant: Variant) -> frozenset[str]:
        return v7_flagged(variant.params["kernel"])

    def check(self, variant: Variant, answer: Any) -> Feedback:
        return check_v7_answer(self.parse(variant, answer), variant.params["kernel"])

    def solution(self, variant: Variant) -> str:
        kernel = variant.params["kernel"]
        flagged = sorted(self.answer(variant))
        return (
            f"{', '.join(flagged)}. In the {kernel} layout these are the 4-level "
            "configurations whose gap between VMALLOC_END and VMEMMAP_START starts and ends in "
            "the same PGD entry; elsewhere a PGD entry is either far larger than anything the "
            "gap could reach across (2 and 3 levels) or the edges fall in two entries."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        flagged = sorted(self.answer(variant))
        others = [c for c in variant.options if c not in flagged]
        return (
            Mistake([], "Not yet: you found 0"),
            Mistake(flagged[:1] + others[:1], "is not flagged"),
            Mistake(flagged[:-1], "missing"),
        )


register(V7OverlapExercise())

"""Lesson 03's exercises: patch 1/3, the memblock removal order and the BUG on re-add.

Kernel-facts 4.1 and 4.2. In v5.1-v5.3, ``try_remove_memory()`` called ``memblock_free()``
and ``memblock_remove()`` before ``remove_memory_block_devices()``; v5.3's
``unregister_memory_block_under_nodes()`` found the block's node through
``get_nid_for_pfn()``, which on arm64 (``HOLES_IN_ZONE``: ``pfn_valid_within()`` is
``pfn_valid()``, and arm64's ``pfn_valid()`` asks ``memblock_is_map_memory()``) returned -1
once the range had left memblock. The node's links stayed, and the next hot-add of the range
hit ``BUG_ON(ret)`` after ``link_mem_sections()`` returned ``-EEXIST``. Two fixes: commit
60bb462fc7ad (v5.4) unlinks by the block's stored nid, commit 32d1fe8fcb32 (v5.5) removes
memblock last, "in reverse order as they were added".

* **03a** orders ``try_remove_memory()``'s calls for v5.3 or v5.7, checked against the order
  an engine run of the scenario takes them (:func:`remove_order`).
* **03b** asks for the frame of :func:`mmkit.scenarios.memblock_order.memblock_order` after
  which the BUG is inevitable: the first where ``pfn_valid()`` is false while the block's
  links are still there (:func:`fatal_frame`).
* **03c** asks which change alone prevents the BUG, checked by re-running the scenario per
  change where the engine models it (:func:`change_fixes`).

>>> remove_order("v5.3")[:4]
('mem_hotplug_begin()', 'firmware_map_remove()', 'memblock_free()', 'memblock_remove()')
>>> fatal_frame("arm64-4k-48") < bug_frame("arm64-4k-48")
True
>>> sorted(c for c in CHANGES if change_fixes(c))
['nid', 'reorder']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.scenarios.memblock_order import Frame, MemblockOrderScenario, memblock_order

__all__ = [
    "CHANGES",
    "FRAME_CONFIGS",
    "REMOVE_CALLS",
    "FatalFrameExercise",
    "RemoveOrderExercise",
    "WhichFixExercise",
    "bug_frame",
    "change_fixes",
    "fatal_frame",
    "frames",
    "remove_order",
]

_Pred = Callable[[Step], bool]

#: ``try_remove_memory()``'s calls (kernel-facts 4.2): label -> how to recognise it in a run.
REMOVE_CALLS: dict[str, _Pred] = {
    "mem_hotplug_begin()": lambda s: s.action == "lock" and s.function == "try_remove_memory",
    "firmware_map_remove()": lambda s: "firmware_map_remove" in s.line,
    "memblock_free()": lambda s: s.action == "memblock" and "memblock_free" in s.line,
    "memblock_remove()": lambda s: s.action == "memblock" and "memblock_remove" in s.line,
    "remove_memory_block_devices()": lambda s: (
        s.function in ("unregister_memory_block_under_nodes", "remove_memory_block_devices")
    ),
    "arch_remove_memory()": lambda s: s.function == "arch_remove_memory",
    "__release_memory_resource()": lambda s: "__release_memory_resource" in s.line,
    "try_offline_node()": lambda s: "try_offline_node" in s.line,
    "mem_hotplug_done()": lambda s: s.action == "unlock" and s.function == "try_remove_memory",
}

#: The configurations 03b asks about (the lesson's widget shows arm64-4k-48).
FRAME_CONFIGS: tuple[str, ...] = ("arm64-4k-39", "arm64-64k-42", "arm64-64k-48", "arm64-64k-52")

#: 03c's candidate changes: key -> what the learner reads.
CHANGES: dict[str, str] = {
    "nid": "unlink by the nid stored in the memory block",
    "reorder": "memblock_free()/memblock_remove() after arch_remove_memory()",
    "ptdump": "ptdump takes get_online_mems() around its walk",
    "warn": "a WARN_ON() when get_nid_for_pfn() returns -1",
}


# ------------------------------------------------------------------------- engine
@cache
def frames(kernel: str = "v5.3", config: str = "arm64-4k-48") -> tuple[Frame, ...]:
    """Every frame of the add / offline / remove / add-again scenario (cached)."""
    return tuple(memblock_order(kernel, config).run())


@cache
def remove_order(kernel: str) -> tuple[str, ...]:
    """The :data:`REMOVE_CALLS` in the order the scenario's ``remove_memory()`` takes them
    on ``kernel``."""
    steps = [f.step for f in frames(kernel) if f.operation == "remove"]
    first = {}
    for label, pred in REMOVE_CALLS.items():
        idx = next((i for i, s in enumerate(steps) if pred(s)), None)
        if idx is None:
            raise AssertionError(f"remove_memory() on {kernel} took no {label} step")
        first[label] = idx
    return tuple(sorted(first, key=first.__getitem__))


def fatal_frame(config: str = "arm64-4k-48", kernel: str = "v5.3") -> int:
    """Index of the first frame where ``pfn_valid()`` of the block's first pfn is false while
    the block's sysfs links are still there (raises if there is none: a fixed kernel)."""
    for i, f in enumerate(frames(kernel, config)):
        if not f.pfn_valid and f.links:
            return i
    raise InvalidArgument(f"{kernel} on {config}: the links never outlive pfn_valid()")


def bug_frame(config: str = "arm64-4k-48", kernel: str = "v5.3") -> int:
    """Index of the frame whose step raised the kernel BUG."""
    return next(i for i, f in enumerate(frames(kernel, config)) if f.event)


def _bugs(kernel: str, policy: str = "v5.7") -> bool:
    return any(f.event for f in MemblockOrderScenario(kernel, "arm64-4k-48", policy).run())


@cache
def change_fixes(change: str) -> bool:
    """Whether ``change`` alone keeps the re-add from hitting the BUG, per the engine:

    * ``nid``: v5.4 keeps v5.3's order but unlinks by the stored nid: run it.
    * ``reorder``: v5.5 reorders (and also has the stored nid), so the run alone would not
      isolate the reorder; instead read v5.5's run at its unlink steps: ``get_nid_for_pfn()``
      still finds the node there, so v5.3's pfn walk would have removed the links too.
    * ``ptdump``: run v5.3 under a policy whose ptdump takes the lock and one whose ptdump
      does not: the BUG comes either way (no ptdump runs; the lock changes no link).
    * ``warn``: a warning changes no state; v5.3's run still has the links after the
      removal, so the re-add still finds them.
    """
    if change == "nid":
        return not _bugs("v5.4") and _bugs("v5.3")
    if change == "reorder":
        unlink = [
            f
            for f in frames("v5.5")
            if f.operation == "remove" and f.step.function == "unregister_memory_block_under_nodes"
        ]
        return bool(unlink) and all(f.pfn_valid and f.nid_for_pfn >= 0 for f in unlink)
    if change == "ptdump":
        return not (_bugs("v5.3", "v5.7") or _bugs("v5.3", "naive"))
    if change == "warn":
        removed = [f for f in frames("v5.3") if f.operation == "remove"]
        return not removed[-1].links
    raise InvalidArgument(f"no change {change!r}", choices=list(CHANGES))


# ----------------------------------------------------------------------- exercises
class RemoveOrderExercise(Exercise):
    """03a: the order of ``try_remove_memory()``'s calls in v5.3 or v5.7."""

    id = "03a"
    lesson = "03"
    title = "try_remove_memory(), then and now"
    kind = "order"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(seed)
        kernel = ("v5.3", "v5.7")[seed % 2]
        options = list(REMOVE_CALLS)
        rng.shuffle(options)
        return Variant(
            self.id,
            seed,
            f"In <b>Linux {kernel}</b>, in which order does <code>try_remove_memory()</code> "
            "make these calls (all memory blocks of the range are offline already)? Give all "
            "the letters.",
            self.kind,
            tuple(options),
            hint="The lock brackets the work. Then ask: what must still be in memblock "
            "when the node links are removed, and did this kernel know that?",
            params={"kernel": kernel},
        )

    def parse(self, variant: Variant, answer: Any) -> Any:
        got = super().parse(variant, answer)
        if not got:
            raise InvalidArgument("type the letters of the lines first, e.g. 'C A B'")
        return got

    def answer(self, variant: Variant) -> tuple[str, ...]:
        return remove_order(variant.params["kernel"])

    def check(self, variant: Variant, answer: Any) -> Feedback:
        kernel = variant.params["kernel"]
        got = tuple(answer)
        right = self.answer(variant)
        if sorted(got) != sorted(right):
            return Feedback(False, f"Give each of the {len(right)} lines exactly once.")
        if got == right:
            return Feedback(True, f"Right: that is {kernel}'s order, as the engine runs it.")
        pos = {x: i for i, x in enumerate(got)}
        memblock_first = pos["memblock_remove()"] < pos["remove_memory_block_devices()"]
        if kernel != "v5.3" and memblock_first:
            return Feedback(
                False,
                "Memblock first: that is v5.3's order, the one patch 1/3 changed. Since "
                "v5.5 memblock is removed last, in reverse order of the add.",
            )
        if kernel == "v5.3" and not memblock_first:
            return Feedback(
                False,
                "That is the fixed order (v5.5 on): in v5.3 memblock_free() and "
                "memblock_remove() still ran before the devices were removed.",
            )
        first_bad = next(i for i, (a, b) in enumerate(zip(got, right, strict=True)) if a != b)
        return Feedback(
            False,
            f"Not yet: the first {first_bad} line(s) are in place, then the order goes wrong.",
        )

    def solution(self, variant: Variant) -> str:
        kernel = variant.params["kernel"]
        letters = {o: chr(ord("A") + i) for i, o in enumerate(variant.options)}
        why = (
            "memblock goes before the devices: the old order that leaves the node links"
            if kernel == "v5.3"
            else "the devices go first, memblock last (32d1fe8fcb32), and since v5.7 the "
            "devices are removed before mem_hotplug_begin()"
        )
        return (
            " → ".join(f"{letters[x]} {x}" for x in self.answer(variant))
            + f". In {kernel}, {why} (kernel-facts 4.2)."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        kernel = variant.params["kernel"]
        other = remove_order("v5.7" if kernel == "v5.3" else "v5.3")
        says = "fixed order" if kernel == "v5.3" else "that is v5.3's order"
        return (Mistake(list(other), says), Mistake(list(variant.options[:-1]), "exactly once"))


class FatalFrameExercise(Exercise):
    """03b: the frame after which the BUG on re-add is inevitable."""

    id = "03b"
    lesson = "03"
    title = "The frame that makes the BUG inevitable"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config = FRAME_CONFIGS[seed % len(FRAME_CONFIGS)]
        n = len(frames("v5.3", config))
        return Variant(
            self.id,
            seed,
            f"Run the patch 1/3 scenario on <b>Linux v5.3, {config}</b> "
            f'(<code>MemblockOrder("v5.3", config="{config}")</code>, or '
            f'<code>memblock_order("v5.3", "{config}").run()</code>: {n} frames). '
            "The BUG is reported at the re-add, but after which frame was it already "
            "inevitable? Give that frame's index (the <b>Frame</b> slider's value, counting "
            "from 0).",
            self.kind,
            hint="Watch two things at each frame: pfn_valid() of the block's first pfn, and "
            "the block's sysfs links. When does the first one turn false while the second is "
            "still there?",
            params={"config": config},
        )

    def answer(self, variant: Variant) -> int:
        return fatal_frame(variant.params["config"])

    def check(self, variant: Variant, answer: Any) -> Feedback:
        config = variant.params["config"]
        right = fatal_frame(config)
        fr = frames("v5.3", config)
        if answer == right:
            return Feedback(
                True,
                f"Right: frame {right}, {fr[right].step.line}. From here pfn_valid() says no, "
                "so the unlink that follows finds no node and the links survive the removal.",
            )
        if not isinstance(answer, int) or not 0 <= answer < len(fr):
            return Feedback(False, f"The frames are numbered 0 to {len(fr) - 1}.")
        if answer == bug_frame(config) or fr[answer].operation == "add again":
            return Feedback(
                False,
                "The BUG is reported there, caused earlier: by the re-add the link "
                "was already stale. Go back into the removal.",
            )
        if answer == right + 1:
            return Feedback(
                False,
                "Close: at that frame get_nid_for_pfn() reads the damage (or you counted "
                "from 1; the slider counts from 0). Which step made pfn_valid() false?",
            )
        if answer < right and "memblock_free" in fr[answer].step.line:
            return Feedback(
                False,
                "Not yet: memblock_free() only drops the range from memblock.reserved; "
                "pfn_valid() asks memblock.memory. Look one step further.",
            )
        if answer < right:
            return Feedback(False, "Too early: here pfn_valid() is still true.")
        return Feedback(
            False,
            "Too late: the links already outlived pfn_valid() before this frame; find the "
            "first such frame.",
        )

    def solution(self, variant: Variant) -> str:
        config = variant.params["config"]
        right = fatal_frame(config)
        fr = frames("v5.3", config)
        return (
            f"{right}: {fr[right].step.function}: {fr[right].step.line}. After it "
            "memblock_is_map_memory() is false for the block, so arm64's pfn_valid() is "
            "false, get_nid_for_pfn() returns -1, unregister_memory_block_under_nodes() "
            f"removes no link, and the re-add's link_mem_sections() gets -EEXIST (frame "
            f"{bug_frame(config)}: BUG_ON)."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        config = variant.params["config"]
        right = fatal_frame(config)
        return (
            Mistake(bug_frame(config), "reported there, caused earlier"),
            Mistake(right + 1, "counts from 0"),
            Mistake(right - 1, "memblock.memory"),
        )


class WhichFixExercise(Exercise):
    """03c: which changes, each alone, prevent the BUG on re-add?"""

    id = "03c"
    lesson = "03"
    title = "Which change alone fixes it?"
    kind = "multi"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(seed)
        keys = list(CHANGES)
        rng.shuffle(keys)
        return Variant(
            self.id,
            seed,
            "Starting from v5.3's hot-remove, which of these changes <b>each alone</b> keeps "
            "the re-add of the same range from hitting <code>BUG_ON(-EEXIST)</code>? Tick all "
            "that do.",
            self.kind,
            tuple(CHANGES[k] for k in keys),
            hint="The BUG needs a stale nodeN/memoryM link. Which changes make the unlink "
            "find the node, and which only report, or guard something else?",
            params={"keys": tuple(keys)},
        )

    def _key(self, label: str) -> str:
        return next(k for k, v in CHANGES.items() if v == label)

    def answer(self, variant: Variant) -> frozenset[str]:
        return frozenset(CHANGES[k] for k in CHANGES if change_fixes(k))

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = {self._key(x) for x in answer}
        right = {self._key(x) for x in self.answer(variant)}
        if picked == right:
            return Feedback(
                True,
                "Right: either fix lets the unlink find the node (one by never asking "
                "pfn_valid(), the other by asking while memblock still has the range).",
            )
        if "warn" in picked:
            return Feedback(
                False,
                "A WARN_ON() only reports: it hides the stale link behind a splat and "
                "removes nothing, so the re-add still finds it.",
            )
        if "ptdump" in picked:
            return Feedback(
                False,
                "The ptdump lock is patch 2/3: it keeps ptdump out of freed page tables "
                "and touches no sysfs link. The scenario BUGs with or without it.",
            )
        missing = len(right - picked)
        return Feedback(
            False,
            f"Not yet: {missing} more change{'s' if missing > 1 else ''} would fix it alone."
            if missing
            else "Not yet.",
        )

    def solution(self, variant: Variant) -> str:
        return (
            ", ".join(sorted(self.answer(variant)))
            + ". In the kernel: the stored nid is 60bb462fc7ad (v5.4), the reorder "
            "32d1fe8fcb32 (v5.5). Engine runs: v5.4 keeps the old order but unlinks by the "
            "stored nid, and no BUG comes; in v5.5's run get_nid_for_pfn() still finds node 0 "
            "at the unlink, "
            "because memblock goes last; v5.3 BUGs whether ptdump takes the lock or not; and "
            "after v5.3's removal the link is still there, which a WARN_ON would only report."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = sorted(self.answer(variant))
        return (
            Mistake([*right, CHANGES["warn"]], "it hides the stale link"),
            Mistake([CHANGES["ptdump"]], "patch 2/3"),
            Mistake(right[:1], "1 more change"),
        )


register(RemoveOrderExercise())
register(FatalFrameExercise())
register(WhichFixExercise())

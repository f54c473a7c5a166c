"""Lesson 07's exercises: write a hotplug policy of your own and put it through the engine.

A policy is data (:class:`mmkit.policies.HotplugPolicy`): every field is a decision some
version of the series made (:data:`mmkit.policies.base.DECISIONS`). These exercises have the
learner read, break and write one. Every answer comes from the engine:

* ``07a`` (multi): a copy of v5.7 with one decision changed; which of the three races
  (:mod:`mmkit.scenarios.races`: ptdump, TLB order, vmalloc on a teaching layout) now has a
  failing schedule within :data:`BOUND` preemptions? Some changes break nothing: they cost
  TLBIs or leave tables, which is slower or untidy, not wrong.
* ``07b`` (text or object): a policy of the learner's own (a registered name or the object)
  that no schedule of the vmalloc race breaks on a teaching layout and that leaves fewer
  table pages than V7 after a hot-add and hot-remove on ``arm64-4k-48``.
* ``07c`` (choice): where the vmalloc race of a policy shows, on a real layout and on its
  teaching twin: a policy that is clean only because a layout pins the shared table is not
  safe.

Engine runs are cached per distinct parameter, so 50 seeds of an exercise stay fast.

>>> sorted(failing_races(flipped("ptdump_hotplug_lock", False)))
['ptdump_race']
>>> sorted(failing_races(flipped("block_tlbi", "range")))
[]
"""

from __future__ import annotations

import dataclasses
import functools
import html
from collections.abc import Callable, Sequence
from typing import Any

from mmkit import policies
from mmkit.errors import InvalidArgument, MmkitError
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.exercises._policy_runs import BUILTIN
from mmkit.policies import HotplugPolicy, PolicyLike
from mmkit.policies.base import check_decisions
from mmkit.scenarios.races import Race, ptdump_race, tlb_order, vmalloc_race

__all__ = [
    "BOUND",
    "FLIPS",
    "LEAK_BLOCK",
    "LEAK_CONFIG",
    "RACES",
    "BuildPolicyExercise",
    "LatentRaceExercise",
    "SpotTheBugExercise",
    "failing_races",
    "flipped",
    "tables_left",
]

#: Preemption bound of the race checks in this lesson.
BOUND = 2

#: The three races, by the name a learner picks, with the configuration each runs on.
RACES: dict[str, tuple[str, Callable[[str, Any], Race]]] = {
    "ptdump_race": ("arm64-4k-48", lambda c, p: ptdump_race(c, p)),
    "tlb_order": ("arm64-4k-48", lambda c, p: tlb_order(p, c)),
    "vmalloc_race": ("teach-4k-39", lambda c, p: vmalloc_race(c, p)),
}

_NONE = "none of them"

#: The one-field changes of v5.7 that 07a asks about: ``(field, value)``.
#: (The lesson works ``ptdump_hotplug_lock=False`` through on screen, so it is not asked.)
FLIPS: tuple[tuple[str, Any], ...] = (
    ("vmemmap_tables", "always"),
    ("block_tlbi", "none"),
    ("passes", 1),
    ("block_tlbi", "range"),
    ("vmemmap_tables", "never"),
    ("pgtable_lock", True),
)

#: Where 07b counts the table pages a policy leaves: a real layout, one far memory block.
LEAK_CONFIG, LEAK_BLOCK = "arm64-4k-48", 0x4000_0000_0000


def flipped(field: str, value: Any) -> HotplugPolicy:
    """v5.7 with ``field`` set to ``value``, named after the change."""
    base = policies.get("v5.7")
    if not isinstance(base, HotplugPolicy):
        raise InvalidArgument("v5.7 is not a HotplugPolicy: another plugin shadows it")
    return dataclasses.replace(
        base,
        name=f"v5.7-{field}-{value}".lower(),
        description=f"v5.7 with {field}={value!r}",
        **{field: value},
    )


@functools.cache
def _race_found(race: str, policy: HotplugPolicy, bound: int, config: str | None = None) -> bool:
    default_config, make = RACES[race]
    return make(config or default_config, policy).explore(bound=bound).found


def failing_races(policy: HotplugPolicy, bound: int = BOUND) -> frozenset[str]:
    """The races of :data:`RACES` in which the explorer finds a failing schedule."""
    return frozenset(r for r in RACES if _race_found(r, policy, bound))


@functools.cache
def tables_left(policy: HotplugPolicy) -> int:
    """Table pages ``policy`` leaves after hot-adding and removing :data:`LEAK_BLOCK`."""
    from mmkit.mm.compare import compare_policies

    (row,) = compare_policies(LEAK_CONFIG, blocks=[LEAK_BLOCK], policies=[policy])  # type: ignore[list-item]
    return row.tables_left


# --------------------------------------------------------------------------- 07a
class SpotTheBugExercise(Exercise):
    """07a: one field of v5.7 changed; which races break?"""

    id = "07a"
    lesson = "07"
    title = "Spot the bug: one decision changed"
    kind = "multi"

    def variant(self, seed: int) -> Variant:
        field, value = FLIPS[seed % len(FLIPS)]
        return Variant(
            self.id,
            seed,
            f"A colleague copied <b>v5.7</b> and changed one line: <code>{field}="
            f"{html.escape(repr(value))}</code>. Which races now have a failing schedule with "
            f"at most {BOUND} preemptions? (<code>ptdump_race</code> and <code>tlb_order</code> "
            "on arm64-4k-48, <code>vmalloc_race</code> on the teaching layout teach-4k-39.)",
            self.kind,
            (*RACES, _NONE),
            "Ask what the field protects, and which thread of which race relies on it. "
            "Then run the three races with the changed policy and explore them.",
            {"field": field, "value": value},
        )

    def _policy(self, variant: Variant) -> HotplugPolicy:
        return flipped(variant.params["field"], variant.params["value"])

    def answer(self, variant: Variant) -> frozenset[str]:
        return failing_races(self._policy(variant)) or frozenset({_NONE})

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        if _NONE in picked and len(picked) > 1:
            return Feedback(False, f"'{_NONE}' cannot go with a race: pick one or the other.")
        right = self.answer(variant)
        if picked == right:
            return Feedback(True, self.solution(variant))
        field, value = variant.params["field"], variant.params["value"]
        if right == {_NONE}:
            if field == "block_tlbi":
                why = "a range flush invalidates the block too: more TLBIs, slower, not wrong"
            elif field == "vmemmap_tables":
                why = "keeping every vmemmap table is safe, but it leaks table pages"
            else:
                why = "it costs something (a lock held longer) but opens no window"
            return Feedback(False, f"The explorer finds no failing schedule: {why}.")
        missed = sorted(right - picked - {_NONE})
        extra = sorted(picked - right - {_NONE})
        parts = []
        if missed:
            parts.append(
                f"{field}={value!r} matters to a race you left out: which thread of "
                f"{' and '.join(missed)} relied on what that field did?"
            )
        if extra:
            parts.append(
                f"{', '.join(extra)} never depends on {field}: the explorer finds no failure there."
            )
        if _NONE in picked:
            parts.append("Something breaks: run the races with this policy and explore.")
        return Feedback(False, " ".join(parts))

    def solution(self, variant: Variant) -> str:
        field, value = variant.params["field"], variant.params["value"]
        right = self.answer(variant)
        if right == {_NONE}:
            return (
                f"{_NONE}: with {field}={value!r} no schedule of any of the three races fails at "
                f"bound {BOUND}. The change costs TLBIs or tables kept, not safety."
            )
        return (
            f"{', '.join(sorted(right))}: with {field}={value!r} the explorer finds a failing "
            f"schedule there ({BOUND} preemptions at most); the other races do not read {field}."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = self.answer(variant)
        if right == {_NONE}:
            return (
                Mistake(
                    ["tlb_order"],
                    "not wrong" if "tlbi" in variant.params["field"] else "no failing",
                ),
            )
        others = [r for r in RACES if r not in right]
        out = [Mistake([_NONE], "Something breaks")]
        if others:
            out.append(Mistake(sorted(right | {others[0]}), "never depends"))
        return tuple(out)


# --------------------------------------------------------------------------- 07b
def _installed_policies() -> dict[str, str]:
    """Policies installed as packages (not built in, not registered in this session):
    name -> distribution."""
    from mmkit import plugins

    return {
        r.name: r.distribution
        for r in plugins.reports(plugins.POLICY_GROUP)
        if r.ok and r.distribution not in ("mmkit", "<runtime>")
    }


class BuildPolicyExercise(Exercise):
    """07b: write a policy that is race-free on a teaching layout and leaks less than V7."""

    id = "07b"
    lesson = "07"
    title = "Build: safe on the teaching layout, tidier than V7"
    kind = "text"

    CONFIGS = ("teach-4k-39", "teach-16k-47", "teach-64k-42", "teach-4k-48")

    def variant(self, seed: int) -> Variant:
        config = self.CONFIGS[seed % len(self.CONFIGS)]
        return Variant(
            self.id,
            seed,
            "Write a policy of your own (a <code>HotplugPolicy</code> with a new name; register "
            "it to see it in the widgets). It must survive <code>vmalloc_race</code> on "
            f"<code>{config}</code> (a <b>teaching</b> layout) at bound {BOUND}, and leave fewer "
            f"table pages than <b>V7</b> after hot-adding and removing the block at "
            f"<code>{LEAK_BLOCK:#x}</code> on <code>{LEAK_CONFIG}</code> (a real layout). "
            "Answer with its registered name, or pass the object to <code>check()</code>.",
            self.kind,
            (),
            "Keeping every vmemmap table (V6) is safe but leaks; freeing every empty one "
            "(naive) races. Which question about a table is safe to ask, whatever the layout?",
            {"config": config},
        )

    def parse(self, variant: Variant, answer: Any) -> PolicyLike:
        if isinstance(answer, str):
            try:
                return policies.get(answer.strip())
            except MmkitError as err:
                raise InvalidArgument(
                    f"{err}; register yours first: plugins.register('mmkit.policy', name, policy)"
                ) from None
        if isinstance(answer, PolicyLike) and not check_decisions(answer):
            return answer  # a HotplugPolicy, or any object with the whole contract
        raise InvalidArgument(
            "a policy is a HotplugPolicy or the name of a registered one, "
            f"not {type(answer).__name__}"
        )

    def answer(self, variant: Variant) -> HotplugPolicy:
        return dataclasses.replace(
            policies.get("v5.7"),  # type: ignore[arg-type]
            name="my-floor-ceiling",
            description="free a table only if its whole span lies inside the region",
            kernel_versions=("mine",),
        )

    def check(self, variant: Variant, answer: Any) -> Feedback:
        policy = self.parse(variant, answer)
        if policy.name in BUILTIN:
            return Feedback(
                False, f"That is {policy.name} itself: write your own, under a new name."
            )
        installed = _installed_policies()
        if policy.name in installed:
            return Feedback(
                False,
                f"That is the {installed[policy.name]} package's policy: write your own, under "
                "a new name.",
            )
        config = variant.params["config"]
        raced = _race_found("vmalloc_race", policy, BOUND, config)
        left, v7_left = tables_left(policy), tables_left(policies.get("v7"))  # type: ignore[arg-type]
        if raced:
            return Feedback(
                False,
                f"The explorer breaks {policy.name!r} on {config}: a table it frees because it "
                "looks empty is one vmalloc() still holds a pointer into.",
            )
        if left >= v7_left:
            return Feedback(
                False,
                f"Safe, but it leaks: {left} table pages left on {LEAK_CONFIG}, V7 leaves "
                f"{v7_left}. Keeping tables is the easy way to be safe.",
            )
        return Feedback(
            True,
            f"{policy.name!r}: no failing schedule of vmalloc_race on {config} at bound {BOUND}, "
            f"and {left} table pages left on {LEAK_CONFIG} (V7: {v7_left}).",
        )

    def solution(self, variant: Variant) -> str:
        return (
            "Free a table page only when the whole span it maps lies inside the region being "
            "torn down (vmemmap_tables='floor-ceiling', linear_floor_ceiling=True): vmalloc() "
            "can never hold a pointer into such a table, and only the shared edge tables stay. "
            "That is Catalin Marinas's rule of 13 Sep 2019, merged for v5.7. For example: "
            f"HotplugPolicy({self.answer(variant).name!r}, 'floor and ceiling', ('mine',), "
            "vmemmap_tables='floor-ceiling', linear_floor_ceiling=True, block_tlbi='single')."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        mine = self.answer(variant)
        return (
            Mistake(dataclasses.replace(mine, vmemmap_tables="never"), "Safe, but it leaks"),
            Mistake(dataclasses.replace(mine, vmemmap_tables="always"), "looks empty"),
            Mistake("v5.7", "write your own"),
            *(Mistake(name, "package's policy") for name in sorted(_installed_policies())[:1]),
        )


# --------------------------------------------------------------------------- 07c
def _why_latent(config: str) -> str:
    """Why no table shared by vmalloc and the vmemmap can become empty on ``config``."""
    from mmkit import arch

    shared = arch.get(config).vmalloc_vmemmap_overlap.shared_tables
    if not shared:
        return "no table page maps both vmalloc and vmemmap addresses"
    t = shared[0]
    others = [r for r in t.regions if r not in ("vmalloc", "vmemmap")]
    return (
        f"the {t.level.upper()} table they share (at {t.start:#x}) also maps "
        f"{', '.join(others)}, which hot-remove never empties"
    )


class LatentRaceExercise(Exercise):
    """07c: is a policy that survives the real layout safe?"""

    id = "07c"
    lesson = "07"
    title = "Safe on the real layout, so safe?"
    kind = "choice"

    PAIRS: tuple[tuple[str, str], ...] = (
        ("arm64-4k-39", "teach-4k-39"),
        ("arm64-16k-47", "teach-16k-47"),
        ("arm64-64k-42", "teach-64k-42"),
        ("arm64-4k-48", "teach-4k-48"),
    )
    POLICIES: tuple[str, ...] = ("naive", "v3", "v6", "v5.7")

    def variant(self, seed: int) -> Variant:
        real, teach = self.PAIRS[seed % len(self.PAIRS)]
        policy = self.POLICIES[(seed // len(self.PAIRS)) % len(self.POLICIES)]
        return Variant(
            self.id,
            seed,
            f"Under <b>{policy}</b>, explore <code>vmalloc_race</code> at bound {BOUND} on "
            f"<code>{real}</code> (the real v5.4 layout) and on <code>{teach}</code> (the "
            "teaching layout: the same sizes, rearranged). Where does the explorer find a "
            "failing schedule?",
            self.kind,
            ("on both", f"only on {teach}", f"only on {real}", "on neither"),
            "Which table pages do vmalloc and the vmemmap share on each layout, and what else "
            "keeps them from ever looking empty? (lesson 05, shared_tables)",
            {"real": real, "teach": teach, "policy": policy},
        )

    def _found(self, variant: Variant, which: str) -> bool:
        p = variant.params
        return _race_found("vmalloc_race", policies.get(p["policy"]), BOUND, p[which])  # type: ignore[arg-type]

    def answer(self, variant: Variant) -> str:
        real, teach = self._found(variant, "real"), self._found(variant, "teach")
        return variant.options[
            {(True, True): 0, (False, True): 1, (True, False): 2}.get((real, teach), 3)
        ]

    def check(self, variant: Variant, answer: Any) -> Feedback:
        picked = self.parse(variant, answer)
        right = self.answer(variant)
        if picked == right:
            return Feedback(True, self.solution(variant))
        p = variant.params
        if right == variant.options[1] and picked == variant.options[3]:
            return Feedback(
                False,
                f"{p['real']} looks clean only because {_why_latent(p['real'])}. "
                f"{p['policy']}'s rule is still unsafe: explore {p['teach']}.",
            )
        if right == variant.options[3]:
            return Feedback(
                False,
                f"{p['policy']} never frees a table vmalloc() may hold a pointer into, on any "
                "layout: explore it and see.",
            )
        if picked in (variant.options[0], variant.options[2]):
            return Feedback(
                False,
                f"On {p['real']}, {_why_latent(p['real'])}: no policy can free a table "
                "under vmalloc() there.",
            )
        return Feedback(False, "Explore both layouts with this policy and compare.")

    def solution(self, variant: Variant) -> str:
        p = variant.params
        right = self.answer(variant)
        if right == variant.options[3]:
            return (
                f"{right}: {p['policy']} never frees a table that vmalloc() can reach "
                "(V6 keeps vmemmap tables; v5.7 frees only tables wholly inside the region), "
                "so the race is closed by the rule, not by the layout."
            )
        return (
            f"{right}: on {p['real']}, {_why_latent(p['real'])}, so the race is latent; "
            f"{p['teach']} rearranges the regions so that one table maps only vmemmap and "
            f"vmalloc addresses, and {p['policy']} frees it under vmalloc(). A policy that "
            "is safe only because of a layout is not safe."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        if self.answer(variant) == variant.options[3]:
            return (Mistake(variant.options[1], "on any layout"),)
        return (
            Mistake(variant.options[3], "still unsafe"),
            Mistake(variant.options[0], "no policy can free"),
        )


for _exercise in (SpotTheBugExercise(), BuildPolicyExercise(), LatentRaceExercise()):
    register(_exercise)

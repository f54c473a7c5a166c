"""What lesson 00's exercises 00b and 00c read: the three patches of V7 and what each protects,
decided by running the engine with one patch left out; and the series' changes per version,
read from the policy registry.

**The patches** (titles as in the V7 cover letter of 3 Sep 2019, "Anshuman Khandual (3):"):

1. ``mm/hotplug: Reorder memblock_[free|remove]() calls in try_remove_memory()``. Without
   it (Linux v5.3: memblock is removed before the memory block devices), re-adding removed
   memory hits ``BUG_ON()`` in ``add_memory_resource()`` (the V7 1/3 trace). It reached
   mainline as 32d1fe8fcb32, in v5.5 (kernel-facts §4.1).
2. ``arm64/mm: Hold memory hotplug lock while walking for kernel page table dump``. Without it
   (the policy field ``ptdump_hotplug_lock`` off), ptdump can read a table page hot-remove
   freed: a use-after-free.
3. ``arm64/mm: Enable memory hot remove``. Its choice of which vmemmap table pages to free
   (``vmemmap_tables``: V7's overlap flag, floor/ceiling from V8 on) protects a concurrent
   ``vmalloc()``; free every empty one (``"always"``) and a table a ``vmalloc()`` is walking
   can be freed under it (shown on the teaching layout ``teach-4k-39``, where it is not
   latent).

A patch is *left out* by turning its switch off in an otherwise merged kernel: the kernel
version for patch 1/3 (v5.3 instead of v5.5), the policy field for 2/3 and 3/3 (set to the
``naive`` policy's value on the ``v5.7`` policy). Each scenario runs once per process
(:func:`functools.cache`).

>>> [s for s in SCENARIOS if fails(s, None)]
[]
>>> [[s for s in SCENARIOS if fails(s, p)] for p in (1, 2, 3)]
[['memblock_order'], ['ptdump_race'], ['vmalloc_race']]
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from mmkit import policies
from mmkit.policies.base import HotplugPolicy

__all__ = [
    "CHANGES",
    "PATCHES",
    "SCENARIOS",
    "SYMPTOMS",
    "Change",
    "Patch",
    "broken_by",
    "change_version",
    "fails",
    "posted_policies",
    "report",
    "version_rank",
]

#: The merged state every run starts from: patch 1/3 is in v5.5, the policy is v5.7's.
MERGED_KERNEL = "v5.5"
MERGED_POLICY = "v5.7"


@dataclass(frozen=True)
class Patch:
    """One patch of V7, and the switch that leaves it out."""

    number: int  #: 1, 2 or 3 (of 3)
    title: str  #: the subject line, as in the cover letter
    protects: str  #: what it protects, one line
    kernel_without: str | None = None  #: a kernel version without the patch (1/3)
    policy_field: str | None = None  #: the policy field that is the patch (2/3, 3/3)


PATCHES: tuple[Patch, ...] = (
    Patch(
        1,
        "mm/hotplug: Reorder memblock_[free|remove]() calls in try_remove_memory()",
        "the node's sysfs links to a removed memory block (they must go before memblock does)",
        kernel_without="v5.3",
    ),
    Patch(
        2,
        "arm64/mm: Hold memory hotplug lock while walking for kernel page table dump",
        "ptdump's pointers into kernel table pages (no table is freed during a dump)",
        policy_field="ptdump_hotplug_lock",
    ),
    Patch(
        3,
        "arm64/mm: Enable memory hot remove",
        "vmalloc()'s pointers into table pages it shares with the vmemmap (never free those)",
        policy_field="vmemmap_tables",
    ),
)

#: The scenarios, with the configuration each runs on (teach-4k-39: a teaching layout).
SCENARIOS: dict[str, str] = {
    "memblock_order": "arm64-4k-48",
    "ptdump_race": "arm64-4k-48",
    "vmalloc_race": "teach-4k-39",
}

#: What a learner sees when a scenario fails (the options of 00b, short enough for one line of
#: radio buttons), and a word of its kernel log.
SYMPTOMS: dict[str, tuple[str, str]] = {
    "memblock_order": ("re-adding the memory hits a kernel BUG", "kernel BUG"),
    "ptdump_race": ("ptdump reads a freed table page", "use-after-free"),
    "vmalloc_race": ("a vmalloc() mapping is lost", "lost-mapping"),
}


def _policy_without(patch: Patch) -> HotplugPolicy:
    merged = policies.get(MERGED_POLICY)
    if patch.policy_field is None:
        return merged
    naive = policies.get("naive")
    return dataclasses.replace(
        merged,
        name=f"{MERGED_POLICY} without patch {patch.number}/3",
        **{patch.policy_field: getattr(naive, patch.policy_field)},
    )


@functools.cache
def report(scenario: str, without: int | None) -> str:
    """The kernel log of ``scenario`` run with patch ``without`` (1-3) left out, or with all
    three (``None``): the BUG of the last frame, or the first failing schedule's events with
    at most one preemption (``""`` when it runs clean)."""
    patch = PATCHES[without - 1] if without else None
    kernel = patch.kernel_without if patch and patch.kernel_without else MERGED_KERNEL
    policy = _policy_without(patch) if patch else policies.get(MERGED_POLICY)
    config = SCENARIOS[scenario]
    if scenario == "memblock_order":
        from mmkit.scenarios.memblock_order import MemblockOrderScenario

        frames = MemblockOrderScenario(kernel, config, policy).run()  # type: ignore[arg-type]
        return frames[-1].event if frames else ""
    from mmkit.scenarios import races

    race = getattr(races, scenario)(config, policy)
    result = race.explore(bound=1)
    return "\n".join(result.events) if result.found else ""


def fails(scenario: str, without: int | None) -> bool:
    """Whether ``scenario`` fails with patch ``without`` left out (see :func:`report`)."""
    return bool(report(scenario, without))


def broken_by(number: int) -> list[str]:
    """The scenarios that fail with patch ``number`` left out and run clean with all three."""
    return [s for s in SCENARIOS if fails(s, number) and not fails(s, None)]


# ----------------------------------------------------------------------------- 00c
@dataclass(frozen=True)
class Change:
    """One behaviour change of the series, and the policy field value that is it."""

    text: str
    field: str
    value: object


#: The changes 00c orders (the cover letter's "Changes in V3/V6/V7" and kernel-facts §6.5).
CHANGES: tuple[Change, ...] = (
    Change(
        "one pass, remove_pagetable(), frees each empty table as the walk leaves it", "passes", 1
    ),
    Change("hot-remove holds init_mm.page_table_lock over its whole walk", "pgtable_lock", True),
    Change("ptdump takes the memory hotplug lock (get_online_mems)", "ptdump_hotplug_lock", True),
    Change("two passes: unmap_hotplug_range(), then free_empty_tables()", "passes", 2),
    Change("the kernel page table lock is dropped completely", "pgtable_lock", False),
    Change("vmemmap_free() never frees table pages", "vmemmap_tables", "never"),
    Change(
        "a flag computed at boot (vmalloc/vmemmap overlap) decides if vmemmap tables are freed",
        "vmemmap_tables",
        "no-overlap",
    ),
    Change(
        "floor/ceiling: free a vmemmap table only if all it maps lies in the vmemmap",
        "vmemmap_tables",
        "floor-ceiling",
    ),
    Change(
        "floor/ceiling for the linear map too: [PAGE_OFFSET, PAGE_END)",
        "linear_floor_ceiling",
        True,
    ),
)


def posted_policies() -> list[HotplugPolicy]:
    """The built-in policies of posted versions (not ``naive``), in history order."""
    out = []
    for name in ("v3", "v6", "v7", "v5.7"):
        if name in policies.names():
            p = policies.get(name)
            if p.kernel_versions != ("none",):
                out.append(p)
    return out


def change_version(change: Change) -> tuple[str, HotplugPolicy]:
    """The first posted version with ``change`` (the first of its policy's
    ``kernel_versions``), and that policy.

    >>> change_version(CHANGES[-2])[0]
    'V8'
    """
    for p in posted_policies():
        if getattr(p, change.field) == change.value:
            return p.kernel_versions[0], p
    raise LookupError(f"no posted version has {change.field}={change.value!r}")


def version_rank(version: str) -> int:
    """``"V8"`` -> 8."""
    return int(version.lstrip("Vv").split(".")[0])

"""What lesson 06's exercises read: every built-in policy's run of one scenario (cached), the
vmalloc race explored per policy (cached), and the changelog lines of the series as data.

The runs are :func:`mmkit.mm.compare.compare_policies` (hot-add blocks, remove them, count the
table pages left) and :func:`mmkit.scenarios.races.vmalloc_race` explored with
:data:`RACE_BOUND` preemptions; each distinct parameter runs once per process
(:func:`functools.cache`), so 50 seeds of an exercise stay fast. The changelog lines are quoted
from the V7 cover letter (3 Sep 2019, "Changes in V3/V6/V7") and the text of the merged commit
bbd6ec605c0f, each with the policy field whose value it introduced (kernel-facts §6.5-6.6).

>>> [(o.policy, o.tables_left) for o in outcomes("arm64-4k-48", (0x400000000000,))][2:]
[('v6', 2), ('v7', 2), ('v5.7', 0)]
>>> first_version("passes", 2)
'v6'
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmkit import arch, policies
from mmkit.machine import Machine
from mmkit.mm.compare import PolicyOutcome, compare_policies

__all__ = [
    "BUILTIN",
    "CHANGELOG",
    "RACE_BOUND",
    "ChangelogLine",
    "block_size",
    "builtin_policies",
    "far_block",
    "first_version",
    "leak_free",
    "outcome",
    "outcomes",
    "posted_versions",
    "race_free",
    "v7_flagged_configs",
    "v7_overlaps",
    "version_label",
]

#: The built-in policies, in history order (a plugin's policy is not part of the series).
BUILTIN: tuple[str, ...] = ("naive", "v3", "v6", "v7", "v5.7")

#: Preemption bound of the race checks (the vmalloc race fails with one preemption).
RACE_BOUND = 1


def builtin_policies() -> list[str]:
    """The built-in policies that are registered, in history order."""
    known = set(policies.names())
    return [p for p in BUILTIN if p in known]


def posted_versions() -> list[str]:
    """The built-in policies that model posted versions (``naive`` was never posted), in
    history order.

    >>> posted_versions()
    ['v3', 'v6', 'v7', 'v5.7']
    """
    return [p for p in builtin_policies() if policies.get(p).kernel_versions != ("none",)]


def version_label(policy: str) -> str:
    """``"v3 (V3-V5)"``: the policy's name and the versions it stands for, from the registry.

    >>> version_label("v5.7")
    'v5.7 (V8-V14)'
    """
    kv = [k for k in policies.get(policy).kernel_versions if k[:1] == "V"] or ["none"]
    span = kv[0] if len(kv) == 1 else f"{kv[0]}-{kv[-1]}"
    return f"{policy} ({span})"


def far_block(config: str) -> int:
    """A memory block half way up the physical range the linear map holds: far from boot
    memory, so every table page mapping it (linear map and memmap) is its own.

    >>> hex(far_block("arm64-4k-48"))
    '0x400040000000'
    """
    m = Machine(config, vmalloc_areas=0, record=False)
    mac = m.macros
    linear = ((mac["PAGE_END"] or 1 << 64) - mac["PAGE_OFFSET"]) & ((1 << 64) - 1)
    reach = min(linear, 1 << mac["MAX_PHYSMEM_BITS"]) // 2
    return int(m.memstart + (reach & ~(m.desc.memory_block_size - 1)))


@functools.cache
def block_size(config: str) -> int:
    """The memory block size of ``config`` (1 GiB on arm64 v5.4)."""
    return int(arch.get(config).memory_block_size)


@functools.cache
def _outcomes(config: str, blocks: tuple[int, ...]) -> tuple[PolicyOutcome, ...]:
    return tuple(compare_policies(config, blocks=list(blocks), policies=builtin_policies()))


def outcomes(config: str, blocks: Sequence[int]) -> list[PolicyOutcome]:
    """:func:`~mmkit.mm.compare.compare_policies` for every built-in policy (cached)."""
    return list(_outcomes(config, tuple(blocks)))


def outcome(config: str, blocks: Sequence[int], policy: str) -> PolicyOutcome:
    """``policy``'s row of :func:`outcomes`."""
    return next(o for o in outcomes(config, blocks) if o.policy == policy)


@functools.cache
def leak_free(config: str, policy: str) -> bool:
    """Whether ``policy`` leaves no table page after adding and removing :func:`far_block`."""
    return outcome(config, (far_block(config),), policy).tables_left == 0


@functools.cache
def race_free(config: str, policy: str, bound: int = RACE_BOUND) -> bool:
    """Whether no schedule of ``vmalloc_race(config, policy)`` with at most ``bound``
    preemptions fails (kernel-facts §7.2's interleaving)."""
    from mmkit.scenarios.races import vmalloc_race

    return not vmalloc_race(config, policy).explore(bound=bound).found


def v7_overlaps(config: str) -> bool:
    """Whether V7's ``vmalloc_vmemmap_overlap`` fires on ``config`` (kernel-facts §3.5)."""
    report = getattr(arch.get(config), "vmalloc_vmemmap_overlap", None)
    return bool(getattr(report, "overlap", report))


def v7_flagged_configs() -> list[str]:
    """The real configurations V7's overlap test flags (v5.4 layout)."""
    return [
        str(r["name"]) for r in arch.config_rows() if r.get("v7_overlap") and not r.get("teaching")
    ]


@dataclass(frozen=True)
class ChangelogLine:
    """A changelog line, quoted exactly, and the policy field whose value it introduced."""

    quote: str
    source: str  #: where it is quoted from
    version: str  #: the posted version it is listed under (a ground truth for the tests)
    field: str
    value: Any


_V7_COVER = "V7 cover letter, 3 Sep 2019"
_MERGED = "merged commit bbd6ec605c0f (Linux v5.7)"

#: The lines 06b asks about. Quotes from the V7 cover letter's "Changes in V3/V6/V7" and
#: from the merged commit's text (typos as in the source).
CHANGELOG: tuple[ChangelogLine, ...] = (
    ChangelogLine(
        "remove_pagetable() now has two distinct passes over the kernel page table",
        _V7_COVER,
        "V6",
        "passes",
        2,
    ),
    ChangelogLine(
        "Taken overall init_mm.page_table_lock instead of just while changing an entry",
        _V7_COVER,
        "V3",
        "pgtable_lock",
        True,
    ),
    ChangelogLine(
        "Added a new patch to protect kernel page table race condition for ptdump",
        _V7_COVER,
        "V3",
        "ptdump_hotplug_lock",
        True,
    ),
    ChangelogLine(
        "Kernel page table lock has been dropped completely", _V7_COVER, "V6", "pgtable_lock", False
    ),
    ChangelogLine(
        "vmemmap_free() does not call freee_empty_tables() to avoid conflict with vmalloc()",
        _V7_COVER,
        "V6",
        "vmemmap_tables",
        "never",
    ),
    ChangelogLine(
        "free_empty_tables() gets conditionally called based on vmalloc_vmemmap_overlap",
        _V7_COVER,
        "V7",
        "vmemmap_tables",
        "no-overlap",
    ),
    ChangelogLine(
        "free_empty_tables() implements a floor and ceiling method which is borrowed from "
        "user page table tear with free_pgd_range()",
        _MERGED,
        "V14",
        "vmemmap_tables",
        "floor-ceiling",
    ),
    ChangelogLine(
        "this registers a new memory hotplug notifier which prevents boot memory offlining",
        _MERGED,
        "V14",
        "boot_memory_notifier",
        True,
    ),
)


def first_version(field: str, value: Any) -> str | None:
    """The first posted version (policy name, in history order) whose ``field`` is
    ``value``: where a changelog line's change appeared.

    >>> first_version("vmemmap_tables", "no-overlap")
    'v7'
    """
    for p in posted_versions():
        if getattr(policies.get(p), field) == value:
            return p
    return None

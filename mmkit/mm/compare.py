"""Run one hot-add / hot-remove scenario under several policies and compare the outcome.

For each policy: boot the same machine, hot-add the same blocks, remove them all, and
record what the page tables went through: table pages allocated and freed, the ones left
behind (by level and region, in pages and bytes), TLB invalidations by kind, and every
kernel event (warnings, bugs, use-after-free). The records feed ``mmkit compare`` and the
lesson that compares the patch versions.

>>> rows = compare_policies("arm64-4k-48", blocks=[0x400000000000], policies=["v6", "v5.7"])
>>> [(r.policy, r.tables_left) for r in rows]
[('v6', 2), ('v5.7', 0)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmkit._readable import record_repr
from mmkit.machine import Machine

__all__ = ["PolicyOutcome", "compare_policies"]


@dataclass(frozen=True)
class PolicyOutcome:
    """What one policy did to the page tables in the scenario."""

    policy: str
    config: str
    tables_allocated: int  #: table pages hot-add allocated
    tables_freed: int  #: table pages hot-remove freed
    tables_left: int  #: allocated by hot-add and still live after everything was removed
    bytes_left: int
    left_by_level_region: dict[str, int] = field(default_factory=dict)  #: "pmd/vmemmap" -> n
    tlbi: dict[str, int] = field(default_factory=dict)  #: vaale1is / vaae1is / vmalle1is
    events: tuple[str, ...] = ()  #: kernel log lines

    def __repr__(self) -> str:
        """``bytes_left`` in hex (the counts stay decimal); empty fields left out."""
        return record_repr(
            self,
            ("bytes_left",),
            keep=("tables_allocated", "tables_freed", "tables_left", "bytes_left"),
        )


def compare_policies(
    config: str,
    *,
    blocks: Sequence[int],
    policies: Sequence[str] | None = None,
    rodata_full: bool = False,
    **options: object,
) -> list[PolicyOutcome]:
    """Run the scenario (add each block of ``blocks``, then remove them all) per policy."""
    from mmkit import policies as registry

    out = []
    for name in policies or registry.names():
        m = Machine(config, policy=name, rodata_full=rodata_full, record=True, **options)
        boot = set(m.pgtables.info)
        block = m.desc.memory_block_size
        mark = len(m.history)
        for start in blocks:
            m.hot_add(start, block)
        added_steps = m.history[mark:]
        m.stats = dict.fromkeys(m.stats, 0)
        mark = len(m.history)
        for start in blocks:
            m.hot_remove(start, block)
        removed_steps = m.history[mark:]
        left = set(m.pgtables.info) - boot
        by = Counter(
            f"{m.pgtables.levels[m.pgtables.info[p].depth].name}/{m.pgtables.info[p].region}"
            for p in left
        )
        out.append(
            PolicyOutcome(
                policy=name,
                config=config,
                # a bulk step allocates or frees ``count`` table pages
                tables_allocated=sum(
                    s.count for s in added_steps if s.action == "alloc" and s.note == "table"
                ),
                tables_freed=sum(
                    s.count for s in removed_steps if s.action == "free" and s.note == "table"
                ),
                tables_left=len(left),
                bytes_left=len(left) * m.page_size,
                left_by_level_region=dict(sorted(by.items())),
                tlbi=dict(m.stats),
                events=tuple(e.report() for e in m.events),
            )
        )
    return out

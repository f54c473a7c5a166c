"""Asking the policy whether an empty table page may go, and when: the ``keep_table`` and
``defer_table_free`` optional hooks.

:func:`~mmkit.pgtable.unmap.try_free_table`, the one function through which hot-remove frees
a table page (both passes and V3's single pass), calls :func:`policy_keeps_table` while
performing the step that clears the parent entry, before it clears it. A policy without the
hook (every posted version) keeps nothing here; a policy plugin with one (say, one that
keeps a table while a reserved vmalloc area lies in its span) returns the reason it keeps the
table, and then the entry stays, no TLBI is issued and the page is not freed.

The call happens inside one step, so in the model the decision and the clear are atomic
with respect to every other thread's steps: as if hot-remove held, across both, whatever
lock the hook's reasoning needs (the hook's docstring must name it).

Once the entry is cleared and invalidated, :func:`free_or_defer` frees the page, or, if the
policy's ``defer_table_free`` hook says so, leaves it allocated for the policy to free later
(RCU-style, once concurrent walkers are done). A deferred page is unhooked but still a live
table page to the model, so a walker that kept a pointer into it reads and writes it without
a use-after-free; what it writes there is unreachable from ``swapper_pg_dir``, and the
walker's caller finds its mapping missing (a ``lost-mapping`` event). Deferring the free
alone does not close the vmalloc race.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mmkit.events import Step
from mmkit.policies.base import call_hook

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["free_or_defer", "policy_keeps_table"]


def policy_keeps_table(m: Machine, level: str, start: int, end: int) -> str | None:
    """The policy's reason to keep the empty ``level`` table spanning [start, end), or None.

    A hook that returns something other than a string or None is a plugin bug:
    :class:`~mmkit.errors.PluginError`, as for a hook that raises.
    """
    from mmkit.errors import PluginError

    reason = call_hook(m.policy, "keep_table", m, level, start, end)
    if reason is None or (isinstance(reason, str) and reason):
        return reason
    raise PluginError(
        f"policy {m.policy.name!r}: keep_table() returned {reason!r}; expected a non-empty "
        "reason (str) to keep the table, or None to free it"
    )


def free_or_defer(m: Machine, level: str, va: int, pfn: int, fn: str) -> Iterator[Step]:
    """Free the unhooked ``level`` table page ``pfn`` (first VA ``va``), unless the policy's
    ``defer_table_free(machine, level, va, pfn)`` returns True: then one ``call`` step says
    the free is deferred, and the page stays allocated (the policy owns it now)."""
    if call_hook(m.policy, "defer_table_free", m, level, va, pfn, default=False) is True:
        yield Step(
            "call",
            fn,
            "defer free_hotplug_pgtable_page() until walkers are done  /* policy */",
            level,
            va,
            pfn=pfn,
            note=f"deferred: {level} table pfn {pfn:#x} unhooked, not freed",
        )
        return
    yield from m.free_table(pfn, fn)

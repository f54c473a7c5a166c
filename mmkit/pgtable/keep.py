"""Asking the policy whether an empty table page may go: the ``keep_table`` optional hook.

:func:`~mmkit.pgtable.unmap.try_free_table`, the one function through which hot-remove frees
a table page (both passes and V3's single pass), calls :func:`policy_keeps_table` while
performing the step that clears the parent entry, before it clears it. A policy without the
hook (every posted version) keeps nothing here; a policy plugin with one (say, one that
keeps a table while a reserved vmalloc area lies in its span) returns the reason it keeps the
table, and then the entry stays, no TLBI is issued and the page is not freed.

The call happens inside one step, so in the model the decision and the clear are atomic
with respect to every other thread's steps: as if hot-remove held, across both, whatever
lock the hook's reasoning needs (the hook's docstring must name it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmkit.policies.base import call_hook

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["policy_keeps_table"]


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

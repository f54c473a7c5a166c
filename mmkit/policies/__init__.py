"""Hotplug policies: each patch version's choices, as data (see :class:`HotplugPolicy`).

Built-ins: ``naive``, ``v3``, ``v6``, ``v7`` (the series' V7) and ``v5.7`` (merged). Look
them up with :func:`get`, which goes through the plugin registry. A policy of your own is any
object with what the engine reads (:class:`PolicyLike`; a :class:`HotplugPolicy` has it all),
optionally with :data:`OPTIONAL_HOOKS`; ``mmkit.plugins.register("mmkit.policy", name, obj)``
adds it for the session.

>>> get("v7").vmemmap_tables
'no-overlap'
"""

from __future__ import annotations

from mmkit.errors import UnknownName
from mmkit.policies.base import OPTIONAL_HOOKS, HotplugPolicy, PolicyLike

__all__ = ["OPTIONAL_HOOKS", "HotplugPolicy", "PolicyLike", "get", "names"]


def _all() -> dict[str, PolicyLike]:
    from mmkit import plugins

    return dict(plugins.policy_plugins())


def names() -> list[str]:
    """Names of every registered policy, built-ins first in history order."""
    order = {"naive": 0, "v3": 1, "v6": 2, "v7": 3, "v5.7": 4}
    return sorted(_all(), key=lambda n: (order.get(n, 99), n))


def get(name: str | PolicyLike) -> PolicyLike:
    """The policy called ``name`` (a policy object is returned as it is)."""
    if not isinstance(name, str):
        return name
    policies = _all()
    if name not in policies:
        raise UnknownName(f"unknown hotplug policy {name!r}", choices=names())
    return policies[name]

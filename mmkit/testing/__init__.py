"""A test kit for mmkit plugin authors: conformance suites, registry helpers and pytest
fixtures.

Subclass a suite in a test module under a ``Test`` name and set ``plugin``; pytest then runs
every check, once per configuration name where that makes sense::

    from mmkit.testing import ArchConformance, PolicyConformance
    from my_plugin import PLUGIN, POLICY

    class TestMyArch(ArchConformance):
        plugin = PLUGIN
        options: ClassVar = {"kernel": ("v5.4", "v6.1")}  # every option, some valid values

    class TestMyPolicy(PolicyConformance):
        plugin = POLICY

* :class:`ArchConformance`: the ``mmkit.arch`` contract (names, descriptors, macros,
  regions in order and disjoint, errors, determinism); :class:`ArchMachineConformance` adds,
  for a family that runs in :class:`~mmkit.machine.Machine`, index fields that partition
  the VA, ``translate()`` against a slow reference walk, ptdump's merging, and hot-add then
  hot-remove returning the tree to its boot shape.
* :class:`PolicyConformance`: the ``mmkit.policy`` contract (exactly what the engine reads,
  :class:`mmkit.policies.base.PolicyLike`, and the optional hooks), then the policy run in
  the engine: the tree after hot-add and hot-remove holds only what the policy declares it
  keeps, and the decisions show in the steps.

Registry helpers: :func:`isolated_registry` (a fresh registry for a block),
:func:`tmp_plugin` (a plugin registered for a block) and :func:`tmp_site` (temporary
installed distributions, found through their entry points):

>>> from mmkit.plugins import POLICY_GROUP, _DemoPolicy, policy_plugins
>>> with isolated_registry(entries=()):
...     with tmp_plugin(POLICY_GROUP, "demo", _DemoPolicy()) as report:
...         (report.status, list(policy_plugins()))
('ok', ['demo'])

Installed with mmkit, :mod:`mmkit.testing.pytest_plugin` is a pytest plugin (entry point
``pytest11``) giving the fixtures ``mmkit_registry``, ``mmkit_tmp_plugin`` and
``mmkit_tmp_site``. The suites import pytest and hypothesis (``mmkit[test]``);
``import mmkit`` never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmkit.testing._registry import TmpSite, isolated_registry, tmp_plugin, tmp_site

if TYPE_CHECKING:
    from mmkit.testing._arch import ArchConformance
    from mmkit.testing._machine import ArchMachineConformance
    from mmkit.testing._policy import PolicyConformance

__all__ = [
    "ArchConformance",
    "ArchMachineConformance",
    "PolicyConformance",
    "TmpSite",
    "isolated_registry",
    "tmp_plugin",
    "tmp_site",
]

# The suites import hypothesis; the pytest plugin (loaded by every pytest run where mmkit
# is installed) needs only the registry helpers, so the suites are imported on first use.
_LAZY = {
    "ArchConformance": "mmkit.testing._arch",
    "ArchMachineConformance": "mmkit.testing._machine",
    "PolicyConformance": "mmkit.testing._policy",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmkit.testing' has no attribute {name!r}")

"""The vmap-guard policy against mmkit's contract, in the engine, and in the vmalloc race."""

from __future__ import annotations

import importlib.metadata

import pytest
from mmkit_vmap_guard import DEFERRED, POLICY

from mmkit import plugins
from mmkit.scenarios.races import vmalloc_race
from mmkit.testing import PolicyConformance

TEACHING = ("teach-4k-39", "teach-16k-36", "teach-64k-42")


class TestVmapGuardConformance(PolicyConformance):
    plugin = POLICY


class TestDeferredFreeConformance(PolicyConformance):
    plugin = DEFERRED


def test_entry_point_is_installed():
    """The installed distribution registers the policy (run after pip install)."""
    eps = importlib.metadata.entry_points(group=plugins.POLICY_GROUP, name="vmap-guard")
    assert [(ep.value, ep.dist.name) for ep in eps] == [
        ("mmkit_vmap_guard:POLICY", "mmkit-vmap-guard")
    ], "pip install plugins/mmkit-vmap-guard first"
    reports = {r.name: r for r in plugins.reports(plugins.POLICY_GROUP)}
    assert reports["vmap-guard"].ok and reports["deferred-free"].ok, str(reports)


@pytest.mark.parametrize("config", TEACHING)
def test_no_schedule_fails_where_naive_does(config):
    """Same race, same bound: naive has failing schedules, vmap-guard none."""
    with plugins.isolated():  # the installed plugins, this policy registered on top
        plugins.register(plugins.POLICY_GROUP, "vmap-guard", POLICY)
        guarded = vmalloc_race(config, "vmap-guard").explore(2)
        naive = vmalloc_race(config, "naive").explore(2)
    assert naive.failing > 0
    assert guarded.complete and guarded.failing == 0, guarded.shortest


@pytest.mark.parametrize("config", TEACHING)
def test_deferring_the_free_alone_loses_the_mapping(config):
    with plugins.isolated():
        plugins.register(plugins.POLICY_GROUP, "deferred-free", DEFERRED)
        result = vmalloc_race(config, "deferred-free").explore(2)
    assert result.failing > 0
    assert all(e.startswith("lost-mapping") for e in result.events), result.events

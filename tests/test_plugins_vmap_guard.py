"""The vmap-guard policy plugin (plugins/mmkit-vmap-guard), used through its entry points
only: it passes the conformance suite, no schedule of the vmalloc race fails under it on any
teaching layout, and ``mmkit compare`` shows its cost against v5.7. Its strawman,
``deferred-free``, shows that deferring the free alone loses the walker's mapping."""

from __future__ import annotations

import contextlib
import io
import json
import tomllib
from pathlib import Path

import pytest

from mmkit import arch, plugins
from mmkit.cli import main
from mmkit.machine import Machine
from mmkit.mm.compare import compare_policies
from mmkit.scenarios.races import vmalloc_race
from mmkit.testing import PolicyConformance
from mmkit.testing.pytest_plugin import mmkit_tmp_site  # noqa: F401 (a fixture)

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "mmkit-vmap-guard"
TEACHING = [n for n in arch.names() if n.startswith("teach-")]


@pytest.fixture
def guard(mmkit_tmp_site, monkeypatch):  # noqa: F811 (the fixture imported above)
    """The plugin installed the way pip would: its dist-info, from its own pyproject."""
    meta = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    mmkit_tmp_site.modules.add("mmkit_vmap_guard")
    mmkit_tmp_site.add_dist(
        meta["project"]["name"], meta["project"]["entry-points"], version="0.1.0"
    )
    report = next(r for r in plugins.reports(plugins.POLICY_GROUP) if r.name == "vmap-guard")
    assert report.ok and report.distribution == "mmkit-vmap-guard", str(report)
    return plugins.policy_plugins()["vmap-guard"]


@pytest.mark.parametrize("name", ["vmap-guard", "deferred-free"])
def test_conformance(guard, name):
    class TestPolicy(PolicyConformance):
        plugin = plugins.policy_plugins()[name]

    suite = TestPolicy()
    suite.test_registers_cleanly()
    suite.test_meets_the_protocol()
    suite.test_optional_hooks()
    for config in suite.configs:
        suite.test_hot_add_then_remove(config)
        suite.test_declared_behaviour_observed(config)


@pytest.mark.parametrize("config", TEACHING)
def test_no_schedule_of_the_vmalloc_race_fails(guard, config):
    """Bound 2, searched to the end; naive, on the same race, fails (the race is there)."""
    guarded = vmalloc_race(config, "vmap-guard").explore(2)
    assert guarded.complete and guarded.failing == 0, guarded.shortest
    assert vmalloc_race(config, "naive").explore(2).failing > 0


@pytest.mark.parametrize("config", ["teach-4k-39", "teach-64k-42"])
def test_no_schedule_fails_with_three_preemptions_or_entry_by_entry(guard, config):
    for race, bound in (
        (vmalloc_race(config, "vmap-guard"), 3),
        (vmalloc_race(config, "vmap-guard", fine=True), 2),
    ):
        result = race.explore(bound)
        assert result.complete and result.failing == 0, (race.call(), result.shortest)


@pytest.mark.parametrize("config", TEACHING)
def test_a_deferred_free_alone_loses_the_mapping(guard, config):
    """The strawman in the same package: freeing the unhooked table only after walkers are
    done ends the use-after-free, but the walker's entry goes into the unhooked table."""
    result = vmalloc_race(config, "deferred-free").explore(2)
    assert result.failing > 0
    assert all(e.startswith("lost-mapping") for e in result.events), result.events
    assert not any("use-after-free" in e for e in result.events)


def test_the_guard_keeps_the_table_a_reserved_area_is_walking(guard):
    """naive's failing schedule (V reserves its area and takes a pointer into the shared
    table, H removes the block, V goes on): under vmap-guard, H keeps the shared table and
    says why, and V's area is mapped in the end."""
    outcomes = {}
    for name in ("naive", "vmap-guard"):
        sched = vmalloc_race("teach-4k-39", name).scheduler()
        for _ in range(3):  # vmalloc(): the area, the PGD entry, the PUD entry (a pointer)
            sched.step("V")
        notes = []
        while not sched.threads["H"].done:
            notes.append(sched.step("H").note or "")
        while not sched.threads["V"].done:
            sched.step("V")
        outcomes[name] = ([n for n in notes if n.startswith("kept:")], sched.machine.events)
    kept, events = outcomes["vmap-guard"]
    assert len(kept) == 1 and "is reserved in its span" in kept[0]
    assert events == []
    assert outcomes["naive"][0] == [] and outcomes["naive"][1], "naive fails this schedule"


def test_compare_shows_the_cost(guard):
    """With no vmalloc area in the shared span, v5.7's floor/ceiling keeps the edge table
    for good; vmap-guard frees it, for one more TLBI of a table."""
    blocks = {}
    for config in TEACHING:
        m = Machine(config)
        mac, size = m.macros, m.desc.memory_block_size
        linear = min(
            mac["PAGE_END"] - mac["PAGE_OFFSET"], (1 << mac["MAX_PHYSMEM_BITS"]) - m.memstart
        )
        top = blocks[config] = m.memstart + linear - size  # its memmap ends at VMALLOC_START
        rows = {
            r.policy: r
            for r in compare_policies(
                config, blocks=[top], policies=["v5.7", "vmap-guard"], vmalloc_areas=0
            )
        }
        v57, ours = rows["v5.7"], rows["vmap-guard"]
        assert ours.tables_left == 0 < v57.tables_left, config
        assert ours.tables_freed == v57.tables_freed + v57.tables_left, config
        assert ours.tlbi["vaae1is"] == v57.tlbi["vaae1is"] + v57.tables_left, config
        assert not ours.events and not v57.events
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            main(
                [
                    "compare",
                    "teach-4k-39",
                    "--block",
                    hex(blocks["teach-4k-39"]),
                    "--format",
                    "json",
                ]
            )
            == 0
        )
    assert "vmap-guard" in {row["policy"] for row in json.loads(out.getvalue())}

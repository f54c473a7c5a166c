"""The toy family against mmkit's plugin contract, as any plugin author would test theirs."""

from __future__ import annotations

import importlib.metadata
from typing import ClassVar

from mmkit_example_arch import PLUGIN, VMSPLITS

from mmkit import plugins
from mmkit.testing import ArchConformance


class TestToyConformance(ArchConformance):
    plugin = PLUGIN
    options: ClassVar = {"vmsplit": VMSPLITS}  # every option, with its valid values


def test_entry_point_is_installed():
    """The installed distribution registers the family (run after pip install)."""
    eps = importlib.metadata.entry_points(group=plugins.ARCH_GROUP, name="toy")
    assert [(ep.value, ep.dist.name) for ep in eps] == [
        ("mmkit_example_arch:PLUGIN", "mmkit-example-arch")
    ], "pip install plugins/mmkit-example-arch first"
    report = next(r for r in plugins.reports(plugins.ARCH_GROUP) if r.name == "toy")
    assert report.status == "ok", str(report)
    assert plugins.arch_plugins()["toy"] is PLUGIN


def test_pgdir_shift_formula():
    """Two levels of 8-byte descriptors: PGDIR_SHIFT = PAGE_SHIFT + (PAGE_SHIFT - 3)."""
    for name in PLUGIN.names():
        m = PLUGIN.create(name).macros()
        assert m["PGDIR_SHIFT"] == 2 * m["PAGE_SHIFT"] - 3
        assert m["PTRS_PER_PGD"] * (1 << m["PGDIR_SHIFT"]) == 1 << m["VA_BITS"]

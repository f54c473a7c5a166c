"""The x86_64 family and its policy against mmkit's plugin contract, through entry points."""

from __future__ import annotations

import importlib.metadata
from typing import ClassVar

from mmkit_x86_64 import OPTIONS, PLUGIN
from mmkit_x86_64.policy import POLICY

from mmkit import arch, plugins, policies
from mmkit.testing import ArchMachineConformance, PolicyConformance

_PRESENT, _PSE = 1 << 0, 1 << 7
_PFN_MASK = ((1 << 52) - 1) & ~0xFFF  # PTE_PFN_MASK with 52-bit physical addresses


class TestX86Conformance(ArchMachineConformance):
    plugin = PLUGIN
    options: ClassVar = OPTIONS

    def reference_walk(self, m, va):
        """A slow walk written from the x86 entry rules (Intel SDM vol. 3, 4.5): bit 0
        present; bit 7 (PSE) a 1 GiB or 2 MiB page above the last level; the PFN field
        masked to the entry's size (a large page's bit 12 is PAT, not address)."""
        pt = m.pgtables
        levels = m.pgtables.levels  # the levels with tables of their own
        table = pt.pgd_pfn
        for depth, level in enumerate(levels):
            raw = int(pt.content[table][(va >> level.shift) & (level.ptrs - 1)])
            if not raw & _PRESENT:
                return None
            size = 1 << level.shift
            pa = raw & _PFN_MASK
            if depth == len(levels) - 1 or raw & _PSE:
                return (pa & ~(size - 1)) + (va & (size - 1))
            table = pa >> m.desc.page_shift
        return None


class TestX86PolicyConformance(PolicyConformance):
    plugin = POLICY


def test_entry_points_are_installed():
    """The installed distribution registers both plugins (run after pip install -e)."""
    arch_eps = importlib.metadata.entry_points(group=plugins.ARCH_GROUP, name="x86_64")
    assert [(ep.value, ep.dist.name) for ep in arch_eps] == [
        ("mmkit_x86_64:PLUGIN", "mmkit-x86-64")
    ], "pip install -e plugins/mmkit-x86_64 first"
    pol_eps = importlib.metadata.entry_points(
        group=plugins.POLICY_GROUP, name="x86-remove-pagetable"
    )
    assert [ep.value for ep in pol_eps] == ["mmkit_x86_64.policy:POLICY"]
    by_name = {r.name: r for r in plugins.reports()}
    assert by_name["x86_64"].status == "ok", str(by_name["x86_64"])
    assert by_name["x86-remove-pagetable"].status == "ok", str(by_name["x86-remove-pagetable"])


def test_lookup_by_name_goes_through_the_registry():
    assert plugins.arch_plugins()["x86_64"] is PLUGIN
    assert arch.get("x86_64-4k-57") == PLUGIN.create("x86_64-4k-57")
    assert policies.get("x86-remove-pagetable") is POLICY

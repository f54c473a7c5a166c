"""The built-in plugins pass mmkit.testing's conformance suites, the engine-level ones
included; a contract-only policy (not a HotplugPolicy) passes them too."""

from __future__ import annotations

from mmkit.arch.arm64 import PLUGIN as ARM64
from mmkit.arch.teaching import PLUGIN as TEACHING
from mmkit.policies import naive, v3, v5_7, v6, v7
from mmkit.testing import ArchMachineConformance, PolicyConformance


class TestArm64(ArchMachineConformance):
    plugin = ARM64
    max_examples = 10


class TestTeaching(ArchMachineConformance):
    plugin = TEACHING
    max_examples = 10


class TestNaive(PolicyConformance):
    plugin = naive.POLICY


class TestV3(PolicyConformance):
    plugin = v3.POLICY


class TestV6(PolicyConformance):
    plugin = v6.POLICY


class TestV7(PolicyConformance):
    plugin = v7.POLICY


class TestV57(PolicyConformance):
    plugin = v5_7.POLICY


class ContractOnly:
    """Exactly mmkit.policies.base.PolicyLike: no method, no HotplugPolicy."""

    api_version = "1.0"
    name = "contract-only"
    description = "v5.7's decisions as plain attributes"
    kernel_versions = ("v5.7",)
    passes = 2
    pgtable_lock = False
    vmemmap_tables = "floor-ceiling"
    linear_floor_ceiling = True
    block_tlbi = "single"
    ptdump_hotplug_lock = True
    memblock_after_arch_remove = None
    boot_memory_notifier = True


class TestContractOnly(PolicyConformance):
    plugin = ContractOnly()

"""The conformance suite for ``mmkit.policy`` plugins: :class:`PolicyConformance` checks
the contract (exactly what the engine reads, :class:`mmkit.policies.base.PolicyLike`, and
the optional hooks) and then runs the policy in the engine and checks that what the engine
did is what the policy declares."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from mmkit import plugins
from mmkit.testing._common import _Conformance

__all__ = ["PolicyConformance"]


class PolicyConformance(_Conformance):
    """Conformance tests for an ``mmkit.policy`` plugin; subclass it as ``Test...``.

    Class attributes: ``plugin`` (required) and ``configs``, the configurations on which
    the policy hot-adds and hot-removes a block in the engine.
    """

    group = plugins.POLICY_GROUP
    #: configurations the engine checks run on: a real layout and a teaching one
    configs: ClassVar[Sequence[str]] = ("arm64-4k-48", "teach-4k-39")

    def test_name(self) -> None:
        name = getattr(self._plugin(), "name", None)
        assert isinstance(name, str) and name and not re.search(r"[\s=:\[\]]", name), (
            f"{type(self._plugin()).__name__}: name is {name!r}; expected a non-empty string "
            "without spaces"
        )

    def test_description(self) -> None:
        text = getattr(self._plugin(), "description", None)
        assert isinstance(text, str) and text.strip() and "\n" not in text.strip(), (
            f"{self._culprit()}: description is {text!r}; expected one non-empty line"
        )

    def test_decisions(self) -> None:
        from mmkit.policies.base import check_decisions

        problems = check_decisions(self._plugin())
        assert not problems, (
            f"{self._culprit()}: " + "; ".join(problems) + " (mmkit.policies.base.DECISIONS)"
        )

    def test_kernel_versions(self) -> None:
        versions = getattr(self._plugin(), "kernel_versions", None)
        assert (
            isinstance(versions, tuple)
            and versions
            and all(isinstance(v, str) and v.strip() for v in versions)
        ), (
            f"{self._culprit()}: kernel_versions is {versions!r}; expected a non-empty tuple "
            "of version strings, e.g. ('v5.7',)"
        )

    def test_meets_the_protocol(self) -> None:
        from mmkit.policies.base import PolicyLike

        assert isinstance(self._plugin(), PolicyLike), (
            f"{self._culprit()}: not a mmkit.policies.base.PolicyLike: it lacks one of "
            "api_version, name, description, kernel_versions or a decision"
        )

    def test_optional_hooks(self) -> None:
        from mmkit.policies.base import check_hooks

        problems = check_hooks(self._plugin())
        assert not problems, f"{self._culprit()}: " + "; ".join(problems)

    # ------------------------------------------------------------------ in the engine
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "machine_config" in metafunc.fixturenames:
            metafunc.parametrize("machine_config", list(self.configs), ids=list(self.configs))

    def _run(self, config: str) -> tuple[Any, int, set[tuple[str, int]], list[Any]]:
        """Boot ``config`` under the plugin, hot-add one block above boot memory and remove
        it: (machine, block start, boot tables as (level, va), the removal's steps)."""
        from mmkit.machine import Machine

        m = Machine(config, policy=self._plugin(), record=True)
        boot = {(t.level, t.va_start) for t in m.table_pages()}
        block = m.desc.memory_block_size
        top = max(s + n for s, n in m.boot_memory)
        start = (top + block - 1) // block * block
        m.hot_add(start, block)
        mark = len(m.history)
        m.hot_remove(start, block)
        return m, start, boot, list(m.history[mark:])

    def _declared_keep(self, m: Any, level: str, va: int, kept: set[tuple[str, int]]) -> bool:
        """Whether the policy's decisions (or its ``keep_table`` hook, ``kept``) say the
        empty table ``level`` at ``va`` stays after the block is removed."""
        from mmkit.policies.base import frees_vmemmap_tables

        p = self._plugin()
        if (level, va) in kept:
            return True
        info = next(t for t in m.table_pages() if (t.level, t.va_start) == (level, va))
        if info.region == "vmemmap":
            report = getattr(m.desc, "vmalloc_vmemmap_overlap", None)  # arm64's V7 test
            if not frees_vmemmap_tables(p, report is not None and report.overlap):
                return True
            floor, ceiling = m.macros["VMEMMAP_START"], m.desc.vmemmap_end
            outside = p.vmemmap_tables == "floor-ceiling"
        else:
            floor, ceiling = m.macros["PAGE_OFFSET"], m.macros["PAGE_END"] or 1 << 64
            outside = p.linear_floor_ceiling
        return outside and not (floor <= info.va_start and info.va_end <= ceiling)

    def test_hot_add_then_remove(self, machine_config: str) -> None:
        """The block's linear map and memmap are gone, no kernel event, no boot table lost,
        and every table page left is empty and one the policy declares it keeps."""
        from mmkit.pgtable.walk import translate

        m, start, boot, steps = self._run(machine_config)
        culprit = self._culprit(machine_config)
        assert m.events == [], f"{culprit}: kernel events {[e.report() for e in m.events]}"
        for va in (m.lm_va(start), m.vmemmap_va(start >> m.desc.page_shift)):
            assert not translate(m, va).ok, f"{culprit}: {va:#x} still translates after removal"
        now = {(t.level, t.va_start): t for t in m.table_pages()}
        lost = sorted(boot - set(now))
        assert not lost, f"{culprit}: boot table pages were freed: {lost}"
        # a kept table's step is its parent entry's (not performed) clear: level -> child level
        child = {a.name: b.name for a, b in itertools.pairwise(m.pgtables.levels)}
        kept = {
            (child[s.level], s.va)
            for s in steps
            if s.action == "write" and (s.note or "").startswith("kept:")
        }
        # a table whose free the policy deferred (defer_table_free) is unhooked, not freed
        kept |= {(s.level, s.va) for s in steps if (s.note or "").startswith("deferred:")}
        for key in sorted(set(now) - boot):
            t = now[key]
            assert t.used_entries == 0, f"{culprit}: table {t!r} left with entries set"
            level_va = (t.level, t.va_start)
            assert self._declared_keep(m, *level_va, kept), (
                f"{culprit}: the empty {t.level} table at {t.va_start:#x} ({t.region}) was "
                "left, but no decision of the policy and no keep_table() keeps it"
            )

    def test_declared_behaviour_observed(self, machine_config: str) -> None:
        """The removal's steps show the decisions: one pass or two, the page-table lock or
        not; and ptdump takes get_online_mems() exactly when ``ptdump_hotplug_lock``."""
        from mmkit.mm.ptdump_debugfs import ptdump_show

        p = self._plugin()
        m, _, _, steps = self._run(machine_config)
        culprit = self._culprit(machine_config)
        fns = {s.function for s in steps}
        two = "unmap_hotplug_range" in fns
        assert two == (p.passes == 2), (
            f"{culprit}: passes is {p.passes}, but the removal "
            f"{'ran' if two else 'did not run'} unmap_hotplug_range()"
        )
        ptl = any(
            s.action == "lock" and (s.note or "").startswith("init_mm.page_table_lock")
            for s in steps
        )
        assert ptl == bool(p.pgtable_lock), (
            f"{culprit}: pgtable_lock is {p.pgtable_lock}, but the removal "
            f"{'took' if ptl else 'did not take'} init_mm.page_table_lock"
        )
        locked = any(
            s.action == "lock" and (s.note or "").startswith("mem_hotplug_lock")
            for s in ptdump_show(m)
        )
        assert locked == bool(p.ptdump_hotplug_lock), (
            f"{culprit}: ptdump_hotplug_lock is {p.ptdump_hotplug_lock}, but ptdump_show() "
            f"{'took' if locked else 'did not take'} mem_hotplug_lock"
        )

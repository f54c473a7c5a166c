"""Random add / online / offline / remove sequences keep memblock, sections, memory blocks,
sysfs links and page tables consistent after every step (kernels with the patch 1/3 fix)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mmkit.arch.arm64 import CONFIGS
from mmkit.errors import Busy, Exists, MmkitError, NotFound
from mmkit.machine import Machine
from mmkit.pgtable.walk import translate


class HotplugFlow(RuleBasedStateMachine):
    @initialize(
        name=st.sampled_from(CONFIGS),
        kernel=st.sampled_from(["v5.4", "v5.5", "v5.7", "v6.1"]),
        online_type=st.sampled_from(["offline", "online", "online_movable"]),
        policy=st.sampled_from(["v6", "v7", "v5.7"]),
    )
    def boot(self, name, kernel, online_type, policy):
        self.m = Machine(
            name, kernel=kernel, online_type=online_type, policy=policy, vmalloc_areas=1
        )
        self.size = self.m.desc.memory_block_size
        top = max(s + n for s, n in self.m.boot_memory)
        first = -(-top // self.size) * self.size
        self.slots = [first + i * self.size for i in range(4)]
        self.boot_blocks = set(self.m.blocks)
        self.state: dict[int, str] = {}  # start -> "online" / "offline"

    @rule(i=st.integers(0, 3))
    def add(self, i):
        start = self.slots[i]
        before = self.m.digest()
        if start in self.state:
            with pytest.raises(Exists):
                self.m.add_memory(0, start, self.size)
            assert self.m.digest() == before
            return
        self.m.add_memory(0, start, self.size)
        self.state[start] = "offline" if self.m.online_type == "offline" else "online"

    @rule(i=st.integers(0, 3), movable=st.booleans())
    def online(self, i, movable):
        start = self.slots[i]
        if start not in self.state:
            with pytest.raises(NotFound):
                self.m.online_block(self.m.block_of(start))
            return
        self.m.online_block(self.m.block_of(start), "online_movable" if movable else "online")
        self.state[start] = "online"

    @rule(i=st.integers(0, 3))
    def offline(self, i):
        start = self.slots[i]
        if start in self.state:
            self.m.offline_block(self.m.block_of(start))
            self.state[start] = "offline"

    @rule(i=st.integers(0, 3))
    def remove(self, i):
        start = self.slots[i]
        before = self.m.digest()
        if self.state.get(start) != "offline":
            with pytest.raises(MmkitError) as err:
                self.m.remove_memory(start, self.size)
            assert isinstance(err.value, Busy if start in self.state else NotFound)
            assert self.m.digest() == before
            return
        self.m.remove_memory(start, self.size)
        del self.state[start]

    @rule(i=st.integers(0, 3))
    def cycle(self, i):
        """The whole life of a block in one rule: add (if absent), offline, remove."""
        start = self.slots[i]
        if start not in self.state:
            self.m.add_memory(0, start, self.size)
        self.m.offline_block(self.m.block_of(start))
        self.m.remove_memory(start, self.size)
        self.state.pop(start, None)

    @invariant()
    def consistent(self):
        if not hasattr(self, "m"):
            return
        m = self.m
        present = sorted(self.state)
        ranges = sorted(
            [(s, s + n) for s, n in m.boot_memory] + [(s, s + self.size) for s in present]
        )
        covered = []
        for r in m.memblock.regions("memory"):
            if covered and covered[-1][1] == r.base:
                covered[-1] = (covered[-1][0], r.end)
            else:
                covered.append((r.base, r.end))
        merged = []
        for lo, hi in ranges:
            if merged and merged[-1][1] == lo:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        assert covered == merged
        assert sorted(m.resources) == ranges
        blocks = self.boot_blocks | {m.block_of(s) for s in present}
        assert set(m.blocks) == blocks == m.sysfs.memory
        for b in blocks:
            assert m.sysfs.has_link(("node", 0), ("memory", b))
            assert m.sysfs.has_link(("memory", b), ("node", 0))
        assert len(m.sysfs.links) == 2 * len(blocks)  # no stale link anywhere
        bits = m.macros["SECTION_SIZE_BITS"]
        for start, state in self.state.items():
            assert m.blocks[m.block_of(start)].state == state
            assert m.sections[start >> bits].online == (state == "online")
            assert translate(m, m.lm_va(start)).pa == start
            assert m.pfn_valid(start >> m.desc.page_shift)
        for start in set(self.slots) - set(self.state):
            assert not translate(m, m.lm_va(start)).ok
            assert (start >> bits) not in m.sections
            assert not m.pfn_valid(start >> m.desc.page_shift)
        assert m.events == [] and m.oops is None and m.locks == {}


HotplugFlow.TestCase.settings = settings(
    settings(),
    max_examples=max(40, settings().max_examples // 2),
    stateful_step_count=12,
    deadline=None,
)
TestHotplugFlow = HotplugFlow.TestCase

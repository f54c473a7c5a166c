"""Random hot-add / hot-remove sequences keep the engine's invariants after every step.

Over all 8 configurations and every policy: every hot-added block translates to the right
physical address with the kernel's attributes and its struct pages are mapped; removed
blocks fault; every table page is reachable exactly once and every page the allocator calls
a table page is one; no kernel event fires in a single thread; bad requests change nothing;
and once everything is removed the tables are boot's plus exactly what the policy is known to
keep (computed from geometry by ``tests.machine_oracle``).

Cost per sequence: each configuration is booted once and every sequence starts from a deep
copy of that machine (``Machine.__deepcopy__``; ``test_a_copied_machine_is_independent``
checks the copy is exact and shares nothing that changes), and the invariants, which depend
only on the machine, are checked again only after a step that changed it (a refused request
is asserted to leave the digest unchanged, so its state was checked already). ``--soak``
runs ``test_soak_hotplug``: 250 sequences for each of the 8 configurations x 5 policies.
"""

from __future__ import annotations

import copy
import functools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mmkit.arch import pte as hw
from mmkit.arch.arm64 import CONFIGS
from mmkit.arch.teaching import CONFIGS as TEACHING
from mmkit.arch.teaching import ERAS
from mmkit.errors import Exists, InvalidArgument, MmkitError
from mmkit.machine import Machine
from mmkit.mm.ptdump import PtdumpRange, format_ptdump, parse_ptdump, ptdump_walk
from mmkit.pgtable.walk import translate
from tests.machine_oracle import inside_vmemmap, live_spans, reachable_tables, vmemmap_spans

ALL = list(CONFIGS)  # the built-in family (plugins may add more names)
POLICIES = ["naive", "v3", "v6", "v7", "v5.7"]
SOAK_SEQUENCES = 250  #: per (configuration, policy): 8 x 5 x 250 = 10,000 sequences
ATTRS = hw.PTE_AF | hw.PTE_SHARED | hw.PTE_PXN | hw.PTE_UXN | hw.PTE_ATTRINDX(hw.MT_NORMAL)


_BOOTED: dict[tuple[object, ...], tuple[Machine, frozenset[tuple[int, int]]]] = {}


def booted(
    name: str, policy: str, kernel: str, rodata_full: bool, vmalloc_areas: int
) -> tuple[Machine, frozenset[tuple[int, int]]]:
    """A fresh copy of the machine booted with these options (booted once per process), and
    its boot table spans."""
    key = (name, policy, kernel, rodata_full, vmalloc_areas)
    if key not in _BOOTED:
        m = Machine(
            name, policy=policy, kernel=kernel, vmalloc_areas=vmalloc_areas, rodata_full=rodata_full
        )
        _BOOTED[key] = (m, frozenset(live_spans(m)))
    template, spans = _BOOTED[key]
    return copy.deepcopy(template), spans


#: (invariant, hash of a state it held in): the invariants are functions of the machine
#: and the blocks present, so a state seen again (in this sequence or an earlier one) holds
_HELD: set[tuple[str, int]] = set()


def when_changed(check):
    """Run the invariant ``check`` only in a state it has not been seen to hold in."""

    @functools.wraps(check)
    def wrapper(self):
        if not hasattr(self, "m"):
            return
        if self.state_version != self.version:
            self.state = hash((self.m.digest(log=False), frozenset(self.present)))
            self.state_version = self.version
        key = (check.__name__, self.state)
        if key not in _HELD:
            check(self)
            _HELD.add(key)

    return wrapper


class Hotplug(RuleBasedStateMachine):
    VMALLOC_AREAS = 1
    sequences = 0  #: sequences completed (teardown reached), per class

    @initialize(
        name=st.sampled_from(ALL),
        policy=st.sampled_from(POLICIES),
        kernel=st.sampled_from(["v5.3", "v5.4", "v5.7", "v6.1"]),
        rodata_full=st.booleans(),
    )
    def boot(self, name, policy, kernel, rodata_full):
        self.m, self.boot_spans = booted(name, policy, kernel, rodata_full, self.VMALLOC_AREAS)
        self.version = 0  #: bumped by every step that changes the machine
        self.state_version = -1  #: the version ``state`` (a hash of the machine) is of
        self.block = self.m.desc.memory_block_size
        lm = (self.m.macros["PAGE_END"] or 1 << 64) - self.m.macros["PAGE_OFFSET"]
        reach = min(lm, 1 << self.m.macros["MAX_PHYSMEM_BITS"])
        self.limit = min(self.m.memstart + lm, 1 << self.m.macros["MAX_PHYSMEM_BITS"])
        top = self.m.boot_memory[-1][0] + self.m.boot_memory[-1][1]
        near = [top + i * self.block for i in range(4)]
        far = [self.m.memstart + ((reach // d) & ~(self.block - 1)) for d in (2, 4)]
        self.candidates = sorted(set(near + far))
        self.present: set[int] = set()
        self.ever: set[int] = set()

    @rule(i=st.integers(min_value=0, max_value=5), n=st.integers(min_value=1, max_value=2))
    def add(self, i, n):
        start = self.candidates[i % len(self.candidates)]
        blocks = {start + k * self.block for k in range(n)}
        before = self.m.digest()
        if start + n * self.block > self.limit:  # past the end of the linear map
            with pytest.raises(InvalidArgument):
                self.m.hot_add(start, n * self.block)
            assert self.m.digest() == before
            return
        if blocks & self.present:
            with pytest.raises(Exists):
                self.m.hot_add(start, n * self.block)
            assert self.m.digest() == before
            return
        self.m.hot_add(start, n * self.block)
        self.version += 1
        self.present |= blocks
        self.ever |= blocks

    @precondition(lambda self: self.present)
    @rule(data=st.data())
    def remove(self, data):
        start = data.draw(st.sampled_from(sorted(self.present)))
        self.m.hot_remove(start, self.block)
        self.version += 1
        self.present.discard(start)

    @rule(i=st.integers(min_value=0, max_value=5))
    def bad_remove(self, i):
        start = self.candidates[i % len(self.candidates)]
        if start in self.present:
            return
        before = self.m.digest()
        try:
            self.m.hot_remove(start, self.block)
        except MmkitError as err:
            assert err.errno_name in ("ENOENT", "EBUSY", "EINVAL")
        else:
            raise AssertionError("removing absent memory succeeded")
        assert self.m.digest() == before

    @invariant()
    @when_changed
    def translations(self):
        m = self.m
        shift = m.desc.page_shift
        for start in self.candidates:
            for pa in (start, start + self.block - m.page_size):
                w = translate(m, m.lm_va(pa))
                if start in self.present:
                    assert w.ok and w.pa == pa, hex(pa)
                    assert w.leaf_raw & ATTRS == ATTRS and not w.leaf_raw & hw.PTE_RDONLY
                    assert translate(m, m.vmemmap_va(pa >> shift)).ok
                else:
                    assert not w.ok, hex(pa)

    @invariant()
    @when_changed
    def tables_accounted(self):
        m = self.m
        reach = reachable_tables(m)
        assert len(reach) == len(set(reach)), "a table page is hooked twice"
        assert set(reach) == set(m.pgtables.info), "a live table is unreachable"
        runtime = {p for p, i in m.pgtables.info.items() if not i.boot}
        assert runtime == {p for p, f in m.physmem.frames.items() if f.state == "table"}
        assert m.events == []

    @invariant()
    @when_changed
    def ptdump_parses_back(self):
        records = list(ptdump_walk(self.m))
        ranges = [
            (r.start, r.end, r.level, r.tokens) for r in records if isinstance(r, PtdumpRange)
        ]
        parsed = [
            (r.start, r.end, r.level, r.tokens)
            for r in parse_ptdump(format_ptdump(records, self.m.desc.kernel))
            if isinstance(r, PtdumpRange)
        ]
        assert parsed == ranges

    def teardown(self):
        if not hasattr(self, "m"):
            return
        for start in sorted(self.present):
            self.m.hot_remove(start, self.block)
        p = self.m.policy.name
        keeps = p == "v6" or (p == "v7" and self.m.desc.vmalloc_vmemmap_overlap.overlap)
        spans = vmemmap_spans(self.m, self.ever) - self.boot_spans
        if p == "v5.7":  # floor/ceiling: only tables whose span lies inside the vmemmap go
            kept = {s for s in spans if not inside_vmemmap(self.m, s)}
        else:
            kept = spans if keeps else set()
        assert live_spans(self.m) == self.boot_spans | kept
        assert self.m.events == []
        type(self).sequences += 1


Hotplug.TestCase.settings = settings(
    settings(),
    max_examples=max(10, settings().max_examples // 3),
    stateful_step_count=8,
    deadline=None,
)
TestHotplug = Hotplug.TestCase


class TeachingHotplug(Hotplug):
    """The same rules and invariants on the teaching layouts, with no vmalloc area: the
    topmost block's memmap is then alone in a table page shared with vmalloc's span."""

    VMALLOC_AREAS = 0

    @initialize(
        name=st.sampled_from(TEACHING),
        policy=st.sampled_from(POLICIES),
        kernel=st.sampled_from(ERAS),
        rodata_full=st.booleans(),
    )
    def boot(self, name, policy, kernel, rodata_full):
        Hotplug.boot(self, name, policy, kernel, rodata_full)
        mac = self.m.macros
        linear = (mac["PAGE_END"] - mac["PAGE_OFFSET"]) % (1 << 64)
        top = self.m.memstart + linear - self.block
        self.candidates = [top, top - self.block, *self.candidates[:4]]


TeachingHotplug.TestCase.settings = Hotplug.TestCase.settings
TestTeachingHotplug = TeachingHotplug.TestCase


@pytest.mark.parametrize("name", ALL)
def test_a_copied_machine_is_independent(name):
    """What ``booted`` relies on: a copy equals a fresh boot, and changing it leaves the
    machine it was copied from as it was."""
    fresh = Machine(name, vmalloc_areas=1)
    template, _ = booted(name, "v5.7", "v5.4", False, 1)
    assert template.digest() == fresh.digest()
    before = _BOOTED[(name, "v5.7", "v5.4", False, 1)][0].digest()
    top = template.boot_memory[-1][0] + template.boot_memory[-1][1]
    template.hot_add(top, template.desc.memory_block_size)
    template.access(template.lm_va(top), cpu=1)
    assert template.digest() != before
    assert _BOOTED[(name, "v5.7", "v5.4", False, 1)][0].digest() == before == fresh.digest()


def _pinned(name: str, policy: str) -> type[Hotplug]:
    """The stateful machine on one configuration and policy (kernel era and rodata_full
    still drawn)."""

    class Pinned(Hotplug):
        @initialize(
            kernel=st.sampled_from(["v5.3", "v5.4", "v5.7", "v6.1"]), rodata_full=st.booleans()
        )
        def boot(self, kernel, rodata_full):
            Hotplug.boot(self, name, policy, kernel, rodata_full)

    Pinned.__name__ = Pinned.__qualname__ = f"Hotplug[{name}, {policy}]"
    return Pinned


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ALL)
def test_soak_hotplug(name, policy):
    """``--soak``: SOAK_SEQUENCES sequences on each configuration and policy, every one
    carried to its teardown with all invariants held."""
    machine = _pinned(name, policy)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=SOAK_SEQUENCES,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert machine.sequences >= SOAK_SEQUENCES
    print(f"{name} {policy}: {machine.sequences} sequences")  # shown with -s

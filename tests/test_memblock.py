"""mmkit.mm.memblock against hand-worked v5.4 mm/memblock.c behaviour, a page-granular oracle,
and arm64 pfn_valid() (v5.3/v5.4/v5.7 arch/arm64/mm/init.c)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mmkit.errors import InvalidArgument, UnknownName
from mmkit.mm.memblock import (
    MAX_NUMNODES,
    PFN_VALID_KERNELS,
    PHYS_ADDR_MAX,
    Memblock,
    MemblockFlags,
    MemblockRegion,
    MemblockType,
    memblock_add_range,
    memblock_isolate_range,
    pfn_valid,
    pfn_valid_why,
)

F = MemblockFlags
G = 1 << 30
M = 1 << 20


def spans(mb: Memblock, name: str = "memory") -> list[tuple[int, int, F, int]]:
    return [(r.base, r.end, r.flags, r.nid) for r in mb.regions(name)]


# ---------------------------------------------------------------- add / merge
def test_adjacent_ranges_with_same_nid_and_flags_merge():
    mb = Memblock()
    mb.add_node(2 * G, G, 0)
    mb.add_node(G, G, 0)  # below, touching
    mb.add_node(3 * G, G, 0)  # above, touching
    assert spans(mb) == [(G, 4 * G, F.NONE, 0)]


def test_different_nid_does_not_merge():
    mb = Memblock()
    mb.add_node(G, G, 0)
    mb.add_node(2 * G, G, 1)
    assert spans(mb) == [(G, 2 * G, F.NONE, 0), (2 * G, 3 * G, F.NONE, 1)]


def test_different_flags_do_not_merge():
    mb = Memblock()
    mb.add_node(G, 2 * G, 0)
    mb.mark_hotplug(2 * G, G)
    assert spans(mb) == [(G, 2 * G, F.NONE, 0), (2 * G, 3 * G, F.HOTPLUG, 0)]
    # A fresh add next to the HOTPLUG region is NONE: it touches but does not merge.
    mb.add_node(3 * G, G, 0)
    assert spans(mb)[-2:] == [(2 * G, 3 * G, F.HOTPLUG, 0), (3 * G, 4 * G, F.NONE, 0)]


def test_memblock_add_uses_max_numnodes_until_set_node():
    mb = Memblock()
    mb.add(G, G)
    mb.add_node(2 * G, G, 0)
    assert spans(mb) == [(G, 2 * G, F.NONE, MAX_NUMNODES), (2 * G, 3 * G, F.NONE, 0)]
    mb.set_node(G, G, 0)  # dummy_numa_init(): everything on node 0, then merged
    assert spans(mb) == [(G, 3 * G, F.NONE, 0)]


def test_overlapping_add_is_absorbed_and_fills_only_the_gaps():
    mb = Memblock()
    mb.add_node(G, G, 0)
    mb.add_node(3 * G, G, 0)
    mb.add_node(G + M, 4 * G, 0)  # covers the gap [2G, 3G) and runs past 4G
    assert spans(mb) == [(G, 5 * G + M, F.NONE, 0)]
    assert mb.phys_mem_size() == 4 * G + M
    assert mb.warnings == []


def test_overlapping_add_never_changes_existing_regions():
    mb = Memblock()
    mb.add_node(2 * G, G, 1)
    mb.mark_nomap(2 * G, G)
    mb.add_node(G, 3 * G, 0)  # lower and upper pieces get nid 0; the middle keeps nid 1
    assert spans(mb) == [
        (G, 2 * G, F.NONE, 0),
        (2 * G, 3 * G, F.NOMAP, 1),
        (3 * G, 4 * G, F.NONE, 0),
    ]
    # The kernel WARN_ON()s for the piece inserted below a region of another nid/flags.
    assert len(mb.warnings) == 1 and "WARN_ON" in mb.warnings[0]


def test_add_range_entirely_inside_is_a_no_op():
    mb = Memblock()
    mb.add_node(G, 2 * G, 0)
    before = mb.snapshot()
    mb.add_node(G + M, M, 3)
    assert mb.snapshot() == before


def test_size_clipped_at_phys_addr_max():
    mb = Memblock()
    mb.add(PHYS_ADDR_MAX + 1 - 0x1000, 0x1000)  # memblock_cap_size(): loses the last byte
    assert spans(mb) == [(PHYS_ADDR_MAX + 1 - 0x1000, PHYS_ADDR_MAX, F.NONE, MAX_NUMNODES)]


def test_add_range_on_a_bare_type():
    t = MemblockType("memory")
    memblock_add_range(t, 0x3000, 0x1000, 0, F.NONE)
    memblock_add_range(t, 0x1000, 0x1000, 0, F.NONE)
    memblock_add_range(t, 0x2000, 0x1000, 0, F.NONE)
    assert t.regions == [MemblockRegion(0x1000, 0x3000, F.NONE, 0)]
    assert (t.cnt, t.total_size) == (1, 0x3000)


# ---------------------------------------------------------------- isolate / remove
def test_isolate_returns_the_inside_slice_and_does_not_merge():
    t = MemblockType("memory", [MemblockRegion(0, 0x4000, F.NONE, 0)])
    assert memblock_isolate_range(t, 0x1000, 0x2000) == (1, 2)
    assert [(r.base, r.end) for r in t.regions] == [(0, 0x1000), (0x1000, 0x3000), (0x3000, 0x4000)]
    assert memblock_isolate_range(t, 0x8000, 0x1000) == (0, 0)  # nothing inside


def test_remove_in_the_middle_splits_in_two():
    mb = Memblock()
    mb.add_node(G, 4 * G, 0)
    mb.remove(2 * G, G)
    assert spans(mb) == [(G, 2 * G, F.NONE, 0), (3 * G, 5 * G, F.NONE, 0)]
    assert mb.phys_mem_size() == 3 * G


def test_remove_across_several_regions():
    mb = Memblock()
    mb.add_node(0, G, 0)
    mb.add_node(G, G, 1)
    mb.add_node(3 * G, G, 1)
    mb.add_node(5 * G, G, 2)
    mb.remove(G // 2, 5 * G)  # cuts region 0's top, drops two, cuts region 3's bottom
    assert spans(mb) == [(0, G // 2, F.NONE, 0), (5 * G + G // 2, 6 * G, F.NONE, 2)]


def test_remove_of_absent_memory_is_silent():
    mb = Memblock()
    mb.add_node(G, G, 0)
    before = mb.snapshot()
    mb.remove(4 * G, G)
    mb.remove(4 * G, G)
    assert mb.snapshot() == before


def test_free_removes_from_reserved_only():
    mb = Memblock()
    mb.add_node(G, G, 0)
    mb.reserve(G, 16 * M)
    mb.reserve(G + 16 * M, 16 * M)  # merges with the first reservation
    assert spans(mb, "reserved") == [(G, G + 32 * M, F.NONE, MAX_NUMNODES)]
    mb.free(G + 8 * M, 8 * M)
    assert spans(mb, "reserved") == [
        (G, G + 8 * M, F.NONE, MAX_NUMNODES),
        (G + 16 * M, G + 32 * M, F.NONE, MAX_NUMNODES),
    ]
    assert mb.is_reserved(G) and not mb.is_reserved(G + 8 * M)
    assert spans(mb) == [(G, 2 * G, F.NONE, 0)]
    assert mb.reserved_size() == 24 * M


# ---------------------------------------------------------------- flags
def test_mark_nomap_keeps_memory_but_not_map_memory():
    mb = Memblock()
    mb.add_node(G, G, 0)
    mb.mark_nomap(G + 2 * M, 2 * M)
    assert spans(mb) == [
        (G, G + 2 * M, F.NONE, 0),
        (G + 2 * M, G + 4 * M, F.NOMAP, 0),
        (G + 4 * M, 2 * G, F.NONE, 0),
    ]
    assert mb.is_memory(G + 3 * M) and not mb.is_map_memory(G + 3 * M)
    assert mb.is_map_memory(G + 4 * M) and mb.is_map_memory(G + 2 * M - 1)
    assert mb.phys_mem_size() == G  # NOMAP memory still counts


def test_clear_nomap_remerges():
    mb = Memblock()
    mb.add_node(G, G, 0)
    mb.mark_nomap(G + 2 * M, 2 * M)
    mb.clear_nomap(G, G)
    assert spans(mb) == [(G, 2 * G, F.NONE, 0)]


def test_hotplug_and_nomap_combine_and_clear_independently():
    mb = Memblock()
    mb.add_node(0, 4 * G, 0)
    mb.mark_hotplug(G, 2 * G)
    mb.mark_nomap(2 * G, 2 * G)
    assert [r.flags for r in mb.regions()] == [F.NONE, F.HOTPLUG, F.HOTPLUG | F.NOMAP, F.NOMAP]
    mb.clear_hotplug(0, 4 * G)
    assert spans(mb) == [(0, 2 * G, F.NONE, 0), (2 * G, 4 * G, F.NOMAP, 0)]


def test_flag_changes_ignore_holes():
    mb = Memblock()
    mb.add_node(0, G, 0)
    mb.add_node(2 * G, G, 0)
    mb.mark_mirror(0, 4 * G)
    assert spans(mb) == [(0, G, F.MIRROR, 0), (2 * G, 3 * G, F.MIRROR, 0)]
    assert not mb.is_memory(G)


# ---------------------------------------------------------------- queries
def test_start_end_of_dram_and_phys_mem_size():
    mb = Memblock()
    assert (mb.start_of_DRAM(), mb.end_of_DRAM(), mb.phys_mem_size()) == (0, 0, 0)
    mb.add_node(0x4000_0000, G, 0)
    mb.add_node(0x8_8000_0000, 2 * G, 1)
    assert mb.start_of_DRAM() == 0x4000_0000
    assert mb.end_of_DRAM() == 0x8_8000_0000 + 2 * G
    assert mb.phys_mem_size() == 3 * G  # the hole between is not counted
    mb.remove(0x8_8000_0000, 2 * G)
    assert mb.end_of_DRAM() == 0x4000_0000 + G


def test_region_queries():
    mb = Memblock()
    mb.add_node(G, G, 0)
    mb.add_node(2 * G, G, 1)
    mb.reserve(G + M, M)
    assert mb.is_region_memory(G, G) and not mb.is_region_memory(G, 2 * G)  # one region only
    assert mb.is_region_reserved(G, 2 * M) and not mb.is_region_reserved(2 * G, M)


def test_for_each_mem_range():
    mb = Memblock()
    mb.add_node(0, 4 * G, 0)
    mb.add_node(4 * G, G, 1)
    mb.mark_nomap(G, G)
    mb.reserve(3 * G, M)
    assert list(mb.for_each_mem_range()) == [
        (0, G, 0, F.NONE),
        (2 * G, 4 * G, 0, F.NONE),
        (4 * G, 5 * G, 1, F.NONE),
    ]
    assert [r[:2] for r in mb.for_each_mem_range(flags=F.NOMAP)][:2] == [(0, G), (G, 2 * G)]
    assert list(mb.for_each_mem_range(nid=1)) == [(4 * G, 5 * G, 1, F.NONE)]
    assert [r[:2] for r in mb.for_each_free_mem_range()] == [
        (0, G),
        (2 * G, 3 * G),
        (3 * G + M, 4 * G),
        (4 * G, 5 * G),
    ]
    mb.mark_hotplug(4 * G, G)
    assert list(mb.for_each_mem_range(nid=1, movable_node=True)) == []
    assert mb.warnings == []
    list(mb.for_each_mem_range(nid=MAX_NUMNODES))
    assert "deprecated" in mb.warnings[-1]


def test_unknown_type_name():
    with pytest.raises(UnknownName):
        Memblock().regions("physmem")


# ---------------------------------------------------------------- bad input
def _ops(mb: Memblock, base, size):
    return {
        "add": lambda: mb.add(base, size),
        "add_node": lambda: mb.add_node(base, size, 0),
        "reserve": lambda: mb.reserve(base, size),
        "remove": lambda: mb.remove(base, size),
        "free": lambda: mb.free(base, size),
        "mark_nomap": lambda: mb.mark_nomap(base, size),
        "clear_nomap": lambda: mb.clear_nomap(base, size),
        "mark_hotplug": lambda: mb.mark_hotplug(base, size),
        "clear_hotplug": lambda: mb.clear_hotplug(base, size),
        "set_node": lambda: mb.set_node(base, size, 1),
        "is_region_memory": lambda: mb.is_region_memory(base, size),
    }


BAD = [
    (G, 0),
    (G, -G),
    (-1, G),
    (PHYS_ADDR_MAX, 2),  # base + size > 2**64
    (1 << 64, 1),
    (1.0, G),
    (G, "1G"),
    (True, G),
]


@pytest.mark.parametrize("op", sorted(_ops(Memblock(), 0, 0)))
@pytest.mark.parametrize(("base", "size"), BAD)
def test_bad_input_raises_einval_and_changes_nothing(op, base, size):
    mb = Memblock()
    mb.add_node(G, 2 * G, 0)
    mb.mark_nomap(G, M)
    mb.reserve(G, 4 * M)
    before = mb.snapshot()
    with pytest.raises(InvalidArgument) as err:
        _ops(mb, base, size)[op]()
    assert err.value.errno_name == "EINVAL"
    assert mb.snapshot() == before and mb.warnings == []


@pytest.mark.parametrize("addr", [-1, 1 << 64, 1.5])
def test_bad_address_queries_raise(addr):
    mb = Memblock()
    for q in (mb.is_memory, mb.is_map_memory, mb.is_reserved):
        with pytest.raises(InvalidArgument):
            q(addr)


# ---------------------------------------------------------------- pfn_valid
HOT = 0x6_8000_0000  # the V7 1/3 trace: the 1 GB block at PA 0x680000000 (pfns 0x680000..)
HOT_PFN = HOT >> 12
HOT_SECTION = HOT >> 30


@pytest.fixture
def hot_added() -> Memblock:
    mb = Memblock()
    mb.add_node(0x4000_0000, G, 0)  # boot memory, section 1
    mb.add_node(HOT, G, 0)  # add_memory_resource(): memblock_add_node()
    return mb


@pytest.mark.parametrize("kernel", PFN_VALID_KERNELS)
def test_pfn_valid_for_mapped_memory_in_a_valid_section(hot_added, kernel):
    sections = {1, HOT_SECTION}
    for pfn in (HOT_PFN, HOT_PFN + 0x3FFFF, 0x40000):
        assert pfn_valid(hot_added, pfn, page_shift=12, sections=sections, kernel=kernel)
    assert not pfn_valid(hot_added, HOT_PFN + 0x40000, page_shift=12, sections=sections)


def test_failure_chain_memblock_removed_before_block_devices(hot_added):
    # v5.3 try_remove_memory(): memblock_free(); memblock_remove(); then
    # remove_memory_block_devices() -> unregister_memory_block_under_nodes() ->
    # get_nid_for_pfn(0x680000) -> pfn_valid_within() == pfn_valid() (HOLES_IN_ZONE).
    sections = {1, HOT_SECTION}  # arch_remove_memory() has not run: the section is valid
    hot_added.free(HOT, G)
    hot_added.remove(HOT, G)
    why = pfn_valid_why(hot_added, HOT_PFN, page_shift=12, sections=sections, kernel="v5.3")
    assert not why.valid and why.failed == "memblock_is_map_memory"
    assert why.section_nr == HOT_SECTION and why.addr == HOT
    assert "not in memblock.memory" in why.detail
    nid = 0 if why.valid else -1  # get_nid_for_pfn(): -1, so no sysfs link is removed
    assert nid == -1
    # Boot memory is untouched.
    assert pfn_valid(hot_added, 0x40000, page_shift=12, sections=sections)


def test_pfn_valid_false_for_nomap(hot_added):
    hot_added.mark_nomap(HOT, 2 * M)
    why = pfn_valid_why(hot_added, HOT_PFN, page_shift=12, sections={HOT_SECTION})
    assert (why.valid, why.failed, "NOMAP" in why.detail) == (False, "memblock_is_map_memory", True)
    assert pfn_valid(hot_added, (HOT + 2 * M) >> 12, page_shift=12, sections={HOT_SECTION})


def test_pfn_valid_false_in_an_invalid_section(hot_added):
    # memblock says memory, but the section has no memmap (e.g. after arch_remove_memory()).
    why = pfn_valid_why(hot_added, HOT_PFN, page_shift=12, sections={1})
    assert (why.valid, why.failed) == (False, "valid_section")
    assert not pfn_valid(hot_added, HOT_PFN, page_shift=12, sections=lambda nr: nr == 1)
    # CONFIG_SPARSEMEM=n: no section check, memblock alone decides.
    assert pfn_valid(hot_added, HOT_PFN, page_shift=12, sections=None)


@pytest.mark.parametrize("page_shift", [12, 14, 16])
def test_pfn_valid_per_granule(hot_added, page_shift):
    pfn = HOT >> page_shift
    assert pfn_valid(hot_added, pfn, page_shift=page_shift, sections={HOT_SECTION})
    assert pfn_valid_why(hot_added, pfn, page_shift=page_shift, sections=set()).section_nr == (
        HOT_SECTION
    )


def test_pfn_valid_overflow_and_nr_mem_sections():
    mb = Memblock()
    mb.add(0, PHYS_ADDR_MAX)
    why = pfn_valid_why(mb, 1 << 60, page_shift=12, sections=lambda nr: True)
    assert (why.valid, why.failed) == (False, "overflow")
    pfn = 1 << (48 - 12)  # PA 2**48: section 2**18 == NR_MEM_SECTIONS with 48 PA bits
    why = pfn_valid_why(mb, pfn, page_shift=12, sections=lambda nr: True)
    assert why.failed == "nr_mem_sections"
    assert pfn_valid(mb, pfn, page_shift=12, sections=lambda nr: True, max_physmem_bits=52)


def test_pfn_valid_versions_agree_and_unknown_kernel_is_rejected(hot_added):
    answers = {
        k: [
            pfn_valid(hot_added, p, page_shift=12, sections={1, HOT_SECTION}, kernel=k)
            for p in (0x3FFFF, 0x40000, HOT_PFN, HOT_PFN + 0x40000)
        ]
        for k in PFN_VALID_KERNELS
    }
    assert len({tuple(v) for v in answers.values()}) == 1
    with pytest.raises(UnknownName):
        pfn_valid(hot_added, 0, page_shift=12, sections=set(), kernel="v6.1")
    for bad in (-1, 1 << 64):
        with pytest.raises(InvalidArgument):
            pfn_valid(hot_added, bad, page_shift=12, sections=set())
    with pytest.raises(InvalidArgument):
        pfn_valid(hot_added, 0, page_shift=30, sections=set())


# ---------------------------------------------------------------- oracle (hypothesis)
PAGE = 0x1000
NPAGES = 48
NIDS = (0, 1, MAX_NUMNODES)
FLAGS = (F.HOTPLUG, F.MIRROR, F.NOMAP)

page_ranges = st.tuples(st.integers(0, NPAGES - 1), st.integers(1, 16)).map(
    lambda t: (t[0], min(t[1], NPAGES + 4 - t[0]))
)


class MemblockMachine(RuleBasedStateMachine):
    """Random add/remove/reserve/free/mark/clear/set_node against a page-granular oracle:
    for memory a dict page -> (nid, flags), for reserved a set of pages."""

    def __init__(self) -> None:
        super().__init__()
        self.mb = Memblock()
        self.mem: dict[int, tuple[int, F]] = {}
        self.res: set[int] = set()

    @rule(r=page_ranges, nid=st.sampled_from(NIDS))
    def add_node(self, r, nid):
        first, n = r
        if nid == MAX_NUMNODES:
            self.mb.add(first * PAGE, n * PAGE)
        else:
            self.mb.add_node(first * PAGE, n * PAGE, nid)
        for p in range(first, first + n):
            self.mem.setdefault(p, (nid, F.NONE))  # overlaps are absorbed

    @rule(r=page_ranges)
    def remove(self, r):
        first, n = r
        self.mb.remove(first * PAGE, n * PAGE)
        for p in range(first, first + n):
            self.mem.pop(p, None)

    @rule(r=page_ranges)
    def reserve(self, r):
        first, n = r
        self.mb.reserve(first * PAGE, n * PAGE)
        self.res.update(range(first, first + n))

    @rule(r=page_ranges)
    def free(self, r):
        first, n = r
        self.mb.free(first * PAGE, n * PAGE)
        self.res.difference_update(range(first, first + n))

    @rule(r=page_ranges, flag=st.sampled_from(FLAGS), set_=st.booleans())
    def setclr(self, r, flag, set_):
        first, n = r
        name = {F.HOTPLUG: "hotplug", F.MIRROR: "mirror", F.NOMAP: "nomap"}[flag]
        if flag == F.MIRROR and not set_:
            return  # the kernel has no memblock_clear_mirror()
        getattr(self.mb, f"{'mark' if set_ else 'clear'}_{name}")(first * PAGE, n * PAGE)
        for p in range(first, first + n):
            if p in self.mem:
                nid, fl = self.mem[p]
                self.mem[p] = (nid, F(fl | flag) if set_ else F(fl & ~flag))

    @rule(r=page_ranges, nid=st.sampled_from(NIDS))
    def set_node(self, r, nid):
        first, n = r
        self.mb.set_node(first * PAGE, n * PAGE, nid)
        for p in range(first, first + n):
            if p in self.mem:
                self.mem[p] = (nid, self.mem[p][1])

    @rule(base=st.integers(-2, 2), size=st.sampled_from([0, -PAGE, (1 << 64) + PAGE]))
    def bad(self, base, size):
        before = self.mb.snapshot()
        with pytest.raises(InvalidArgument):
            self.mb.add_node(base * PAGE, size, 0)
        with pytest.raises(InvalidArgument):
            self.mb.remove(base * PAGE, size)
        assert self.mb.snapshot() == before

    @invariant()
    def arrays_are_sorted_disjoint_and_minimal(self):
        for t in (self.mb.memory, self.mb.reserved):
            for r in t.regions:
                assert r.size > 0
            for a, b in zip(t.regions, t.regions[1:], strict=False):
                assert a.end <= b.base
                assert not (a.end == b.base and a.nid == b.nid and a.flags == b.flags)

    @invariant()
    def coverage_equals_oracle(self):
        seen: dict[int, tuple[int, F]] = {}
        for r in self.mb.regions("memory"):
            assert r.base % PAGE == 0 and r.size % PAGE == 0
            for p in range(r.base // PAGE, r.end // PAGE):
                seen[p] = (r.nid, r.flags)
        assert seen == self.mem
        res = {p for r in self.mb.regions("reserved") for p in range(r.base // PAGE, r.end // PAGE)}
        assert res == self.res
        assert self.mb.phys_mem_size() == len(self.mem) * PAGE
        assert self.mb.reserved_size() == len(self.res) * PAGE
        assert self.mb.start_of_DRAM() == (min(self.mem) * PAGE if self.mem else 0)
        assert self.mb.end_of_DRAM() == ((max(self.mem) + 1) * PAGE if self.mem else 0)

    @invariant()
    def queries_equal_oracle(self):
        for p in range(NPAGES + 20):
            addr = p * PAGE + 7
            assert self.mb.is_memory(addr) == (p in self.mem)
            assert self.mb.is_map_memory(addr) == (p in self.mem and not self.mem[p][1] & F.NOMAP)
            assert self.mb.is_reserved(addr) == (p in self.res)
            want = p in self.mem and not self.mem[p][1] & F.NOMAP
            assert pfn_valid(self.mb, p, page_shift=12, sections={0}) == want
        free = {
            p
            for base, end, _nid, fl in self.mb.for_each_free_mem_range()
            for p in range(base // PAGE, end // PAGE)
            if not fl & F.NOMAP
        }
        assert free == {p for p, (_n, fl) in self.mem.items() if not fl & F.NOMAP} - self.res


TestMemblockMachine = MemblockMachine.TestCase
TestMemblockMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


@given(st.lists(st.tuples(page_ranges, st.sampled_from(NIDS)), max_size=12))
def test_add_order_does_not_matter_when_ranges_are_disjoint_or_same_node(adds):
    """Adding the same set of single-node ranges in any order gives the same array."""
    adds = [(r, 0) for r, _ in adds]  # one node: the absorbed overlaps carry no information
    a, b = Memblock(), Memblock()
    for (first, n), nid in adds:
        a.add_node(first * PAGE, n * PAGE, nid)
    for (first, n), nid in reversed(adds):
        b.add_node(first * PAGE, n * PAGE, nid)
    assert a.snapshot() == b.snapshot()

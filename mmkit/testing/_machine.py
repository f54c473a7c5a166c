"""The engine-level conformance suite for ``mmkit.arch`` plugins whose descriptors run in a
:class:`~mmkit.machine.Machine`: :class:`ArchMachineConformance`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hypothesis import given
from hypothesis import strategies as st

from mmkit.testing._arch import ArchConformance

__all__ = ["ArchMachineConformance"]


class ArchMachineConformance(ArchConformance):
    """:class:`ArchConformance` plus what the engine needs of a family whose descriptors run
    in :class:`~mmkit.machine.Machine` (every built-in one): index fields that partition the
    VA, descriptor round trips, ``translate()`` against a slow reference walk, ptdump's
    merging, hot-add then hot-remove; subclass it as ``Test...``.

    Extra class attributes: ``machine_options`` (keyword arguments for ``Machine``),
    ``policy`` (the policy of the hot-add / hot-remove check; default ``"v5.7"``, which
    frees every table it allocated). An architecture whose descriptor format is not arm64's
    overrides :meth:`reference_walk`.
    """

    machine_options: ClassVar[Mapping[str, Any]] = {}
    policy: ClassVar[str] = "v5.7"

    def _machine(self, name: str, **options: Any) -> Any:
        from mmkit.machine import Machine

        return Machine(self._create(name), **{**self.machine_options, **options})

    def reference_walk(self, m: Any, va: int) -> int | None:
        """A slow, separate walk of ``va``: the PA it maps, or None. Written from the arm64
        descriptor rules (bit 0 valid; bit 1 table above the last level, page at it; the
        output address masked to the entry's size), reading the table pages directly."""
        pt = m.pgtables
        levels = [lv for lv in self._create(m.desc.name).geometry.levels_used]
        table = pt.pgd_pfn
        for depth, level in enumerate(levels):
            raw = int(pt.content[table][(va >> level.shift) & (level.ptrs - 1)])
            if not raw & 1:
                return None
            size = 1 << level.shift
            if depth == len(levels) - 1:
                return (pt.desc_to_pa(raw) & ~(size - 1)) + (va & (size - 1)) if raw & 2 else None
            if raw & 2:
                table = pt.desc_to_pa(raw) >> m.desc.page_shift
                continue
            return (pt.desc_to_pa(raw) & ~(size - 1)) + (va & (size - 1))
        return None

    def test_index_fields_partition_va(self, config_name: str) -> None:
        """The levels' index fields tile [PAGE_SHIFT, VA_BITS) without gap or overlap."""
        desc = self._create(config_name)
        macros = desc.macros()
        culprit = self._culprit(config_name)
        fields = sorted(
            (lv.shift, lv.shift + (lv.ptrs.bit_length() - 1), lv.name)
            for lv in desc.geometry.levels_used
        )
        low = macros["PAGE_SHIFT"]
        for lo, hi, name in fields:
            assert lo == low, (
                f"{culprit}: the {name} index field starts at bit {lo}; expected {low} (the "
                f"fields below end there): fields {fields}"
            )
            low = hi
        va_bits = macros.get("VA_BITS")
        if va_bits is not None:
            assert low == va_bits, (
                f"{culprit}: the index fields end at bit {low}; expected VA_BITS = {va_bits}"
            )

    def test_translate_matches_reference_walk(self, config_name: str) -> None:
        """``translate()`` gives what a slow walk of the table pages gives, for region edges
        and hypothesis-drawn kernel addresses of the booted machine."""
        from mmkit.pgtable.walk import translate

        m = self._machine(config_name)
        culprit = self._culprit(config_name)
        low = m.desc.kernel_va_start()
        edges = [
            a
            for r in m.desc.regions
            for a in (r.start, (r.start + r.end) // 2, r.end - 1)
            if low <= a < 1 << 64
        ]

        def check(va: int) -> None:
            got = translate(m, va).pa
            want = self.reference_walk(m, va)
            assert got == want, (
                f"{culprit}: translate({va:#x}) gives "
                f"{'a fault' if got is None else hex(got)}; the reference walk gives "
                f"{'a fault' if want is None else hex(want)}"
            )

        for va in edges:
            check(va)

        @self._settings()
        @given(va=st.integers(low, (1 << 64) - 1))
        def drawn(va: int) -> None:
            check(va)

        drawn()

    def test_descriptor_round_trips(self, config_name: str) -> None:
        """A page-aligned PA placed in a descriptor comes back out (``__phys_to_pte_val`` /
        ``__pte_to_phys``), for hypothesis-drawn PAs below ``2**pa_bits``; and every table
        descriptor of the booted machine points at a live table page, which its own table
        descriptor would point at again."""
        m = self._machine(config_name)
        pt, culprit = m.pgtables, self._culprit(config_name)
        shift = m.desc.page_shift

        @self._settings()
        @given(pfn=st.integers(0, (1 << (m.desc.pa_bits - shift)) - 1))
        def round_trip(pfn: int) -> None:
            pa = pfn << shift
            back = pt.desc_to_pa(pt.pa_to_desc(pa))
            assert back == pa, f"{culprit}: PA {pa:#x} -> descriptor -> {back:#x}"

        round_trip()
        last = len(pt.levels) - 1
        for table, info in sorted(pt.info.items()):
            if info.depth == last:
                continue
            for raw in (int(r) for r in pt.content[table] if pt.is_table(int(r), False)):
                child = pt.next_table(raw)
                assert child in pt.info, (
                    f"{culprit}: table descriptor {raw:#x} in pfn {table:#x} points at pfn "
                    f"{child:#x}, which is not a live table page"
                )
                assert pt.next_table(pt.table_desc(child)) == child

    def test_ptdump_is_ordered_merged_and_true(self, config_name: str) -> None:
        """ptdump's ranges are in address order and disjoint; two touching ranges with no
        marker between them differ in level or attributes (else note_page() would have merged
        them); a mapped range's first address translates and an unmapped one's does not."""
        from mmkit.mm.ptdump import ptdump_walk
        from mmkit.mm.ptdump_records import PtdumpRange
        from mmkit.pgtable.walk import translate

        m = self._machine(config_name)
        culprit = self._culprit(config_name)
        previous = None
        for rec in ptdump_walk(m):
            if not isinstance(rec, PtdumpRange):
                previous = None  # a marker line flushes the range being merged
                continue
            assert rec.start < rec.end, f"{culprit}: empty ptdump range {rec!r}"
            if previous is not None:
                assert previous.end <= rec.start, (
                    f"{culprit}: ptdump ranges out of order or overlapping: {previous!r}, {rec!r}"
                )
                assert not (
                    previous.end == rec.start
                    and previous.level == rec.level
                    and previous.prot == rec.prot
                ), f"{culprit}: ptdump did not merge {previous!r} and {rec!r}"
            mapped = translate(m, rec.start).ok
            assert mapped == rec.mapped, (
                f"{culprit}: ptdump says {rec!r} is {'' if rec.mapped else 'not '}mapped; the "
                f"walk of {rec.start:#x} {'translates' if mapped else 'faults'}"
            )
            previous = rec

    def test_hot_add_then_remove_restores_the_tree(self, config_name: str) -> None:
        """Hot-adding a block and removing it again under :attr:`policy` leaves the same
        table pages (level and VA) as at boot, and no kernel event."""
        m = self._machine(config_name, policy=self.policy)
        culprit = self._culprit(config_name)
        before = sorted((t.level, t.va_start) for t in m.table_pages())
        events = len(m.events)
        block = m.desc.memory_block_size
        top = max(s + n for s, n in m.boot_memory)
        start = (top + block - 1) // block * block
        m.hot_add(start, block)
        assert len(m.table_pages()) >= len(before)
        m.hot_remove(start, block)
        after = sorted((t.level, t.va_start) for t in m.table_pages())
        assert after == before, (
            f"{culprit}: after hot-add and hot-remove of [{start:#x}, {start + block:#x}) "
            f"under {self.policy}, table pages differ from boot: gained "
            f"{sorted(set(after) - set(before))}, lost {sorted(set(before) - set(after))}"
        )
        assert m.events[events:] == [], f"{culprit}: kernel events {m.events[events:]}"

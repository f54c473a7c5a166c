"""Conformance suites for ``mmkit.arch`` plugins: :class:`ArchConformance` (the contract:
names, descriptors, macros, regions, errors, determinism) and :class:`ArchMachineConformance`
(for a family whose descriptors run in :class:`~mmkit.machine.Machine`: index fields, the
walk, ptdump, hot-add then hot-remove)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkit import plugins
from mmkit.errors import MmkitError, UnknownName
from mmkit.testing._common import _Conformance, _equal_to_any

__all__ = ["ArchConformance", "ArchMachineConformance"]

_PAGE_SHIFTS = (12, 14, 16)  # 4K, 16K and 64K granules


class ArchConformance(_Conformance):
    """Conformance tests for an ``mmkit.arch`` plugin; subclass it as ``Test...``.

    Class attributes:

    ``plugin``
        the plugin object (required).
    ``names``
        the configuration names to check (default: all of ``plugin.names()``).
    ``options``
        every option ``create()`` accepts, mapped to some valid values; each value is tried,
        and :meth:`bad_options` draws values equal to none of them.
    ``max_examples``
        hypothesis examples per property check.
    """

    group = plugins.ARCH_GROUP
    names: ClassVar[Sequence[str] | None] = None
    options: ClassVar[Mapping[str, Sequence[object]]] = {}

    # pytest calls this on an instance of the test class (pytest >= 7) to parametrize every
    # test that takes ``config_name`` with one case per configuration, named after it.
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "config_name" in metafunc.fixturenames:
            names = self._config_names()
            metafunc.parametrize("config_name", names, ids=names)

    def _config_names(self) -> list[str]:
        return list(self.names if self.names is not None else self._plugin().names())

    def _create(self, name: str, **options: Any) -> Any:
        return self._plugin().create(name, **options)

    def _macros(self, name: str) -> Mapping[str, int]:
        return self._create(name).macros()

    # ------------------------------------------------------------------ strategies
    def bad_options(self, config_name: str) -> st.SearchStrategy[dict[str, object]]:
        """Option dicts ``create(config_name, **options)`` must refuse with an MmkitError.

        Default: 1 to 3 option names not in :attr:`options`, with any values; or one known
        option with a value equal to none of its listed valid ones. Override it when an
        option accepts more values than you can list (a range of ints, say).
        """
        junk = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=True),
            st.text(max_size=12),
            st.binary(max_size=4),
            st.lists(st.integers(), max_size=2),
        )
        known = set(self.options)
        unknown_key = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
            lambda key: key not in known
        )
        choices = [st.dictionaries(unknown_key, junk, min_size=1, max_size=3)]
        for option, valid in sorted(self.options.items()):
            bad = junk.filter(lambda value, valid=valid: not _equal_to_any(value, valid))
            choices.append(st.fixed_dictionaries({option: bad}))
        return st.one_of(choices)

    def unknown_names(self) -> st.SearchStrategy[str]:
        """Names ``create()`` must refuse with UnknownName: anything not in ``names()``."""
        valid = set(self._plugin().names())
        return st.text(max_size=24).filter(lambda name: name not in valid)

    # ------------------------------------------------------------------ the plugin
    def test_family(self) -> None:
        family = getattr(self._plugin(), "family", None)
        assert isinstance(family, str) and family and not re.search(r"[\s=:\[\]]", family), (
            f"{type(self._plugin()).__name__}: family is {family!r}; expected a non-empty "
            "string without spaces, e.g. 'arm64'"
        )

    def test_names_unique_and_sorted(self) -> None:
        names = list(self._plugin().names())
        culprit = self._culprit()
        assert names, f"{culprit}: names() is empty; expected at least one configuration"
        bad = [n for n in names if not isinstance(n, str) or not n or re.search(r"\s", n)]
        assert not bad, f"{culprit}: names() holds {bad!r}; expected non-empty strings"
        repeated = sorted({n for n in names if names.count(n) > 1})
        assert not repeated, f"{culprit}: names() repeats {repeated}; expected unique names"
        expected = sorted(names, key=plugins.natural_key)
        assert names == expected, (
            f"{culprit}: names() is not in natural order (mmkit.plugins.natural_key); "
            f"found {names}, expected {expected}"
        )

    def test_selected_names_exist(self) -> None:
        missing = sorted(set(self._config_names()) - set(self._plugin().names()))
        assert not missing, (
            f"{self._culprit()}: names = {missing} on the test class are not in "
            "plugin.names(); correct the test class"
        )

    def test_unknown_name_raises(self) -> None:
        plugin = self._plugin()
        culprit = self._culprit()

        @self._settings()
        @given(name=self.unknown_names())
        def check(name: str) -> None:
            try:
                plugin.create(name)
            except UnknownName:
                return
            except Exception as exc:
                raise AssertionError(
                    f"{culprit}: create({name!r}) raised {type(exc).__name__}: {exc}; "
                    "expected mmkit.errors.UnknownName listing the valid names"
                ) from exc
            raise AssertionError(
                f"{culprit}: create({name!r}) accepted a name not in names(); expected "
                "mmkit.errors.UnknownName"
            )

        check()

    # ------------------------------------------------------------------ each configuration
    def test_describe_is_one_line(self, config_name: str) -> None:
        line = self._plugin().describe(config_name)
        assert isinstance(line, str) and line.strip() and "\n" not in line.strip(), (
            f"{self._culprit(config_name)}: describe() returned {line!r}; expected one "
            "non-empty line of text"
        )

    def test_create_meets_protocol(self, config_name: str) -> None:
        desc = self._create(config_name)
        culprit = self._culprit(config_name)
        assert isinstance(desc, plugins.ArchDescriptorLike), (
            f"{culprit}: create() returned {type(desc).__name__}; expected an object with "
            "name, macros() and regions (mmkit.plugins.ArchDescriptorLike)"
        )
        assert desc.name == config_name, (
            f"{culprit}: create() returned a descriptor named {desc.name!r}; expected "
            f"{config_name!r}"
        )

    def test_required_macros(self, config_name: str) -> None:
        macros = self._macros(config_name)
        culprit = self._culprit(config_name)
        assert isinstance(macros, Mapping), (
            f"{culprit}: macros() returned {type(macros).__name__}; expected a mapping"
        )
        missing = [m for m in plugins.REQUIRED_MACROS if m not in macros]
        assert not missing, (
            f"{culprit}: macros() is missing {', '.join(missing)}; expected all of "
            f"{', '.join(plugins.REQUIRED_MACROS)}"
        )
        wrong = {k: v for k, v in macros.items() if not isinstance(v, int) or isinstance(v, bool)}
        assert not wrong, f"{culprit}: macros() has non-int values {wrong}; expected ints"

    def test_page_shift(self, config_name: str) -> None:
        shift = self._macros(config_name)["PAGE_SHIFT"]
        assert shift in _PAGE_SHIFTS, (
            f"{self._culprit(config_name)}: PAGE_SHIFT is {shift}; expected one of "
            f"{_PAGE_SHIFTS} (4K, 16K or 64K pages)"
        )

    def test_ptrs_per_pte(self, config_name: str) -> None:
        m = self._macros(config_name)
        expected = 2 ** (m["PAGE_SHIFT"] - 3)
        assert m["PTRS_PER_PTE"] == expected, (
            f"{self._culprit(config_name)}: PTRS_PER_PTE is {m['PTRS_PER_PTE']}; expected "
            f"2**(PAGE_SHIFT - 3) = {expected} (a page of 8-byte descriptors)"
        )

    def test_vmalloc_range(self, config_name: str) -> None:
        m = self._macros(config_name)
        assert m["VMALLOC_START"] < m["VMALLOC_END"], (
            f"{self._culprit(config_name)}: VMALLOC_START {m['VMALLOC_START']:#x} is not below "
            f"VMALLOC_END {m['VMALLOC_END']:#x}"
        )

    def test_regions(self, config_name: str) -> None:
        regions = list(self._create(config_name).regions)
        culprit = self._culprit(config_name)
        assert regions, f"{culprit}: regions is empty; expected the VA layout"
        for i, r in enumerate(regions):
            assert isinstance(r, plugins.RegionLike), (
                f"{culprit}: regions[{i}] is {type(r).__name__}; expected a record with name, "
                "kind, start and end"
            )
            assert isinstance(r.name, str) and isinstance(r.kind, str), (
                f"{culprit}: regions[{i}] name/kind are {r.name!r}/{r.kind!r}; expected str"
            )
            assert 0 <= r.start < r.end <= 2**64, (
                f"{culprit}: region {r.name!r} is [{r.start:#x}, {r.end:#x}); expected "
                "0 <= start < end <= 2**64"
            )
        for a, b in itertools.pairwise(regions):
            assert a.end <= b.start, (
                f"{culprit}: region {a.name!r} [{a.start:#x}, {a.end:#x}) overlaps or follows "
                f"{b.name!r} [{b.start:#x}, {b.end:#x}); expected address order, no overlap"
            )

    def test_create_is_deterministic(self, config_name: str) -> None:
        first, second = self._create(config_name), self._create(config_name)
        culprit = self._culprit(config_name)
        assert dict(first.macros()) == dict(second.macros()), (
            f"{culprit}: two create() calls gave different macros()"
        )
        assert [(r.name, r.kind, r.start, r.end) for r in first.regions] == [
            (r.name, r.kind, r.start, r.end) for r in second.regions
        ], f"{culprit}: two create() calls gave different regions"
        assert first == second, (
            f"{culprit}: two create() calls gave unequal descriptors; make the descriptor a "
            "value (a frozen dataclass, or define __eq__)"
        )

    def test_valid_options_accepted(self, config_name: str) -> None:
        culprit = self._culprit(config_name)
        for option, values in sorted(self.options.items()):
            for value in values:
                try:
                    desc = self._create(config_name, **{option: value})
                except MmkitError as err:
                    # A configuration may refuse a combination (KASAN on arm64 16K/48):
                    # that is fine when it says so with an MmkitError naming the reason.
                    assert str(err), f"{culprit}: {option}={value!r} refused with no message"
                    continue
                assert desc.name == config_name, (
                    f"{culprit}: create({option}={value!r}) returned {desc.name!r}"
                )

    def test_bad_options_raise(self, config_name: str) -> None:
        plugin = self._plugin()
        culprit = self._culprit(config_name)

        @self._settings()
        @given(options=self.bad_options(config_name))
        def check(options: dict[str, object]) -> None:
            try:
                plugin.create(config_name, **options)
            except MmkitError as err:
                assert str(err), f"{culprit}: create(**{options!r}) raised with no message"
                return
            except Exception as exc:
                raise AssertionError(
                    f"{culprit}: create(**{options!r}) raised {type(exc).__name__}: {exc}; "
                    "expected mmkit.errors.InvalidArgument naming the bad option"
                ) from exc
            raise AssertionError(
                f"{culprit}: create(**{options!r}) accepted bad options; expected "
                "mmkit.errors.InvalidArgument (list every option in the test class's options)"
            )

        check()


class ArchMachineConformance(ArchConformance):
    """:class:`ArchConformance` plus what the engine needs of a family whose descriptors run
    in :class:`~mmkit.machine.Machine` (every built-in one); subclass it as ``Test...``.

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

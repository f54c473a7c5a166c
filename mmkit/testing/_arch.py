"""The conformance suite for ``mmkit.arch`` plugins, :class:`ArchConformance`: the contract
(names, descriptors, macros, regions, errors, determinism). For a family that runs in a
:class:`~mmkit.machine.Machine`, :class:`mmkit.testing.ArchMachineConformance` adds the
engine's checks."""

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

__all__ = ["ArchConformance"]

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

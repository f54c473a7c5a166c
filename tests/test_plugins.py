"""The plugin registry: discovery, loading, reports, disabling, duplicates, isolation.

Most tests install fake distributions the honest way: a ``*.dist-info`` directory with
``METADATA`` and ``entry_points.txt`` next to the plugin modules, in a directory put on
``sys.path``, so ``importlib.metadata`` finds them exactly as it finds pip-installed ones.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from mmkit import plugins
from mmkit.errors import InvalidArgument, PluginError, UnknownName
from mmkit.plugins import ARCH_GROUP, POLICY_GROUP, PluginEntry
from mmkit.testing import (
    ArchConformance,
    PolicyConformance,
    TmpSite,
    isolated_registry,
    tmp_plugin,
    tmp_site,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = ROOT / "plugins" / "mmkit-example-arch"


def _load_example():
    """The example plugin's module, from its source file (it need not be pip-installed)."""
    name = "mmkit_example_arch"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while decorating
        spec.loader.exec_module(module)
    return sys.modules[name]


example = _load_example()


# A complete, valid arch plugin; {family}, {names} and {api} vary per fake distribution.
ARCH_SOURCE = """
from dataclasses import dataclass
from mmkit.errors import InvalidArgument, UnknownName

@dataclass(frozen=True)
class Region:
    name: str
    kind: str
    start: int
    end: int

@dataclass(frozen=True)
class Desc:
    name: str

    def macros(self):
        return dict(PAGE_SHIFT=12, PGDIR_SHIFT=21, PTRS_PER_PGD=512, PTRS_PER_PTE=512,
                    VMALLOC_START=1 << 30, VMALLOC_END=1 << 31, VMEMMAP_START=1 << 31)

    @property
    def regions(self):
        return (Region("user", "user", 0, 1 << 30), Region("vmalloc", "vmalloc", 1 << 30, 1 << 31))

class Plugin:
    api_version = {api!r}
    family = {family!r}

    def names(self):
        return {names!r}

    def describe(self, name):
        return "fake " + name

    def create(self, name, **options):
        if name not in self.names():
            raise UnknownName(name, choices=self.names())
        if options:
            raise InvalidArgument(f"{{name}}: no options")
        return Desc(name)

PLUGIN = Plugin()
"""


def arch_source(family: str, names: tuple[str, ...] | None = None, api: str = "1.0") -> str:
    names = names if names is not None else (f"{family}-4k-30",)
    return ARCH_SOURCE.format(family=family, names=names, api=api)


POLICY_SOURCE = """
class Policy:
    api_version = "1.0"
    name = {name!r}
    description = "a fake policy"
    kernel_versions = {versions!r}
    passes = 2
    pgtable_lock = False
    vmemmap_tables = "floor-ceiling"
    linear_floor_ceiling = True
    block_tlbi = "single"
    ptdump_hotplug_lock = True
    memblock_after_arch_remove = None
    boot_memory_notifier = True

PLUGIN = Policy()
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TmpSite]:
    """Temporary installed distributions (mmkit.testing's) in a fresh registry that reads
    the real and the temporary metadata."""
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    with tmp_site(tmp_path / "site") as fake:
        yield fake


def report_of(name: str, distribution: str | None = None) -> plugins.PluginReport:
    found = [
        r
        for r in plugins.reports()
        if r.name == name and (distribution is None or r.distribution == distribution)
    ]
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- discovery
def test_discovery_is_sorted_cached_and_imports_nothing(site, monkeypatch):
    site.add_dist(
        "zed-dist",
        {ARCH_GROUP: {"zeta": "fake_zeta:PLUGIN", "alpha": "fake_a:PLUGIN"}},
        {"fake_zeta": arch_source("zeta"), "fake_a": arch_source("alpha")},
    )
    site.add_dist(
        "abc-dist",
        {
            POLICY_GROUP: {"pol": "fake_pol:PLUGIN"},
            ARCH_GROUP: {"zeta": "fake_zeta2:PLUGIN"},
            "other.group": {"x": "nowhere:X"},
        },
    )
    calls = []
    real = importlib.metadata.entry_points

    def counting(*args, **kwargs):
        calls.append(args or kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    first = plugins.discover()
    assert plugins.discover() is first  # cached: the same tuple
    plugins.arch_plugins()
    plugins.policy_plugins()
    plugins.reports()
    assert len(calls) == 1, "entry_points() must be read once per scan"
    ours = [(e.group, e.name, e.distribution) for e in first if e.distribution.endswith("-dist")]
    assert ours == [
        (ARCH_GROUP, "alpha", "zed-dist"),
        (ARCH_GROUP, "zeta", "abc-dist"),
        (ARCH_GROUP, "zeta", "zed-dist"),
        (POLICY_GROUP, "pol", "abc-dist"),
    ]
    assert first == tuple(sorted(first, key=lambda e: (e.group, e.name, e.distribution)))
    assert {e.group for e in first} <= set(plugins.GROUPS)  # other groups ignored

    plugins.rescan()
    assert len(calls) == 1, "rescan() itself reads nothing"
    plugins.discover()
    assert len(calls) == 2


def test_discover_does_not_import(site):
    site.add_dist(
        "lazy-dist", {ARCH_GROUP: {"lazy": "fake_lazy:PLUGIN"}}, {"fake_lazy": arch_source("lazy")}
    )
    entries = [e for e in plugins.discover() if e.distribution == "lazy-dist"]
    assert entries == [PluginEntry(ARCH_GROUP, "lazy", "fake_lazy:PLUGIN", "lazy-dist", "1.0")]
    assert "fake_lazy" not in sys.modules
    assert "lazy" in plugins.arch_plugins()
    assert "fake_lazy" in sys.modules


def test_rescan_sees_a_newly_installed_plugin(site):
    assert "late" not in plugins.arch_plugins()
    site.add_dist(
        "late-dist",
        {ARCH_GROUP: {"late": "fake_late:PLUGIN"}},
        {"fake_late": arch_source("late")},
        rescan=False,  # installed from another terminal: the running process has not looked
    )
    assert "late" not in plugins.arch_plugins(), "cached until rescan()"
    plugins.rescan()
    assert "late" in plugins.arch_plugins()


def test_valid_fake_plugin_is_ok_with_provides(site):
    site.add_dist(
        "good-dist",
        {ARCH_GROUP: {"good": "fake_good:PLUGIN"}},
        {"fake_good": arch_source("good", ("good-4k-30", "good-16k-36"))},
        version="2.3",
    )
    report = report_of("good")
    assert (report.status, report.distribution, report.version, report.value) == (
        "ok",
        "good-dist",
        "2.3",
        "fake_good:PLUGIN",
    )
    assert report.provides == ("good-4k-30", "good-16k-36")
    assert report.ok and report.fix == ""
    # a descriptor with the contract alone: fine for layouts, and the report says so
    assert report.message.startswith("layouts only: a Machine needs geometry and ")
    configs = plugins.arch_configs()
    assert configs["good-16k-36"] is plugins.arch_plugins()["good"]
    assert plugins.create_arch("good-4k-30").name == "good-4k-30"
    assert json.loads(json.dumps(report.as_dict()))["provides"] == list(report.provides)


# --------------------------------------------------------------------------- failures
def test_module_that_fails_to_import_is_reported_and_skipped(site):
    site.add_dist(
        "broken-dist",
        {ARCH_GROUP: {"broken": "fake_broken:PLUGIN", "absent": "fake_absent_module:PLUGIN"}},
        {"fake_broken": "import a_module_that_does_not_exist\n"},
    )
    site.add_dist(
        "fine-dist", {ARCH_GROUP: {"fine": "fake_fine:PLUGIN"}}, {"fake_fine": arch_source("fine")}
    )
    broken, absent = report_of("broken"), report_of("absent")
    assert broken.status == absent.status == "import-error"
    assert "ModuleNotFoundError" in broken.message
    assert "a_module_that_does_not_exist" in broken.message
    assert broken.message.startswith("broken-dist[broken]: importing fake_broken raised")
    assert "fake_broken.py:1" in broken.message  # where it was raised
    assert "MMKIT_DISABLE_PLUGINS=broken" in broken.fix
    assert "fake_absent_module" in absent.message
    assert report_of("fine").status == "ok", "the kit carries on"
    loaded = plugins.arch_plugins()
    assert "fine" in loaded and not {"broken", "absent"} & set(loaded)


def test_import_raising_anything_or_exiting_is_an_import_error(site):
    site.add_dist(
        "exit-dist",
        {ARCH_GROUP: {"bye": "fake_bye:PLUGIN", "err": "fake_err:P"}},
        {"fake_bye": "import sys\nsys.exit(3)\n", "fake_err": "1 / 0\n"},
    )
    assert report_of("bye").status == "import-error"
    assert "SystemExit" in report_of("bye").message
    assert "ZeroDivisionError" in report_of("err").message


RAISING_SOURCES = {
    "missing attribute": ("X = 1\n", "fake_raise:PLUGIN", "AttributeError"),
    "module __getattr__ raises": (
        "def __getattr__(name):\n    raise RuntimeError('no ' + name)\n",
        "fake_raise:PLUGIN",
        "RuntimeError: no PLUGIN",
    ),
    "names() raises": (
        arch_source("rz").replace("return ('rz-4k-30',)", "raise OSError('disk on fire')"),
        "fake_raise:PLUGIN",
        "names() raised OSError: disk on fire",
    ),
    "create() raises": (
        arch_source("rz").replace("return Desc(name)", "raise RuntimeError('boom')"),
        "fake_raise:PLUGIN",
        "create('rz-4k-30') raised RuntimeError: boom",
    ),
    "api_version property raises": (
        arch_source("rz").replace(
            "api_version = '1.0'", "api_version = property(lambda self: 1 / 0)"
        ),
        "fake_raise:PLUGIN",
        "reading api_version raised ZeroDivisionError",
    ),
    "macros mapping raises on lookup": (
        arch_source("rz").replace("return dict(PAGE_SHIFT", "return Angry(PAGE_SHIFT")
        + "\nclass Angry(dict):\n    def __getitem__(self, key):\n        raise KeyError(key)\n",
        "fake_raise:PLUGIN",
        "checking it raised KeyError",
    ),
}


@pytest.mark.parametrize("case", sorted(RAISING_SOURCES))
def test_plugin_that_raises_while_loading_is_a_load_error(site, case):
    source, value, expected = RAISING_SOURCES[case]
    site.add_dist("raise-dist", {ARCH_GROUP: {"rz": value}}, {"fake_raise": source})
    report = report_of("rz")
    assert report.status == "load-error", report
    assert expected in report.message
    assert report.message.startswith("raise-dist[rz]: ")
    assert "rz" not in plugins.arch_plugins()


WRONG_KIND = {
    "an int": ("PLUGIN = 42\n", "has no 'api_version' attribute"),
    "a descriptor-less plugin": (
        arch_source("wk").replace("return Desc(name)", "return {'name': name}"),
        "create('wk-4k-30') result has no 'name' attribute (dict object)",
    ),
    "a missing macro": (
        arch_source("wk").replace("PGDIR_SHIFT=21, ", ""),
        "raise-dist[wk-4k-30]: macros() is missing PGDIR_SHIFT; see mmkit.testing.ArchConformance",
    ),
    "a bool macro": (
        arch_source("wk").replace("PAGE_SHIFT=12", "PAGE_SHIFT=True"),
        "non-int PAGE_SHIFT=True",
    ),
    "a wrong descriptor name": (
        arch_source("wk").replace("return Desc(name)", "return Desc('other')"),
        "returned a descriptor named 'other'",
    ),
    "regions of tuples": (
        arch_source("wk").replace("return (Region(", "return ((0, 1),) or (Region("),
        "regions[0] has no 'name' attribute",
    ),
    "empty names": (arch_source("wk", ()), "names() is empty"),
    "repeated names": (arch_source("wk", ("wk-a", "wk-a")), "repeats wk-a"),
    "names() as a string": (
        arch_source("wk").replace("return ('wk-4k-30',)", "return 'wk-4k-30'"),
        "names() returned str",
    ),
    "a bad family": (arch_source("w k"), "family is 'w k'"),
    "describe() on two lines": (
        arch_source("wk").replace('return "fake " + name', 'return "a\\nb"'),
        "describe('wk-4k-30') returned 'a\\nb'",
    ),
    "a malformed api_version": (arch_source("wk", api="one"), "api_version is 'one'"),
    "create not callable": (
        arch_source("wk") + "\nPlugin.create = 5\n",
        "create is int; expected a method",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_KIND))
def test_wrong_kind_of_object_is_invalid(site, case):
    source, expected = WRONG_KIND[case]
    site.add_dist("raise-dist", {ARCH_GROUP: {"wk": "fake_wrong:PLUGIN"}}, {"fake_wrong": source})
    report = report_of("wk")
    assert report.status == "invalid", report
    assert expected in report.message
    assert "mmkit.testing.ArchConformance" in report.fix
    assert "MMKIT_DISABLE_PLUGINS=wk" in report.fix


def test_malformed_entry_point_value_is_invalid():
    with plugins.isolated(entries=[PluginEntry(ARCH_GROUP, "odd", "not a value!", "odd-dist")]):
        report = report_of("odd")
    assert report.status == "invalid" and "is not 'module:attribute'" in report.message


@pytest.mark.parametrize(
    ("api", "status", "words"),
    [
        (
            "2.0",
            "api-mismatch",
            "built for mmkit plugin API 2.x (declares '2.0'), this mmkit provides 1.0",
        ),
        ("0.9", "api-mismatch", "built for mmkit plugin API 0.x"),
        ("1.7", "ok", "newer than this mmkit's 1.0"),
        ("1.0", "ok", ""),
        ("1", "invalid", "expected a 'MAJOR.MINOR' string"),
        ("v1.0", "invalid", "expected a 'MAJOR.MINOR' string"),
    ],
)
def test_api_version_rules(site, api, status, words):
    site.add_dist(
        "api-dist",
        {ARCH_GROUP: {"api": "fake_api:PLUGIN"}},
        {"fake_api": arch_source("api", api=api)},
    )
    report = report_of("api")
    assert report.status == status, report
    assert words in report.message
    if api == "2.0":
        assert report.fix.startswith("upgrade mmkit or pin the plugin")
    if api == "0.9":
        assert report.fix.startswith("upgrade the plugin")
    assert ("api" in plugins.arch_plugins()) == (status == "ok")


def test_api_mismatch_wins_over_a_changed_shape(site):
    """A 2.0 plugin may look nothing like a 1.0 one: say so, not "invalid"."""
    site.add_dist(
        "new-dist",
        {ARCH_GROUP: {"new": "fake_new:PLUGIN"}},
        {"fake_new": "class P:\n    api_version = '2.1'\nPLUGIN = P()\n"},
    )
    assert report_of("new").status == "api-mismatch"


# --------------------------------------------------------------------------- disabling
@pytest.mark.parametrize(
    "value",
    [
        "toy",
        "mmkit.arch:toy",
        "mmkit.arch:*",
        "fake-example-*",
        "FAKE_EXAMPLE_ARCH",
        "nothing, t?y",
        "  other\tto*  ",
    ],
)
def test_disable_globs(site, monkeypatch, value):
    site.add_dist(
        "fake-example-arch",
        {ARCH_GROUP: {"toy": "fake_toy:PLUGIN"}},
        {"fake_toy": arch_source("toy")},
    )
    site.add_dist(
        "keep-dist",
        {POLICY_GROUP: {"keep": "fake_keep:PLUGIN"}},
        {"fake_keep": POLICY_SOURCE.format(name="keep", versions=("v5.7",))},
    )
    monkeypatch.setenv(plugins.DISABLE_ENV, value)
    plugins.rescan()
    report = report_of("toy", "fake-example-arch")
    assert report.status == "disabled", report
    assert "disabled by MMKIT_DISABLE_PLUGINS pattern" in report.message
    assert report.fix.startswith("remove ")
    assert "fake_toy" not in sys.modules, "a disabled plugin is never imported"
    assert report_of("keep").status == "ok"


def test_disable_env_is_read_at_load_and_rescan(site, monkeypatch):
    site.add_dist("d-dist", {ARCH_GROUP: {"dd": "fake_dd:PLUGIN"}}, {"fake_dd": arch_source("dd")})
    assert "dd" in plugins.arch_plugins()
    monkeypatch.setenv(plugins.DISABLE_ENV, "dd")
    assert "dd" in plugins.arch_plugins(), "loaded plugins stay until rescan()"
    plugins.rescan()
    assert "dd" not in plugins.arch_plugins()
    assert report_of("dd").status == "disabled"


# --------------------------------------------------------------------------- duplicates
def test_duplicate_entry_names_first_in_sorted_order_wins(site):
    site.add_dist(
        "b-dist", {ARCH_GROUP: {"dup": "fake_dup_b:PLUGIN"}}, {"fake_dup_b": arch_source("dup")}
    )
    site.add_dist(
        "a-dist", {ARCH_GROUP: {"dup": "fake_dup_a:PLUGIN"}}, {"fake_dup_a": arch_source("dup")}
    )
    assert report_of("dup", "a-dist").status == "ok"
    loser = report_of("dup", "b-dist")
    assert loser.status == "duplicate"
    assert "already provided by a-dist 1.0 (fake_dup_a:PLUGIN)" in loser.message
    assert "MMKIT_DISABLE_PLUGINS=b-dist" in loser.fix
    assert "fake_dup_b" not in sys.modules, "the loser is not imported"
    assert sys.modules["fake_dup_a"].PLUGIN is plugins.arch_plugins()["dup"]


def test_a_broken_first_entry_lets_the_next_one_win(site):
    site.add_dist("a-dist", {ARCH_GROUP: {"dup": "fake_dup_gone:PLUGIN"}})
    site.add_dist(
        "b-dist", {ARCH_GROUP: {"dup": "fake_dup_b:PLUGIN"}}, {"fake_dup_b": arch_source("dup")}
    )
    assert report_of("dup", "a-dist").status == "import-error"
    assert report_of("dup", "b-dist").status == "ok"


def test_duplicate_family_or_configuration_name_under_another_entry_name(site):
    site.add_dist(
        "a-dist",
        {ARCH_GROUP: {"one": "fake_one:PLUGIN"}},
        {"fake_one": arch_source("fam", ("fam-1", "shared-cfg"))},
    )
    site.add_dist(
        "b-dist",
        {ARCH_GROUP: {"two": "fake_two:PLUGIN", "three": "fake_three:PLUGIN"}},
        {
            "fake_two": arch_source("fam", ("fam-9",)),
            "fake_three": arch_source("other", ("shared-cfg", "zz-1")),
        },
    )
    assert report_of("one").status == "ok"
    two, three = report_of("two"), report_of("three")
    assert two.status == three.status == "duplicate"
    assert "fam already provided by a-dist's mmkit.arch:one" in two.message
    assert "shared-cfg already provided by a-dist's mmkit.arch:one" in three.message
    configs = plugins.arch_configs()
    assert configs["shared-cfg"] is sys.modules["fake_one"].PLUGIN
    ours = [n for n in configs if n.startswith(("fam-", "shared-", "zz-"))]
    assert ours == ["fam-1", "shared-cfg"]


def test_duplicate_policy_names(site):
    site.add_dist(
        "a-dist",
        {POLICY_GROUP: {"p1": "fake_p1:PLUGIN"}},
        {"fake_p1": POLICY_SOURCE.format(name="same", versions=("v5.7",))},
    )
    site.add_dist(
        "b-dist",
        {POLICY_GROUP: {"p2": "fake_p2:PLUGIN"}},
        {"fake_p2": POLICY_SOURCE.format(name="same", versions=("v6.1",))},
    )
    assert report_of("p1").status == "ok" and report_of("p2").status == "duplicate"
    assert plugins.policy_plugins()["same"] is sys.modules["fake_p1"].PLUGIN


def test_third_party_cannot_shadow_the_real_builtin_arm64(site):
    """The real mmkit metadata declares arm64; a distribution sorting before 'mmkit' loses."""
    site.add_dist(
        "aaa-shadow",
        {ARCH_GROUP: {"arm64": "fake_shadow:PLUGIN"}},
        {"fake_shadow": arch_source("arm64", ("arm64-4k-48",))},
    )
    report = report_of("arm64", "aaa-shadow")
    assert report.status == "duplicate"
    assert "belongs to mmkit's built-in mmkit.arch plugin" in report.message
    assert "fake_shadow" not in sys.modules


def test_third_party_cannot_shadow_builtin_names_even_sorting_first():
    builtin = PluginEntry(ARCH_GROUP, "zbuiltin", "fake_builtin_mod:PLUGIN", "mmkit", "0.1.0")
    entries = [
        builtin,
        # sorts before "zbuiltin" by entry name, yet the built-in's names are taken first
        PluginEntry(ARCH_GROUP, "aaa", "fake_thief_mod:PLUGIN", "aaa-dist", "9.9"),
    ]
    sources = {
        "fake_builtin_mod": arch_source("core", ("core-4k-48",)),
        "fake_thief_mod": arch_source("thief", ("core-4k-48", "thief-1")),
    }
    with _modules(sources), plugins.isolated(entries=entries):
        thief = report_of("aaa")
        assert thief.status == "duplicate"
        assert "core-4k-48 already provided by mmkit's built-in mmkit.arch:zbuiltin" in (
            thief.message
        )
        assert "may not shadow a built-in" in thief.message
        assert plugins.arch_configs() == {"core-4k-48": plugins.arch_plugins()["core"]}
        # and a runtime registration may not shadow it either
        again = plugins.register(ARCH_GROUP, "zbuiltin", example.PLUGIN)
        assert again.status == "duplicate" and again.distribution == "<runtime>"


class _modules:
    """Put in-memory modules into sys.modules for the block (for isolated(entries=...))."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources

    def __enter__(self) -> None:
        for name, source in self.sources.items():
            module = type(sys)(name)
            sys.modules[name] = module
            exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), module.__dict__)

    def __exit__(self, *exc: object) -> None:
        for name in self.sources:
            sys.modules.pop(name, None)


# --------------------------------------------------------------------------- runtime API
def test_register_reports_runtime_and_replaces():
    with plugins.isolated(entries=()):
        report = plugins.register(ARCH_GROUP, "toy", example.PLUGIN)
        assert (report.status, report.distribution, report.version) == ("ok", "<runtime>", "")
        assert report.value == "<mmkit_example_arch.ToyPlugin object>"
        assert plugins.arch_plugins() == {"toy": example.PLUGIN}
        other = example.ToyPlugin()
        assert plugins.register(ARCH_GROUP, "toy", other).ok
        assert plugins.arch_plugins()["toy"] is other, "re-registering replaces"
        plugins.unregister(ARCH_GROUP, "toy")
        assert plugins.arch_plugins() == {}
        with pytest.raises(UnknownName, match="no plugin 'toy' was registered"):
            plugins.unregister(ARCH_GROUP, "toy")


def test_runtime_registration_wins_over_installed_third_party():
    entries = [PluginEntry(ARCH_GROUP, "toy", "mmkit_example_arch:PLUGIN", "x-dist", "1")]
    with plugins.isolated(entries=entries):
        fixed = example.ToyPlugin()
        assert plugins.register(ARCH_GROUP, "toy", fixed).ok
        assert plugins.arch_plugins()["toy"] is fixed
        assert report_of("toy", "x-dist").status == "duplicate"


def test_register_rejects_bad_group_and_name():
    with plugins.isolated(entries=()):
        with pytest.raises(UnknownName, match=r"unknown plugin group 'mmkit\.nope'") as err:
            plugins.register("mmkit.nope", "x", object())
        assert err.value.choices == plugins.GROUPS
        for bad in ("", "two words", "a=b", 3):
            with pytest.raises(InvalidArgument, match="is not valid"):
                plugins.register(ARCH_GROUP, bad, example.PLUGIN)  # type: ignore[arg-type]
        with pytest.raises(UnknownName):
            plugins.load("mmkit.nope")
        with pytest.raises(UnknownName):
            plugins.reports("mmkit.nope")


def test_register_of_a_broken_object_is_reported_not_raised():
    with plugins.isolated(entries=()):
        report = plugins.register(POLICY_GROUP, "bad", object())
        assert report.status == "invalid"
        assert "has no 'api_version' attribute" in report.message


def test_policy_contract():
    @dataclass(frozen=True)
    class Policy:
        api_version: str = "1.0"
        name: str = "v7"
        description: str = "hot-remove as posted in V7"
        kernel_versions: object = ("v5.4", "V7 3/3")
        passes: int = 2
        pgtable_lock: bool = False
        vmemmap_tables: str = "no-overlap"
        linear_floor_ceiling: bool = False
        block_tlbi: str = "range"
        ptdump_hotplug_lock: bool = True
        memblock_after_arch_remove: object = True
        boot_memory_notifier: bool = False

    with plugins.isolated(entries=()):
        assert plugins.register(POLICY_GROUP, "v7", Policy()).ok
        assert plugins.policy_plugins()["v7"].kernel_versions == ("v5.4", "V7 3/3")
        for bad in (["v5.4"], (), ("",), "v5.4"):
            report = plugins.register(POLICY_GROUP, "v7", Policy(kernel_versions=bad))
            assert report.status == "invalid" and "kernel_versions" in report.message
        report = plugins.register(POLICY_GROUP, "v7", Policy(description="two\nlines"))
        assert report.status == "invalid"
        # the decisions the engine reads: each present, each one of its values
        for field, bad in (("block_tlbi", "both"), ("passes", 3), ("pgtable_lock", 1)):
            report = plugins.register(POLICY_GROUP, "v7", Policy(**{field: bad}))
            assert report.status == "invalid" and f"{field} is {bad!r}" in report.message


def test_a_policy_missing_a_decision_the_engine_reads_is_rejected():
    @dataclass(frozen=True)
    class Old:
        api_version: str = "1.0"
        name: str = "old"
        description: str = "names and versions only"
        kernel_versions: tuple[str, ...] = ("V7",)

    with plugins.isolated(entries=()):
        report = plugins.register(POLICY_GROUP, "old", Old())
    assert report.status == "invalid"
    assert "passes is missing" in report.message and "boot_memory_notifier" in report.message


def test_a_plugin_using_the_registry_while_loading_sees_builtins_first():
    source = arch_source("core", ("core-1",))
    user = """
from mmkit import plugins
from fake_core_mod import Desc, Plugin

class Derived(Plugin):
    family = "derived"
    def names(self):
        return ("derived-1",)
    def create(self, name, **options):
        self.seen = sorted(plugins.arch_plugins())  # re-entrant: must not recurse forever
        return Desc(name)

PLUGIN = Derived()
"""
    entries = [
        PluginEntry(ARCH_GROUP, "core", "fake_core_mod:PLUGIN", "mmkit", "0.1.0"),
        PluginEntry(ARCH_GROUP, "derived", "fake_derived_mod:PLUGIN", "d-dist", "1"),
    ]
    with (
        _modules({"fake_core_mod": source, "fake_derived_mod": user}),
        plugins.isolated(entries=entries),
    ):
        assert sorted(plugins.arch_plugins()) == ["core", "derived"]
        # while "derived" was being checked, only the built-in was accepted
        assert sys.modules["fake_derived_mod"].PLUGIN.seen == ["core"]


def test_create_arch_errors():
    class Buggy(example.ToyPlugin):
        def create(self, name, **options):
            if options.get("crash"):
                raise RuntimeError("plugin bug")
            if options.get("wrong"):
                return "not a descriptor"
            return super().create(name, **options)

    entries = [PluginEntry(ARCH_GROUP, "gone", "fake_gone_mod:PLUGIN", "gone-dist", "1")]
    with plugins.isolated(entries=entries):
        plugins.register(ARCH_GROUP, "toy", Buggy())
        with pytest.raises(UnknownName, match=r"1 arch plugin\(s\) failed to load") as err:
            plugins.create_arch("nope")
        assert "toy-4k-30" in err.value.choices
        with pytest.raises(PluginError, match=r"toy\[toy-4k-30\]: create\(\) raised RuntimeError"):
            plugins.create_arch("toy-4k-30", crash=True)
        with pytest.raises(PluginError, match="not an architecture descriptor"):
            plugins.create_arch("toy-4k-30", wrong=True)
        with pytest.raises(InvalidArgument, match="vmsplit"):
            plugins.create_arch("toy-4k-30", vmsplit="9:9")
        assert plugins.create_arch("toy-4k-30") == example.PLUGIN.create("toy-4k-30")


# --------------------------------------------------------------------------- isolation
def test_isolated_restores_state_even_after_an_error():
    before = plugins._current()
    with plugins.isolated(entries=()):
        plugins.register(ARCH_GROUP, "toy", example.PLUGIN)
        outer = plugins._current()
        with pytest.raises(RuntimeError), plugins.isolated(entries=()):
            assert plugins.arch_plugins() == {}, "outer registrations are not visible"
            plugins.register(POLICY_GROUP, "inner", object())
            raise RuntimeError("test body failed")
        assert plugins._current() is outer
        assert plugins.arch_plugins() == {"toy": example.PLUGIN}
        assert [r.name for r in plugins.reports(POLICY_GROUP)] == []
    assert plugins._current() is before
    assert (ARCH_GROUP, "toy") not in before.runtime, "inner registrations stay inside"


def test_isolated_accepts_importlib_entry_points():
    ep = importlib.metadata.EntryPoint("toy", "mmkit_example_arch:PLUGIN", ARCH_GROUP)
    with plugins.isolated(entries=[ep]):
        entry = plugins.discover()[0]
        assert (entry.name, entry.distribution) == ("toy", "<unknown>")
        assert plugins.arch_plugins()["toy"] is example.PLUGIN


def test_testing_helpers_isolate_and_restore():
    with isolated_registry(entries=()):
        assert plugins.register(ARCH_GROUP, "toy", example.PLUGIN).ok
        replacement = example.ToyPlugin()
        with tmp_plugin(ARCH_GROUP, "toy", replacement) as report:
            assert report.ok and plugins.arch_plugins()["toy"] is replacement
        assert plugins.arch_plugins()["toy"] is example.PLUGIN, "earlier registration restored"
        with tmp_plugin(POLICY_GROUP, "broken", object()) as report:
            assert report.status == "invalid"
        assert plugins.reports(POLICY_GROUP) == []


# --------------------------------------------------------------------------- built-in
def test_builtin_arm64_entry_point_comes_from_mmkit_metadata():
    eps = importlib.metadata.entry_points(group=ARCH_GROUP, name="arm64")
    assert [(ep.value, ep.dist.name) for ep in eps] == [("mmkit.arch.arm64:PLUGIN", "mmkit")]
    with plugins.isolated():
        (entry,) = [e for e in plugins.discover() if e.name == "arm64"]
        assert entry.builtin and entry.value == "mmkit.arch.arm64:PLUGIN"


def test_builtin_arm64_loads_ok():
    with plugins.isolated():
        report = report_of("arm64", "mmkit")
        assert report.status == "ok", str(report)
        assert "arm64-4k-48" in report.provides


def test_import_is_cheap_and_lazy():
    probe = (
        "import sys, json\n"
        "import mmkit, mmkit.plugins\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(("
        "'importlib.metadata', 'mmkit.testing', 'pytest', 'hypothesis')))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(out.stdout) == [], "import mmkit must not discover or load plugins"


# --------------------------------------------------------------------------- format
def test_format_reports_is_an_aligned_table():
    reports = [
        plugins.PluginReport(
            ARCH_GROUP,
            "arm64",
            "mmkit",
            "0.1.0",
            "mmkit.arch.arm64:PLUGIN",
            "ok",
            provides=("arm64-4k-39", "arm64-4k-48"),
        ),
        plugins.PluginReport(
            ARCH_GROUP,
            "toy",
            "mmkit-example-arch",
            "",
            "m:P",
            "import-error",
            "mmkit-example-arch[toy]: importing m raised ImportError: x",
            "reinstall it",
        ),
        plugins.PluginReport(
            POLICY_GROUP,
            "v7",
            "pol",
            "2",
            "p:P",
            "ok",
            "built for plugin API 1.2, newer",
            provides=("v7",),
        ),
    ]
    lines = plugins.format_reports(reports).splitlines()
    assert lines[0].split() == ["GROUP", "NAME", "DISTRIBUTION", "VERSION", "STATUS", "DETAILS"]
    column = lines[0].index("STATUS")
    assert [line[column:].split()[0] for line in (lines[1], lines[2], lines[4])] == [
        "ok",
        "import-error",
        "ok",
    ]
    assert lines[1].endswith("arm64-4k-39, arm64-4k-48")
    assert lines[2].endswith("importing m raised ImportError: x"), "prefix dropped"
    assert " - " in lines[2], "missing version shown as -"
    assert lines[3].strip() == "fix: reinstall it"
    assert lines[3].index("fix:") == lines[0].index("DETAILS")
    assert lines[4].endswith("v7 (built for plugin API 1.2, newer)")
    assert lines[5] == "3 plugins: 2 ok, 1 import-error"
    assert plugins.format_reports([]) == "no plugins found in mmkit.arch, mmkit.policy"


def test_report_str_names_the_culprit():
    report = plugins.PluginReport(ARCH_GROUP, "toy", "d", "1", "m:P", "disabled", "msg", "fix")
    assert str(report) == "mmkit.arch:toy (d 1): disabled: msg; fix: fix"


def test_natural_key_orders_digit_runs_numerically():
    names = ["b-2", "a-10", "a-9", "a-9-1", "a"]
    assert sorted(names, key=plugins.natural_key) == ["a", "a-9", "a-9-1", "a-10", "b-2"]


# --------------------------------------------------------------------------- test kit
class TestExamplePluginConformance(ArchConformance):
    plugin = example.PLUGIN
    options: ClassVar = {"vmsplit": example.VMSPLITS}


class TestExamplePluginSubset(ArchConformance):
    plugin = example.PLUGIN
    names = ("toy-16k-36",)
    options: ClassVar = {"vmsplit": example.VMSPLITS}
    max_examples = 5


def test_example_plugin_through_its_entry_point(site, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    site.add_dist(
        "mmkit-example-arch", {ARCH_GROUP: {"toy": "mmkit_example_arch:PLUGIN"}}, version="0.1.0"
    )
    report = report_of("toy")
    assert report.status == "ok", str(report)
    assert report.provides == ("toy-4k-30", "toy-4k-32", "toy-16k-36", "toy-64k-42")
    assert plugins.create_arch("toy-4k-32").macros()["PGDIR_SHIFT"] == 21


class _Broken(example.ToyPlugin):
    """The example with one defect per flag, to prove the kit catches each."""

    def __init__(self, **defects: bool) -> None:
        object.__setattr__(self, "defects", defects)

    def names(self):
        names = list(super().names())
        return names[::-1] if self.defects.get("unsorted") else names

    def create(self, name, **options):
        if self.defects.get("lenient") and name not in super().names():
            name = "toy-4k-30"
        if self.defects.get("valueerror") and options:
            raise ValueError("plain ValueError")
        desc = super().create(
            name, **{k: v for k, v in options.items() if not self.defects.get("ignores_options")}
        )
        if self.defects.get("overlap"):
            return _Patched(desc, regions=desc.regions[::-1])
        if self.defects.get("pte"):
            return _Patched(desc, extra={"PTRS_PER_PTE": 1024})
        if self.defects.get("vmalloc"):
            m = desc.macros()
            return _Patched(desc, extra={"VMALLOC_END": m["VMALLOC_START"]})
        if self.defects.get("page_shift"):
            return _Patched(desc, extra={"PAGE_SHIFT": 13})
        if self.defects.get("fresh"):
            return _Patched(desc)  # identity equality: two calls are never equal
        return desc


class _Patched:
    def __init__(self, desc, regions=None, extra=None):
        self.name, self._desc = desc.name, desc
        self.regions = regions if regions is not None else desc.regions
        self._extra = extra or {}

    def macros(self):
        return {**self._desc.macros(), **self._extra}


@pytest.mark.parametrize(
    ("defects", "check", "words"),
    [
        ({"unsorted": True}, "test_names_unique_and_sorted", "not in natural order"),
        ({"lenient": True}, "test_unknown_name_raises", "accepted a name not in names()"),
        ({"ignores_options": True}, "test_bad_options_raise", "accepted bad options"),
        ({"valueerror": True}, "test_bad_options_raise", "raised ValueError"),
        ({"overlap": True}, "test_regions", "expected address order, no overlap"),
        ({"pte": True}, "test_ptrs_per_pte", "expected 2**(PAGE_SHIFT - 3) = 512"),
        ({"vmalloc": True}, "test_vmalloc_range", "is not below VMALLOC_END"),
        ({"page_shift": True}, "test_page_shift", "PAGE_SHIFT is 13"),
        ({"fresh": True}, "test_create_is_deterministic", "unequal descriptors"),
    ],
)
def test_conformance_kit_catches_defects(defects, check, words):
    suite = type(
        "Suite",
        (ArchConformance,),
        {"plugin": _Broken(**defects), "options": {"vmsplit": example.VMSPLITS}},
    )()
    method = getattr(suite, check)
    takes_name = "config_name" in method.__code__.co_varnames
    with pytest.raises(AssertionError, match=re.escape(words)):
        method("toy-4k-30") if takes_name else method()


def test_conformance_kit_requires_a_plugin():
    with pytest.raises(TypeError, match="set the class attribute plugin"):
        ArchConformance().test_api_version()


@dataclass(frozen=True)
class _Policy:
    api_version: str = "1.0"
    name: str = "v7"
    description: str = "hot-remove as posted in V7"
    kernel_versions: tuple[str, ...] = ("v5.4",)
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: str = "no-overlap"
    linear_floor_ceiling: bool = False
    block_tlbi: str = "range"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: object = True
    boot_memory_notifier: bool = False


class TestPolicyConformance(PolicyConformance):
    plugin = _Policy()


def test_policy_conformance_catches_bad_api_major():
    suite = type("Suite", (PolicyConformance,), {"plugin": _Policy(api_version="3.0")})()
    with pytest.raises(AssertionError, match="api-mismatch"):
        suite.test_api_version()
    with pytest.raises(AssertionError, match="registry reports api-mismatch"):
        suite.test_registers_cleanly()

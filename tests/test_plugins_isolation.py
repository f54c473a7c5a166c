"""Every broken kind of plugin is isolated: reported by ``mmkit plugins`` and by the status
panel, never stopping the kit, whether it breaks at import, at load or later.

Plugins are installed the honest way: a ``*.dist-info`` with ``entry_points.txt`` on
``sys.path`` (``mmkit.testing``'s ``mmkit_tmp_site`` fixture), found by ``importlib.metadata``
as a pip-installed one is. A subprocess checks that ``sys.exit()`` in a plugin's ``names()``
does not end a Python process using the API.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmkit import plugins
from mmkit.cli import main
from mmkit.errors import PluginError
from mmkit.plugins import ARCH_GROUP, POLICY_GROUP
from mmkit.testing.pytest_plugin import mmkit_registry, mmkit_tmp_site  # noqa: F401 (fixtures)
from mmkit.widgets import PluginStatus

ROOT = Path(__file__).resolve().parents[1]

ARCH = """
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
        return dict(PAGE_SHIFT=12, PGDIR_SHIFT=21, PTRS_PER_PGD=512, PTRS_PER_PTE=PTRS,
                    VMALLOC_START=1 << 30, VMALLOC_END=1 << 31, VMEMMAP_START=1 << 31)
    @property
    def regions(self):
        return REGIONS

PTRS = 512
REGIONS = (Region("user", "user", 0, 1 << 30), Region("vmalloc", "vmalloc", 1 << 30, 1 << 31))

class Plugin:
    api_version = API
    family = FAMILY
    def names(self):
        return (FAMILY + "-4k-30",)
    def describe(self, name):
        return "fake " + name
    def create(self, name, **options):
        if name not in self.names():
            raise UnknownName(name, choices=self.names())
        if options:
            raise InvalidArgument("no options")
        return Desc(name)

PLUGIN = Plugin()
"""

POLICY = """
class Policy:
    api_version = "1.0"
    name = NAME
    description = "a policy with exactly the contract"
    kernel_versions = ("v5.7",)
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


def arch(family: str, api: str = "1.0", extra: str = "") -> str:
    return f"FAMILY = {family!r}\nAPI = {api!r}\n" + textwrap.dedent(ARCH) + extra


def policy(name: str, extra: str = "") -> str:
    return f"NAME = {name!r}\n" + textwrap.dedent(POLICY) + extra


#: entry name -> (group, module source, expected status, words in the message)
BROKEN = {
    "imperr": (ARCH_GROUP, "import no_such_module_anywhere\n", "import-error", "ModuleNotFound"),
    "loadexc": (ARCH_GROUP, "raise RuntimeError('boom at import')\n", "import-error", "boom"),
    "loadexit": (ARCH_GROUP, "import sys\nsys.exit(4)\n", "import-error", "SystemExit: 4"),
    "namesexit": (
        ARCH_GROUP,
        arch("namesexit", extra="Plugin.names = lambda self: __import__('sys').exit(3)\n"),
        "load-error",
        "names() raised SystemExit: 3",
    ),
    "descexit": (
        ARCH_GROUP,
        arch("descexit", extra="Plugin.describe = lambda self, n: exit(5)\n"),
        "load-error",
        "SystemExit",
    ),
    "attrexit": (
        POLICY_GROUP,
        policy("attrexit", extra="Policy.passes = property(lambda self: exit(6))\n"),
        "load-error",
        "SystemExit: 6",
    ),
    "wrongtype": (POLICY_GROUP, "PLUGIN = 42\n", "invalid", "has no 'api_version'"),
    "incomplete": (
        POLICY_GROUP,
        policy("incomplete", extra="del Policy.block_tlbi\n"),
        "invalid",
        "block_tlbi is missing",
    ),
    "badhook": (
        POLICY_GROUP,
        policy("badhook", extra="Policy.keep_table = 'yes'\n"),
        "invalid",
        "keep_table is str, not callable",
    ),
    "apimajor": (ARCH_GROUP, arch("apimajor", api="2.0"), "api-mismatch", "API 2.x"),
    "arm64": (ARCH_GROUP, arch("shadow"), "duplicate", "may not shadow a built-in"),
    "shadowpol": (POLICY_GROUP, policy("v5.7"), "duplicate", "may not shadow a built-in"),
    "overlap": (
        ARCH_GROUP,
        arch(
            "overlap",
            extra="REGIONS = (Region('a', 'user', 0, 4096), Region('b', 'vmalloc', 0, 8192))\n",
        ),
        "nonconformant",
        "overlaps or follows",
    ),
    "ptrs": (ARCH_GROUP, arch("ptrs", extra="PTRS = 100\n"), "nonconformant", "PTRS_PER_PTE"),
}


@pytest.fixture
def broken_site(mmkit_tmp_site):  # noqa: F811 (the fixture imported above)
    for i, (name, (group, source, _, _)) in enumerate(sorted(BROKEN.items())):
        module = f"fake_broken_{i}"
        mmkit_tmp_site.add_dist(
            f"broken-{i}", {group: {name: f"{module}:PLUGIN"}}, {module: source}
        )
    return mmkit_tmp_site


def test_every_broken_kind_is_reported_and_the_kit_goes_on(broken_site):
    found = {r.name: r for r in plugins.reports() if r.distribution.startswith("broken-")}
    assert sorted(found) == sorted(BROKEN)
    for name, (_, _, status, words) in BROKEN.items():
        report = found[name]
        assert report.status == status, str(report)
        assert words in report.message, str(report)
        assert report.fix, f"{name}: a broken plugin's report names a fix"
    # the kit goes on: built-ins load and run
    assert {"arm64", "arm64-teaching"} <= set(plugins.arch_plugins())
    assert "v5.7" in plugins.policy_plugins()
    assert plugins.create_arch("arm64-4k-48").name == "arm64-4k-48"


def test_mmkit_plugins_reports_every_broken_kind(broken_site):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plugins"]) == 0
    text = out.getvalue()
    for name, (_, _, status, _) in BROKEN.items():
        row = next(line for line in text.splitlines() if f"  {name} " in line)
        assert status in row, row
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plugins", "--format", "json"]) == 0
    statuses = {
        d["name"]: d["status"]
        for d in json.loads(out.getvalue())
        if d["distribution"].startswith("broken-")
    }
    assert {n: statuses[n] for n in BROKEN} == {n: b[2] for n, b in BROKEN.items()}


def test_the_status_panel_shows_every_broken_kind(broken_site):
    panel = PluginStatus()
    for name, (_, _, status, _) in BROKEN.items():
        assert f"<td style='padding:2px 8px'>{name}</td>" in panel.table.value
        assert f"mmkit-plugin-{status}" in panel.table.value
    assert "ok" in panel.summary.value and "nonconformant" in panel.summary.value
    broken_site.add_dist(
        "late-dist", {POLICY_GROUP: {"late": "fake_late:PLUGIN"}}, {"fake_late": policy("late")}
    )
    panel.rescan()
    assert any(r.name == "late" and r.ok for r in panel.reports)


def test_system_exit_later_is_a_plugin_error_not_an_exit(mmkit_tmp_site):  # noqa: F811
    """A plugin that loads ok and exits in create() with options, or in a policy hook."""
    mmkit_tmp_site.add_dist(
        "later-dist",
        {ARCH_GROUP: {"later": "fake_later:PLUGIN"}, POLICY_GROUP: {"hooky": "fake_hooky:PLUGIN"}},
        {
            "fake_later": arch(
                "later",
                extra="_create = Plugin.create\n"
                "Plugin.create = lambda self, n, **o: exit(7) if o else _create(self, n)\n",
            ),
            "fake_hooky": policy("hooky", extra="Policy.keep_table = lambda self, *a: exit(8)\n"),
        },
    )
    assert {r.name: r.status for r in plugins.reports() if r.name in ("later", "hooky")} == {
        "later": "ok",
        "hooky": "ok",
    }
    with pytest.raises(PluginError, match=r"create\(\) raised SystemExit: 7"):
        plugins.create_arch("later-4k-30", colour="blue")
    from mmkit.machine import Machine

    m = Machine("arm64-4k-48", policy="hooky")
    start, size = 0x4000_0000_0000, m.desc.memory_block_size  # allocates tables of its own
    m.hot_add(start, size)
    with pytest.raises(PluginError, match=r"'hooky': keep_table\(\) raised SystemExit: 8"):
        m.hot_remove(start, size)


def test_sys_exit_in_names_does_not_end_a_script(tmp_path):
    """The issue's report: a plugin whose names() calls sys.exit(3) made every script exit 3."""
    site = tmp_path / "site"
    site.mkdir()
    info = site / "exiter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exiter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mmkit.arch]\nexiter = fake_exiter:PLUGIN\n")
    (site / "fake_exiter.py").write_text(
        arch("exiter", extra="Plugin.names = lambda self: __import__('sys').exit(3)\n")
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    env.pop(plugins.DISABLE_ENV, None)
    code = (
        "import mmkit.arch, mmkit.plugins\n"
        "print(len(mmkit.arch.names()) > 0)\n"
        "print([r.status for r in mmkit.plugins.reports() if r.name == 'exiter'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "['load-error']"]
    cli = subprocess.run(
        [sys.executable, "-m", "mmkit.cli", "plugins"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "load-error" in cli.stdout and "SystemExit: 3" in cli.stdout


# --------------------------------------------------------------------------- the contract
def test_a_contract_only_policy_works_everywhere(mmkit_tmp_site):  # noqa: F811
    """Exactly the contract (no method, not a HotplugPolicy), installed through an entry
    point: it loads ok, then runs Machine hot-add/remove, `mmkit compare`, a race, the
    explorer CLI and the widgets (the issue: it loaded ok, then compare exited 70)."""
    from mmkit.machine import Machine
    from mmkit.scenarios.races import vmalloc_race
    from mmkit.widgets import PolicyComparison, RaceExplorer

    mmkit_tmp_site.add_dist(
        "bare-dist", {POLICY_GROUP: {"bare": "fake_bare:PLUGIN"}}, {"fake_bare": policy("bare")}
    )
    report = next(r for r in plugins.reports(POLICY_GROUP) if r.name == "bare")
    assert report.ok, str(report)
    bare = plugins.policy_plugins()["bare"]
    assert type(bare).__name__ == "Policy" and not hasattr(bare, "frees_vmemmap_tables")

    m = Machine("arm64-4k-48", policy="bare")
    before = sorted((t.level, t.va_start) for t in m.table_pages())
    m.hot_add(0x4000_0000_0000, m.desc.memory_block_size)
    m.hot_remove(0x4000_0000_0000, m.desc.memory_block_size)
    assert sorted((t.level, t.va_start) for t in m.table_pages()) == before and not m.events

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["compare", "arm64-4k-48", "--block", "0x400000000000", "--format", "json"])
    assert status == 0
    rows = {row["policy"]: row for row in json.loads(out.getvalue())}
    assert "bare" in rows and rows["bare"]["tables_left"] == rows["v5.7"]["tables_left"]

    result = vmalloc_race("teach-4k-39", "bare").explore(1)
    assert result.complete and result.failing == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["explore", "vmalloc_race", "--config", "teach-4k-39", "--policy", "bare"])
    assert status == 0, out.getvalue()

    assert "bare" in [o.policy for o in PolicyComparison("arm64-4k-48").outcomes]
    rx = RaceExplorer("vmalloc_race", config="teach-4k-39", policy="v5.7")
    rx.set_policy("bare")
    assert rx.policy == "bare" and "bare" in rx.policy_picker.options


def test_a_layout_only_family_is_ok_and_machine_says_why_it_cannot_run_it(mmkit_tmp_site):  # noqa: F811
    """The arch contract is what layouts read; Machine reads more (MACHINE_ATTRIBUTES)."""
    from mmkit.machine import Machine

    mmkit_tmp_site.add_dist(
        "lay-dist", {ARCH_GROUP: {"lay": "fake_lay:PLUGIN"}}, {"fake_lay": arch("lay")}
    )
    report = next(r for r in plugins.reports(ARCH_GROUP) if r.name == "lay")
    assert report.ok and "layouts only: a Machine needs geometry and" in report.message
    assert plugins.create_arch("lay-4k-30").macros()["PAGE_SHIFT"] == 12
    with pytest.raises(PluginError, match="'lay-4k-30' describes a layout only"):
        Machine("lay-4k-30")
    for name in ("arm64-4k-48", "arm64-64k-52", "teach-16k-36"):
        assert plugins.machine_missing(plugins.create_arch(name)) == ()
    builtin = [r for r in plugins.reports(ARCH_GROUP) if r.distribution == "mmkit"]
    assert builtin and all(r.ok and not r.message for r in builtin)


@pytest.mark.parametrize(
    ("hook", "words"),
    [
        (lambda self, *a: 42, "keep_table() returned 42; expected a non-empty reason"),
        (lambda self, *a: "", "keep_table() returned ''"),
        (lambda self, *a: 1 / 0, "keep_table() raised ZeroDivisionError"),
    ],
)
def test_a_bad_hook_result_is_a_plugin_error(mmkit_registry, hook, words):  # noqa: F811
    from dataclasses import dataclass
    from importlib import import_module

    from mmkit.machine import Machine
    from mmkit.policies import HotplugPolicy

    @dataclass(frozen=True)
    class Hooked(HotplugPolicy):
        keep_table = hook  # a method

    # the registry is empty: the architecture, too, is registered for the test
    plugins.register(ARCH_GROUP, "arm64", import_module("mmkit.arch.arm64").PLUGIN)
    bad = Hooked("hooked", "a policy whose hook misbehaves", ("proposal",), vmemmap_tables="always")
    assert plugins.register(POLICY_GROUP, "hooked", bad).ok
    m = Machine("arm64-4k-48", policy="hooked")
    m.hot_add(0x4000_0000_0000, m.desc.memory_block_size)
    with pytest.raises(PluginError, match=re.escape(words)):
        m.hot_remove(0x4000_0000_0000, m.desc.memory_block_size)


def test_optional_hooks_are_documented_and_checked():
    from mmkit.errors import InvalidArgument
    from mmkit.policies import OPTIONAL_HOOKS
    from mmkit.policies.base import DATA_HOOKS, check_hooks, hook

    assert set(OPTIONAL_HOOKS) >= {"keep_table", "defer_table_free", "arch_remove_memory"}
    assert set(OPTIONAL_HOOKS) >= DATA_HOOKS
    for name, meaning in OPTIONAL_HOOKS.items():
        opener = f"{name}:" if name in DATA_HOOKS else f"{name}("
        assert meaning.startswith(opener) and "default" in meaning
    with pytest.raises(InvalidArgument, match="unknown optional hook"):
        hook(object(), "keep_tables")

    class NotCallable:
        keep_table = "yes"

    assert (
        check_hooks(NotCallable())
        == [
            "keep_table is str, not callable; expected keep_table(machine, level or no keep_table "
            "at all"
        ]
        or "keep_table is str, not callable" in check_hooks(NotCallable())[0]
    )

    class BadListings:
        listings = 42

    class GoodListings:
        listings = ()

    assert "listings is int; expected a tuple" in check_hooks(BadListings())[0]
    assert check_hooks(GoodListings()) == []

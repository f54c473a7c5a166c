"""mmkit's pytest plugin: declared as a ``pytest11`` entry point, and its fixtures work in a
plugin author's test run (a separate pytest process on a test file of their own)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

AUTHOR_TESTS = """
from mmkit import plugins
from mmkit.plugins import POLICY_GROUP, _DemoPolicy


def test_registry_is_empty_and_fresh(mmkit_registry):
    assert plugins.reports() == []


def test_tmp_plugin_is_registered_for_the_test(mmkit_registry, mmkit_tmp_plugin):
    report = mmkit_tmp_plugin(POLICY_GROUP, "demo", _DemoPolicy())
    assert report.ok and list(plugins.policy_plugins()) == ["demo"]


def test_tmp_plugin_is_gone_after_the_test(mmkit_registry):
    assert "demo" not in plugins.policy_plugins()


def test_tmp_site_installs_through_an_entry_point(mmkit_tmp_site):
    source = "from mmkit.plugins import _DemoPolicy\\nPLUGIN = _DemoPolicy(name='mine')\\n"
    mmkit_tmp_site.add_dist("mine-dist", {POLICY_GROUP: {"mine": "mine_mod:PLUGIN"}},
                            {"mine_mod": source})
    report = next(r for r in plugins.reports(POLICY_GROUP) if r.name == "mine")
    assert (report.status, report.distribution) == ("ok", "mine-dist")
    assert "v5.7" in plugins.policy_plugins(), "installed plugins (built-ins) are there too"
"""


def test_pyproject_declares_the_pytest11_entry_point():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["entry-points"]["pytest11"] == {"mmkit": "mmkit.testing.pytest_plugin"}


def test_the_fixtures_in_an_authors_test_run(tmp_path):
    (tmp_path / "test_mine.py").write_text(textwrap.dedent(AUTHOR_TESTS), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("MMKIT_DISABLE_PLUGINS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "mmkit.testing.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "test_mine.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 passed" in done.stdout


def test_the_plugin_module_imports_no_hypothesis():
    """pytest loads it in every run where mmkit is installed, hypothesis or not."""
    code = (
        "import sys, mmkit.testing.pytest_plugin\n"
        "print(sorted(m for m in ('hypothesis', 'mmkit.testing._arch') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

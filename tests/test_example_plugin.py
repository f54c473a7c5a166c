"""The example plugins, pip-installed (editable, as their authors work) with mmkit into a fresh
venv, are found through their entry points: by the registry, by ``mmkit.arch``, by ``mmkit
plugins`` and, for the policy, by ``mmkit compare``.

The sources are copied first, so building them leaves no ``build/`` or ``*.egg-info`` in
the repository. Building uses the venv's own setuptools (``--no-build-isolation``), upgraded
first because the one ``venv`` seeds (65 on Python 3.11) cannot build wheels by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "mmkit-example-arch"
GUARD = ROOT / "plugins" / "mmkit-vmap-guard"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    return done.stdout


class Venv:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.bin = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / "python"

    def run(self, code: str, **extra_env: str) -> str:
        return _run([str(self.python), "-c", code], self.root, {**self.env, **extra_env})


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("example-plugin")
    src = root / "src"
    shutil.copytree(ROOT / "mmkit", src / "mmkit" / "mmkit", ignore=_IGNORE)
    # the lessons ship as data files of the distribution
    shutil.copytree(ROOT / "notebooks", src / "mmkit" / "notebooks", ignore=_IGNORE)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / "mmkit" / name)
    shutil.copytree(EXAMPLE, src / "mmkit-example-arch", ignore=_IGNORE)
    shutil.copytree(GUARD, src / "mmkit-vmap-guard", ignore=_IGNORE)
    # The venv must see only what pip installs into it: no PYTHONPATH, no outer venv, and
    # no MMKIT_DISABLE_PLUGINS from the developer's shell. pip's own settings (index,
    # proxy, certificates) stay.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MMKIT_DISABLE_PLUGINS")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    v = Venv(root, env)
    _run([sys.executable, "-m", "venv", str(root / "venv")], root, env)
    pip = [str(v.python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    _run([*pip, "setuptools>=77"], root, env)
    _run(
        [
            *pip,
            "--no-build-isolation",
            str(src / "mmkit"),
            "-e",
            str(src / "mmkit-example-arch"),
            "-e",
            str(src / "mmkit-vmap-guard"),
        ],
        root,
        env,
    )
    return v


REPORTS = """
import json, sys
from mmkit import plugins
print(json.dumps({
    "reports": [r.as_dict() for r in plugins.reports()],
    "imported": "mmkit_example_arch" in sys.modules,
    "mmkit": plugins.__file__,
}))
"""


def test_registry_finds_the_installed_example(venv):
    result = json.loads(venv.run(REPORTS))
    assert str(venv.root / "venv") in result["mmkit"], "mmkit must come from the fresh venv"
    toy = [r for r in result["reports"] if r["name"] == "toy"]
    assert len(toy) == 1, result["reports"]
    assert toy[0]["status"] == "ok", toy[0]
    assert (toy[0]["distribution"], toy[0]["version"], toy[0]["value"]) == (
        "mmkit-example-arch",
        "0.1.0",
        "mmkit_example_arch:PLUGIN",
    )
    assert toy[0]["provides"] == ["toy-4k-30", "toy-4k-32", "toy-16k-36", "toy-64k-42"]
    arm64 = [r for r in result["reports"] if r["name"] == "arm64"]
    assert [(r["distribution"], r["status"]) for r in arm64] == [("mmkit", "ok")]


def test_mmkit_arch_names_include_the_example(venv):
    out = venv.run(
        "import json, mmkit.arch\n"
        "print(json.dumps([mmkit.arch.names(),"
        " mmkit.arch.get('toy-4k-32').macros()['PGDIR_SHIFT']]))"
    )
    names, pgdir_shift = json.loads(out)
    assert {"toy-4k-30", "toy-64k-42", "arm64-4k-48"} <= set(names)
    assert pgdir_shift == 21


def test_mmkit_plugins_command_lists_the_example(venv):
    out = _run([str(venv.bin / "mmkit"), "plugins"], venv.root, venv.env)
    (line,) = [ln for ln in out.splitlines() if ln.split()[:2] == ["mmkit.arch", "toy"]]
    assert line.split()[2:5] == ["mmkit-example-arch", "0.1.0", "ok"]
    assert "toy-4k-30" in line


def test_disabled_example_is_not_even_imported(venv):
    result = json.loads(venv.run(REPORTS, MMKIT_DISABLE_PLUGINS="mmkit-example-*"))
    (toy,) = [r for r in result["reports"] if r["name"] == "toy"]
    assert toy["status"] == "disabled"
    assert result["imported"] is False


def test_the_policy_plugin_is_in_plugins_and_compare(venv):
    out = _run([str(venv.bin / "mmkit"), "plugins"], venv.root, venv.env)
    (line,) = [ln for ln in out.splitlines() if ln.split()[:2] == ["mmkit.policy", "vmap-guard"]]
    assert line.split()[2:5] == ["mmkit-vmap-guard", "0.1.0", "ok"]
    out = _run(
        [
            str(venv.bin / "mmkit"),
            "compare",
            "teach-4k-39",
            "--block",
            "0x4000000000",
            "--format",
            "json",
        ],
        venv.root,
        venv.env,
    )
    assert "vmap-guard" in {row["policy"] for row in json.loads(out)}

"""The Binder environment installs, imports, and has the lab extensions the lessons need.

repo2docker runs ``pip install -r binder/requirements.txt`` from the root of its copy of the
repository. This test does the same on a copy of the checkout in a fresh venv (pip's cache makes
the second run fast), then checks that the widget, plotly and anywidget extensions are enabled:
a missing one is the classic "Error displaying widget: model not found" on mybinder.org.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"

# Extensions the lessons' outputs need, as `jupyter labextension list` names them.
NEEDED_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly", "anywidget")
NEEDED_IMPORTS = ("mmkit", "ipywidgets", "plotly", "anywidget", "pandas", "ipykernel")


def _requirements() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_runtime_is_python_311() -> None:
    assert (BINDER / "runtime.txt").read_text(encoding="utf-8").strip() == "python-3.11"


def test_requirements_are_exact_pins_plus_the_kit() -> None:
    reqs = _requirements()
    assert "." in reqs, "binder/requirements.txt must install the kit itself ('.')"
    pins = [r for r in reqs if r != "."]
    loose = [r for r in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", r)]
    assert not loose, f"Binder requirements must be exact pins (name==version): {loose}"
    names = {r.split("==")[0].lower().replace("_", "-") for r in pins}
    for needed in ("jupyterlab", "ipywidgets", "plotly", "anywidget", "pandas", "ipykernel"):
        assert needed in names, f"{needed} is not pinned in binder/requirements.txt"


def test_no_postbuild_needed() -> None:
    # JupyterLab 4 takes prebuilt extensions from the wheels; a postBuild running
    # `jupyter labextension install` would rebuild the lab and break the widget manager.
    assert not (BINDER / "postBuild").exists()


def _copy_checkout(dest: Path) -> Path:
    """Copy the checkout as repo2docker would see it (no venvs, caches or build output)."""
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv*",
        "venv",
        "build",
        "dist",
        "*.egg-info",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".ipynb_checkpoints",
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.timeout(1200)
def test_binder_environment_installs_and_has_lab_extensions(tmp_path: Path) -> None:
    repo = _copy_checkout(tmp_path / "repo")
    env_dir = tmp_path / "binder-venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"

    install = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
            "binder/requirements.txt",
        ],
        cwd=repo,  # as repo2docker: relative lines ('.') resolve against the repository root
        capture_output=True,
        text=True,
        timeout=1100,
        stdin=subprocess.DEVNULL,
    )
    assert install.returncode == 0, "pip install -r binder/requirements.txt failed:\n" + (
        install.stdout[-4000:] + install.stderr[-4000:]
    )

    # Import from a neutral folder so the checkout on sys.path cannot stand in for the install.
    imports = "; ".join(f"import {name}" for name in NEEDED_IMPORTS)
    check = subprocess.run(
        [str(py), "-c", f"{imports}; import mmkit; print(mmkit.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert str(env_dir) in check.stdout, f"mmkit imported from outside the venv: {check.stdout}"

    listing = subprocess.run(
        [str(py), "-m", "jupyter", "labextension", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert listing.returncode == 0, listing.stderr
    # The listing goes to stderr, coloured: strip the ANSI escapes before reading it.
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    for ext in NEEDED_EXTENSIONS:
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(ext + " ")), None)
        assert line is not None, f"lab extension {ext} is not installed:\n{text}"
        assert "enabled" in line and "OK" in line, f"lab extension {ext} is not enabled: {line}"

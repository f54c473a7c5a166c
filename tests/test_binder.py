"""The Binder environment installs, opens the lessons' workspace copy, and runs every lesson.

repo2docker runs ``pip install -r binder/requirements.txt`` from the root of its copy of the
repository, then, at every session start, ``binder/start`` with the server's command. These
tests do the same on a copy of the checkout in a fresh venv (pip's cache makes the second run
fast): the install, the widget, plotly and anywidget lab extensions (a missing one is the
classic "Error displaying widget: model not found" on mybinder.org), the start script copying
the lessons into ``~/mmkit-lessons`` and handing over to the server, and every lesson executed
from that copy in the venv's own kernel, with its peak memory measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from mmkit.lab import LAB_OVERRIDES

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
    local = [r for r in reqs if r.startswith("./plugins/")]
    assert "./plugins/mmkit-vmap-guard" in local, "lesson 07 runs the vmap-guard policies"
    assert all((ROOT / r / "pyproject.toml").is_file() for r in local), local
    pins = [r for r in reqs if r != "." and r not in local]
    loose = [r for r in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", r)]
    assert not loose, f"Binder requirements must be exact pins (name==version): {loose}"
    names = {r.split("==")[0].lower().replace("_", "-") for r in pins}
    for needed in ("jupyterlab", "ipywidgets", "plotly", "anywidget", "pandas", "ipykernel"):
        assert needed in names, f"{needed} is not pinned in binder/requirements.txt"


def test_start_script_hands_over_to_the_server() -> None:
    start = BINDER / "start"
    assert os.access(start, os.X_OK), "binder/start must be executable"
    lines = [ln.strip() for ln in start.read_text(encoding="utf-8").splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert lines[0] == "#!/bin/bash"
    assert code[-1] == 'exec "$@"', "repo2docker requires the start script to end in exec"


def test_binder_lab_settings_are_mmkit_labs() -> None:
    """Binder sessions get the same JupyterLab setting defaults as ``mmkit lab``."""
    overrides = BINDER / "jupyter-config" / "lab-settings" / "overrides.json"
    assert json.loads(overrides.read_text(encoding="utf-8")) == LAB_OVERRIDES


def _start(home: Path, cwd: Path, path: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``binder/start COMMAND`` as repo2docker does, with a throwaway HOME."""
    env = {
        "HOME": str(home),
        "PATH": path,
        "JUPYTER_RUNTIME_DIR": str(home / ".runtime"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [str(cwd / "binder" / "start"), *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )


def test_start_script_copies_the_lessons_and_configures_the_lab(tmp_path: Path) -> None:
    """With this environment's Python first on PATH: the workspace is filled, the learner's
    edits survive a second start, and the server gets the Binder settings."""
    home = tmp_path / "home"
    home.mkdir()
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    run = _start(home, ROOT, path, "python", "-m", "jupyter", "lab", "--show-config")
    assert run.returncode == 0, run.stderr[-3000:]
    workspace = home / "mmkit-lessons"
    for lesson in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (workspace / lesson.name).read_bytes() == lesson.read_bytes()
    assert f"copied 00-welcome.ipynb into {workspace}" in run.stdout
    # The server's config, as loaded through binder/start's JUPYTER_CONFIG_PATH.
    assert ".default_url = '/lab/tree/mmkit-lessons/00-welcome.ipynb'" in run.stdout
    settings_dir = BINDER / "jupyter-config" / "lab-settings"
    assert f".app_settings_dir = '{settings_dir}'" in run.stdout
    assert "NeverCheckForUpdate" in run.stdout

    (workspace / "00-welcome.ipynb").write_text("{}", encoding="utf-8")  # the learner's now
    again = _start(home, ROOT, path, "true")
    assert again.returncode == 0, again.stderr
    assert (workspace / "00-welcome.ipynb").read_text(encoding="utf-8") == "{}"
    assert "00-welcome.new.ipynb" in again.stdout


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


# Runs inside the Binder venv, after binder/start: every lesson of the workspace copy, in a fresh
# kernel of the venv (nbclient, a timeout per cell, two lessons at a time), then a probe cell
# reporting the kernel's Python and its peak resident memory (VmHWM). One JSON line per lesson.
_RUN_LESSONS = r"""
import asyncio, json, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

PROBE = (
    "import sys, json\n"
    "status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
    "print('PROBE=' + json.dumps({'python': sys.executable,"
    " 'vmhwm_kb': int(status['VmHWM'].split()[0])}))"
)
workspace = Path(sys.argv[1])
parallel = asyncio.Semaphore(2)  # two kernels at a time: the machine has two cores

async def run(path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=120, startup_timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(workspace)}}, allow_errors=True)
    async with parallel:
        started = time.monotonic()
        await client.async_execute()
    errors = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                errors.append(f"cell {index}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                errors.append(f"cell {index} wrote to stderr: {out.text[:300]}")
    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    line = next((ln for ln in probe.splitlines() if ln.startswith("PROBE=")), "PROBE=null")
    return {"name": path.name, "seconds": time.monotonic() - started, "errors": errors,
            "probe": json.loads(line[6:])}

async def main():
    return await asyncio.gather(*(run(p) for p in sorted(workspace.glob("*.ipynb"))))

for result in asyncio.run(main()):
    print("RESULT=" + json.dumps(result), flush=True)
"""


@pytest.mark.timeout(1200)
def test_binder_environment_installs_and_runs_every_lesson(tmp_path: Path) -> None:
    started = time.monotonic()
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
            "--no-compile",  # no .pyc ahead of time: Python writes them as it imports
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
    installed = time.monotonic()

    # A session starts: binder/start copies the lessons, then hands over to the command, here
    # one that runs every lesson of the copy in the venv's kernel.
    home = tmp_path / "home"
    home.mkdir()
    runner = tmp_path / "run_lessons.py"
    runner.write_text(_RUN_LESSONS, encoding="utf-8")
    workspace = home / "mmkit-lessons"
    run = _start(
        home, repo, f"{env_dir / 'bin'}:/usr/bin:/bin", "python", str(runner), str(workspace)
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = [json.loads(ln[7:]) for ln in run.stdout.splitlines() if ln.startswith("RESULT=")]
    lessons = sorted(p.name for p in (repo / "notebooks").glob("*.ipynb"))
    assert [r["name"] for r in results] == lessons, run.stdout[-3000:] + run.stderr[-3000:]
    failures = {r["name"]: r["errors"] for r in results if r["errors"]}
    assert not failures, json.dumps(failures, indent=1)
    for r in results:
        assert r["probe"] is not None, f"{r['name']}: the probe cell did not run"
        assert Path(r["probe"]["python"]).parent == env_dir / "bin", r["probe"]
        print(
            f"{r['name']}: {r['seconds']:.1f}s in the Binder venv's kernel, "
            f"kernel peak RSS (VmHWM) {r['probe']['vmhwm_kb'] / 1024:.0f} MiB"
        )
    done = time.monotonic()
    print(
        f"binder: copy+venv+install {installed - started:.0f}s, "
        f"lessons {done - installed:.0f}s, total {done - started:.0f}s"
    )


def test_launch_links_open_the_workspace_copy_of_lesson_00() -> None:
    """The Binder link in the README and the instructor guide opens the lesson that
    binder/start copies, which is also the server's default page on Binder."""
    start = (BINDER / "start").read_text(encoding="utf-8")
    workspace = re.search(r'"\$HOME/([\w.-]+)"', start)
    assert workspace is not None, "binder/start must copy into a folder of $HOME"
    expected = f"{workspace.group(1)}/00-welcome.ipynb"
    config = (BINDER / "jupyter-config" / "jupyter_server_config.py").read_text(encoding="utf-8")
    assert f'default_url = "/lab/tree/{expected}"' in config
    for doc in (ROOT / "README.md", ROOT / "notebooks" / "INSTRUCTORS.md"):
        text = doc.read_text(encoding="utf-8")
        links = re.findall(r"https://mybinder\.org/v2/gh/\S+", text)
        assert links, f"{doc.name} has no Binder launch link"
        for link in links:
            assert link == f"https://mybinder.org/v2/gh/OWNER/REPO/TAG?urlpath=lab/tree/{expected}"
        hub = re.findall(r"https://HUB/hub/user-redirect/git-pull\?\S+", text)
        assert hub, f"{doc.name} has no nbgitpuller link"
        for link in hub:
            assert "repo=https%3A%2F%2Fgithub.com%2FOWNER%2FREPO" in link  # URL-encoded
            assert link.endswith("&urlpath=lab/tree/REPO/notebooks/00-welcome.ipynb")

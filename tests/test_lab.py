"""``mmkit lab``'s command line, built and checked without starting a server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mmkit.lab
from mmkit.errors import InvalidArgument, NotFound
from mmkit.lab import NOTEBOOKS_ENV, find_notebooks_dir, lab_command, run_lab

ROOT = Path(__file__).resolve().parent.parent


def _value(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_command_runs_jupyter_lab_of_this_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd = lab_command("/srv/lessons")
    assert cmd[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert _value(cmd, "--ip") == "127.0.0.1"  # loopback unless asked otherwise
    assert _value(cmd, "--notebook-dir") == "/srv/lessons"
    assert "--port" not in cmd and "--no-browser" not in cmd and "--allow-root" not in cmd
    # mmkit lab keeps JupyterLab's own token: nothing may switch authentication off.
    assert not any("token" in arg or "password" in arg for arg in cmd)


def test_command_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd = lab_command(tmp_path, port=8899, ip="0.0.0.0", open_browser=False)
    assert _value(cmd, "--port") == "8899"
    assert _value(cmd, "--ip") == "0.0.0.0"
    assert _value(cmd, "--notebook-dir") == str(tmp_path)
    assert "--no-browser" in cmd


def test_allow_root_only_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab_command("nb")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab_command("nb")


@pytest.mark.parametrize("port", [-1, 65536])
def test_bad_port_is_refused(port: int) -> None:
    with pytest.raises(InvalidArgument, match="port"):
        lab_command("nb", port=port)


def test_finds_the_checkout_lessons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOTEBOOKS_ENV, raising=False)
    assert find_notebooks_dir() == (ROOT / "notebooks").resolve()


def test_environment_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "00-welcome.ipynb").write_text("{}", encoding="utf-8")
    monkeypatch.setenv(NOTEBOOKS_ENV, str(tmp_path))
    assert find_notebooks_dir() == tmp_path.resolve()


def test_missing_lessons_say_where_they_were_looked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(mmkit.lab, "_candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(NotFound, match="nowhere") as info:
        find_notebooks_dir()
    assert NOTEBOOKS_ENV in str(info.value)


def test_run_lab_execs_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, list(argv))))
    # A server must never start here: fail loudly if run_lab falls back to a subprocess.
    monkeypatch.setattr(
        mmkit.lab.subprocess, "call", lambda *a, **k: pytest.fail("started a server")
    )
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv(NOTEBOOKS_ENV, raising=False)
    assert run_lab(port=9999, open_browser=False) == 0
    ((path, argv),) = calls
    assert path == sys.executable
    assert argv == lab_command(ROOT / "notebooks", port=9999, open_browser=False)


def test_run_lab_without_jupyterlab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmkit.lab.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NotFound, match=r"mmkit\[lab\]"):
        run_lab()


def test_run_lab_with_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        run_lab(tmp_path / "missing")


def test_jupyter_lab_accepts_the_command(tmp_path: Path) -> None:
    """The real ``jupyter lab`` parses our flags; ``--show-config`` prints and exits, so no
    server is started."""
    cmd = [*lab_command(ROOT / "notebooks", port=0, open_browser=False), "--show-config"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f".root_dir = '{ROOT / 'notebooks'}'" in result.stdout
    assert ".ip = '127.0.0.1'" in result.stdout
    assert "token" not in result.stdout.lower()  # authentication left as JupyterLab sets it

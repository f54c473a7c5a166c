"""``mmkit lab``: the plan and command line checked without a server, then one real server.

The real test starts ``mmkit lab`` from a private copy of the clone, as a learner would, with a
temporary HOME; opens lesson 00 through the Jupyter REST API and in headless Chromium (no news
prompt); saves it with outputs as JupyterLab's autosave does; stops it with ``jupyter server
stop``; and checks that the clone's ``git status`` did not change while the workspace copy did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

import mmkit.lab
from mmkit import cli
from mmkit.errors import InvalidArgument, NotFound
from mmkit.lab import (
    LAB_OVERRIDES,
    NOTEBOOKS_ENV,
    find_notebooks_dir,
    lab_command,
    plan_lab,
    run_lab,
)
from mmkit.workspace import MANIFEST, WORKSPACE_ENV, WorkspaceRefused, lesson_files
from tests.browser_lab import CHROMIUM_ARGS, chromium_or_fail

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def _value(cmd: list[str], flag: str) -> str:
    for index, arg in enumerate(cmd):
        if arg == flag:
            return cmd[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {cmd}")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A learner's HOME outside any git work tree, with no mmkit variables set."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (WORKSPACE_ENV, NOTEBOOKS_ENV, "JUPYTERLAB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    return home


# --- the command line ---------------------------------------------------------------------


def test_command_runs_jupyter_lab_of_this_python(home: Path) -> None:
    cmd = lab_command("/srv/ws", settings_dir="/srv/ws/.mmkit/lab")
    assert cmd[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert _value(cmd, "--ip") == "127.0.0.1"  # loopback unless asked otherwise
    assert _value(cmd, "--ServerApp.root_dir") == "/srv/ws"
    assert _value(cmd, "--LabApp.default_url") == "/lab/tree/00-welcome.ipynb"
    for flag, sub in [
        ("--LabApp.app_settings_dir", "app-settings"),
        ("--LabApp.user_settings_dir", "user-settings"),
        ("--LabApp.workspaces_dir", "workspaces"),
    ]:
        assert _value(cmd, flag) == f"/srv/ws/.mmkit/lab/{sub}"
    assert _value(cmd, "--LabApp.check_for_updates_class") == "jupyterlab.NeverCheckForUpdate"
    assert "--port" not in cmd and "--no-browser" not in cmd and "--allow-root" not in cmd
    # mmkit lab keeps JupyterLab's own token: nothing may switch authentication off.
    assert not any("token" in arg.lower() or "password" in arg.lower() for arg in cmd)


def test_command_options(home: Path, tmp_path: Path) -> None:
    cmd = lab_command(tmp_path, settings_dir=tmp_path, port=8899, ip="0.0.0.0", open_browser=False)
    assert _value(cmd, "--port") == "8899"
    assert _value(cmd, "--ip") == "0.0.0.0"
    assert "--no-browser" in cmd


def test_allow_root_only_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab_command("ws", settings_dir="s")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab_command("ws", settings_dir="s")


@pytest.mark.parametrize("port", [-1, 65536])
def test_bad_port_is_refused(port: int) -> None:
    with pytest.raises(InvalidArgument, match="port"):
        lab_command("ws", settings_dir="s", port=port)


# --- where the lessons are ------------------------------------------------------------------


def test_finds_the_checkout_lessons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOTEBOOKS_ENV, raising=False)
    assert find_notebooks_dir() == NOTEBOOKS.resolve()


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


# --- the plan -------------------------------------------------------------------------------


def test_plan_defaults_to_a_workspace_in_home_and_writes_nothing(home: Path) -> None:
    plan = plan_lab(open_browser=False)
    assert plan.workspace == home / "mmkit-lessons"
    assert plan.source == NOTEBOOKS.resolve()
    assert plan.settings_dir == plan.workspace / ".mmkit" / "lab"
    assert _value(plan.command, "--ServerApp.root_dir") == str(plan.workspace)
    assert plan.overrides[NOTIFICATION] == {"fetchNews": "false", "checkForUpdates": False}
    assert plan.warnings == ()
    assert not plan.workspace.exists(), "planning must not create anything"


def test_workspace_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKSPACE_ENV, str(home / "class"))
    assert plan_lab().workspace == home / "class"
    assert plan_lab(home / "mine").workspace == home / "mine"  # --workspace wins


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (lambda: ROOT / "my-lessons", "git work tree"),
        (lambda: ROOT, "lessons folder"),  # holds the lessons
        (lambda: NOTEBOOKS, "lessons folder"),
        (lambda: NOTEBOOKS / "copy", "lessons folder"),
        (lambda: Path(mmkit.__file__).parent / "lessons", "Python installation"),
        (lambda: Path(sys.prefix) / "lessons", "Python installation"),
        (lambda: Path("/"), "lessons folder"),
    ],
    ids=["in-clone", "clone-root", "lessons", "in-lessons", "in-package", "in-venv", "root"],
)
def test_workspace_in_harms_way_is_refused(home: Path, where: Any, reason: str) -> None:
    target: Path = where()
    existed = target.exists()
    with pytest.raises(WorkspaceRefused, match=reason) as info:
        plan_lab(target)
    assert "fix: choose a folder outside it" in str(info.value)
    assert target.exists() == existed


def test_cli_refuses_a_workspace_in_the_clone(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["lab", "--workspace", str(ROOT / "lessons"), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "git work tree" in err and "--workspace ~/mmkit-lessons" in err
    assert not (ROOT / "lessons").exists()


def test_listening_beyond_loopback_warns_and_points_to_a_tunnel(home: Path) -> None:
    (warning,) = plan_lab(ip="0.0.0.0").warnings
    assert "ssh -L 8888:127.0.0.1:8888" in warning


def test_installed_overrides_are_kept_but_ours_win(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = tmp_path / "lab" / "settings"
    settings.mkdir(parents=True)
    theme = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    (settings / "overrides.json").write_text(
        json.dumps({**theme, NOTIFICATION: {"fetchNews": "true", "doNotDisturbMode": True}}),
        encoding="utf-8",
    )
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "lab"))
    overrides = plan_lab().overrides
    assert overrides[next(iter(theme))] == theme[next(iter(theme))]
    assert overrides[NOTIFICATION] == {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    }


# --- run_lab, with exec replaced ----------------------------------------------------------


def test_run_lab_fills_the_workspace_and_execs_the_plan(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, list(argv))))
    # A server must never start here: fail loudly if run_lab falls back to a subprocess.
    monkeypatch.setattr(
        mmkit.lab.subprocess, "call", lambda *a, **k: pytest.fail("started a server")
    )
    monkeypatch.chdir(ROOT)  # started from the clone; restored after the test
    assert run_lab(port=9999, open_browser=False) == 0
    ((path, argv),) = calls
    plan = plan_lab(port=9999, open_browser=False)
    assert (path, argv) == (sys.executable, plan.command)
    assert Path.cwd() == plan.workspace  # the server does not start inside the clone
    for lesson in lesson_files(NOTEBOOKS):
        assert (plan.workspace / lesson.name).read_bytes() == lesson.read_bytes()
    written = json.loads(
        (plan.settings_dir / "app-settings" / "overrides.json").read_text(encoding="utf-8")
    )
    assert written[NOTIFICATION] == LAB_OVERRIDES[NOTIFICATION]
    assert _value(argv, "--LabApp.app_settings_dir") == str(plan.settings_dir / "app-settings")


def test_run_lab_without_jupyterlab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmkit.lab.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NotFound, match=r"mmkit\[lab\]"):
        run_lab()


def test_jupyter_lab_accepts_the_command(home: Path, tmp_path: Path) -> None:
    """The real ``jupyter lab`` parses our flags; ``--show-config`` prints and exits, so no
    server is started."""
    plan = plan_lab(tmp_path / "ws", port=0, open_browser=False)
    plan.workspace.mkdir()  # the server checks that its root exists
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    result = subprocess.run(
        [*plan.command, "--show-config"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f".root_dir = '{plan.workspace}'" in out
    assert ".ip = '127.0.0.1'" in out
    assert ".default_url = '/lab/tree/00-welcome.ipynb'" in out
    assert str(plan.settings_dir / "user-settings") in out
    assert "NeverCheckForUpdate" in out
    assert "token" not in out.lower()  # authentication left as JupyterLab sets it


# --- a real server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _git_status(clone: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _private_clone(dest: Path) -> Path:
    """A copy of this checkout, history and uncommitted files included, that nothing else
    edits while the test runs (so its ``git status`` can only change because of the test)."""
    ignore = shutil.ignore_patterns(
        ".venv*",
        "test-artifacts",
        "*.egg-info",
        "__pycache__",
        ".*_cache",
        ".hypothesis",
        "index.lock",
    )
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    return dest


class _Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(
        self, method: str, path: str, body: Any = None, *, token: bool = True
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as err:
            return err.code, None
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text


def _lesson_page_toasts(url: str, watch: float = 5.0) -> list[str]:
    """Open ``url`` in headless Chromium, wait for the notebook, and collect the texts of the
    notifications (toasts) shown within ``watch`` seconds after it appears."""
    seen: set[str] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_or_fail(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=90_000)
            assert "00-welcome" in page.title()
            deadline = time.monotonic() + watch
            while time.monotonic() < deadline:
                seen.update(page.locator(".Toastify").all_inner_texts())
                page.wait_for_timeout(250)
        finally:
            browser.close()
    return sorted(t for t in seen if t.strip())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_mmkit_lab_saves_into_the_workspace_and_leaves_the_clone_clean(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    runtime = tmp_path / "runtime"
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            WORKSPACE_ENV,
            NOTEBOOKS_ENV,
            "JUPYTERLAB_SETTINGS_DIR",
            "JUPYTERLAB_WORKSPACES_DIR",
        }
    }
    env.update(
        HOME=str(home),
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    clone = _private_clone(tmp_path / "clone")
    lessons = clone / "notebooks"
    env["PYTHONPATH"] = str(clone)  # the copy's mmkit, so it finds the copy's lessons
    before = _git_status(clone)
    lesson_hash = _sha(lessons / "00-welcome.ipynb")
    log = tmp_path / "mmkit-lab.log"
    port = _free_port()
    started = time.monotonic()
    cmd = [sys.executable, "-m", "mmkit.cli", "lab", "--port", str(port), "--no-browser"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            cmd,
            cwd=clone,  # a learner starts it from the clone
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup reaches its kernels
        )
    try:
        info: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        while not info:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            for path in runtime.glob("jpserver-*.json") if runtime.is_dir() else ():
                with contextlib.suppress(ValueError, OSError):
                    info = json.loads(path.read_text(encoding="utf-8"))
            time.sleep(0.2)
        workspace = home / "mmkit-lessons"
        assert Path(info["root_dir"]) == workspace
        assert f"in {workspace} (from {lessons})" in log.read_text(errors="replace")
        assert info["token"], "mmkit lab must keep a token"
        api = _Api(f"http://127.0.0.1:{port}", info["token"])
        while api.call("GET", "/api/status")[0] != 200:
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        assert api.call("GET", "/api/contents", token=False)[0] == 403

        # JupyterLab opens lesson 00: the page, the file, and a kernel session.
        assert f":{port}/lab/tree/00-welcome.ipynb?token=" in log.read_text(errors="replace")
        assert api.call("GET", "/lab/tree/00-welcome.ipynb")[0] == 200
        status, model = api.call("GET", "/api/contents/00-welcome.ipynb?type=notebook&content=1")
        assert status == 200 and model["path"] == "00-welcome.ipynb"
        status, session = api.call(
            "POST",
            "/api/sessions",
            {
                "path": "00-welcome.ipynb",
                "name": "00-welcome.ipynb",
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        assert status == 201, session

        # Autosave: the whole notebook, with outputs, PUT back; then a checkpoint, as on Ctrl-S.
        nb = model["content"]
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["execution_count"] = 1
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        body = {"type": "notebook", "format": "json", "content": nb}
        assert api.call("PUT", "/api/contents/00-welcome.ipynb", body)[0] == 200
        assert api.call("POST", "/api/contents/00-welcome.ipynb/checkpoints")[0] == 201

        # No news prompt, no update check: the settings JupyterLab's front end reads.
        status, notification = api.call("GET", f"/lab/api/settings/{NOTIFICATION}")
        assert status == 200
        defaults = notification["schema"]["properties"]  # overrides replace the defaults
        assert defaults["fetchNews"]["default"] == "false"
        assert defaults["checkForUpdates"]["default"] is False
        assert "fetchNews" not in notification["settings"]  # the learner chose nothing yet
        status, update = api.call("GET", "/lab/api/update")
        assert status == 200 and not update.get("notification"), update

        # A learner's settings and layouts land in the workspace's hidden state folder.
        theme = {"raw": json.dumps({"theme": "JupyterLab Dark"})}
        assert api.call("PUT", "/lab/api/settings/@jupyterlab/apputils-extension:themes", theme)[
            0
        ] in (200, 204)
        layout = {"data": {}, "metadata": {"id": "lesson-layout"}}
        assert api.call("PUT", "/lab/api/workspaces/lesson-layout", layout)[0] in (200, 204)
        # The page a learner gets: lesson 00, and no "official Jupyter news?" toast (plain
        # `jupyter lab` shows it within a second of the notebook appearing).
        toasts = _lesson_page_toasts(f"{api.url}/lab/tree/00-welcome.ipynb?token={api.token}")
        assert not any("news" in toast.lower() for toast in toasts), toasts

        status_file = Path(f"/proc/{server.pid}/status").read_text(encoding="utf-8")
        server_hwm = re.search(r"VmHWM:\s+(\d+) kB", status_file)
        assert server_hwm is not None
        print(f"mmkit lab: the server's peak RSS (VmHWM) {int(server_hwm.group(1)) / 1024:.0f} MiB")
        assert api.call("DELETE", f"/api/sessions/{session['id']}")[0] == 204

        # The README's way to stop it from another terminal. This test reaps the server (its
        # parent) while the stop command polls for it, as a learner's shell would.
        stopping = time.monotonic()
        stop = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "server", "stop", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert server.wait(timeout=30) == 0, log.read_text(errors="replace")[-3000:]
        stop_out, _ = stop.communicate(timeout=30)
        assert stop.returncode == 0, stop_out
        print(f"mmkit lab: `jupyter server stop` took {time.monotonic() - stopping:.1f}s")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
    elapsed = time.monotonic() - started
    print(f"mmkit lab: started, opened, saved and stopped in {elapsed:.1f}s")

    saved = json.loads((workspace / "00-welcome.ipynb").read_text(encoding="utf-8"))
    assert any(c.get("outputs") for c in saved["cells"]), "the workspace copy was not saved"
    assert (workspace / ".ipynb_checkpoints" / "00-welcome-checkpoint.ipynb").is_file()
    state = workspace / ".mmkit" / "lab"
    assert (
        state / "user-settings/@jupyterlab/apputils-extension/themes.jupyterlab-settings"
    ).is_file()
    assert list((state / "workspaces").glob("*.jupyterlab-workspace"))
    assert _sha(lessons / "00-welcome.ipynb") == lesson_hash
    assert _git_status(clone) == before, "mmkit lab changed the clone"

    # The saved lesson is no longer what was copied: a later run keeps it as the learner's.
    manifest = json.loads((workspace / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["files"]["00-welcome.ipynb"] == lesson_hash


# --- what the README and the instructor guide say ----------------------------------------------


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_quick_start_commands_are_the_ones_that_work() -> None:
    import tomllib

    first, second = _quick_start_commands()
    plugins = ("plugins/mmkit-vmap-guard", "plugins/mmkit-x86_64")
    assert first == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[lab]' "
        + " ".join(f"-e {p}" for p in plugins)
        + " && .venv/bin/mmkit lab"
    )
    for p in plugins:  # the example plugins lesson 07 runs are packages of this repository
        assert (ROOT / p / "pyproject.toml").is_file(), p
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["mmkit"] == "mmkit.cli:main"
    lab_extra = " ".join(project["optional-dependencies"]["lab"])
    assert "jupyterlab" in lab_extra  # so .venv/bin/jupyter (server stop) exists too
    assert second == "bash .ci/run"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # The README says it needs root or sudo only for apt-get, and only without chromium.
    assert "apt-get install" in ci and "[ -x /usr/bin/chromium ]" in ci


def test_instructors_guide_links_resolve_and_its_code_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re
    import textwrap

    guide = (NOTEBOOKS / "INSTRUCTORS.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:\s]+)\)", guide)
    assert "00-welcome.ipynb" in links
    missing = [link for link in links if not (NOTEBOOKS / link).exists()]
    assert not missing, f"INSTRUCTORS.md links to files that are not in notebooks/: {missing}"
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(textwrap.dedent(block), "INSTRUCTORS.md", "exec"), {})
    out = capsys.readouterr().out
    assert "01a" in out and "0x" in out  # the solutions name addresses in hex
